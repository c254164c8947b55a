import { fillBlob, type Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { createMessage, type FillerParameter } from '@caffe-ts/proto';
import { BNMode, forkParam, type BNParameter } from '../fork-types.js';

/** The fork's fixed variance epsilon (its BNParameter has no eps field). */
export const BN_VAR_EPS = 1e-9;

/**
 * BN (SegNet's caffe-segnet, also used by ENet): batch normalisation with its own scale and
 * shift, blobs `[scale [1,C,1,1], shift [1,C,1,1]]` (scale_filler, shift_filler; Caffe's
 * default constant-0 filler when unset).
 * - bn_mode LEARN (default), in every phase: normalise with the batch's per-channel mean and
 *   biased variance E(x²) − (Ex)², then y = scale · x̂ + shift. Optional tops 1 and 2 receive
 *   the batch mean and variance `[1,C,1,1]` (what SegNet's compute_bn_statistics.py collects).
 * - bn_mode INFERENCE: y = scale · x + shift, the statistics folded into scale and shift.
 */
export class BNLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 1, minTopBlobs: 1, maxTopBlobs: 3 };
  readonly type = 'BN';
  mode = BNMode.LEARN;
  private mean = new Float64Array(0);
  /** √(var + eps) per channel, from the last LEARN forward. */
  private std = new Float64Array(0);
  private variance = new Float64Array(0);
  private xNorm: Float64Array = new Float64Array(0);

  override layerSetUp(bottom: Blob[]): void {
    const p = forkParam<BNParameter>(this.param, 'bn_param', 'BNParameter');
    this.mode = p.bn_mode;
    this.check(this.mode === BNMode.LEARN || this.mode === BNMode.INFERENCE, () => `Unknown BN mode ${this.mode}.`);
    this.check(bottom[0]!.numAxes === 4, () => `the input must have 4 axes (got ${bottom[0]!.shapeString()}).`);
    if (this.blobs.length > 0) return;
    const C = bottom[0]!.shape[1]!;
    const filler = (f: unknown) => (f as FillerParameter | null) ?? createMessage<FillerParameter>('FillerParameter', {});
    const scale = this.newBlob([1, C, 1, 1]);
    const shift = this.newBlob([1, C, 1, 1]);
    fillBlob(scale, filler(p.scale_filler), this.rng);
    fillBlob(shift, filler(p.shift_filler), this.rng);
    this.blobs = [scale, shift];
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const C = b.shape[1]!;
    this.check(this.blobs[0]!.count() === C, () => `the scale has ${this.blobs[0]!.count()} channels but the input has ${C}.`);
    top[0]!.reshapeLike(b);
    for (let t = 1; t < top.length; t++) top[t]!.reshape([1, C, 1, 1]);
    if (this.mean.length !== C) {
      this.mean = new Float64Array(C);
      this.std = new Float64Array(C);
      this.variance = new Float64Array(C);
    }
    if (this.xNorm.length !== b.count()) this.xNorm = new Float64Array(b.count());
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const scale = this.blobs[0]!.cpuData();
    const shift = this.blobs[1]!.cpuData();
    const [N, C] = bottom[0]!.shape as [number, number];
    const S = bottom[0]!.count(2);
    if (this.mode === BNMode.INFERENCE) {
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const o = (n * C + c) * S;
          for (let q = 0; q < S; q++) y[o + q] = scale[c]! * x[o + q]! + shift[c]!;
        }
      }
      return;
    }
    const m = N * S;
    for (let c = 0; c < C; c++) {
      let sum = 0;
      let sq = 0;
      for (let n = 0; n < N; n++) {
        const o = (n * C + c) * S;
        for (let q = 0; q < S; q++) {
          sum += x[o + q]!;
          sq += x[o + q]! * x[o + q]!;
        }
      }
      const mean = sum / m;
      this.mean[c] = mean;
      this.variance[c] = sq / m - mean * mean;
      this.std[c] = Math.sqrt(this.variance[c]! + BN_VAR_EPS);
    }
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        for (let q = 0; q < S; q++) {
          const xn = (x[o + q]! - this.mean[c]!) / this.std[c]!;
          this.xNorm[o + q] = xn;
          y[o + q] = scale[c]! * xn + shift[c]!;
        }
      }
    }
    if (top.length > 1) top[1]!.mutableCpuData().set(this.mean);
    if (top.length > 2) top[2]!.mutableCpuData().set(this.variance);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const dy = top[0]!.cpuDiff();
    const x = bottom[0]!.cpuData();
    const scale = this.blobs[0]!.cpuData();
    const [N, C] = bottom[0]!.shape as [number, number];
    const S = bottom[0]!.count(2);
    const learn = this.mode === BNMode.LEARN;
    // Per channel: Σ dy and Σ dy·x̂ (x̂ = x in INFERENCE mode).
    const sumDy = new Float64Array(C);
    const sumDyX = new Float64Array(C);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        for (let q = 0; q < S; q++) {
          sumDy[c] += dy[o + q]!;
          sumDyX[c] += dy[o + q]! * (learn ? this.xNorm[o + q]! : x[o + q]!);
        }
      }
    }
    if (this.paramPropagateDown[0] ?? true) {
      const d = this.blobs[0]!.mutableCpuDiff();
      for (let c = 0; c < C; c++) d[c]! += sumDyX[c]!;
    }
    if (this.paramPropagateDown[1] ?? true) {
      const d = this.blobs[1]!.mutableCpuDiff();
      for (let c = 0; c < C; c++) d[c]! += sumDy[c]!;
    }
    if (!propagateDown[0]) return;
    const dx = bottom[0]!.mutableCpuDiff();
    const m = N * S;
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const o = (n * C + c) * S;
        for (let q = 0; q < S; q++) {
          const i = o + q;
          if (!learn) dx[i] = scale[c]! * dy[i]!;
          // The usual batch-norm gradient through the batch statistics.
          else dx[i] = (scale[c]! / this.std[c]!) * (dy[i]! - sumDy[c]! / m - (this.xNorm[i]! * sumDyX[c]!) / m);
        }
      }
    }
  }
}

export const bnLayerDef: LayerDef<BNLayer> = { type: 'BN', create: (p, ctx) => new BNLayer(p, ctx) };
