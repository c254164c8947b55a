import { col2im, col2imNd, im2col, im2colNd, type Blob, type FloatArray } from '@caffe-ts/blob';
import { createMessage, type ConvolutionParameter } from '@caffe-ts/proto';
import { convWindow } from './conv-window.js';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Im2col (Caffe's Im2colLayer): exposes the column buffer a convolution would use. Reads the
 * geometry from `convolution_param` (kernel/stride/pad/dilation once or per spatial axis, or
 * `*_h`/`*_w` for 2-D; `axis`; `force_nd_im2col`; num_output and the fillers are ignored).
 * Top: the bottom's shape with the channel axis multiplied by Πkernel and each spatial axis
 * replaced by the convolution's output size `(in + 2p − (d(k−1)+1))/s + 1`, i.e.
 * N × C·kh·kw × H_out × W_out in 2-D. Backward is col2im (overlapping windows add up).
 */
export class Im2colLayer extends Layer {
  readonly type: string = 'Im2col';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  kernelShape: number[] = [];
  stride: number[] = [];
  pad: number[] = [];
  dilation: number[] = [];
  private channelAxis = 1;
  private numSpatialAxes = 0;
  private forceNd = false;
  private num = 0;
  private bottomDim = 0;
  private topDim = 0;

  private get convParam(): ConvolutionParameter {
    return this.param.convolution_param ?? createMessage<ConvolutionParameter>('ConvolutionParameter', {});
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const cp = this.convParam;
    const b = bottom[0]!;
    this.forceNd = cp.force_nd_im2col;
    const n = b.numAxes;
    this.check(cp.axis >= -n && cp.axis < n, () => `axis ${cp.axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    this.channelAxis = b.canonicalAxisIndex(cp.axis);
    this.numSpatialAxes = n - this.channelAxis - 1;
    this.check(this.numSpatialAxes >= 1, () => `needs at least one spatial axis after the channel axis ${this.channelAxis} (bottom ${b.shapeString()})`);
    const window = convWindow(cp, this.numSpatialAxes, (ok, message) => this.check(ok, message));
    this.kernelShape = window.kernelShape;
    this.stride = window.stride;
    this.pad = window.pad;
    this.dilation = window.dilation;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const ca = this.channelAxis;
    this.check(
      b.numAxes === ca + 1 + this.numSpatialAxes,
      () => `bottom num_axes may not change (was ${ca + 1 + this.numSpatialAxes}, now ${b.numAxes}: ${b.shapeString()}).`,
    );
    const shape = b.shape.slice();
    for (let i = 0; i < this.numSpatialAxes; i++) {
      shape[ca] = shape[ca]! * this.kernelShape[i]!;
      const input = b.shape[ca + 1 + i]!;
      const extent = this.dilation[i]! * (this.kernelShape[i]! - 1) + 1;
      const out = Math.floor((input + 2 * this.pad[i]! - extent) / this.stride[i]!) + 1;
      this.check(
        out > 0,
        () => `output spatial dim ${i} would be ${out} (input ${input}, kernel ${this.kernelShape[i]}, pad ${this.pad[i]}, stride ${this.stride[i]}, dilation ${this.dilation[i]})`,
      );
      shape[ca + 1 + i] = out;
    }
    this.check(top[0] !== b, () => 'Im2col layer does not allow in-place computation.');
    top[0]!.reshape(shape);
    this.num = b.count(0, ca);
    this.bottomDim = b.count(ca);
    this.topDim = top[0]!.count(ca);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let n = 0; n < this.num; n++) {
      this.transform(true, x.subarray(n * this.bottomDim, (n + 1) * this.bottomDim), y.subarray(n * this.topDim, (n + 1) * this.topDim), bottom[0]!, top[0]!);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let n = 0; n < this.num; n++) {
      this.transform(false, dx.subarray(n * this.bottomDim, (n + 1) * this.bottomDim), dy.subarray(n * this.topDim, (n + 1) * this.topDim), bottom[0]!, top[0]!);
    }
  }

  /** im2col (forward) image → col, or col2im (backward) col → image, for one item. */
  private transform(forward: boolean, image: FloatArray, col: FloatArray, b: Blob, t: Blob): void {
    const ca = this.channelAxis;
    const [k, p, s, d] = [this.kernelShape, this.pad, this.stride, this.dilation];
    if (!this.forceNd && this.numSpatialAxes === 2) {
      const [c, h, w] = [b.shape[ca]!, b.shape[ca + 1]!, b.shape[ca + 2]!];
      if (forward) im2col(image, c, h, w, k[0]!, k[1]!, p[0]!, p[1]!, s[0]!, s[1]!, d[0]!, d[1]!, col);
      else col2im(col, c, h, w, k[0]!, k[1]!, p[0]!, p[1]!, s[0]!, s[1]!, d[0]!, d[1]!, image);
    } else {
      const imShape = b.shape.slice(ca);
      const colShape = t.shape.slice(ca);
      if (forward) im2colNd(image, this.numSpatialAxes, imShape, colShape, k, p, s, d, col);
      else col2imNd(col, this.numSpatialAxes, imShape, colShape, k, p, s, d, image);
    }
  }
}

export const im2colLayerDef: LayerDef<Im2colLayer> = { type: 'Im2col', create: (p, ctx) => new Im2colLayer(p, ctx) };
