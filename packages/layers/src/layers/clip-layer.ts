import type { Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * Clip (Caffe's ClipLayer): y = max(min, min(x, max)); the gradient passes where
 * min ≤ x ≤ max (both ends included) and is 0 elsewhere. Backward reads the bottom's data, so
 * (as in Caffe) in place it sees the clipped values and passes the gradient everywhere.
 */
export class ClipLayer extends NeuronLayer {
  readonly type = 'Clip';

  min = 0;
  max = 0;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const cp = this.param.clip_param;
    // Both fields are `required` in caffe.proto: a Clip layer without them does not parse in Caffe.
    this.check(cp !== null && hasField(cp, 'min') && hasField(cp, 'max'), () => 'clip_param { min, max } is required (both fields)');
    this.min = cp.min;
    this.max = cp.max;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { min, max } = this;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = Math.max(min, Math.min(x[i]!, max));
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const { min, max } = this;
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      dx[i] = v >= min && v <= max ? dy[i]! : 0;
    }
  }
}

export const clipLayerDef: LayerDef<ClipLayer> = { type: 'Clip', create: (p, ctx) => new ClipLayer(p, ctx) };
