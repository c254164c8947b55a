import type { Blob } from '@caffe-ts/blob';
import { LossLayer, type BlobCounts, type LayerDef } from '@caffe-ts/layers';
import { forkParam, type SmoothL1LossParameter } from '../fork-types.js';

/**
 * SmoothL1Loss (Fast/Faster R-CNN's box regression loss, py-faster-rcnn's form):
 * E = (1/N) Σ w_out · f(w_in · (x₁ − x₂)), N the first dimension, with
 * f(d) = 0.5·σ²·d² where |d| < 1/σ², else |d| − 0.5/σ² (σ = sigma, 1 by default).
 * - Bottoms: predictions and targets of one shape, then optionally the inside and outside
 *   weights (both or neither), of the same shape.
 * - Backward reaches the predictions and the targets (sign −1), each ∂E = ± w_out · w_in ·
 *   f'(w_in · (x₁ − x₂)) / N, f'(d) = σ²·d or sign(d). The weights get no gradient.
 */
export class SmoothL1LossLayer extends LossLayer {
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 2, maxBottomBlobs: 4, exactNumTopBlobs: 1, autoTopBlobs: true };
  readonly type = 'SmoothL1Loss';
  sigma2 = 1;
  /** w_in · (x₁ − x₂) from the last forward (Caffe's diff_). */
  private readonly difference: Blob = this.newBlob();

  override layerSetUp(bottom: Blob[]): void {
    const p = forkParam<SmoothL1LossParameter>(this.param, 'smooth_l1_loss_param', 'SmoothL1LossParameter');
    this.check(Number.isFinite(p.sigma) && p.sigma !== 0, () => `sigma must be a finite non-zero number (got ${p.sigma}).`);
    this.sigma2 = p.sigma * p.sigma;
    this.check(bottom.length !== 3, () => 'If weights are used, must specify both inside and outside weights (got 3 bottoms).');
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const x = bottom[0]!;
    const names = ['the targets', 'the inside weights', 'the outside weights'];
    for (let i = 1; i < bottom.length; i++) {
      this.check(
        bottom[i]!.count() === x.count() && bottom[i]!.count(1) === x.count(1),
        () => `bottom ${i} (${names[i - 1]}) must have the predictions' shape ${x.shapeString()} (got ${bottom[i]!.shapeString()}).`,
      );
    }
    this.difference.reshapeLike(x);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const a = bottom[0]!.cpuData(), b = bottom[1]!.cpuData();
    const wIn = bottom.length === 4 ? bottom[2]!.cpuData() : null, wOut = bottom.length === 4 ? bottom[3]!.cpuData() : null;
    const d = this.difference.mutableCpuData();
    const s2 = this.sigma2;
    let loss = 0;
    for (let i = 0; i < d.length; i++) {
      const v = wIn ? wIn[i]! * (a[i]! - b[i]!) : a[i]! - b[i]!;
      d[i] = v;
      const abs = Math.abs(v);
      const e = abs < 1 / s2 ? 0.5 * v * v * s2 : abs - 0.5 / s2;
      loss += wOut ? wOut[i]! * e : e;
    }
    top[0]!.mutableCpuData()[0] = loss / bottom[0]!.shape[0]!;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const d = this.difference.cpuData();
    const wIn = bottom.length === 4 ? bottom[2]!.cpuData() : null, wOut = bottom.length === 4 ? bottom[3]!.cpuData() : null;
    const s2 = this.sigma2;
    for (let k = 0; k < 2; k++) {
      if (!propagateDown[k]) continue;
      const alpha = ((k === 0 ? 1 : -1) * top[0]!.cpuDiff()[0]!) / bottom[k]!.shape[0]!;
      const dx = bottom[k]!.mutableCpuDiff();
      for (let i = 0; i < dx.length; i++) {
        const v = d[i]!;
        const g = Math.abs(v) < 1 / s2 ? s2 * v : Math.sign(v);
        dx[i] = wIn ? alpha * g * wIn[i]! * wOut![i]! : alpha * g;
      }
    }
  }

  /** Predictions and targets are both data (py-faster-rcnn lets backward reach either). */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex < 2;
  }
}

export const smoothL1LossLayerDef: LayerDef<SmoothL1LossLayer> = {
  type: 'SmoothL1Loss',
  create: (p, ctx) => new SmoothL1LossLayer(p, ctx),
};
