import {
  allocHostInt32, defaultWasmInfer, defaultWasmMaxPool, defaultWasmTrain, installedConv2dRunner, installedInferConvRunner, releaseHostInt32, zeroFill,
  type Blob, type FloatArray, type PoolGeometry, type PoolWindows,
} from '@caffe-ts/blob';
import {
  createMessage,
  hasField,
  Phase,
  PoolingParameter_PoolMethod as PoolMethod,
  PoolingParameter_RoundMode as RoundMode,
  type PoolingParameter,
} from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Pooling (Caffe's PoolingLayer) over the two spatial axes of an N×C×H×W bottom.
 * - MAX: the window maximum (ties keep the first in row-major order). An optional second top
 *   receives the argmax mask: the flat index h·W + w within the channel, as a float.
 * - AVE: the window sum divided by the window size clipped to `in + pad`, so padding cells
 *   count in the divisor (Caffe's behaviour).
 * - STOCHASTIC (Zeiler & Fergus; Caffe's GPU kernels, which have no CPU counterpart in Caffe):
 *   in TRAIN one element per window is sampled with probability proportional to its value
 *   (values are assumed non-negative, e.g. after ReLU) using the layer's rng, and backward
 *   routes the gradient to it; in TEST the output is the weighted average Σx²/Σx (0 when
 *   Σx ≤ 0), whose exact gradient `(2x·Σx − Σx²)/(Σx)²` backward uses. As in Caffe's kernels the
 *   windows ignore `pad` (they start at ph·stride); a window that starts past the image (only
 *   possible with padding) outputs 0.
 * Output size: `ceil((in + 2p − k)/s) + 1` (round_mode CEIL, the default) or floor (FLOOR),
 * minus one when padding would make the last window start at or past `in + p`.
 */
export class PoolingLayer extends Layer {
  readonly type: string = 'Pooling';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, minTopBlobs: 1, maxTopBlobs: 2 };

  kernelH = 0;
  kernelW = 0;
  strideH = 1;
  strideW = 1;
  padH = 0;
  padW = 0;
  pooledHeight = 0;
  pooledWidth = 0;
  private method: PoolMethod = PoolMethod.MAX;
  private roundMode: RoundMode = RoundMode.CEIL;
  private globalPooling = false;
  private channels = 0;
  private height = 0;
  private width = 0;
  /** Argmax per output (Caffe's max_idx_); copied to the mask top when there is one. */
  private maxIdx: Int32Array = new Int32Array(0);
  /**
   * Whether backward may run: a Net clears it for layers it never runs backward through, and a
   * MAX forward then keeps no argmax (values only, in WebAssembly for float32).
   */
  backwardNeeded = true;
  /** Whether the last MAX forward recorded its argmax (backward needs it). */
  private argmaxKept = true;
  /** MAX/AVE window bounds per output row and column: [lo, hi) inside the image, and the AVE divisor factor. */
  private rowLo: Int32Array = new Int32Array(0);
  private rowHi: Int32Array = new Int32Array(0);
  private rowSize: Int32Array = new Int32Array(0);
  private colLo: Int32Array = new Int32Array(0);
  private colHi: Int32Array = new Int32Array(0);
  private colSize: Int32Array = new Int32Array(0);
  /** STOCHASTIC, TRAIN: the sampled index h·W + w within the plane per output (Caffe's rand_idx_), −1 for none. */
  private randIdx = new Int32Array(0);

  private get poolParam(): PoolingParameter {
    return this.param.pooling_param ?? createMessage<PoolingParameter>('PoolingParameter', {});
  }

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    const pp = this.poolParam;
    const has = (f: string) => hasField(pp, f);
    this.method = pp.pool;
    this.check(
      this.method === PoolMethod.MAX || this.method === PoolMethod.AVE || this.method === PoolMethod.STOCHASTIC,
      () => `Unknown pooling method ${this.method}.`,
    );
    this.check(
      top.length === 1 || this.method === PoolMethod.MAX,
      () => `only MAX pooling can produce a second top (the argmax mask); got ${top.length} tops`,
    );
    if (pp.global_pooling) {
      this.check(
        !(has('kernel_size') || has('kernel_h') || has('kernel_w')),
        () => 'With Global_pooling: true Filter size cannot specified',
      );
    } else {
      this.check(
        !has('kernel_size') !== !(has('kernel_h') && has('kernel_w')),
        () => 'Filter size is kernel_size OR kernel_h and kernel_w; not both',
      );
      this.check(
        has('kernel_size') || (has('kernel_h') && has('kernel_w')),
        () => 'For non-square filters both kernel_h and kernel_w are required.',
      );
    }
    this.check(
      (!has('pad') && has('pad_h') && has('pad_w')) || (!has('pad_h') && !has('pad_w')),
      () => 'pad is pad OR pad_h and pad_w are required.',
    );
    this.check(
      (!has('stride') && has('stride_h') && has('stride_w')) || (!has('stride_h') && !has('stride_w')),
      () => 'Stride is stride OR stride_h and stride_w are required.',
    );
    this.globalPooling = pp.global_pooling;
    this.roundMode = pp.round_mode;
    this.check(
      this.roundMode === RoundMode.CEIL || this.roundMode === RoundMode.FLOOR,
      () => `Unknown rounding mode ${this.roundMode}.`,
    );
    this.check(bottom[0]!.numAxes === 4, () => inputAxesMessage(bottom[0]!));
    if (this.globalPooling) {
      this.kernelH = bottom[0]!.shape[2]!;
      this.kernelW = bottom[0]!.shape[3]!;
    } else if (has('kernel_size')) {
      this.kernelH = this.kernelW = pp.kernel_size;
    } else {
      this.kernelH = pp.kernel_h;
      this.kernelW = pp.kernel_w;
    }
    this.check(this.kernelH > 0 && this.kernelW > 0, () => `Filter dimensions cannot be zero (kernel ${this.kernelH}×${this.kernelW}).`);
    if (!has('pad_h')) this.padH = this.padW = pp.pad;
    else {
      this.padH = pp.pad_h;
      this.padW = pp.pad_w;
    }
    if (!has('stride_h')) this.strideH = this.strideW = pp.stride;
    else {
      this.strideH = pp.stride_h;
      this.strideW = pp.stride_w;
    }
    this.check(this.strideH > 0 && this.strideW > 0, () => `Stride dimensions cannot be zero (stride ${this.strideH}×${this.strideW}).`);
    if (this.globalPooling) {
      this.check(
        this.padH === 0 && this.padW === 0 && this.strideH === 1 && this.strideW === 1,
        () => 'With Global_pooling: true; only pad = 0 and stride = 1',
      );
    }
    if (this.padH !== 0 || this.padW !== 0) {
      this.check(this.padH < this.kernelH, () => `pad_h (${this.padH}) must be less than kernel_h (${this.kernelH})`);
      this.check(this.padW < this.kernelW, () => `pad_w (${this.padW}) must be less than kernel_w (${this.kernelW})`);
    }
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes === 4, () => inputAxesMessage(b));
    const [num, channels, height, width] = b.shape as [number, number, number, number];
    this.channels = channels;
    this.height = height;
    this.width = width;
    if (this.globalPooling) {
      this.kernelH = height;
      this.kernelW = width;
    }
    const round = this.roundMode === RoundMode.CEIL ? Math.ceil : Math.floor;
    let ph = round((height + 2 * this.padH - this.kernelH) / this.strideH) + 1;
    let pw = round((width + 2 * this.padW - this.kernelW) / this.strideW) + 1;
    if (this.padH !== 0 || this.padW !== 0) {
      // The last window must start strictly inside the image (or its left/top padding).
      if ((ph - 1) * this.strideH >= height + this.padH) ph--;
      if ((pw - 1) * this.strideW >= width + this.padW) pw--;
    }
    this.check(
      ph > 0 && pw > 0,
      () =>
        `pooled output would be ${ph}×${pw} for input ${height}×${width} (kernel ${this.kernelH}×${this.kernelW}, pad ${this.padH}×${this.padW}, stride ${this.strideH}×${this.strideW})`,
    );
    this.pooledHeight = ph;
    this.pooledWidth = pw;
    const shape = [num, channels, ph, pw];
    top[0]!.reshape(shape);
    if (top.length > 1) top[1]!.reshape(shape);
    const n = num * channels * ph * pw;
    // The argmax lives beside float32 blob memory, so the kernels read and write it in place.
    if (this.method === PoolMethod.MAX && this.maxIdx.length < n) {
      releaseHostInt32(this.maxIdx);
      this.maxIdx = this.dtype === 'float32' ? allocHostInt32(n) : new Int32Array(n);
    }
    if (this.method !== PoolMethod.STOCHASTIC) {
      // Windows are separable: the bounds per output row and per column, computed once here.
      [this.rowLo, this.rowHi, this.rowSize] = windowBounds(ph, height, this.kernelH, this.strideH, this.padH);
      [this.colLo, this.colHi, this.colSize] = windowBounds(pw, width, this.kernelW, this.strideW, this.padW);
    }
    if (this.method === PoolMethod.STOCHASTIC && this.randIdx.length < n) this.randIdx = new Int32Array(n);
  }

  override dispose(): void {
    releaseHostInt32(this.maxIdx);
    this.maxIdx = new Int32Array(0);
    super.dispose();
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const src = bottom[0]!.cpuData();
    const dst = top[0]!.mutableCpuData();
    const planes = bottom[0]!.shape[0]! * this.channels;
    const H = this.height;
    const W = this.width;
    const PH = this.pooledHeight;
    const PW = this.pooledWidth;
    const outPlane = PH * PW;
    if (this.method === PoolMethod.MAX) {
      const idx = this.maxIdx;
      this.argmaxKept = true;
      if (!this.backwardNeeded && top.length === 1 && dst instanceof Float32Array && this.windowsNonEmpty()) {
        // Inference: values only (no argmax for a backward that never runs), on an installed
        // inference runner that pools (setInferConvRunner), else in WebAssembly.
        const args = this.windowArgs(planes);
        if (installedInferConvRunner()?.maxPool?.(...args, src as Float32Array, dst)) {
          this.argmaxKept = false;
          return;
        }
        const k = defaultWasmInfer();
        if (k) {
          k.maxPool(...args, src as Float32Array, dst);
          this.argmaxKept = false;
          return;
        }
      }
      const full2x2 =
        this.kernelH === 2 && this.kernelW === 2 && this.strideH === 2 && this.strideW === 2 &&
        this.padH === 0 && this.padW === 0 && 2 * PH <= H && 2 * PW <= W;
      // Float32 goes to WebAssembly (branch-free selects) when every window is non-empty: whole
      // 2×2/2 windows (LeNet) to the GEMM module's dedicated loop, anything else to the training
      // kernels (four outputs per SIMD step for any geometry, edge-cut and padded windows too).
      const f32 = src instanceof Float32Array && dst instanceof Float32Array && this.windowsNonEmpty();
      // An installed pass runner that pools (setConv2dRunner, e.g. native kernels) goes first.
      const installed = f32 && (installedConv2dRunner()?.maxPool?.(...this.windowArgs(planes), src as Float32Array, dst as Float32Array, idx) ?? false);
      const train = f32 && !installed && !full2x2 ? defaultWasmTrain() : null;
      const wasm = f32 && !installed && !train ? defaultWasmMaxPool() : null;
      if (installed) {
        // The runner wrote the values and the argmax.
      } else if (train) train.pool('max', this.geometry(), planes, src as Float32Array, dst as Float32Array, idx);
      else if (wasm) {
        wasm.maxPool(src as Float32Array, planes, H, W, PH, PW, this.rowLo, this.rowHi, this.colLo, this.colHi, dst as Float32Array, idx, {
          kernel: this.kernelW, stride: this.strideW, pad: this.padW,
        });
      }
      else if (full2x2) maxPool2x2(src, dst, idx, planes, H, W, PH, PW);
      else maxPool(src, dst, idx, planes, H, W, PH, PW, this.rowLo, this.rowHi, this.colLo, this.colHi);
      if (top.length > 1) {
        const mask = top[1]!.mutableCpuData();
        for (let i = 0; i < planes * outPlane; i++) mask[i] = idx[i]!;
      }
    } else if (this.method === PoolMethod.STOCHASTIC) {
      this.stochasticForward(src, dst, planes);
    } else {
      const global = PH === 1 && PW === 1 && this.padH === 0 && this.padW === 0 && this.kernelH === H && this.kernelW === W;
      if (global && src instanceof Float32Array && dst instanceof Float32Array) {
        // One window per plane (SqueezeNet's, GoogLeNet's, ResNet's last pool): on an installed
        // inference runner that pools (setInferConvRunner), else four planes per SIMD step, each
        // summed in order (the same float32 sums as the window kernels).
        const divisor = this.rowSize[0]! * this.colSize[0]!;
        if (installedInferConvRunner()?.aveGlobal?.(planes, H * W, divisor, src, dst)) return;
        const k = defaultWasmInfer();
        if (k) {
          k.aveGlobal(planes, H * W, divisor, src, dst);
          return;
        }
      }
      const f32 = src instanceof Float32Array && dst instanceof Float32Array && this.windowsNonEmpty();
      // An installed pass runner that pools (setConv2dRunner, e.g. native kernels) goes first:
      // the WebAssembly kernels' bits, planes split over its threads.
      if (f32 && installedConv2dRunner()?.avePool?.(...this.windowArgs(planes), src as Float32Array, dst as Float32Array)) return;
      const train = f32 ? defaultWasmTrain() : null;
      if (train) train.pool('ave', this.geometry(), planes, src as Float32Array, dst as Float32Array, null);
      else avePool(src, dst, planes, H, W, PH, PW, this.rowLo, this.rowHi, this.rowSize, this.colLo, this.colHi, this.colSize);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const topDiff = top[0]!.cpuDiff();
    const bottomDiff = bottom[0]!.mutableCpuDiff();
    const planes = bottom[0]!.shape[0]! * this.channels;
    const W = this.width;
    const PH = this.pooledHeight;
    const PW = this.pooledWidth;
    const inPlane = this.height * W;
    const outPlane = PH * PW;
    if (this.method === PoolMethod.MAX && !this.argmaxKept) {
      this.fail('MAX pooling backward needs the argmax of the last forward, which was not kept (backwardNeeded was false)');
    }
    if (this.method === PoolMethod.MAX && top.length === 1 && topDiff instanceof Float32Array && bottomDiff instanceof Float32Array) {
      // Float32 without a mask top: WebAssembly zeroes and scatters (every argmax is in its plane
      // then). Blobs in the kernels' shared memory ('wasm' host allocator) are done there in place
      // (the argmax too: allocHostInt32), others by the training kernels, which stage them.
      if (this.windowsNonEmpty()) {
        if (installedConv2dRunner()?.maxUnpool?.(topDiff, this.maxIdx, planes, inPlane, outPlane, bottomDiff)) return;
        if (defaultWasmMaxPool()?.maxUnpool(topDiff, this.maxIdx, planes, inPlane, outPlane, bottomDiff)) return;
        const train = defaultWasmTrain();
        if (train) {
          train.maxUnpool(topDiff, this.maxIdx, planes, inPlane, outPlane, bottomDiff);
          return;
        }
      }
    }
    if (this.method === PoolMethod.AVE && topDiff instanceof Float32Array && bottomDiff instanceof Float32Array && this.windowsNonEmpty()) {
      // Float32 AVE: on an installed pass runner that pools, else WebAssembly SIMD over a bordered
      // scratch plane (either overwrites bottomDiff, with the same bits).
      if (installedConv2dRunner()?.aveUnpool?.(...this.windowArgs(planes), topDiff, bottomDiff)) return;
      const train = defaultWasmTrain();
      if (train) {
        train.aveUnpool(this.geometry(), planes, topDiff, bottomDiff);
        return;
      }
    }
    zeroFill(bottomDiff);
    if (this.method === PoolMethod.MAX) {
      // With a mask top, its (possibly edited) contents route the gradient, as in Caffe.
      if (top.length > 1) maxUnpool(topDiff, top[1]!.cpuData(), bottomDiff, planes, inPlane, outPlane);
      else maxUnpool(topDiff, this.maxIdx, bottomDiff, planes, inPlane, outPlane);
    } else if (this.method === PoolMethod.STOCHASTIC) {
      this.stochasticBackward(bottom[0]!.cpuData(), topDiff, bottomDiff, planes);
    } else {
      aveUnpool(topDiff, bottomDiff, planes, this.height, W, PH, PW, this.rowLo, this.rowHi, this.rowSize, this.colLo, this.colHi, this.colSize);
    }
  }

  /** The geometry the WebAssembly training kernels take. */
  private geometry(): PoolGeometry {
    return {
      height: this.height, width: this.width, pooledH: this.pooledHeight, pooledW: this.pooledWidth,
      kernelH: this.kernelH, kernelW: this.kernelW, strideH: this.strideH, strideW: this.strideW, padH: this.padH, padW: this.padW,
    };
  }

  /** The windows as the pooling runners take them: planes, H, W, PH, PW, kernel, stride, pad. */
  private windowArgs(planes: number): PoolWindows {
    return [
      planes, this.height, this.width, this.pooledHeight, this.pooledWidth,
      this.kernelH, this.kernelW, this.strideH, this.strideW, this.padH, this.padW,
    ];
  }

  private windowsNonEmpty(): boolean {
    for (let y = 0; y < this.pooledHeight; y++) if (this.rowLo[y]! >= this.rowHi[y]!) return false;
    for (let x = 0; x < this.pooledWidth; x++) if (this.colLo[x]! >= this.colHi[x]!) return false;
    return true;
  }

  /** STOCHASTIC window [h0,h1)×[w0,w1): Caffe's kernels place it at ph·stride, ignoring pad. */
  private stochasticWindow(y: number, x: number): [number, number, number, number] {
    const h0 = y * this.strideH;
    const w0 = x * this.strideW;
    return [h0, Math.min(h0 + this.kernelH, this.height), w0, Math.min(w0 + this.kernelW, this.width)];
  }

  private stochasticForward(src: FloatArray, dst: FloatArray, planes: number): void {
    const W = this.width;
    const inPlane = this.height * W;
    const outPlane = this.pooledHeight * this.pooledWidth;
    const train = this.phase === Phase.TRAIN;
    for (let p = 0; p < planes; p++) {
      const ib = p * inPlane;
      for (let o = 0; o < outPlane; o++) {
        const [h0, h1, w0, w1] = this.stochasticWindow(Math.floor(o / this.pooledWidth), o % this.pooledWidth);
        let sum = 0;
        let sumSq = 0;
        for (let h = h0; h < h1; h++) {
          for (let w = w0; w < w1; w++) {
            const v = src[ib + h * W + w]!;
            sum += v;
            sumSq += v * v;
          }
        }
        const out = p * outPlane + o;
        if (!train) {
          dst[out] = sum > 0 ? sumSq / sum : 0;
          continue;
        }
        // Sample the first element whose running sum reaches u·Σx (u uniform in [0, 1)).
        const threshold = this.rng.uniform() * sum;
        let picked = -1;
        let running = 0;
        for (let h = h0; h < h1 && picked < 0; h++) {
          for (let w = w0; w < w1; w++) {
            running += src[ib + h * W + w]!;
            if (running >= threshold) {
              picked = h * W + w;
              break;
            }
          }
        }
        // Rounding can leave the running sum a hair short of the threshold: take the last one.
        if (picked < 0 && h1 > h0 && w1 > w0) picked = (h1 - 1) * W + (w1 - 1);
        this.randIdx[out] = picked;
        dst[out] = picked < 0 ? 0 : src[ib + picked]!;
      }
    }
  }

  private stochasticBackward(src: FloatArray, topDiff: FloatArray, bottomDiff: FloatArray, planes: number): void {
    const W = this.width;
    const inPlane = this.height * W;
    const outPlane = this.pooledHeight * this.pooledWidth;
    const train = this.phase === Phase.TRAIN;
    for (let p = 0; p < planes; p++) {
      const ib = p * inPlane;
      for (let o = 0; o < outPlane; o++) {
        const out = p * outPlane + o;
        const g = topDiff[out]!;
        if (train) {
          const idx = this.randIdx[out]!;
          if (idx >= 0) bottomDiff[ib + idx] = bottomDiff[ib + idx]! + g;
          continue;
        }
        const [h0, h1, w0, w1] = this.stochasticWindow(Math.floor(o / this.pooledWidth), o % this.pooledWidth);
        let sum = 0;
        let sumSq = 0;
        for (let h = h0; h < h1; h++) {
          for (let w = w0; w < w1; w++) {
            const v = src[ib + h * W + w]!;
            sum += v;
            sumSq += v * v;
          }
        }
        if (!(sum > 0)) continue;
        // d(Σx²/Σx)/dx_i = (2·x_i·Σx − Σx²) / (Σx)².
        const inv = 1 / (sum * sum);
        for (let h = h0; h < h1; h++) {
          for (let w = w0; w < w1; w++) {
            const i = ib + h * W + w;
            bottomDiff[i] = bottomDiff[i]! + g * (2 * src[i]! * sum - sumSq) * inv;
          }
        }
      }
    }
  }
}

/**
 * Window bounds along one axis for each of `pooled` outputs: [lo, hi) clipped to the image, and
 * the AVE divisor factor, the window clipped to `in + pad` only (padding cells count).
 */
function windowBounds(pooled: number, size: number, kernel: number, stride: number, pad: number): [Int32Array, Int32Array, Int32Array] {
  const lo = new Int32Array(pooled);
  const hi = new Int32Array(pooled);
  const n = new Int32Array(pooled);
  for (let i = 0; i < pooled; i++) {
    const start = i * stride - pad;
    const end = Math.min(start + kernel, size + pad);
    n[i] = end - start;
    lo[i] = Math.max(start, 0);
    hi[i] = Math.min(end, size);
  }
  return [lo, hi, n];
}

/**
 * MAX over 2×2 windows at stride 2 with no padding, every window inside the image (LeNet's
 * pooling): the generic loop's result, ties to the first in row-major order, in fewer steps.
 */
function maxPool2x2(src: FloatArray, dst: FloatArray, idx: Int32Array, planes: number, H: number, W: number, PH: number, PW: number): void {
  const inPlane = H * W;
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const ib = p * inPlane;
    for (let y = 0; y < PH; y++) {
      const rowIdx = 2 * y * W;
      for (let x = 0; x < PW; x++) {
        const i = rowIdx + 2 * x;
        const s = ib + i;
        let best = src[s]!;
        let at = i;
        const b = src[s + 1]!, c = src[s + W]!, d = src[s + W + 1]!;
        if (b > best) { best = b; at = i + 1; }
        if (c > best) { best = c; at = i + W; }
        if (d > best) { best = d; at = i + W + 1; }
        dst[o] = best;
        idx[o++] = at;
      }
    }
  }
}

