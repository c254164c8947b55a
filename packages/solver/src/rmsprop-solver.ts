import type { FloatArray } from '@caffe-ts/blob';
import { formatG } from './format.js';
import { SolverConfigError } from './errors.js';
import { SGDSolver } from './sgd-solver.js';

/** RMSProp: h = ρ·h + (1−ρ)·g²; the step is lr·g/(√h + δ). Updates `g` and `h` in place. */
export function rmsPropUpdate(g: FloatArray, h: FloatArray, localRate: number, rmsDecay: number, delta: number): void {
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!;
    h[i] = rmsDecay * h[i]! + (1 - rmsDecay) * gi * gi;
    g[i] = (localRate * gi) / (Math.sqrt(h[i]!) + delta);
  }
}

export class RMSPropSolver extends SGDSolver {
  override get type(): string {
    return 'RMSProp';
  }

  protected override validateParam(): void {
    super.validateParam();
    const p = this.param;
    if (p.momentum !== 0) {
      throw new SolverConfigError(`Momentum cannot be used with RMSProp. (momentum is ${formatG(p.momentum)}; remove it or set it to 0)`, { field: 'momentum' });
    }
    if (!(p.rms_decay >= 0 && p.rms_decay < 1)) {
      throw new SolverConfigError(`rms_decay should lie between 0 and 1. (rms_decay is ${formatG(p.rms_decay)}; need 0 <= rms_decay < 1)`, { field: 'rms_decay' });
    }
  }

  protected override computeUpdateValue(paramId: number, rate: number): void {
    const blob = this.net.learnableParams[paramId]!;
    rmsPropUpdate(
      blob.mutableCpuDiff(),
      this.history[paramId]!.mutableCpuData(),
      this.localRate(paramId, rate),
      this.param.rms_decay,
      this.param.delta,
    );
  }
}
