import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { LossLayer } from './loss-layer.js';
import { labelOutOfRangeMessage } from '../label-error.js';

/** Caffe's kLOG_THRESHOLD: probabilities are clamped to it before the log. */
export const LOG_THRESHOLD = 1e-20;

/**
 * MultinomialLogisticLoss: E = −1/N Σₙ log max(pₙ,ₗₙ, 1e-20) over probabilities that are
 * already normalized (e.g. a Softmax layer's output).
 * - Bottoms: probabilities N×K (K = count / N), labels with one value per item (legacy
 *   shape N×1×1×1, so at most 4 axes, all but the first of size 1).
 * Backward reaches the probabilities only: ∂E/∂pₙ,ₗₙ = −w / (N·max(p, 1e-20)), 0 elsewhere.
 */
export class MultinomialLogisticLossLayer extends LossLayer {
  readonly type = 'MultinomialLogisticLoss';

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const label = bottom[1]!;
    this.check(
      label.numAxes <= 4 && label.shape.slice(1).every((d) => d === 1),
      () => `labels must have shape N×1×1×1, one per item (got ${label.shapeString()})`,
    );
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const p = bottom[0]!.cpuData();
    const label = bottom[1]!.cpuData();
    const num = bottom[0]!.shape[0]!;
    const dim = p.length / num;
    let loss = 0;
    for (let i = 0; i < num; i++) {
      const l = this.labelOf(label[i]!, i, dim, bottom[1]!);
      loss -= Math.log(Math.max(p[i * dim + l]!, LOG_THRESHOLD));
    }
    top[0]!.mutableCpuData()[0] = loss / num;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('MultinomialLogisticLoss Layer cannot backpropagate to label inputs.');
    if (!propagateDown[0]) return;
    const p = bottom[0]!.cpuData();
    const label = bottom[1]!.cpuData();
    const dx = bottom[0]!.mutableCpuDiff();
    const num = bottom[0]!.shape[0]!;
    const dim = p.length / num;
    dx.fill(0);
    const scale = -top[0]!.cpuDiff()[0]! / num;
    for (let i = 0; i < num; i++) {
      const k = i * dim + this.labelOf(label[i]!, i, dim, bottom[1]!);
      dx[k] = scale / Math.max(p[k]!, LOG_THRESHOLD);
    }
  }

  private labelOf(value: number, index: number, dim: number, labels: Blob): number {
    const l = Math.trunc(value);
    if (!(l >= 0 && l < dim)) this.fail(labelOutOfRangeMessage(this.param, labels, 1, value, index, dim));
    return l;
  }
}

export const multinomialLogisticLossLayerDef: LayerDef<MultinomialLogisticLossLayer> = {
  type: 'MultinomialLogisticLoss',
  create: (p, ctx) => new MultinomialLogisticLossLayer(p, ctx),
};
