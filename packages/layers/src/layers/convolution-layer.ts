import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { BaseConvolutionLayer } from './base-conv-layer.js';

/**
 * Convolution (Caffe's ConvolutionLayer): N-d, dilated, grouped convolution of each bottom
 * with the same filters. Output spatial size per axis: `floor((in + 2p − (d(k−1)+1)) / s) + 1`.
 * Blobs: `[weight [num_output, channels/group, k…], bias [num_output]]` (bias when bias_term).
 */
export class ConvolutionLayer extends BaseConvolutionLayer {
  readonly type: string = 'Convolution';

  protected reverseDimensions(): boolean {
    return false;
  }

  protected computeOutputShape(): void {
    this.outputShape = [];
    for (let i = 0; i < this.numSpatialAxes; i++) {
      const input = this.inputShape(i + 1);
      const extent = this.dilation[i]! * (this.kernelShape[i]! - 1) + 1;
      this.outputShape.push(Math.floor((input + 2 * this.pad[i]! - extent) / this.stride[i]!) + 1);
    }
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const weight = this.blobs[0]!.cpuData();
    const bias = this.biasTerm ? this.blobs[1]!.cpuData() : null;
    for (let i = 0; i < bottom.length; i++) {
      const bottomData = bottom[i]!.cpuData();
      const topData = top[i]!.mutableCpuData();
      if (this.batched) {
        this.forwardBatched(bottomData, weight, topData, bias);
        continue;
      }
      for (let n = 0; n < this.num; n++) {
        const out = topData.subarray(n * this.topDim, (n + 1) * this.topDim);
        this.forwardCpuGemm(bottomData.subarray(n * this.bottomDim, (n + 1) * this.bottomDim), weight, out);
        if (bias) this.forwardCpuBias(out, bias);
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const weight = this.blobs[0]!.cpuData();
    const weightPd = this.paramPropagateDown[0] ?? true;
    const biasPd = this.biasTerm && (this.paramPropagateDown[1] ?? true);
    for (let i = 0; i < top.length; i++) {
      const topDiff = top[i]!.cpuDiff();
      const imgTopDiff = (n: number) => topDiff.subarray(n * this.topDim, (n + 1) * this.topDim);
      const pd = propagateDown[i] ?? false;
      if (this.batched) {
        // Bias, weight and bottom gradients in one sweep over the images.
        this.convBackwardBatched(
          weightPd ? bottom[i]!.cpuData() : null, topDiff, weight,
          weightPd ? this.blobs[0]!.mutableCpuDiff() : null,
          pd ? bottom[i]!.mutableCpuDiff() : null,
          biasPd ? this.blobs[1]!.mutableCpuDiff() : null,
        );
        continue;
      }
      if (biasPd) {
        const biasDiff = this.blobs[1]!.mutableCpuDiff();
        for (let n = 0; n < this.num; n++) this.backwardCpuBias(biasDiff, imgTopDiff(n));
      }
      if (!weightPd && !pd) continue;
      const bottomData = bottom[i]!.cpuData();
      const weightDiff = weightPd ? this.blobs[0]!.mutableCpuDiff() : null;
      const bottomDiff = pd ? bottom[i]!.mutableCpuDiff() : null;
      for (let n = 0; n < this.num; n++) {
        const range: [number, number] = [n * this.bottomDim, (n + 1) * this.bottomDim];
        // Weight gradient accumulates over images (and over calls, as Caffe's param diffs do).
        if (weightDiff) this.weightCpuGemm(bottomData.subarray(...range), imgTopDiff(n), weightDiff);
        if (bottomDiff) this.backwardCpuGemm(imgTopDiff(n), weight, bottomDiff.subarray(...range));
      }
    }
  }
}

export const convolutionLayerDef: LayerDef<ConvolutionLayer> = {
  type: 'Convolution',
  create: (param, context) => new ConvolutionLayer(param, context),
};
