import type { FloatArray } from '@caffe-ts/blob';
import { formatG } from './format.js';
import { SolverConfigError } from './errors.js';
import { SGDSolver } from './sgd-solver.js';

/** AdaGrad: h += g²; the step is lr·g/(√h + δ). Updates `g` and `h` in place. */
export function adaGradUpdate(g: FloatArray, h: FloatArray, localRate: number, delta: number): void {
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!;
    h[i] = h[i]! + gi * gi;
    g[i] = (localRate * gi) / (Math.sqrt(h[i]!) + delta);
  }
}

export class AdaGradSolver extends SGDSolver {
  override get type(): string {
    return 'AdaGrad';
  }

  protected override validateParam(): void {
    super.validateParam();
    if (this.param.momentum !== 0) {
      throw new SolverConfigError(`Momentum cannot be used with AdaGrad. (momentum is ${formatG(this.param.momentum)}; remove it or set it to 0)`, { field: 'momentum' });
    }
  }

  protected override computeUpdateValue(paramId: number, rate: number): void {
    const blob = this.net.learnableParams[paramId]!;
    adaGradUpdate(blob.mutableCpuDiff(), this.history[paramId]!.mutableCpuData(), this.localRate(paramId, rate), this.param.delta);
  }
}
