import type { Blob } from '@caffe-ts/blob';
import { createMessage, type ContrastiveLossParameter } from '@caffe-ts/proto';
import type { BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';
import { LossLayer } from './loss-layer.js';

/**
 * ContrastiveLoss (Hadsell, Chopra & LeCun 2006): for pairs (aₙ, bₙ) with dₙ = ‖aₙ − bₙ‖ and
 * similarity yₙ (non-zero after truncation = similar),
 * E = 1/(2N) Σ [yₙ·dₙ² + (1 − yₙ)·max(margin − dₙ, 0)²],
 * or with `legacy_version` the dissimilar term max(margin − dₙ², 0).
 * - Bottoms: a and b (N×C×1×1, same C), y (N×1×1×1). Backward reaches a and b (with opposite
 *   signs); y gets a zero gradient.
 * As in Caffe, the gradient of the non-legacy dissimilar term divides by dₙ + 1e-4, so it stays
 * finite for coincident points (a slight underestimate elsewhere).
 */
export class ContrastiveLossLayer extends LossLayer {
  readonly type = 'ContrastiveLoss';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 3, exactNumTopBlobs: 1, autoTopBlobs: true };

  /** a − b and ‖a − b‖² per pair from the last forward. */
  readonly difference: Blob = this.newBlob();
  readonly distSq: Blob = this.newBlob();
  private margin = 1;
  private legacy = false;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const cp = this.param.contrastive_loss_param ?? createMessage<ContrastiveLossParameter>('ContrastiveLossParameter', {});
    this.margin = cp.margin;
    this.legacy = cp.legacy_version;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const [a, b, y] = [bottom[0]!, bottom[1]!, bottom[2]!];
    this.check(
      a.numAxes <= 4 && b.numAxes <= 4 && legacyDim(a, 2) === 1 && legacyDim(a, 3) === 1 && legacyDim(b, 2) === 1 && legacyDim(b, 3) === 1,
      () => `bottoms 0 and 1 must have shape N×C×1×1 (got ${a.shapeString()} and ${b.shapeString()})`,
    );
    this.check(
      legacyDim(a, 1) === legacyDim(b, 1),
      () => `bottoms 0 and 1 must have the same channels (got ${a.shapeString()} and ${b.shapeString()})`,
    );
    this.check(
      y.numAxes <= 4 && y.shape.slice(1).every((d) => d === 1) && y.count() === a.shape[0],
      () => `bottom 2 (similarity) must have shape N×1×1×1 with N = ${a.shape[0]} (got ${y.shapeString()})`,
    );
    this.difference.reshape([a.shape[0]!, legacyDim(a, 1)]);
    this.distSq.reshape([a.shape[0]!]);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const a = bottom[0]!.cpuData();
    const b = bottom[1]!.cpuData();
    const y = bottom[2]!.cpuData();
    const d = this.difference.mutableCpuData();
    const dsq = this.distSq.mutableCpuData();
    const num = bottom[0]!.shape[0]!;
    const channels = legacyDim(bottom[0]!, 1);
    let loss = 0;
    for (let n = 0; n < num; n++) {
      let s = 0;
      for (let c = 0; c < channels; c++) {
        const k = n * channels + c;
        const v = a[k]! - b[k]!;
        d[k] = v;
        s += v * v;
      }
      dsq[n] = s;
      if (Math.trunc(y[n]!) !== 0) loss += s;
      else if (this.legacy) loss += Math.max(this.margin - s, 0);
      else {
        const m = Math.max(this.margin - Math.sqrt(s), 0);
        loss += m * m;
      }
    }
    top[0]!.mutableCpuData()[0] = loss / num / 2;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    // The similarity is truncated to an integer, so its derivative is 0 wherever it exists.
    if (propagateDown[2]) bottom[2]!.mutableCpuDiff().fill(0);
    const d = this.difference.cpuData();
    const dsq = this.distSq.cpuData();
    const y = bottom[2]!.cpuData();
    for (let i = 0; i < 2; i++) {
      if (!propagateDown[i]) continue;
      const num = bottom[i]!.shape[0]!;
      const channels = legacyDim(bottom[i]!, 1);
      const alpha = ((i === 0 ? 1 : -1) * top[0]!.cpuDiff()[0]!) / num;
      const dx = bottom[i]!.mutableCpuDiff();
      for (let n = 0; n < num; n++) {
        let scale: number;
        if (Math.trunc(y[n]!) !== 0) scale = alpha;
        else if (this.legacy) scale = this.margin - dsq[n]! > 0 ? -alpha : 0;
        else {
          const dist = Math.sqrt(dsq[n]!);
          const mdist = this.margin - dist;
          scale = mdist > 0 ? (-alpha * mdist) / (dist + 1e-4) : 0;
        }
        for (let c = 0; c < channels; c++) dx[n * channels + c] = scale * d[n * channels + c]!;
      }
    }
  }

  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex !== 2;
  }
}

/** Caffe's LegacyShape: axes past the blob's last read as 1. */
function legacyDim(blob: Blob, axis: number): number {
  return axis < blob.numAxes ? blob.shape[axis]! : 1;
}

export const contrastiveLossLayerDef: LayerDef<ContrastiveLossLayer> = {
  type: 'ContrastiveLoss',
  create: (p, ctx) => new ContrastiveLossLayer(p, ctx),
};
