import {
  builtinWasmInferConv, defaultWasmInfer, defaultWasmInferConv, defaultWasmTrain, getNumThreads, installedConv2dRunner, installedInferConvRunner, MIN_FLOPS_PER_THREAD, SMALL_CONV_MAX_TAPS, winogradApplies,
  type ActivationVersions, type Blob, type ConvSum, type FloatArray, type WasmInferConv,
} from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
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
      if (this.forwardDepthwise(bottomData, weight, topData, bias)) continue;
      if (this.forwardPacked(bottomData, topData, null, null, null, false, { x: bottom[i]!.dataVersion, y: top[i]!.dataVersion })) continue;
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

  /** Per-channel terms of the packed path's epilogue (kept between calls). */
  private epilogueShift = new Float32Array(0);

  /**
   * The packed-weights runner for this forward, or null where it does not apply: float32, 2-D
   * im2col geometry, WebAssembly SIMD. Training forwards use it too (`fused` false): its weights
   * are repacked once per version of the weight blob, i.e. once per solver step, which costs O·K
   * floats against the batch's O·K·N·S multiply-adds; its im2col-free unfolding and its Winograd
   * paths (3×3 and 5×5, stride 1) run a training forward faster than the batched pass, and with
   * kernel threads it splits a batch by whole images (LeNet at batch 64 on two threads, blobs in
   * the kernels' memory: forward 5.9–6.5 ms against 9.2–9.3). Fused epilogues (`fused`, Net's
   * inference fusion) stay with the TEST phase. A 1×1 convolution at batch 1 large enough to
   * split stays in training with the threaded GEMM, which splits its columns.
   */
  private packedRunner(fused = false): WasmInferConv | null {
    if ((fused && this.phase !== Phase.TEST) || this.dtype !== 'float32' || !this.useIm2col2d()) return null;
    // Inference (TEST) goes to the installed inference runner where there is one
    // (setInferConvRunner, e.g. native kernels), else to the WebAssembly packed runner.
    if (this.phase === Phase.TEST) return defaultWasmInferConv();
    // An installed pass runner (setConv2dRunner, e.g. native kernels) takes the training forwards
    // but the depthwise ones, which it would run as one tiny GEMM per channel, and the Winograd
    // ones, which do a quarter of its multiplies or fewer (LeNet conv2 at batch 64: 3.0 ms on the
    // WebAssembly packed runner against 3.95 as a pass). Those go to the installed inference
    // runner where there is one (the same kernels' direct and Winograd paths: LeNet's training
    // step on two threads 14.8 ms against 15.7 with them on the WebAssembly runner), else to the
    // WebAssembly packed runner.
    if (installedConv2dRunner()) {
      if (!this.isDepthwise() && !winogradApplies(this.conv2dGeometry())) return null;
      return installedInferConvRunner() ?? builtinWasmInferConv();
    }
    if (getNumThreads() > 1 && this.num === 1) {
      const flops = 2 * this.convOutChannels * this.kernelDim * this.convOutSpatialDim;
      if (this.is1x1 && flops >= 2 * MIN_FLOPS_PER_THREAD) return null;
    }
    return builtinWasmInferConv();
  }

  /**
   * Forward through the packed-weights runner (packedRunner: the weights packed once per
   * version of the weight blob), writing act(a ⊙ (conv(x) + bias) + b) per output channel (a, b
   * default to 1 and 0; act the ReLU of slope `relu`, or none). `io`: the bottom's and top's data
   * versions (the top's after its mutable access), so that a one-image output the next
   * convolution reads stays in the runner's memory. Returns false, writing nothing, where the
   * runner does not apply.
   */
  private forwardPacked(
    x: FloatArray, y: FloatArray, a: Float32Array | null, b: Float32Array | null, relu: number | null, depthwise: boolean,
    io: ActivationVersions, sum?: ConvSum,
  ): boolean {
    if (!(x instanceof Float32Array) || !(y instanceof Float32Array)) return false;
    const runner = this.packedRunner();
    if (!runner) return false;
    const O = this.numOutput;
    let shift: Float32Array | null = null;
    const bias = this.biasTerm ? (this.blobs[1]!.cpuData() as Float32Array) : null;
    if (bias && !a && !b) shift = bias;
    else if (bias || b) {
      if (this.epilogueShift.length !== O) this.epilogueShift = new Float32Array(O);
      shift = this.epilogueShift;
      for (let o = 0; o < O; o++) shift[o] = (a ? a[o]! : 1) * (bias ? bias[o]! : 0) + (b ? b[o]! : 0);
    }
    const wBlob = this.blobs[0]!;
    const geometry = this.conv2dGeometry();
    // False (nothing written) where the runner's memory is full: the other paths run.
    if (depthwise) return !sum && runner.depthwise(geometry, this.num, x, wBlob.cpuData() as Float32Array, { scale: a, shift, relu }, y, io);
    return runner.conv2d(geometry, this.num, x, wBlob.cpuData() as Float32Array, wBlob.dataVersion, { scale: a, shift, relu }, y, io, sum);
  }

  /**
   * Inference forward with a per-output-channel epilogue fused in (Net's inference fusion folds
   * a following BatchNorm/Scale/ReLU into it): top = act(scale ⊙ (conv + bias) + shift), act the
   * ReLU of slope `relu` or none (a depthwise convolution folds the scale into its filters). One
   * bottom and top. With `sum` (not for depthwise), also out = act(c0·first + c1·second) of top
   * and sum.other (a following Eltwise SUM, then ReLU of slope sum.relu). With `into` (top's
   * count of floats, no sum), the output goes there instead and top is left as it was (Net's
   * inference fusion writes a Concat's bottoms straight into its top). Returns false, writing
   * nothing, where the packed path does not apply (then run the layers one by one).
   */
  forwardWithEpilogue(
    bottom: Blob, top: Blob, scale: Float32Array | null, shift: Float32Array | null, relu: number | null,
    sum?: { other: Blob; convFirst: boolean; c0: number; c1: number; relu: number | null; out: Blob },
    into?: Float32Array,
  ): boolean {
    const x = bottom.cpuData();
    if (!(x instanceof Float32Array) || !this.packedRunner(true)) return false;
    if (sum && (this.isDepthwise() || !(sum.other.cpuData() instanceof Float32Array))) return false;
    if (into && (sum || into.length !== top.count())) return false;
    const y = into ?? top.mutableCpuData();
    // Net's inference fusion folds a following Eltwise SUM (→ ReLU) in as well (ConvSum): `out`
    // receives it, the top still the convolution's own output.
    const conv: ConvSum | undefined = sum
      ? { other: sum.other.cpuData() as Float32Array, convFirst: sum.convFirst, c0: sum.c0, c1: sum.c1, relu: sum.relu, z: sum.out.mutableCpuData() as Float32Array, zVersion: sum.out.dataVersion }
      : undefined;
    return this.forwardPacked(x, y, scale, shift, relu, this.isDepthwise(), { x: bottom.dataVersion, y: into ? undefined : top.dataVersion }, conv);
  }

  /** One filter per channel, 2-D (group = channels = num_output > 1): the depthwise kernels' shape. */
  private isDepthwise(): boolean {
    return this.batched && this.group > 1 && this.group === this.channels && this.numOutput === this.channels;
  }

  /**
   * A depthwise convolution (2-D, one filter per channel: group = channels = num_output, as in
   * MobileNet) runs as a direct WebAssembly kernel (defaultWasmInfer's depthwise) instead of a
   * tiny GEMM per channel. Returns false where it does not apply (other shapes, float64, no
   * WebAssembly SIMD, CAFFE_TS_GEMM=js): the general path runs.
   */
  private forwardDepthwise(x: FloatArray, weight: FloatArray, y: FloatArray, bias: FloatArray | null): boolean {
    if (!this.isDepthwise() || !(y instanceof Float32Array)) return false;
    const k = defaultWasmInfer();
    if (!k) return false;
    k.depthwise(this.conv2dGeometry(), this.num, x as Float32Array, weight as Float32Array, bias as Float32Array | null, y);
    return true;
  }

  /**
   * Whether a backward that needs no bottom gradient runs the small-convolution kernels
   * (defaultWasmTrain's smallConvBackward, one thread): float32, 2-D, one group, stride 1, no
   * dilation, at most smallConvMaxTaps taps (channels · kernel area). There the im2col + GEMM
   * weight gradient is a GEMM with tiny sides (LeNet conv1: 20 × 25 over 36864 positions per
   * batch of 64), which the direct kernel runs in about 0.65× the time, bias gradient
   * included (one thread); split over two threads the batched pass measured no faster (loaded
   * 2-core machine, paired runs). An installed pass runner (setConv2dRunner, e.g. native
   * kernels) takes these gradients instead: split over its threads, LeNet's conv1 at batch 64
   * ran in 1.5 ms there against 2.4 ms here (two threads).
   */
  private smallConvApplies(): boolean {
    return !installedConv2dRunner() && this.dtype === 'float32' && this.useIm2col2d() && this.group === 1 && this.kernelDim <= this.smallConvMaxTaps &&
      this.stride.every((s) => s === 1) && this.dilation.every((d) => d === 1);
  }

  /**
   * Most taps (channels · kernel area) for which a backward without bottom gradient runs the
   * small-convolution kernels (0 turns them off; the default: CAFFE_TS_SMALL_CONV_TAPS from the
   * environment where set, else DEFAULT_SMALL_CONV_TAPS).
   */
  smallConvMaxTaps = defaultSmallConvTaps();

  /** The filters flipped and transposed for backwardDataPacked, and the weight version they hold. */
  private flippedWeights = new Float32Array(0);
  private flippedVersion = NaN;

  /**
   * dX = col2im(Wᵀ · dY) of a stride-1, 2-D, non-depthwise float32 convolution, computed as the
   * convolution of dY, padded by dilation·(k − 1) − pad, with the filters flipped in space and
   * their input and output channels swapped (per group): the same products, summed in another
   * order. That runs on the packed-weights runner (its im2col-free and Winograd kernels; the
   * flipped filters are packed once per weight version) instead of a GEMM into the column buffer
   * and a col2im. It does (H·W) / (OH·OW) times the products of col2im(Wᵀ · dY), those of the
   * windows over the padding, so it applies only where the input plane is at most
   * PACKED_DGRAD_MAX_AREA_RATIO times the output plane (CIFAR-10 conv2, 5×5 "same" at 16×16:
   * 1.9× the batched pass; LeNet conv2, 12×12 from 8×8, stays with the batched pass, which the
   * packed one ran at 0.7–0.85×). Overwrites dx; false (nothing written) where it does not apply.
   */
  private backwardDataPacked(dy: FloatArray, dx: FloatArray): boolean {
    if (!this.packedBottomGradient) return false;
    if (!(dy instanceof Float32Array) || !(dx instanceof Float32Array) || this.dtype !== 'float32' || !this.useIm2col2d()) return false;
    if (this.isDepthwise() || !this.stride.every((s) => s === 1)) return false;
    const [C, H, W] = this.convInputShape as [number, number, number];
    const [OH, OW] = this.outputShape as [number, number];
    const [KH, KW] = this.kernelShape as [number, number];
    const [DH, DW] = this.dilation as [number, number];
    const padH = DH * (KH - 1) - this.pad[0]!, padW = DW * (KW - 1) - this.pad[1]!;
    if (padH < 0 || padW < 0 || H * W > PACKED_DGRAD_MAX_AREA_RATIO * OH * OW) return false;
    // Training: the WebAssembly runner's Winograd and im2col-free kernels (not an inference runner).
    const runner = builtinWasmInferConv();
    if (!runner) return false;
    const wBlob = this.blobs[0]!;
    const O = this.convOutChannels, G = this.group, Cg = C / G, m = O / G, taps = KH * KW;
    if (this.flippedVersion !== wBlob.dataVersion || this.flippedWeights.length !== O * Cg * taps) {
      const w = wBlob.cpuData();
      if (this.flippedWeights.length !== O * Cg * taps) this.flippedWeights = new Float32Array(O * Cg * taps);
      const f = this.flippedWeights;
      // w[g·m + o][c][t] → f[g·Cg + c][o][taps − 1 − t].
      for (let g = 0; g < G; g++) {
        for (let o = 0; o < m; o++) {
          for (let c = 0; c < Cg; c++) {
            const from = ((g * m + o) * Cg + c) * taps, to = ((g * Cg + c) * m + o) * taps + taps - 1;
            for (let t = 0; t < taps; t++) f[to - t] = w[from + t]!;
          }
        }
      }
      this.flippedVersion = wBlob.dataVersion;
    }
    const geometry = {
      channels: O, height: OH, width: OW, kernelH: KH, kernelW: KW, padH, padW,
      strideH: 1, strideW: 1, dilationH: DH, dilationW: DW, outChannels: C, group: G,
    };
    return runner.conv2d(geometry, this.num, dy, this.flippedWeights, this.flippedVersion, {}, dx, {});
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const weight = this.blobs[0]!.cpuData();
    const weightPd = this.paramPropagateDown[0] ?? true;
    const biasPd = this.biasTerm && (this.paramPropagateDown[1] ?? true);
    for (let i = 0; i < top.length; i++) {
      const topDiff = top[i]!.cpuDiff();
      const imgTopDiff = (n: number) => topDiff.subarray(n * this.topDim, (n + 1) * this.topDim);
      // A bottom gradient the packed runner computes leaves the parameter gradients to the paths below.
      const pd = (propagateDown[i] ?? false) && !this.backwardDataPacked(topDiff, bottom[i]!.mutableCpuDiff());
      if (!pd && (weightPd || biasPd) && topDiff instanceof Float32Array && this.smallConvApplies()) {
        const train = defaultWasmTrain();
        if (train) {
          const [channels, height, width] = this.convInputShape as [number, number, number];
          train.smallConvBackward(
            { channels, height, width, kernelH: this.kernelShape[0]!, kernelW: this.kernelShape[1]!, padH: this.pad[0]!, padW: this.pad[1]!, outChannels: this.numOutput },
            this.num, bottom[i]!.cpuData() as Float32Array, topDiff,
            weightPd ? (this.blobs[0]!.mutableCpuDiff() as Float32Array) : null,
            biasPd ? (this.blobs[1]!.mutableCpuDiff() as Float32Array) : null,
          );
          continue;
        }
      }
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

/**
 * Default of ConvolutionLayer.smallConvMaxTaps: LeNet's conv1 (25 taps) and CIFAR-10's conv1
 * (3 · 5 · 5 = 75) run their gradients through the small-convolution kernels.
 */
export const DEFAULT_SMALL_CONV_TAPS = 75;

/**
 * Largest input plane, as a multiple of the output plane, for which a stride-1 convolution's
 * bottom gradient runs on the packed runner (ConvolutionLayer.backwardDataPacked).
 */
export const PACKED_DGRAD_MAX_AREA_RATIO = 1.25;

function defaultSmallConvTaps(): number {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.CAFFE_TS_SMALL_CONV_TAPS?.trim();
  const n = v ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 ? Math.min(n, SMALL_CONV_MAX_TAPS) : DEFAULT_SMALL_CONV_TAPS;
}

export const convolutionLayerDef: LayerDef<ConvolutionLayer> = {
  type: 'Convolution',
  create: (param, context) => new ConvolutionLayer(param, context),
};
