import {
  Blob,
  col2im,
  col2imBatch,
  col2imNd,
  defaultWasmConv2d,
  defaultWasmInfer,
  fillBlob,
  gemm,
  im2col,
  im2colBatch,
  im2colNd,
  type Conv2dGeometry,
  type Conv2dPass,
  type FloatArray,
} from '@caffe-ts/blob';
import { createMessage, type ConvolutionParameter } from '@caffe-ts/proto';
import { convWindow } from './conv-window.js';
import { Layer, type BlobCounts } from '../layer.js';

/**
 * Shared machinery of Convolution and Deconvolution (Caffe's BaseConvolutionLayer).
 *
 * Reads `convolution_param`: kernel/pad/stride/dilation given once or once per spatial axis
 * (or as `*_h`/`*_w` for 2-D), the channel axis `axis` (all later axes are spatial), `group`,
 * `bias_term` and `force_nd_im2col`. Learnable blobs, in Caffe's order:
 * - `blobs[0]`: weights `[convOut, convIn/group, k…]` (`[num_output, channels/group, k…]` for
 *   Convolution, `[channels, num_output/group, k…]` for Deconvolution);
 * - `blobs[1]`: bias `[num_output]` when `bias_term`.
 *
 * 2-D convolutions run batched: the columns of `batch` images (as many as fit in
 * maxBatchColFloats, at least one, at most the whole mini-batch) are unfolded side by side, so
 * each group needs one large GEMM per chunk of images rather than one small GEMM per image;
 * the GEMM's [convOut, batch·spatial] result is then reordered into the images. For float32
 * the whole pass runs in WebAssembly (defaultWasmConv2d). N-d (or forced N-d im2col)
 * convolutions run im2col + one GEMM per image and group, with one image's column buffer. A
 * 1×1 kernel with stride 1 and no padding skips im2col and runs per image: the image already
 * is its column matrix.
 *
 * Subclasses say whether the convolution runs backwards (`reverseDimensions`, true for
 * Deconvolution, which swaps the roles of input and output) and how the output spatial shape
 * follows from the input (`computeOutputShape`).
 */
