import { describe, expect, it } from 'vitest';
import { SolverConfigError, UnknownLrPolicyError } from './errors.js';
import { learningRate, LR_POLICY_NAMES, type LrPolicyParameter } from './lr-policy.js';

const base: LrPolicyParameter = {
  lr_policy: 'fixed',
  base_lr: 0.01,
  gamma: 0.1,
  power: 0.75,
  stepsize: 100,
  stepvalue: [],
  max_iter: 1000,
};
const rate = (p: Partial<LrPolicyParameter>, iter: number, currentStep = 0) =>
  learningRate({ ...base, ...p }, { iter, currentStep }).rate;

describe('learning-rate policies (closed forms)', () => {
  it('lists Caffe\'s seven policies', () => {
    expect(LR_POLICY_NAMES).toEqual(['fixed', 'step', 'exp', 'inv', 'multistep', 'poly', 'sigmoid']);
  });

  it('fixed: base_lr at every iteration', () => {
    for (const it of [0, 1, 999]) expect(rate({ lr_policy: 'fixed' }, it)).toBe(0.01);
  });

  it('step: base_lr · γ^floor(iter/stepsize), current_step = floor(iter/stepsize)', () => {
    expect(rate({ lr_policy: 'step' }, 0)).toBeCloseTo(0.01, 15);
    expect(rate({ lr_policy: 'step' }, 99)).toBeCloseTo(0.01, 15);
    expect(rate({ lr_policy: 'step' }, 100)).toBeCloseTo(0.001, 15);
    expect(rate({ lr_policy: 'step' }, 250)).toBeCloseTo(0.0001, 15);
    expect(learningRate({ ...base, lr_policy: 'step' }, { iter: 250, currentStep: 0 }).currentStep).toBe(2);
  });

  it('exp: base_lr · γ^iter', () => {
    expect(rate({ lr_policy: 'exp', gamma: 0.99 }, 10)).toBeCloseTo(0.01 * Math.pow(0.99, 10), 15);
  });

  it('inv: base_lr · (1 + γ·iter)^(−power) (LeNet\'s schedule)', () => {
    const p = { lr_policy: 'inv', gamma: 0.0001, power: 0.75 };
    expect(rate(p, 0)).toBe(0.01);
    expect(rate(p, 5000)).toBeCloseTo(0.01 * Math.pow(1.5, -0.75), 15);
  });

  it('multistep: advances one step when iter reaches the next stepvalue', () => {
    const p: LrPolicyParameter = { ...base, lr_policy: 'multistep', gamma: 0.5, stepvalue: [10, 20] };
    let currentStep = 0;
    const rates: number[] = [];
    for (let iter = 0; iter <= 25; iter++) {
      const r = learningRate(p, { iter, currentStep });
      currentStep = r.currentStep;
      rates[iter] = r.rate;
    }
    expect(rates[9]).toBe(0.01);
    expect(rates[10]).toBe(0.005);
    expect(rates[19]).toBe(0.005);
    expect(rates[20]).toBe(0.0025);
    expect(rates[25]).toBe(0.0025);
    expect(currentStep).toBe(2);
    // A restored current_step carries the schedule (resume at iter 15 after the first step).
    expect(learningRate(p, { iter: 15, currentStep: 1 }).rate).toBe(0.005);
  });

  it('poly: base_lr · (1 − iter/max_iter)^power', () => {
    const p = { lr_policy: 'poly', power: 2 };
    expect(rate(p, 0)).toBe(0.01);
    expect(rate(p, 500)).toBeCloseTo(0.0025, 15);
    expect(rate(p, 1000)).toBe(0);
  });

  it('sigmoid: base_lr / (1 + exp(−γ·(iter − stepsize)))', () => {
    const p = { lr_policy: 'sigmoid', gamma: 0.05, stepsize: 100 };
    expect(rate(p, 100)).toBeCloseTo(0.005, 15);
    expect(rate(p, 0)).toBeCloseTo(0.01 / (1 + Math.exp(5)), 15);
    expect(rate(p, 200)).toBeCloseTo(0.01 / (1 + Math.exp(-5)), 15);
    // Caffe CHECKs gamma >= 0 here.
    expect(() => rate({ ...p, gamma: -0.05 }, 100)).toThrow(SolverConfigError);
  });

  it('rejects an unknown policy with a typed error naming the known ones', () => {
    expect(() => rate({ lr_policy: 'cosine' }, 0)).toThrow(UnknownLrPolicyError);
    expect(() => rate({ lr_policy: 'cosine' }, 0)).toThrow(
      'Unknown learning rate policy: cosine (known policies: fixed, step, exp, inv, multistep, poly, sigmoid)',
    );
  });

  it('applies Caffe\'s CHECKs (stepsize > 0, gamma >= 0)', () => {
    expect(() => rate({ lr_policy: 'step', stepsize: 0 }, 1)).toThrow(SolverConfigError);
    expect(() => rate({ lr_policy: 'step', stepsize: 0 }, 1)).toThrow("lr_policy 'step' needs stepsize > 0 (got 0)");
    expect(() => rate({ lr_policy: 'exp', gamma: -1 }, 1)).toThrow("lr_policy 'exp' needs gamma >= 0 (got -1)");
  });
});
