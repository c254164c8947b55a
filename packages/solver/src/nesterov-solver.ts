import type { FloatArray } from '@caffe-ts/blob';
import { SGDSolver } from './sgd-solver.js';

/**
 * Nesterov's accelerated gradient: h_new = lr·g + μ·h; the step is (1+μ)·h_new − μ·h_old.
 * Updates `g` and `h` in place.
 */
export function nesterovUpdate(g: FloatArray, h: FloatArray, localRate: number, momentum: number): void {
  for (let i = 0; i < g.length; i++) {
    const hOld = h[i]!;
    h[i] = localRate * g[i]! + momentum * hOld;
    g[i] = (1 + momentum) * h[i]! - momentum * hOld;
  }
}

export class NesterovSolver extends SGDSolver {
  override get type(): string {
    return 'Nesterov';
  }

  protected override computeUpdateValue(paramId: number, rate: number): void {
    const blob = this.net.learnableParams[paramId]!;
    nesterovUpdate(blob.mutableCpuDiff(), this.history[paramId]!.mutableCpuData(), this.localRate(paramId, rate), this.param.momentum);
  }
}
