import type { Blob } from '@caffe-ts/blob';
import { createMessage, type MVNParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * MVN, mean–variance normalisation (Caffe's MVNLayer): each group, one per (n, c) or one per n
 * with across_channels, gets y = x − mean, then y /= (std + eps) with normalize_variance (std
 * the biased standard deviation; eps is added to it, not to the variance, as in Caffe).
 * Caffe reads the bottom through the legacy num/channels/height/width accessors: bottoms have
 * at most 4 axes and the top is 4-D (missing trailing axes are 1).
 * Backward uses the top's data and the stored stds; it is correct in place too.
 */
export class MVNLayer extends Layer {
  readonly type = 'MVN';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  /** std + eps per group from the last forward (normalize_variance only). */
  std = new Float64Array(0);

  private get mvnParam(): MVNParameter {
    return this.param.mvn_param ?? createMessage<MVNParameter>('MVNParameter', {});
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    this.check(b0.numAxes <= 4, () => `Cannot use legacy accessors on Blobs with > 4 axes (bottom[0] shape ${b0.shapeString()}).`);
    const legacy = [0, 1, 2, 3].map((i) => (i < b0.numAxes ? b0.shape[i]! : 1));
    // In place keeps the bottom's shape (the count is the same either way).
    if (top[0] !== b0) top[0]!.reshape(legacy);
    const groups = this.groups(b0);
    if (this.std.length !== groups) this.std = new Float64Array(groups);
  }

  private groups(b: Blob): number {
    const num = b.numAxes > 0 ? b.shape[0]! : 1;
    const channels = b.numAxes > 1 ? b.shape[1]! : 1;
    return this.mvnParam.across_channels ? num : num * channels;
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    const x = b0.cpuData();
    const y = top[0]!.mutableCpuData();
    const groups = this.groups(b0);
    const dim = groups === 0 ? 0 : b0.count() / groups;
    const { normalize_variance: normalizeVariance, eps } = this.mvnParam;
    for (let g = 0; g < groups; g++) {
      const start = g * dim;
      const end = start + dim;
      let sum = 0;
      for (let k = start; k < end; k++) sum += x[k]!;
      const mean = sum / dim;
      for (let k = start; k < end; k++) y[k] = x[k]! - mean;
      if (!normalizeVariance) continue;
      let sq = 0;
      for (let k = start; k < end; k++) sq += y[k]! * y[k]!;
      const sd = Math.sqrt(sq / dim) + eps;
      this.std[g] = sd;
      for (let k = start; k < end; k++) y[k] = y[k]! / sd;
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const b0 = bottom[0]!;
    const y = top[0]!.cpuData();
    // In place, dy and dx are one array; each group's sums are taken before it is written.
    const dy = top[0]!.cpuDiff();
    const dx = b0.mutableCpuDiff();
    const groups = this.groups(b0);
    const dim = groups === 0 ? 0 : b0.count() / groups;
    const normalizeVariance = this.mvnParam.normalize_variance;
    for (let g = 0; g < groups; g++) {
      const start = g * dim;
      const end = start + dim;
      let sumDy = 0;
      let sumDyY = 0;
      for (let k = start; k < end; k++) {
        sumDy += dy[k]!;
        sumDyY += dy[k]! * y[k]!;
      }
      const meanDy = sumDy / dim;
      if (normalizeVariance) {
        // dx = (dy − mean(dy) − mean(dy·y)·y) / (std + eps)
        const meanDyY = sumDyY / dim;
        const sd = this.std[g]!;
        for (let k = start; k < end; k++) dx[k] = (dy[k]! - meanDy - meanDyY * y[k]!) / sd;
      } else {
        for (let k = start; k < end; k++) dx[k] = dy[k]! - meanDy;
      }
    }
  }
}

export const mvnLayerDef: LayerDef<MVNLayer> = { type: 'MVN', create: (p, ctx) => new MVNLayer(p, ctx) };
