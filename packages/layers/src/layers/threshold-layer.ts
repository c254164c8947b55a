import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * Threshold (Caffe's ThresholdLayer): y = 1 if x > threshold, else 0. A step function has no
 * useful gradient, so backward is not implemented: asking for it throws, as Caffe aborts.
 */
export class ThresholdLayer extends NeuronLayer {
  readonly type = 'Threshold';

  threshold = 0;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    this.threshold = this.param.threshold_param?.threshold ?? 0;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const t = this.threshold;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = x[i]! > t ? 1 : 0;
  }

  protected override backwardCpu(_top: Blob[], propagateDown: boolean[], _bottom: Blob[]): void {
    if (propagateDown.some(Boolean)) this.fail('backward is not implemented (the threshold step function is not differentiable)');
  }
}

export const thresholdLayerDef: LayerDef<ThresholdLayer> = { type: 'Threshold', create: (p, ctx) => new ThresholdLayer(p, ctx) };
