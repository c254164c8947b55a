import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/** Sigmoid: y = 1 / (1 + e^−x). Backward uses y only (dy/dx = y(1 − y)), so in place is safe. */
export class SigmoidLayer extends NeuronLayer {
  readonly type = 'Sigmoid';

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    // 0.5·tanh(0.5x) + 0.5 equals the logistic function and cannot overflow.
    for (let i = 0; i < x.length; i++) y[i] = 0.5 * Math.tanh(0.5 * x[i]!) + 0.5;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < y.length; i++) {
      const s = y[i]!;
      dx[i] = dy[i]! * s * (1 - s);
    }
  }
}

export const sigmoidLayerDef: LayerDef<SigmoidLayer> = { type: 'Sigmoid', create: (p, ctx) => new SigmoidLayer(p, ctx) };