/** MAX over the windows given per row and column; the first maximum in row-major order wins. */
function maxPool(
  src: FloatArray, dst: FloatArray, idx: Int32Array, planes: number, H: number, W: number, PH: number, PW: number,
  rowLo: Int32Array, rowHi: Int32Array, colLo: Int32Array, colHi: Int32Array,
): void {
  const inPlane = H * W;
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const ib = p * inPlane;
    for (let y = 0; y < PH; y++) {
      const h0 = rowLo[y]!, h1 = rowHi[y]!;
      for (let x = 0; x < PW; x++) {
        const w0 = colLo[x]!, w1 = colHi[x]!;
        if (h0 >= h1 || w0 >= w1) {
          dst[o] = -Infinity;
          idx[o++] = -1;
          continue;
        }
        let at = h0 * W + w0;
        let best = src[ib + at]!;
        for (let h = h0; h < h1; h++) {
          const r = h * W;
          for (let w = w0; w < w1; w++) {
            const v = src[ib + r + w]!;
            if (v > best) {
              best = v;
              at = r + w;
            }
          }
        }
        dst[o] = best;
        idx[o++] = at;
      }
    }
  }
}

/** bottomDiff[argmax] += topDiff, per output (bottomDiff already zeroed). */
function maxUnpool(topDiff: FloatArray, idx: Int32Array | FloatArray, bottomDiff: FloatArray, planes: number, inPlane: number, outPlane: number): void {
  for (let p = 0; p < planes; p++) {
    const ib = p * inPlane;
    const ob = p * outPlane;
    for (let i = 0; i < outPlane; i++) {
      const at = ib + idx[ob + i]!;
      bottomDiff[at] = bottomDiff[at]! + topDiff[ob + i]!;
    }
  }
}

