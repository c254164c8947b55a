import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * Exp (Caffe's ExpLayer): y = base^(shift + scale·x), with base −1 (the default) meaning e.
 * Computed as outer·e^(inner·x) with inner = ln(base)·scale and outer = base^shift, so
 * dx = inner·y·dy needs only the top and in place is safe.
 */
export class ExpLayer extends NeuronLayer {
  readonly type = 'Exp';

  innerScale = 1;
  outerScale = 1;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const ep = this.param.exp_param;
    const base = ep?.base ?? -1;
    const scale = ep?.scale ?? 1;
    const shift = ep?.shift ?? 0;
    if (base !== -1) this.check(base > 0, () => `base must be strictly positive (got base ${base}).`);
    // Base e gives ln(base) = 1 exactly.
    const logBase = base === -1 ? 1 : Math.log(base);
    this.check(Number.isFinite(logBase), () => `${logBase} result: log(base) = log(${base}) = ${logBase}`);
    this.innerScale = logBase * scale;
    this.outerScale = shift === 0 ? 1 : base === -1 ? Math.exp(shift) : Math.pow(base, shift);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { innerScale, outerScale } = this;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = outerScale * Math.exp(innerScale * x[i]!);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const inner = this.innerScale;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < y.length; i++) dx[i] = inner * y[i]! * dy[i]!;
  }
}

export const expLayerDef: LayerDef<ExpLayer> = { type: 'Exp', create: (p, ctx) => new ExpLayer(p, ctx) };
