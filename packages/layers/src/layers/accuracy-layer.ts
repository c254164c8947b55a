import type { Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';
import { labelOutOfRangeMessage } from '../label-error.js';

/**
 * Accuracy: the fraction of positions whose label is among the `top_k` highest scores
 * along `axis`. Bottoms: scores (N×C×…), labels (N·H·W values). An optional second top
 * gives the accuracy per class. Not differentiable: it never backpropagates.
 * A tie with the true class's score counts against it, as in Caffe.
 */
export class AccuracyLayer extends Layer {
  readonly type = 'Accuracy';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, minTopBlobs: 1, maxTopBlobs: 2 };

  private topK = 1;
  private ignoreLabel: number | null = null;
  private outer = 0;
  private channels = 0;
  private inner = 0;
  /** Labelled positions per class (Caffe's nums_buffer_). */
  private readonly perClassCount: Blob = this.newBlob();

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const ap = this.param.accuracy_param;
    this.topK = ap?.top_k ?? 1;
    this.ignoreLabel = ap && hasField(ap, 'ignore_label') ? ap.ignore_label : null;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [scores, label] = [bottom[0]!, bottom[1]!];
    this.check(
      label.count() > 0 && this.topK <= scores.count() / label.count(),
      () => `top_k must be less than or equal to the number of classes (top_k ${this.topK}, scores ${scores.shapeString()}, labels ${label.shapeString()}).`,
    );
    const axis = this.param.accuracy_param?.axis ?? 1;
    this.check(axis >= -scores.numAxes && axis < scores.numAxes, () => `axis ${axis} out of range for scores shape ${scores.shapeString()}`);
    const a = scores.canonicalAxisIndex(axis);
    this.outer = scores.count(0, a);
    this.channels = scores.shape[a]!;
    this.inner = scores.count(a + 1);
    this.check(
      this.outer * this.inner === label.count(),
      () =>
        'Number of labels must match number of predictions; e.g., if label axis == 1 and prediction shape is (N, C, H, W), ' +
        'label count (number of labels) must be N*H*W, with integer values in {0, 1, ..., C-1}. ' +
        `(prediction shape ${scores.shapeString()}, label axis ${axis}, label shape ${label.shapeString()})`,
    );
    top[0]!.reshape([]);
    if (top.length > 1) {
      top[1]!.reshape([this.channels]);
      this.perClassCount.reshape([this.channels]);
    }
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const scores = bottom[0]!.cpuData();
    const label = bottom[1]!.cpuData();
    const { outer, channels, inner, topK } = this;
    const dim = channels * inner;
    const perClass = top.length > 1 ? top[1]!.mutableCpuData() : null;
    const perClassCount = perClass ? this.perClassCount.mutableCpuData() : null;
    perClass?.fill(0);
    perClassCount?.fill(0);
    let correct = 0;
    let count = 0;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < inner; j++) {
        const l = Math.trunc(label[i * inner + j]!);
        if (l === this.ignoreLabel) continue;
        if (!(l >= 0 && l < channels)) {
          this.fail(labelOutOfRangeMessage(this.param, bottom[1]!, 1, l, i * inner + j, channels));
        }
        if (perClassCount) perClassCount[l]!++;
        const trueScore = scores[i * dim + l * inner + j]!;
        // The true class scores >= itself, hence the −1.
        let better = -1;
        for (let c = 0; c < channels; c++) if (scores[i * dim + c * inner + j]! >= trueScore) better++;
        if (better < topK) {
          correct++;
          if (perClass) perClass[l]!++;
        }
        count++;
      }
    }
    top[0]!.mutableCpuData()[0] = count === 0 ? 0 : correct / count;
    if (perClass && perClassCount) {
      for (let c = 0; c < channels; c++) perClass[c] = perClassCount[c] === 0 ? 0 : perClass[c]! / perClassCount[c]!;
    }
  }

  protected override backwardCpu(_top: Blob[], propagateDown: boolean[], _bottom: Blob[]): void {
    if (propagateDown.some(Boolean)) this.fail('Accuracy Layer cannot backpropagate (Not Implemented Yet).');
  }

  override allowForceBackward(_bottomIndex: number): boolean {
    return false;
  }
}

export const accuracyLayerDef: LayerDef<AccuracyLayer> = { type: 'Accuracy', create: (p, ctx) => new AccuracyLayer(p, ctx) };
