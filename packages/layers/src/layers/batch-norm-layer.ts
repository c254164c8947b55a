import type { Blob, FloatArray } from '@caffe-ts/blob';
import { createMessage, hasField, Phase, type BatchNormParameter, type LayerParameter, type ParamSpec } from '@caffe-ts/proto';
import { Layer, type BlobCounts, type LayerContext } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * A copy of the LayerParameter whose repeated fields are the layer's own, so the ParamSpecs
 * BatchNorm adds stay with the layer (Caffe's layer keeps its own copy of the message: the net's
 * definition is not changed, but the layer's, which a saved model records, is).
 */
function ownCopy(param: LayerParameter): LayerParameter {
  const copy = Object.create(Object.getPrototypeOf(param) as object) as LayerParameter;
  for (const key of Object.keys(param)) {
    const v = (param as unknown as Record<string, unknown>)[key];
    (copy as unknown as Record<string, unknown>)[key] = Array.isArray(v) ? v.slice() : v;
  }
  // The list this layer appends to must be its own even if the message left it unset.
  copy.param = param.param.slice();
  return copy;
}

/**
 * BatchNorm (Caffe's BatchNormLayer): per channel (axis 1; the whole blob for a 1-D bottom),
 * y = (x − μ) / √(σ² + eps). No affine part: follow it with Scale { bias_term: true }.
 * - Training statistics (use_global_stats false, the default outside TEST): μ and σ² (biased)
 *   of the batch over every axis but the channel one, and the running sums are updated:
 *   s ← s·f + 1, mean ← mean·f + μ, var ← var·f + σ²·m/(m−1) (f = moving_average_fraction,
 *   m = count / channels).
 * - Global statistics (default in TEST): μ = mean/s, σ² = var/s (0 when s = 0).
 * Blobs: `[mean [C], variance [C], scale factor [1]]`, zero-initialised, never learned: each
 * gets a ParamSpec with lr_mult 0 unless one is given, and a given lr_mult must be 0.
 * In place is safe: the normalised output is kept for backward.
 */
export class BatchNormLayer extends Layer {
  readonly type = 'BatchNorm';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  useGlobalStats = false;
  movingAverageFraction = 0.999;
  eps = 1e-5;
  channels = 0;
  /** Per-channel mean and √(σ² + eps) used by the last forward. */
  mean = new Float64Array(0);
  std = new Float64Array(0);
  /** The normalised output of the last forward (later in-place layers may overwrite the top). */
  private xNorm = new Float64Array(0);

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(ownCopy(param), context);
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const bp = this.param.batch_norm_param ?? createMessage<BatchNormParameter>('BatchNormParameter', {});
    this.movingAverageFraction = bp.moving_average_fraction;
    this.useGlobalStats = hasField(bp, 'use_global_stats') ? bp.use_global_stats : this.phase === Phase.TEST;
    const b0 = bottom[0]!;
    this.channels = b0.numAxes === 1 ? 1 : b0.shape[1]!;
    this.eps = bp.eps;
    const c = this.channels;
    if (this.blobs.length === 0) {
      this.blobs = [this.newBlob([c]), this.newBlob([c]), this.newBlob([1])];
      for (const b of this.blobs) b.mutableCpuData().fill(0);
    } else {
      const counts = this.blobs.map((b) => b.count());
      this.check(
        counts.length === 3 && counts[0] === c && counts[1] === c && counts[2] === 1,
        () =>
          `expected 3 blobs (mean [${c}], variance [${c}], scale factor [1]); got ${counts.length} with shapes ` +
          this.blobs.map((b) => `(${b.shapeString()})`).join(', '),
      );
    }
    // The statistics are not learned: mask them from the solver with lr_mult 0.
    const specs = this.param.param;
    for (let i = 0; i < this.blobs.length; i++) {
      if (specs.length === i) specs.push(createMessage<ParamSpec>('ParamSpec', { lr_mult: 0 }));
      else {
        const lr = specs[i]!.lr_mult;
        this.check(lr === 0, () => `Cannot configure batch normalization statistics as layer parameters (param ${i} has lr_mult ${lr}, expected 0).`);
      }
    }
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    if (b0.numAxes > 1) {
      this.check(
        b0.shape[1] === this.channels,
        () => `bottom[0] has ${b0.shape[1]} channels (shape ${b0.shapeString()}), but the layer was set up for ${this.channels}`,
      );
    }
    if (top[0] !== b0) top[0]!.reshapeLike(b0);
    if (this.mean.length !== this.channels) {
      this.mean = new Float64Array(this.channels);
      this.std = new Float64Array(this.channels);
    }
    // Only the batch-statistics path keeps x − μ (global statistics run in one pass).
    const need = this.useGlobalStats ? 0 : b0.count();
    if (this.xNorm.length !== need) this.xNorm = new Float64Array(need);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    const x = b0.cpuData();
    const y = top[0]!.mutableCpuData();
    const C = this.channels;
    const num = b0.shape[0]!;
    const spatial = b0.count() / (num * C);
    const n = num * spatial;
    const { mean, std, xNorm } = this;
    const variance = new Float64Array(C);
    if (this.useGlobalStats) {
      this.forwardGlobal(x, y, num, spatial);
      return;
    }
    mean.fill(0);
    for (let i = 0, k = 0; i < num; i++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let j = 0; j < spatial; j++, k++) acc += x[k]!;
        mean[c] += acc;
      }
    }
    for (let c = 0; c < C; c++) mean[c] /= n;
    // xNorm holds x − μ for now (y may be x itself, in place).
    for (let i = 0, k = 0; i < num; i++) {
      for (let c = 0; c < C; c++) {
        const mu = mean[c]!;
        for (let j = 0; j < spatial; j++, k++) xNorm[k] = x[k]! - mu;
      }
    }
    {
      // var(X) = E((X − EX)²), the biased estimate.
      for (let i = 0, k = 0; i < num; i++) {
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let j = 0; j < spatial; j++, k++) acc += xNorm[k]! * xNorm[k]!;
          variance[c] += acc;
        }
      }
      for (let c = 0; c < C; c++) variance[c] /= n;
      const f = this.movingAverageFraction;
      const sf = this.blobs[2]!.mutableCpuData();
      sf[0] = sf[0]! * f + 1;
      const runMean = this.blobs[0]!.mutableCpuData();
      const runVar = this.blobs[1]!.mutableCpuData();
      const m = b0.count() / C;
      // The running variance is unbiased: m/(m−1) times the batch's.
      const correction = m > 1 ? m / (m - 1) : 1;
      for (let c = 0; c < C; c++) {
        runMean[c] = mean[c]! + f * runMean[c]!;
        runVar[c] = correction * variance[c]! + f * runVar[c]!;
      }
    }
    for (let c = 0; c < C; c++) std[c] = Math.sqrt(variance[c]! + this.eps);
    for (let i = 0, k = 0; i < num; i++) {
      for (let c = 0; c < C; c++) {
        const sd = std[c]!;
        for (let j = 0; j < spatial; j++, k++) {
          y[k] = xNorm[k]! / sd;
          // Keep what the top holds (rounded to its dtype), as Caffe caches the top.
          xNorm[k] = y[k]!;
        }
      }
    }
  }

  /**
   * μ and √(σ² + eps) per channel from the stored statistics (μ = mean/s, σ² = var/s), as the
   * global-statistics forward uses them (also kept in `mean`/`std`); for fused inference passes
   * that apply y = (x − μ)/√(σ² + eps) themselves. Call after reshape.
   */
  globalStats(): { mean: Float64Array; std: Float64Array } {
    const C = this.channels;
    const { mean, std } = this;
    const s = this.blobs[2]!.cpuData()[0]!;
    const factor = s === 0 ? 0 : 1 / s;
    const m = this.blobs[0]!.cpuData();
    const v = this.blobs[1]!.cpuData();
    for (let c = 0; c < C; c++) {
      mean[c] = factor * m[c]!;
      std[c] = Math.sqrt(factor * v[c]! + this.eps);
    }
    return { mean, std };
  }

  /**
   * The global-statistics forward in one pass, y = (x − μ)/√(σ² + eps): the same arithmetic as
   * the general path (in float64, rounded once on store) without its x − μ buffer, which only
   * the batch-statistics backward reads.
   */
  private forwardGlobal(x: FloatArray, y: FloatArray, num: number, spatial: number): void {
    const C = this.channels;
    const { mean, std } = this.globalStats();
    for (let i = 0, k = 0; i < num; i++) {
      for (let c = 0; c < C; c++) {
        const mu = mean[c]!, sd = std[c]!;
        const end = k + spatial;
        for (; k < end; k++) y[k] = (x[k]! - mu) / sd;
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const b0 = bottom[0]!;
    // In place, dy and dx are one array; every read of dy[k] precedes the write of dx[k].
    const dy = top[0]!.cpuDiff();
    const dx = b0.mutableCpuDiff();
    const C = this.channels;
    const num = b0.shape[0]!;
    const spatial = b0.count() / (num * C);
    const std = this.std;
    if (this.useGlobalStats) {
      // μ and σ are constants here.
      for (let i = 0, k = 0; i < num; i++) {
        for (let c = 0; c < C; c++) {
          const sd = std[c]!;
          for (let j = 0; j < spatial; j++, k++) dx[k] = dy[k]! / sd;
        }
      }
      return;
    }
    // With ŷ the normalised output and means over every axis but the channel one:
    // dx = (dy − mean(dy) − mean(dy·ŷ)·ŷ) / √(σ² + eps).
    const xNorm = this.xNorm;
    const sumDy = new Float64Array(C);
    const sumDyY = new Float64Array(C);
    for (let i = 0, k = 0; i < num; i++) {
      for (let c = 0; c < C; c++) {
        let a = 0;
        let b = 0;
        for (let j = 0; j < spatial; j++, k++) {
          a += dy[k]!;
          b += dy[k]! * xNorm[k]!;
        }
        sumDy[c] += a;
        sumDyY[c] += b;
      }
    }
    const n = num * spatial;
    for (let i = 0, k = 0; i < num; i++) {
      for (let c = 0; c < C; c++) {
        const meanDy = sumDy[c]! / n;
        const meanDyY = sumDyY[c]! / n;
        const sd = std[c]!;
        for (let j = 0; j < spatial; j++, k++) dx[k] = (dy[k]! - meanDy - meanDyY * xNorm[k]!) / sd;
      }
    }
  }
}

export const batchNormLayerDef: LayerDef<BatchNormLayer> = { type: 'BatchNorm', create: (p, ctx) => new BatchNormLayer(p, ctx) };
