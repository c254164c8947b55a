import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/** TanH: y = tanh(x). Backward uses y only (dy/dx = 1 − y²), so in place is safe. */
export class TanHLayer extends NeuronLayer {
  readonly type = 'TanH';

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]!);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < y.length; i++) {
      const t = y[i]!;
      dx[i] = dy[i]! * (1 - t * t);
    }
  }
}

export const tanhLayerDef: LayerDef<TanHLayer> = { type: 'TanH', create: (p, ctx) => new TanHLayer(p, ctx) };
