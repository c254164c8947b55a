import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { LossLayer } from './loss-layer.js';

/**
 * EuclideanLoss: E = 1/(2N) Σ‖x₁ − x₂‖², N the first dimension.
 * - Bottoms: two blobs with the same first dimension and the same count per item.
 * - Backward reaches both bottoms: ∂E/∂x₁ = (x₁ − x₂)·w/N and ∂E/∂x₂ = −(x₁ − x₂)·w/N, so
 *   either may be the prediction and the net may force backward into both.
 */
export class EuclideanLossLayer extends LossLayer {
  readonly type = 'EuclideanLoss';

  /** x₁ − x₂ from the last forward (Caffe's diff_). */
  readonly difference: Blob = this.newBlob();

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const [a, b] = [bottom[0]!, bottom[1]!];
    this.check(
      a.count(1) === b.count(1),
      () => `Inputs must have the same dimension (bottom 0 ${a.shapeString()}, bottom 1 ${b.shapeString()}).`,
    );
    this.difference.reshapeLike(a);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const a = bottom[0]!.cpuData();
    const b = bottom[1]!.cpuData();
    const d = this.difference.mutableCpuData();
    let sumsq = 0;
    for (let i = 0; i < d.length; i++) {
      const v = a[i]! - b[i]!;
      d[i] = v;
      sumsq += v * v;
    }
    top[0]!.mutableCpuData()[0] = sumsq / bottom[0]!.shape[0]! / 2;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const d = this.difference.cpuData();
    for (let i = 0; i < 2; i++) {
      if (!propagateDown[i]) continue;
      const alpha = ((i === 0 ? 1 : -1) * top[0]!.cpuDiff()[0]!) / bottom[i]!.shape[0]!;
      const dx = bottom[i]!.mutableCpuDiff();
      for (let k = 0; k < dx.length; k++) dx[k] = alpha * d[k]!;
    }
  }

  /** Both bottoms are data, not labels. */
  override allowForceBackward(_bottomIndex: number): boolean {
    return true;
  }
}

export const euclideanLossLayerDef: LayerDef<EuclideanLossLayer> = {
  type: 'EuclideanLoss',
  create: (p, ctx) => new EuclideanLossLayer(p, ctx),
};
