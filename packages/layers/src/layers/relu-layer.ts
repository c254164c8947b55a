import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * ReLU (Caffe's ReLULayer): y = max(x, 0) + negative_slope · min(x, 0) (leaky when the
 * slope is non-zero). In place is safe: backward only needs the sign of x, which y keeps
 * for any slope ≥ 0.
 */
export class ReLULayer extends NeuronLayer {
  readonly type = 'ReLU';

  get negativeSlope(): number {
    return this.param.relu_param?.negative_slope ?? 0;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const slope = this.negativeSlope;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      // Caffe's form; it gives +0 (not −0) for negative inputs when the slope is 0.
      y[i] = Math.max(v, 0) + slope * Math.min(v, 0);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const slope = this.negativeSlope;
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    // The subgradient at 0 is the negative slope, as in Caffe.
    for (let i = 0; i < x.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : slope * dy[i]!;
  }
}

export const reluLayerDef: LayerDef<ReLULayer> = { type: 'ReLU', create: (p, ctx) => new ReLULayer(p, ctx) };
