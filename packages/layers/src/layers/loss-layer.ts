import type { Blob } from '@caffe-ts/blob';
import { hasField, LossParameter_NormalizationMode as NormalizationMode, type LossParameter } from '@caffe-ts/proto';
import { LossLayerBase, type BlobCounts } from '../layer.js';

export { NormalizationMode };

/**
 * Base of Caffe's two-bottom loss layers (predictions, targets → scalar loss), as Caffe's
 * LossLayer: top[0] is a scalar with loss_weight 1 by default, both bottoms share their
 * first dimension, and the net never forces backward into the targets (bottom 1).
 */
export abstract class LossLayer extends LossLayerBase {
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1, autoTopBlobs: true };

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [data, label] = [bottom[0]!, bottom[1]!];
    this.check(
      data.numAxes > 0 && label.numAxes > 0 && data.shape[0] === label.shape[0],
      () => `The data and label should have the same first dimension (data ${data.shapeString()}, label ${label.shapeString()}).`,
    );
    top[0]!.reshape([]);
  }

  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex !== 1;
  }
}

/**
 * The normalization a loss layer uses: `normalization` when set, else the deprecated
 * `normalize` (false means BATCH_SIZE), else VALID.
 */
export function lossNormalization(lossParam: LossParameter | null | undefined): NormalizationMode {
  if (!lossParam) return NormalizationMode.VALID;
  if (hasField(lossParam, 'normalization')) return lossParam.normalization;
  if (hasField(lossParam, 'normalize')) return lossParam.normalize ? NormalizationMode.VALID : NormalizationMode.BATCH_SIZE;
  return NormalizationMode.VALID;
}

/**
 * The divisor of the summed loss (Caffe's LossLayer::GetNormalizer), never below 1.
 * `validCount` < 0 means "no ignore_label", where VALID counts every position.
 */
export function lossNormalizer(mode: NormalizationMode, outer: number, inner: number, validCount: number): number {
  let n: number;
  switch (mode) {
    case NormalizationMode.FULL:
      n = outer * inner;
      break;
    case NormalizationMode.VALID:
      n = validCount < 0 ? outer * inner : validCount;
      break;
    case NormalizationMode.BATCH_SIZE:
      n = outer;
      break;
    case NormalizationMode.NONE:
      n = 1;
      break;
    default:
      throw new RangeError(`Unknown normalization mode: ${String(mode)}`);
  }
  return Math.max(1, n);
}
