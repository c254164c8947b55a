import { copyFloats, type Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import type { BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';
import { LossLayer, lossNormalization, lossNormalizer, NormalizationMode } from './loss-layer.js';
import { softmaxDims, softmaxForward } from './softmax-layer.js';
import { labelOutOfRangeMessage } from '../label-error.js';

/** Probabilities are clamped to the smallest normal float before the log, as Caffe does. */
const FLT_MIN = 1.1754943508222875e-38;

/**
 * SoftmaxWithLoss: softmax along `softmax_param.axis` followed by the multinomial logistic
 * loss −Σ log p[label] / normalizer.
 * - Bottoms: predictions (N×C×…), labels (one integer per position, N·H·W values).
 * - Tops: the loss, and optionally the probabilities (top[1], sharing the internal data).
 * - `loss_param`: ignore_label (skipped positions get no gradient), normalization
 *   (VALID by default; deprecated `normalize: false` means BATCH_SIZE).
 * Backward reaches the predictions only: dx = (p − onehot(label)) · loss_weight / normalizer.
 */
export class SoftmaxWithLossLayer extends LossLayer {
  readonly type = 'SoftmaxWithLoss';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, minTopBlobs: 1, maxTopBlobs: 2, autoTopBlobs: true };

  /** The internal softmax output (Caffe's prob_). */
  readonly prob: Blob = this.newBlob();
  private normalization: NormalizationMode = NormalizationMode.VALID;
  private ignoreLabel: number | null = null;
  private outer = 0;
  private channels = 0;
  private inner = 0;

  get axis(): number {
    return this.param.softmax_param?.axis ?? 1;
  }

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const lp = this.param.loss_param;
    this.ignoreLabel = lp && hasField(lp, 'ignore_label') ? lp.ignore_label : null;
    this.normalization = lossNormalization(lp);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const [pred, label] = [bottom[0]!, bottom[1]!];
    const axis = this.axis;
    this.check(axis >= -pred.numAxes && axis < pred.numAxes, () => `axis ${axis} out of range for prediction shape ${pred.shapeString()}`);
    [this.outer, this.channels, this.inner] = softmaxDims(pred, axis);
    this.prob.reshapeLike(pred);
    this.check(
      this.outer * this.inner === label.count(),
      () =>
        'Number of labels must match number of predictions; e.g., if softmax axis == 1 and prediction shape is (N, C, H, W), ' +
        'label count (number of labels) must be N*H*W, with integer values in {0, 1, ..., C-1}. ' +
        `(prediction shape ${pred.shapeString()}, softmax axis ${axis}, label shape ${label.shapeString()})`,
    );
    if (top.length >= 2) top[1]!.reshapeLike(pred);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { outer, channels, inner } = this;
    softmaxForward(bottom[0]!.cpuData(), this.prob.mutableCpuData(), outer, channels, inner);
    const p = this.prob.cpuData();
    const label = bottom[1]!.cpuData();
    const dim = channels * inner;
    let loss = 0;
    let count = 0;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < inner; j++) {
        const l = Math.trunc(label[i * inner + j]!);
        if (l === this.ignoreLabel) continue;
        const c = this.labelIndex(l, i * inner + j, bottom[1]!);
        loss -= Math.log(Math.max(p[i * dim + c * inner + j]!, FLT_MIN));
        count++;
      }
    }
    top[0]!.mutableCpuData()[0] = loss / this.normalizer(count);
    if (top.length === 2) top[1]!.shareData(this.prob);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('SoftmaxWithLoss Layer cannot backpropagate to label inputs.');
    if (!propagateDown[0]) return;
    const { outer, channels, inner } = this;
    const dim = channels * inner;
    const dx = bottom[0]!.mutableCpuDiff();
    copyFloats(dx, this.prob.cpuData());
    const label = bottom[1]!.cpuData();
    let count = 0;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < inner; j++) {
        const l = Math.trunc(label[i * inner + j]!);
        if (l === this.ignoreLabel) {
          for (let c = 0; c < channels; c++) dx[i * dim + c * inner + j] = 0;
          continue;
        }
        dx[i * dim + this.labelIndex(l, i * inner + j, bottom[1]!) * inner + j]! -= 1;
        count++;
      }
    }
    const scale = top[0]!.cpuDiff()[0]! / this.normalizer(count);
    for (let k = 0; k < dx.length; k++) dx[k]! *= scale;
  }

  private normalizer(validCount: number): number {
    return lossNormalizer(this.normalization, this.outer, this.inner, this.ignoreLabel === null ? -1 : validCount);
  }

  /** Labels arrive as floats and are truncated to integers, as Caffe's int cast; they must lie in [0, C). */
  private labelIndex(value: number, index: number, labels: Blob): number {
    if (!(value >= 0 && value < this.channels)) {
      this.fail(labelOutOfRangeMessage(this.param, labels, 1, value, index, this.channels));
    }
    return value;
  }
}

export const softmaxWithLossLayerDef: LayerDef<SoftmaxWithLossLayer> = {
  type: 'SoftmaxWithLoss',
  create: (p, ctx) => new SoftmaxWithLossLayer(p, ctx),
};
