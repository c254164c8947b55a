import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * ELU (Caffe's ELULayer): y = x for x > 0, α·(eˣ − 1) otherwise.
 * Backward is dy for x > 0 and dy·(y + α) otherwise, read from the bottom and top data as in
 * Caffe; in place the bottom holds y, whose sign matches x's for α > 0, so that stays exact.
 */
export class ELULayer extends NeuronLayer {
  readonly type = 'ELU';

  get alpha(): number {
    return this.param.elu_param?.alpha ?? 1;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const alpha = this.alpha;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      y[i] = Math.max(v, 0) + alpha * (Math.exp(Math.min(v, 0)) - 1);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const alpha = this.alpha;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : dy[i]! * (alpha + y[i]!);
  }
}

export const eluLayerDef: LayerDef<ELULayer> = { type: 'ELU', create: (p, ctx) => new ELULayer(p, ctx) };