export abstract class BaseConvolutionLayer extends Layer {
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 1, minTopBlobs: 1, equalNumBottomTopBlobs: true };

  /** Kernel, stride, pad and dilation, one entry per spatial axis. */
  kernelShape: number[] = [];
  stride: number[] = [];
  pad: number[] = [];
  dilation: number[] = [];
  /** Output spatial shape, filled by computeOutputShape() on each reshape. */
  outputShape: number[] = [];

  protected channelAxis = 1;
  protected numSpatialAxes = 0;
  protected forceNdIm2col = false;
  protected is1x1 = false;
  /** Input channels (the bottom's size along `axis`). */
  protected channels = 0;
  protected numOutput = 0;
  protected group = 1;
  protected biasTerm = true;
  protected convOutChannels = 0;
  protected convInChannels = 0;
  /** Elements of one group's filter: (convIn/group) × Πk. */
  protected kernelDim = 0;
  protected weightOffset = 0;
  /** Number of independent images: product of the axes before the channel axis. */
  protected num = 0;
  protected bottomDim = 0;
  protected topDim = 0;
  protected convOutSpatialDim = 0;
  protected outSpatialDim = 0;
  protected colOffset = 0;
  protected outputOffset = 0;
  /** [channels, spatial…] of the side that im2col reads (the bottom, or the top when reversed). */
  protected convInputShape: number[] = [];
  protected colBufferShape: number[] = [];
  /** The im2col buffer (one image's, or `batch` images' side by side), reused; Blob.reshape keeps its memory when it shrinks. */
  protected colBuffer!: Blob;
  /** Whether the batched path runs (2-D, not 1×1); else the per-image path. */
  protected batched = false;
  /** Images per chunk of the batched path. */
  protected batch = 1;
  /** Column-buffer budget of the batched path, in elements (read on reshape). */
  maxBatchColFloats = MAX_BATCH_COL_FLOATS;
  /** Batched path: the GEMM side [convOut, batch·convOutSpatial] before/after reordering into images. */
  protected gemmBuffer!: Blob;
  /** Elements per image on the im2col side (the bottom; the top when reversed) and on the GEMM-output side. */
  protected colSideDim = 0;
  protected outSideDim = 0;
  /** Per-channel factors of 1 for the WebAssembly bias pass. */
  private ones = new Float32Array(0);
  /** The bottom shape seen by the current reshape (read by computeOutputShape). */
  protected bottomShape: readonly number[] = [];

  /**
   * Whether the bottom gradient may run on the packed-weights runner (float32, 2-D: a
   * Convolution's of stride 1, a Deconvolution's always); the default: true unless
   * CAFFE_TS_PACKED_DGRAD=off, for comparisons.
   */
  packedBottomGradient = defaultPackedBottomGradient();

  /** True for Deconvolution: forward is the backward pass of a convolution. */
  protected abstract reverseDimensions(): boolean;
  /** Set `this.outputShape` from `this.bottomShape` and the kernel geometry. */
  protected abstract computeOutputShape(): void;

  /** The layer's ConvolutionParameter, or Caffe's defaults when the prototxt has none. */
  protected get convParam(): ConvolutionParameter {
    return this.param.convolution_param ?? createMessage<ConvolutionParameter>('ConvolutionParameter', {});
  }

  /** Size of input spatial axis `i` (i = 0 is the channel axis), as Caffe's input_shape(). */
  protected inputShape(i: number): number {
    return this.bottomShape[this.channelAxis + i]!;
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const cp = this.convParam;
    const b0 = bottom[0]!;
    this.forceNdIm2col = cp.force_nd_im2col;
    this.channelAxis = this.canonicalAxis(b0, cp.axis);
    const firstSpatialAxis = this.channelAxis + 1;
    this.numSpatialAxes = b0.numAxes - firstSpatialAxis;

    const window = convWindow(cp, this.numSpatialAxes, (ok, message) => this.check(ok, message));
    this.kernelShape = window.kernelShape;
    this.stride = window.stride;
    this.pad = window.pad;
    this.dilation = window.dilation;

    // im2col is the identity for a 1×1 kernel with stride 1 and no padding.
    this.is1x1 = this.kernelShape.every((k, i) => k === 1 && this.stride[i] === 1 && this.pad[i] === 0);

    this.channels = b0.shape[this.channelAxis]!;
    this.numOutput = cp.num_output;
    this.check(this.numOutput > 0, () => `num_output must be positive (got ${this.numOutput})`);
    this.group = cp.group;
    this.check(this.group > 0, () => `group must be positive (got ${this.group})`);
    this.check(
      this.channels % this.group === 0,
      () => `the number of input channels (${this.channels}) must be a multiple of group (${this.group})`,
    );
    this.check(
      this.numOutput % this.group === 0,
      () => `Number of output should be multiples of group (num_output ${this.numOutput}, group ${this.group}).`,
    );
    if (this.reverseDimensions()) {
      this.convOutChannels = this.channels;
      this.convInChannels = this.numOutput;
    } else {
      this.convOutChannels = this.numOutput;
      this.convInChannels = this.channels;
    }

    const weightShape = [this.convOutChannels, this.convInChannels / this.group, ...this.kernelShape];
    this.biasTerm = cp.bias_term;
    const biasShape = [this.numOutput];
    if (this.blobs.length > 0) {
      // Weights were supplied (loaded from a model): check them instead of filling.
      const want = 1 + (this.biasTerm ? 1 : 0);
      this.check(this.blobs.length === want, () => `Incorrect number of weight blobs (expected ${want}, got ${this.blobs.length}).`);
      const w = this.blobs[0]!;
      this.check(
        w.shapeEquals(weightShape),
        () => `Incorrect weight shape: expected shape ${shapeString(weightShape)}; instead, shape was ${w.shapeString()}`,
      );
      if (this.biasTerm) {
        const b = this.blobs[1]!;
        this.check(
          b.shapeEquals(biasShape),
          () => `Incorrect bias shape: expected shape ${shapeString(biasShape)}; instead, shape was ${b.shapeString()}`,
        );
      }
    } else {
      const weight = this.newBlob(weightShape);
      fillBlob(weight, cp.weight_filler, this.rng);
      this.blobs = [weight];
      if (this.biasTerm) {
        const bias = this.newBlob(biasShape);
        fillBlob(bias, cp.bias_filler, this.rng);
        this.blobs.push(bias);
      }
    }
    this.kernelDim = this.blobs[0]!.count(1);
    this.weightOffset = (this.convOutChannels * this.kernelDim) / this.group;
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
    this.colBuffer = this.newBlob();
    this.gemmBuffer = this.newBlob();
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    const firstSpatialAxis = this.channelAxis + 1;
    this.check(
      b0.numAxes === firstSpatialAxis + this.numSpatialAxes,
      () => `bottom num_axes may not change (was ${firstSpatialAxis + this.numSpatialAxes}, now ${b0.numAxes}: ${b0.shapeString()}).`,
    );
    this.num = b0.count(0, this.channelAxis);
    this.check(
      b0.shape[this.channelAxis] === this.channels,
      () =>
        `Input size incompatible with convolution kernel (expected ${this.channels} channels on axis ${this.channelAxis}, bottom is ${b0.shapeString()}).`,
    );
    for (let i = 1; i < bottom.length; i++) {
      const bi = bottom[i]!;
      this.check(b0.shapeEquals(bi), () => `shape mismatch - bottom[0]: ${b0.shapeString()} vs. bottom[${i}]: ${bi.shapeString()}`);
    }
    this.bottomShape = b0.shape;
    this.computeOutputShape();
    for (const [i, d] of this.outputShape.entries()) {
      this.check(
        d > 0,
        () =>
          `output spatial dim ${i} would be ${d} (input ${this.inputShape(i + 1)}, kernel ${this.kernelShape[i]}, pad ${this.pad[i]}, stride ${this.stride[i]}, dilation ${this.dilation[i]})`,
      );
    }
    const topShape = [...b0.shape.slice(0, this.channelAxis), this.numOutput, ...this.outputShape];
    for (const t of top) t.reshape(topShape);
    const t0 = top[0]!;
    const reversed = this.reverseDimensions();
    this.convOutSpatialDim = reversed ? b0.count(firstSpatialAxis) : t0.count(firstSpatialAxis);
    this.colOffset = this.kernelDim * this.convOutSpatialDim;
    this.outputOffset = (this.convOutChannels * this.convOutSpatialDim) / this.group;
    this.convInputShape = [];
    for (let i = 0; i <= this.numSpatialAxes; i++) {
      this.convInputShape.push(reversed ? t0.shape[this.channelAxis + i]! : b0.shape[this.channelAxis + i]!);
    }
    this.colBufferShape = [this.kernelDim * this.group];
    for (let i = 0; i < this.numSpatialAxes; i++) {
      this.colBufferShape.push(reversed ? this.inputShape(i + 1) : this.outputShape[i]!);
    }
    this.bottomDim = b0.count(this.channelAxis);
    this.topDim = t0.count(this.channelAxis);
    this.outSpatialDim = t0.count(firstSpatialAxis);
    this.colSideDim = reversed ? this.topDim : this.bottomDim;
    this.outSideDim = reversed ? this.bottomDim : this.topDim;
    const colPerImage = this.kernelDim * this.group * this.convOutSpatialDim;
    this.batched = this.useIm2col2d() && !this.is1x1;
    this.batch = this.batched ? Math.max(1, Math.min(this.num, Math.floor(this.maxBatchColFloats / colPerImage))) : 1;
    if (this.batched) {
      this.colBuffer.reshape([this.kernelDim * this.group, this.batch * this.convOutSpatialDim]);
      this.gemmBuffer.reshape([this.convOutChannels, this.batch * this.convOutSpatialDim]);
    } else {
      // The 1×1 case reads the image itself, so it leaves the buffer empty.
      this.colBuffer.reshape(this.is1x1 ? [0] : this.colBufferShape);
      this.gemmBuffer.reshape([0]);
    }
  }

  // ---- batched path: chunks of `batch` images, one GEMM per chunk and group ----

  /**
   * Float32 layers hand a whole batched pass to WebAssembly (im2col, reordering, GEMMs and
   * col2im in one linear memory; defaultWasmConv2d); returns false where that is unavailable
   * (float64, CAFFE_TS_GEMM=js, no WebAssembly SIMD), and the JS loops below run instead.
   */
  private runWasm(pass: { [K in keyof Conv2dPass]?: FloatArray | null }): boolean {
    if (this.dtype !== 'float32') return false;
    const wasm = defaultWasmConv2d();
    if (!wasm) return false;
    wasm.run(this.conv2dGeometry(), this.num, this.batch, pass as Conv2dPass);
    return true;
  }

  /**
   * The 2-D geometry as the WebAssembly convolution kernels take it: the column side's image
   * (convInputShape: the bottom of a Convolution, the top of a Deconvolution), the kernel
   * window, and convOutChannels outputs in `group` groups.
   */
  protected conv2dGeometry(): Conv2dGeometry {
    const [channels, height, width] = this.convInputShape as [number, number, number];
    return {
      channels, height, width,
      kernelH: this.kernelShape[0]!, kernelW: this.kernelShape[1]!,
      padH: this.pad[0]!, padW: this.pad[1]!,
      strideH: this.stride[0]!, strideW: this.stride[1]!,
      dilationH: this.dilation[0]!, dilationW: this.dilation[1]!,
      outChannels: this.convOutChannels, group: this.group,
    };
  }

  /** Images n0 … n0 + nb − 1 of the im2col side, unfolded side by side into the column buffer. */
  private im2colChunk(data: FloatArray, n0: number, nb: number): FloatArray {
    const col = this.colBuffer.mutableCpuData();
    const [c, h, w] = this.convInputShape as [number, number, number];
    im2colBatch(
      data.subarray(n0 * this.colSideDim, (n0 + nb) * this.colSideDim), nb, c, h, w,
      this.kernelShape[0]!, this.kernelShape[1]!, this.pad[0]!, this.pad[1]!,
      this.stride[0]!, this.stride[1]!, this.dilation[0]!, this.dilation[1]!, col,
    );
    return col;
  }

  /** The column buffer folded back (col2im, overwriting) into images n0 … n0 + nb − 1 of the im2col side. */
  private col2imChunk(col: FloatArray, data: FloatArray, n0: number, nb: number): void {
    const [c, h, w] = this.convInputShape as [number, number, number];
    col2imBatch(
      col, nb, c, h, w, this.kernelShape[0]!, this.kernelShape[1]!, this.pad[0]!, this.pad[1]!,
      this.stride[0]!, this.stride[1]!, this.dilation[0]!, this.dilation[1]!,
      data.subarray(n0 * this.colSideDim, (n0 + nb) * this.colSideDim),
    );
  }

  /** Images n0 … of the GEMM-output side ([n][convOut][S]) gathered into the GEMM buffer as [convOut][nb·S]. */
  private gatherChunk(src: FloatArray, n0: number, nb: number): FloatArray {
    const buf = this.gemmBuffer.mutableCpuData();
    const S = this.convOutSpatialDim, C = this.convOutChannels, row = nb * S;
    for (let n = 0; n < nb; n++) {
      const img = (n0 + n) * this.outSideDim;
      for (let o = 0; o < C; o++) {
        const s0 = img + o * S, d0 = o * row + n * S;
        for (let s = 0; s < S; s++) buf[d0 + s] = src[s0 + s]!;
      }
    }
    return buf;
  }

  /** The GEMM buffer ([convOut][nb·S]) written into images n0 … of the GEMM-output side, plus bias[o] when given. */
  private scatterChunk(buf: FloatArray, dst: FloatArray, n0: number, nb: number, bias: FloatArray | null): void {
    const S = this.convOutSpatialDim, C = this.convOutChannels, row = nb * S;
    for (let n = 0; n < nb; n++) {
      const img = (n0 + n) * this.outSideDim;
      for (let o = 0; o < C; o++) {
        const s0 = o * row + n * S, d0 = img + o * S;
        if (bias) {
          const b = bias[o]!;
          for (let s = 0; s < S; s++) dst[d0 + s] = buf[s0 + s]! + b;
        } else {
          for (let s = 0; s < S; s++) dst[d0 + s] = buf[s0 + s]!;
        }
      }
    }
  }

  /**
   * output = W · im2col(input) for all images (Convolution forward, Deconvolution backward-data),
   * plus bias[o] when given; overwrites output.
   */
  protected forwardBatched(input: FloatArray, weights: FloatArray, output: FloatArray, bias: FloatArray | null): void {
    if (this.runWasm({ colIn: input, weights, bias, gemmOut: output })) return;
    const m = this.convOutChannels / this.group, K = this.kernelDim;
    for (let n0 = 0; n0 < this.num; n0 += this.batch) {
      const nb = Math.min(this.batch, this.num - n0), N = nb * this.convOutSpatialDim;
      const col = this.im2colChunk(input, n0, nb);
      const buf = this.gemmBuffer.mutableCpuData();
      for (let g = 0; g < this.group; g++) {
        gemm(false, false, m, N, K, 1, weights.subarray(this.weightOffset * g), col.subarray(K * N * g), 0, buf.subarray(m * N * g));
      }
      this.scatterChunk(buf, output, n0, nb, bias);
    }
  }

  /**
   * input = col2im(Wᵀ · output) for all images (Convolution backward-data, Deconvolution
   * forward); overwrites input.
   */
  protected backwardDataBatched(output: FloatArray, weights: FloatArray, input: FloatArray): void {
    if (this.runWasm({ gemmIn: output, weights, colOut: input })) return;
    const m = this.convOutChannels / this.group, K = this.kernelDim;
    for (let n0 = 0; n0 < this.num; n0 += this.batch) {
      const nb = Math.min(this.batch, this.num - n0), N = nb * this.convOutSpatialDim;
      const buf = this.gatherChunk(output, n0, nb);
      const col = this.colBuffer.mutableCpuData();
      for (let g = 0; g < this.group; g++) {
        gemm(true, false, K, N, m, 1, weights.subarray(this.weightOffset * g), buf.subarray(m * N * g), 0, col.subarray(K * N * g));
      }
      this.col2imChunk(col, input, n0, nb);
    }
  }

  /**
   * The backward GEMMs in one sweep over the chunks, each unfolding its images once:
   * weightDiff += output · im2col(input)ᵀ (accumulates) when weightDiff is given, and
   * dataOut = W · im2col(input) (overwrites; Deconvolution's backward-data) when dataOut is given.
   */
  protected weightAndForwardBatched(
    input: FloatArray, output: FloatArray | null, weightDiff: FloatArray | null,
    weights: FloatArray, dataOut: FloatArray | null,
  ): void {
    if (this.runWasm({ colIn: input, gemmIn: output ?? undefined, weights, weightDiff, gemmOut: dataOut })) return;
    const m = this.convOutChannels / this.group, K = this.kernelDim;
    for (let n0 = 0; n0 < this.num; n0 += this.batch) {
      const nb = Math.min(this.batch, this.num - n0), N = nb * this.convOutSpatialDim;
      const col = this.im2colChunk(input, n0, nb);
      if (weightDiff && output) {
        const buf = this.gatherChunk(output, n0, nb);
        for (let g = 0; g < this.group; g++) {
          gemm(false, true, m, K, N, 1, buf.subarray(m * N * g), col.subarray(K * N * g), 1, weightDiff.subarray(this.weightOffset * g));
        }
      }
      if (dataOut) {
        const buf = this.gemmBuffer.mutableCpuData();
        for (let g = 0; g < this.group; g++) {
          gemm(false, false, m, N, K, 1, weights.subarray(this.weightOffset * g), col.subarray(K * N * g), 0, buf.subarray(m * N * g));
        }
        this.scatterChunk(buf, dataOut, n0, nb, null);
      }
    }
  }

  /**
   * Convolution backward for all images: biasDiff[o] += Σ dY[·, o, ·], weightDiff += dY ·
   * im2col(x)ᵀ and dX = col2im(Wᵀ · dY), each when given (x is needed for weightDiff only),
   * gathering each chunk of dY once for all three.
   */
  protected convBackwardBatched(
    x: FloatArray | null, dy: FloatArray, weights: FloatArray, weightDiff: FloatArray | null, dx: FloatArray | null,
    biasDiff: FloatArray | null = null,
  ): void {
    if (!weightDiff && !dx && !biasDiff) return;
    if (this.runWasm({ colIn: weightDiff ? x : null, gemmIn: dy, weights, weightDiff, colOut: dx, biasDiff })) return;
    if (biasDiff) {
      for (let n = 0; n < this.num; n++) this.backwardCpuBias(biasDiff, dy.subarray(n * this.topDim, (n + 1) * this.topDim));
    }
    if (!weightDiff && !dx) return;
    const m = this.convOutChannels / this.group, K = this.kernelDim;
    for (let n0 = 0; n0 < this.num; n0 += this.batch) {
      const nb = Math.min(this.batch, this.num - n0), N = nb * this.convOutSpatialDim;
      const buf = this.gatherChunk(dy, n0, nb);
      if (weightDiff && x) {
        const col = this.im2colChunk(x, n0, nb);
        for (let g = 0; g < this.group; g++) {
          gemm(false, true, m, K, N, 1, buf.subarray(m * N * g), col.subarray(K * N * g), 1, weightDiff.subarray(this.weightOffset * g));
        }
      }
      if (dx) {
        // The columns are no longer needed: the buffer now takes their gradient.
        const col = this.colBuffer.mutableCpuData();
        for (let g = 0; g < this.group; g++) {
          gemm(true, false, K, N, m, 1, weights.subarray(this.weightOffset * g), buf.subarray(m * N * g), 0, col.subarray(K * N * g));
        }
        this.col2imChunk(col, dx, n0, nb);
      }
    }
  }

  /** output (convOut × convOutSpatial) = W · im2col(input), per group; overwrites output. */
  protected forwardCpuGemm(input: FloatArray, weights: FloatArray, output: FloatArray, skipIm2col = false): void {
    let col = input;
    if (!this.is1x1) {
      if (!skipIm2col) this.convIm2col(input, this.colBuffer.mutableCpuData());
      col = this.colBuffer.cpuData();
    }
    const m = this.convOutChannels / this.group;
    for (let g = 0; g < this.group; g++) {
      gemm(
        false,
        false,
        m,
        this.convOutSpatialDim,
        this.kernelDim,
        1,
        weights.subarray(this.weightOffset * g),
        col.subarray(this.colOffset * g),
        0,
        output.subarray(this.outputOffset * g),
      );
    }
  }

  /** output[o, s] += bias[o] for one image. */
  protected forwardCpuBias(output: FloatArray, bias: FloatArray): void {
    const S = this.outSpatialDim;
    if (output instanceof Float32Array && this.numOutput * S >= 2048) {
      // Float32 in WebAssembly SIMD: 1·x + b per channel is the same float32 sum.
      const k = defaultWasmInfer();
      if (k) {
        if (this.ones.length !== this.numOutput) this.ones = new Float32Array(this.numOutput).fill(1);
        k.affine(output, output, 1, this.numOutput, S, this.ones, bias as Float32Array, null);
        return;
      }
    }
    for (let o = 0; o < this.numOutput; o++) {
      const b = bias[o]!;
      const base = o * S;
      for (let s = 0; s < S; s++) output[base + s] = output[base + s]! + b;
    }
  }

  /** input = col2im(Wᵀ · output), per group; overwrites input. */
  protected backwardCpuGemm(output: FloatArray, weights: FloatArray, input: FloatArray): void {
    const col = this.is1x1 ? input : this.colBuffer.mutableCpuData();
    const k = this.convOutChannels / this.group;
    for (let g = 0; g < this.group; g++) {
      gemm(
        true,
        false,
        this.kernelDim,
        this.convOutSpatialDim,
        k,
        1,
        weights.subarray(this.weightOffset * g),
        output.subarray(this.outputOffset * g),
        0,
        col.subarray(this.colOffset * g),
      );
    }
    if (!this.is1x1) this.convCol2im(col, input);
  }

  /** weights += output · im2col(input)ᵀ, per group (param diffs accumulate). */
  protected weightCpuGemm(input: FloatArray, output: FloatArray, weights: FloatArray): void {
    let col = input;
    if (!this.is1x1) {
      this.convIm2col(input, this.colBuffer.mutableCpuData());
      col = this.colBuffer.cpuData();
    }
    const m = this.convOutChannels / this.group;
    for (let g = 0; g < this.group; g++) {
      gemm(
        false,
        true,
        m,
        this.kernelDim,
        this.convOutSpatialDim,
        1,
        output.subarray(this.outputOffset * g),
        col.subarray(this.colOffset * g),
        1,
        weights.subarray(this.weightOffset * g),
      );
    }
  }

  /** bias[o] += Σ_s input[o, s] for one image (accumulates). */
  protected backwardCpuBias(bias: FloatArray, input: FloatArray): void {
    const S = this.outSpatialDim;
    for (let o = 0; o < this.numOutput; o++) {
      let sum = 0;
      const base = o * S;
      for (let s = 0; s < S; s++) sum += input[base + s]!;
      bias[o] = bias[o]! + sum;
    }
  }

  protected useIm2col2d(): boolean {
    return !this.forceNdIm2col && this.numSpatialAxes === 2;
  }

  private convIm2col(data: FloatArray, col: FloatArray): void {
    if (this.useIm2col2d()) {
      const [, h, w] = this.convInputShape as [number, number, number];
      im2col(data, this.convInChannels, h, w, this.kernelShape[0]!, this.kernelShape[1]!, this.pad[0]!, this.pad[1]!, this.stride[0]!, this.stride[1]!, this.dilation[0]!, this.dilation[1]!, col);
    } else {
      im2colNd(data, this.numSpatialAxes, this.convInputShape, this.colBufferShape, this.kernelShape, this.pad, this.stride, this.dilation, col);
    }
  }

  /** data = col2im(col): col2im clears data, then accumulates overlapping windows. */
  private convCol2im(col: FloatArray, data: FloatArray): void {
    if (this.useIm2col2d()) {
      const [, h, w] = this.convInputShape as [number, number, number];
      col2im(col, this.convInChannels, h, w, this.kernelShape[0]!, this.kernelShape[1]!, this.pad[0]!, this.pad[1]!, this.stride[0]!, this.stride[1]!, this.dilation[0]!, this.dilation[1]!, data);
    } else {
      col2imNd(col, this.numSpatialAxes, this.convInputShape, this.colBufferShape, this.kernelShape, this.pad, this.stride, this.dilation, data);
    }
  }

  private canonicalAxis(b: Blob, axis: number): number {
    const n = b.numAxes;
    this.check(axis >= -n && axis < n, () => `axis ${axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    return axis < 0 ? axis + n : axis;
  }
}

/**
 * Column-buffer elements the batched path aims to use per layer: 256 Ki (1 MiB in float32),
 * so a chunk's columns are still in cache when the GEMM reads them (larger chunks measured
 * slower, not faster). A chunk holds at least one image, whatever its size.
 */
export const MAX_BATCH_COL_FLOATS = 1 << 18;

function shapeString(shape: readonly number[]): string {
  return `${shape.join(' ')} (${shape.reduce((a, b) => a * b, 1)})`;
}

function defaultPackedBottomGradient(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.CAFFE_TS_PACKED_DGRAD?.trim().toLowerCase() !== 'off';
}
