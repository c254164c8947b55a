import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * AbsVal (Caffe's AbsValLayer): y = |x|, dx = sign(x)·dy (0 at x = 0). Backward needs the sign
 * of x, which y loses, so in place is rejected as in Caffe.
 */
export class AbsValLayer extends NeuronLayer {
  readonly type = 'AbsVal';

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    this.check(top[0] !== bottom[0], () => `${this.type} Layer does not allow in-place computation.`);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = Math.abs(x[i]!);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      dx[i] = v > 0 ? dy[i]! : v < 0 ? -dy[i]! : 0;
    }
  }
}

export const absValLayerDef: LayerDef<AbsValLayer> = { type: 'AbsVal', create: (p, ctx) => new AbsValLayer(p, ctx) };
