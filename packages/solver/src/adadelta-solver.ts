import type { FloatArray } from '@caffe-ts/blob';
import { SGDSolver } from './sgd-solver.js';

/**
 * AdaDelta with Caffe's learning rate: h_g = μ·h_g + (1−μ)·g²; u = g·√((h_u+δ)/(h_g+δ));
 * h_u = μ·h_u + (1−μ)·u²; the step is lr·u. Updates `g`, `hg` and `hu` in place.
 */
export function adaDeltaUpdate(
  g: FloatArray,
  hg: FloatArray,
  hu: FloatArray,
  localRate: number,
  momentum: number,
  delta: number,
): void {
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!;
    hg[i] = momentum * hg[i]! + (1 - momentum) * gi * gi;
    const u = gi * Math.sqrt((hu[i]! + delta) / (hg[i]! + delta));
    hu[i] = momentum * hu[i]! + (1 - momentum) * u * u;
    g[i] = localRate * u;
  }
}

/** Keeps two histories per param: gradients (first N blobs), then updates (next N), as Caffe. */
export class AdaDeltaSolver extends SGDSolver {
  override get type(): string {
    return 'AdaDelta';
  }

  protected override historyBlobsPerParam(): number {
    return 2;
  }

  protected override computeUpdateValue(paramId: number, rate: number): void {
    const n = this.net.learnableParams.length;
    const blob = this.net.learnableParams[paramId]!;
    adaDeltaUpdate(
      blob.mutableCpuDiff(),
      this.history[paramId]!.mutableCpuData(),
      this.history[n + paramId]!.mutableCpuData(),
      this.localRate(paramId, rate),
      this.param.momentum,
      this.param.delta,
    );
  }
}