/** AVE: the window sum (row-major order) over the divisor rowSize·colSize. */
function avePool(
  src: FloatArray, dst: FloatArray, planes: number, H: number, W: number, PH: number, PW: number,
  rowLo: Int32Array, rowHi: Int32Array, rowSize: Int32Array, colLo: Int32Array, colHi: Int32Array, colSize: Int32Array,
): void {
  const inPlane = H * W;
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const ib = p * inPlane;
    for (let y = 0; y < PH; y++) {
      const h0 = rowLo[y]!, h1 = rowHi[y]!, hs = rowSize[y]!;
      for (let x = 0; x < PW; x++) {
        const w0 = colLo[x]!, w1 = colHi[x]!;
        let sum = 0;
        for (let h = h0; h < h1; h++) {
          const r = ib + h * W;
          for (let w = w0; w < w1; w++) sum += src[r + w]!;
        }
        dst[o++] = sum / (hs * colSize[x]!);
      }
    }
  }
}

/** AVE backward: each top diff over its divisor, added to every cell of its window (bottomDiff already zeroed). */
function aveUnpool(
  topDiff: FloatArray, bottomDiff: FloatArray, planes: number, H: number, W: number, PH: number, PW: number,
  rowLo: Int32Array, rowHi: Int32Array, rowSize: Int32Array, colLo: Int32Array, colHi: Int32Array, colSize: Int32Array,
): void {
  const inPlane = H * W;
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const ib = p * inPlane;
    for (let y = 0; y < PH; y++) {
      const h0 = rowLo[y]!, h1 = rowHi[y]!, hs = rowSize[y]!;
      for (let x = 0; x < PW; x++) {
        const w0 = colLo[x]!, w1 = colHi[x]!;
        const g = topDiff[o++]! / (hs * colSize[x]!);
        for (let h = h0; h < h1; h++) {
          const r = ib + h * W;
          for (let w = w0; w < w1; w++) bottomDiff[r + w] = bottomDiff[r + w]! + g;
        }
      }
    }
  }
}

function inputAxesMessage(b: Blob): string {
  return `Input must have 4 axes, corresponding to (num, channels, height, width); bottom is ${b.shapeString()}`;
}

export const poolingLayerDef: LayerDef<PoolingLayer> = {
  type: 'Pooling',
  create: (param, context) => new PoolingLayer(param, context),
};
