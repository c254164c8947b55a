import type { Blob } from '@caffe-ts/blob';
import { hasField, type LossParameter } from '@caffe-ts/proto';
import type { LayerDef } from '../registry.js';
import { LossLayer, lossNormalization, lossNormalizer, NormalizationMode } from './loss-layer.js';

/**
 * SigmoidCrossEntropyLoss: the cross-entropy of independent logistic predictions,
 * −Σ [t·log σ(x) + (1 − t)·log(1 − σ(x))] / normalizer.
 * - Bottoms: scores x (N×…), targets t in [0, 1] with the same count.
 * - `loss_param`: ignore_label (targets equal to it after truncation add neither loss nor
 *   gradient); normalization. Unlike SoftmaxWithLoss, a layer that sets neither
 *   `normalization` nor `normalize` divides by the batch size (Caffe's BATCH_SIZE default here).
 * The loss is evaluated in a form that cannot overflow for large |x|; backward reaches the
 * scores only: dx = (σ(x) − t) · loss_weight / normalizer.
 */
export class SigmoidCrossEntropyLossLayer extends LossLayer {
  readonly type = 'SigmoidCrossEntropyLoss';

  /** σ(x) from the last forward (Caffe's sigmoid_output_), used by backward. */
  readonly sigmoidOutput: Blob = this.newBlob();
  private normalization: NormalizationMode = NormalizationMode.BATCH_SIZE;
  private ignoreLabel: number | null = null;
  private outer = 0;
  private inner = 0;
  /** The divisor of the last forward, reused by backward. */
  private normalizerValue = 1;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const lp = this.param.loss_param;
    this.ignoreLabel = lp && hasField(lp, 'ignore_label') ? lp.ignore_label : null;
    this.normalization = sigmoidCrossEntropyNormalization(lp);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const [x, t] = [bottom[0]!, bottom[1]!];
    this.check(
      x.count() === t.count(),
      () => `SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count (scores ${x.shapeString()}, targets ${t.shapeString()}).`,
    );
    this.outer = x.shape[0]!;
    this.inner = x.count(1);
    this.sigmoidOutput.reshapeLike(x);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const t = bottom[1]!.cpuData();
    const s = this.sigmoidOutput.mutableCpuData();
    let loss = 0;
    let valid = 0;
    for (let i = 0; i < x.length; i++) {
      const xi = x[i]!;
      // 0.5·tanh(0.5x) + 0.5 is the logistic function without overflow.
      s[i] = 0.5 * Math.tanh(0.5 * xi) + 0.5;
      if (this.ignoreLabel !== null && Math.trunc(t[i]!) === this.ignoreLabel) continue;
      // −[t·log σ(x) + (1−t)·log(1−σ(x))] = max(x, 0) − t·x + log(1 + e^−|x|).
      loss += Math.max(xi, 0) - t[i]! * xi + Math.log1p(Math.exp(-Math.abs(xi)));
      valid++;
    }
    this.normalizerValue = lossNormalizer(this.normalization, this.outer, this.inner, this.ignoreLabel === null ? -1 : valid);
    top[0]!.mutableCpuData()[0] = loss / this.normalizerValue;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('SigmoidCrossEntropyLoss Layer cannot backpropagate to label inputs.');
    if (!propagateDown[0]) return;
    const s = this.sigmoidOutput.cpuData();
    const t = bottom[1]!.cpuData();
    const dx = bottom[0]!.mutableCpuDiff();
    const scale = top[0]!.cpuDiff()[0]! / this.normalizerValue;
    for (let i = 0; i < dx.length; i++) {
      const ignored = this.ignoreLabel !== null && Math.trunc(t[i]!) === this.ignoreLabel;
      dx[i] = ignored ? 0 : (s[i]! - t[i]!) * scale;
    }
  }
}

/** `normalization` if set, else the legacy `normalize`, else BATCH_SIZE (this layer's own default). */
export function sigmoidCrossEntropyNormalization(lp: LossParameter | null | undefined): NormalizationMode {
  if (lp && (hasField(lp, 'normalization') || hasField(lp, 'normalize'))) return lossNormalization(lp);
  return NormalizationMode.BATCH_SIZE;
}

export const sigmoidCrossEntropyLossLayerDef: LayerDef<SigmoidCrossEntropyLossLayer> = {
  type: 'SigmoidCrossEntropyLoss',
  create: (p, ctx) => new SigmoidCrossEntropyLossLayer(p, ctx),
};
