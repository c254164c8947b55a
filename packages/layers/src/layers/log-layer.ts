import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * Log (Caffe's LogLayer): y = log_base(shift + scale·x), with base −1 (the default) meaning e.
 * dx = scale / (ln(base)·(shift + scale·x))·dy reads the bottom's data, so (as in Caffe) in
 * place it would see the top instead.
 */
export class LogLayer extends NeuronLayer {
  readonly type = 'Log';

  inputScale = 1;
  inputShift = 0;
  /** 1 / ln(base). */
  baseScale = 1;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const lp = this.param.log_param;
    const base = lp?.base ?? -1;
    if (base !== -1) this.check(base > 0, () => `base must be strictly positive (got base ${base}).`);
    const logBase = base === -1 ? 1 : Math.log(base);
    this.check(Number.isFinite(logBase), () => `${logBase} result: log(base) = log(${base}) = ${logBase}`);
    this.baseScale = 1 / logBase;
    // base 1 has ln(base) = 0, so no finite logarithm.
    this.check(Number.isFinite(this.baseScale), () => `${this.baseScale} result: 1/log(base) = 1/log(${base}) = ${this.baseScale}`);
    this.inputScale = lp?.scale ?? 1;
    this.inputShift = lp?.shift ?? 0;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { inputScale, inputShift, baseScale } = this;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = Math.log(inputScale * x[i]! + inputShift) * baseScale;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const { inputScale, inputShift, baseScale } = this;
    const numerator = inputScale * baseScale;
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) dx[i] = (numerator / (inputScale * x[i]! + inputShift)) * dy[i]!;
  }
}

export const logLayerDef: LayerDef<LogLayer> = { type: 'Log', create: (p, ctx) => new LogLayer(p, ctx) };
