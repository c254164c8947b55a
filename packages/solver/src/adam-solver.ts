import type { FloatArray } from '@caffe-ts/blob';
import { SGDSolver } from './sgd-solver.js';

/**
 * Adam: m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; the step is
 * lr·√(1−β2^t)/(1−β1^t) · m/(√v + ε), t = iter + 1. Updates `g`, `m` and `v` in place.
 */
export function adamUpdate(
  g: FloatArray,
  m: FloatArray,
  v: FloatArray,
  localRate: number,
  beta1: number,
  beta2: number,
  eps: number,
  t: number,
): void {
  const correction = Math.sqrt(1 - Math.pow(beta2, t)) / (1 - Math.pow(beta1, t));
  const stepRate = localRate * correction;
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!;
    m[i] = beta1 * m[i]! + (1 - beta1) * gi;
    v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
    g[i] = (stepRate * m[i]!) / (Math.sqrt(v[i]!) + eps);
  }
}

/** β1 is `momentum`, β2 `momentum2`, ε `delta`. History: m for the first N blobs, v for the next N. */
export class AdamSolver extends SGDSolver {
  override get type(): string {
    return 'Adam';
  }

  protected override historyBlobsPerParam(): number {
    return 2;
  }

  protected override computeUpdateValue(paramId: number, rate: number): void {
    const n = this.net.learnableParams.length;
    const blob = this.net.learnableParams[paramId]!;
    adamUpdate(
      blob.mutableCpuDiff(),
      this.history[paramId]!.mutableCpuData(),
      this.history[n + paramId]!.mutableCpuData(),
      this.localRate(paramId, rate),
      this.param.momentum,
      this.param.momentum2,
      this.param.delta,
      this.iter + 1,
    );
  }
}
