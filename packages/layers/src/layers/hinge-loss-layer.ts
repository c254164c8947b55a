import type { Blob } from '@caffe-ts/blob';
import { HingeLossParameter_Norm as HingeNorm } from '@caffe-ts/proto';
import type { LayerDef } from '../registry.js';
import { LossLayer } from './loss-layer.js';
import { labelOutOfRangeMessage } from '../label-error.js';

/**
 * HingeLoss (one-vs-all): with δ = 1 for the true class l and −1 otherwise,
 * E = 1/N Σₙ Σₖ max(0, 1 − δₙₖ·xₙₖ)^p, p = 1 for `hinge_loss_param.norm` L1 (default), 2 for L2.
 * - Bottoms: scores N×K (K = count / N), labels (N integers in [0, K)).
 * Backward reaches the scores only.
 */
export class HingeLossLayer extends LossLayer {
  readonly type = 'HingeLoss';

  /** max(0, 1 − δ·x) from the last forward (Caffe keeps it in the bottom's diff). */
  readonly margins: Blob = this.newBlob();
  private norm: HingeNorm = HingeNorm.L1;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const norm = this.param.hinge_loss_param?.norm ?? HingeNorm.L1;
    this.check(norm === HingeNorm.L1 || norm === HingeNorm.L2, () => `Unknown Norm ${String(norm)} (expected L1 or L2)`);
    this.norm = norm;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    this.margins.reshapeLike(bottom[0]!);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const label = bottom[1]!.cpuData();
    const m = this.margins.mutableCpuData();
    const num = bottom[0]!.shape[0]!;
    const dim = x.length / num;
    for (let i = 0; i < num; i++) {
      const l = this.labelOf(label[i]!, i, dim, bottom[1]!);
      for (let j = 0; j < dim; j++) {
        const v = j === l ? -x[i * dim + j]! : x[i * dim + j]!;
        m[i * dim + j] = Math.max(0, 1 + v);
      }
    }
    let loss = 0;
    for (let k = 0; k < m.length; k++) loss += this.norm === HingeNorm.L1 ? m[k]! : m[k]! * m[k]!;
    top[0]!.mutableCpuData()[0] = loss / num;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('HingeLoss Layer cannot backpropagate to label inputs.');
    if (!propagateDown[0]) return;
    const label = bottom[1]!.cpuData();
    const m = this.margins.cpuData();
    const dx = bottom[0]!.mutableCpuDiff();
    const num = bottom[0]!.shape[0]!;
    const dim = dx.length / num;
    const w = top[0]!.cpuDiff()[0]!;
    for (let i = 0; i < num; i++) {
      const l = this.labelOf(label[i]!, i, dim, bottom[1]!);
      for (let j = 0; j < dim; j++) {
        const k = i * dim + j;
        // ∂/∂x of max(0, 1 − δx)^p is −δ·p·margin^(p−1) where the margin is positive.
        const g = this.norm === HingeNorm.L1 ? (m[k]! > 0 ? 1 : 0) : 2 * m[k]!;
        dx[k] = ((j === l ? -g : g) * w) / num;
      }
    }
  }

  private labelOf(value: number, index: number, dim: number, labels: Blob): number {
    const l = Math.trunc(value);
    if (!(l >= 0 && l < dim)) this.fail(labelOutOfRangeMessage(this.param, labels, 1, value, index, dim));
    return l;
  }
}

export const hingeLossLayerDef: LayerDef<HingeLossLayer> = { type: 'HingeLoss', create: (p, ctx) => new HingeLossLayer(p, ctx) };
