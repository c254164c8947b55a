import { defaultWasmInfer, installedInferConvRunner, LRN_WASM_BETAS, type Blob, type FloatArray } from '@caffe-ts/blob';
import { createMessage, LRNParameter_NormRegion as NormRegion, type LRNParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Local Response Normalization (Caffe's LRNLayer) of an N×C×H×W bottom, `y = x · s^(−β)`:
 * - ACROSS_CHANNELS: `s = k + (α/n) Σ x²` over channels `c−(n−1)/2 … c+(n−1)/2`, clipped to
 *   the channel range.
 * - WITHIN_CHANNEL: `s = 1 + (α/n²) Σ x²` over the n×n spatial window centred on the pixel,
 *   zero-padded at the borders. As in Caffe (which builds it from AVE pooling and a Power
 *   layer with shift 1), `k` plays no part here.
 * Both are computed directly (Caffe composes the second from sub-layers); the backward pass is
 * the exact derivative: `dx_j = dy_j·s_j^(−β) − (2αβ/m)·x_j·Σ_{i∋j} dy_i·y_i/s_i`, m = n or n².
 */
export class LRNLayer extends Layer {
  readonly type: string = 'LRN';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  size = 5;
  alpha = 1;
  beta = 0.75;
  k = 1;
  private region: NormRegion = NormRegion.ACROSS_CHANNELS;
  private prePad = 2;
  /** s per element, kept for backward. */
  private scale!: Blob;
  /**
   * Whether backward may run: a Net clears it for layers it never runs backward through (every
   * layer of a deploy net), and a forward then gives s back as soon as y is written, so an
   * inference net's LRN layers hold no buffer of their bottom's size between passes.
   */
  backwardNeeded = true;
  /** Work buffers (squares or ratios, and their window sums), reused across calls. */
  private terms = new Float64Array(0);
  private sums = new Float64Array(0);

  private get lrnParam(): LRNParameter {
    return this.param.lrn_param ?? createMessage<LRNParameter>('LRNParameter', {});
  }

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const lp = this.lrnParam;
    this.size = lp.local_size;
    this.check(this.size % 2 === 1, () => `LRN only supports odd values for local_size (got ${this.size})`);
    this.prePad = (this.size - 1) / 2;
    this.alpha = lp.alpha;
    this.beta = lp.beta;
    this.k = lp.k;
    this.region = lp.norm_region;
    this.check(
      this.region === NormRegion.ACROSS_CHANNELS || this.region === NormRegion.WITHIN_CHANNEL,
      () => `Unknown normalization region ${this.region}.`,
    );
    this.scale = this.newBlob();
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(
      b.numAxes === 4,
      () => `Input must have 4 axes, corresponding to (num, channels, height, width); bottom is ${b.shapeString()}`,
    );
    top[0]!.reshape(b.shape);
    this.scale.reshape(b.shape);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    // The shape again: a forward without backward left s empty.
    this.scale.reshape(bottom[0]!.shape);
    this.normalize(bottom, top);
    if (!this.backwardNeeded) this.scale.dispose();
  }

  private normalize(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const n = x.length;
    const across = this.region === NormRegion.ACROSS_CHANNELS;
    const shift = across ? this.k : 1;
    const c = this.alpha / (across ? this.size : this.size * this.size);
    if (across && !this.backwardNeeded && x instanceof Float32Array && y instanceof Float32Array) {
      // Inference on an installed inference runner that normalizes (setInferConvRunner), which
      // leaves s, read by the backward only, unwritten.
      const [N, C, H, W] = bottom[0]!.shape as [number, number, number, number];
      if (installedInferConvRunner()?.lrnAcross?.(x, null, y, N, C, H * W, this.size, this.k, c, this.beta)) return;
    }
    const s = this.scale.mutableCpuData();
    if (across && y instanceof Float32Array && LRN_WASM_BETAS.includes(this.beta)) {
      // Float32 in WebAssembly SIMD (sums of squares and s in float32, as Caffe computes them).
      const k = defaultWasmInfer();
      if (k) {
        const [N, C, H, W] = bottom[0]!.shape as [number, number, number, number];
        k.lrnAcross(x as Float32Array, s as Float32Array, y, N, C, H * W, this.size, this.k, c, this.beta);
        return;
      }
    }
    if (across) {
      // Channel by channel: the window's squares summed into one plane-sized buffer (in cache),
      // then s and y for that plane; no whole-blob work buffers.
      const [N, C, H, W] = bottom[0]!.shape as [number, number, number, number];
      const plane = H * W, p = this.prePad;
      const [sums] = this.scratch(plane);
      for (let nIdx = 0; nIdx < N; nIdx++) {
        for (let ch = 0; ch < C; ch++) {
          const c0 = Math.max(0, ch - p), c1 = Math.min(C - 1, ch + p);
          // The same sums in the same order as summing each position's window of squares.
          let t = (nIdx * C + c0) * plane;
          for (let q = 0; q < plane; q++) sums[q] = 0 + x[t + q]! * x[t + q]!;
          for (let cc = c0 + 1; cc <= c1; cc++) {
            t = (nIdx * C + cc) * plane;
            for (let q = 0; q < plane; q++) sums[q] = sums[q]! + x[t + q]! * x[t + q]!;
          }
          this.finish(x, s, y, sums, (nIdx * C + ch) * plane, plane, shift, c);
        }
      }
      return;
    }
    const [terms, sums] = this.scratch(n);
    for (let i = 0; i < n; i++) terms[i] = x[i]! * x[i]!;
    this.windowSums(bottom[0]!.shape, terms, sums, across);
    this.finish(x, s, y, sums, 0, n, shift, c);
  }

  /**
   * s = shift + c·sums and y = x·s^(−β) for elements at … at + len − 1 (sums from 0). For the usual
   * β, s^(−β) comes from square roots: Math.pow was most of the layer's time. (It agrees with
   * pow to a few units in the last float64 place, far below float32 rounding.)
   */
  private finish(x: FloatArray, s: FloatArray, y: FloatArray, sums: Float64Array, at: number, len: number, shift: number, c: number): void {
    const beta = this.beta;
    const end = at + len;
    if (beta === 0.75) {
      for (let i = at, j = 0; i < end; i++, j++) {
        s[i] = shift + c * sums[j]!;
        const r = Math.sqrt(s[i]!);
        y[i] = x[i]! / (r * Math.sqrt(r));
      }
    } else if (beta === 0.5) {
      for (let i = at, j = 0; i < end; i++, j++) {
        s[i] = shift + c * sums[j]!;
        y[i] = x[i]! / Math.sqrt(s[i]!);
      }
    } else if (beta === 1) {
      for (let i = at, j = 0; i < end; i++, j++) {
        s[i] = shift + c * sums[j]!;
        y[i] = x[i]! / s[i]!;
      }
    } else {
      for (let i = at, j = 0; i < end; i++, j++) {
        s[i] = shift + c * sums[j]!;
        y[i] = x[i]! * Math.pow(s[i]!, -beta);
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    if (this.scale.count() !== bottom[0]!.count()) {
      this.fail('LRN backward needs the scale of the last forward, which was not kept (backwardNeeded was false)');
    }
    const dy = top[0]!.cpuDiff();
    const y = top[0]!.cpuData();
    const x = bottom[0]!.cpuData();
    const s = this.scale.cpuData();
    const n = dy.length;
    const [terms, sums] = this.scratch(n);
    // ratio_i = dy_i · y_i / s_i, then summed over each element's window.
    for (let i = 0; i < n; i++) terms[i] = (dy[i]! * y[i]!) / s[i]!;
    const across = this.region === NormRegion.ACROSS_CHANNELS;
    this.windowSums(bottom[0]!.shape, terms, sums, across);
    const c = (2 * this.alpha * this.beta) / (across ? this.size : this.size * this.size);
    const dx = bottom[0]!.mutableCpuDiff();
    const nb = -this.beta;
    for (let i = 0; i < n; i++) dx[i] = dy[i]! * Math.pow(s[i]!, nb) - c * x[i]! * sums[i]!;
  }

  /** Two float64 work buffers of at least n elements, kept between calls. */
  private scratch(n: number): [Float64Array, Float64Array] {
    if (this.terms.length < n) {
      this.terms = new Float64Array(n);
      this.sums = new Float64Array(n);
    }
    return [this.terms, this.sums];
  }

  /**
   * out_i = Σ terms_j over i's window: channels c±prePad (across) or the size×size spatial
   * square (within), clipped to the blob. The windows are symmetric, so the same sums serve
   * forward (squares) and backward (ratios).
   */
  private windowSums(shape: readonly number[], terms: Float64Array, out: Float64Array, across: boolean): void {
    const [N, C, H, W] = shape as [number, number, number, number];
    const plane = H * W;
    const p = this.prePad;
    for (let nIdx = 0; nIdx < N; nIdx++) {
      for (let ch = 0; ch < C; ch++) {
        const base = (nIdx * C + ch) * plane;
        if (across) {
          const c0 = Math.max(0, ch - p);
          const c1 = Math.min(C - 1, ch + p);
          // Channel by channel, each a contiguous plane (the same sums, in the same order, as
          // summing each position's window; a window walk strides a whole plane per step).
          const first = (nIdx * C + c0) * plane;
          for (let q = 0; q < plane; q++) out[base + q] = 0 + terms[first + q]!;
          for (let cc = c0 + 1; cc <= c1; cc++) {
            const t = (nIdx * C + cc) * plane;
            for (let q = 0; q < plane; q++) out[base + q] = out[base + q]! + terms[t + q]!;
          }
        } else {
          for (let h = 0; h < H; h++) {
            const h0 = Math.max(0, h - p);
            const h1 = Math.min(H - 1, h + p);
            for (let w = 0; w < W; w++) {
              const w0 = Math.max(0, w - p);
              const w1 = Math.min(W - 1, w + p);
              let sum = 0;
              for (let hh = h0; hh <= h1; hh++) for (let ww = w0; ww <= w1; ww++) sum += terms[base + hh * W + ww]!;
              out[base + h * W + w] = sum;
            }
          }
        }
      }
    }
  }
}

export const lrnLayerDef: LayerDef<LRNLayer> = {
  type: 'LRN',
  create: (param, context) => new LRNLayer(param, context),
};
