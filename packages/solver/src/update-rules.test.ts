import { describe, expect, it } from 'vitest';
import { adaDeltaUpdate } from './adadelta-solver.js';
import { adaGradUpdate } from './adagrad-solver.js';
import { adamUpdate } from './adam-solver.js';
import { nesterovUpdate } from './nesterov-solver.js';
import { rmsPropUpdate } from './rmsprop-solver.js';
import { sgdUpdate } from './sgd-solver.js';

const f64 = (...v: number[]) => Float64Array.from(v);
const close = (a: ArrayLike<number>, b: number[]) => {
  expect(a.length).toBe(b.length);
  b.forEach((x, i) => expect(a[i]).toBeCloseTo(x, 12));
};

describe('update rules (caffe-spec §1.2) against hand computation', () => {
  it('SGD: h = lr·g + μ·h; step = h', () => {
    const g = f64(1, -2);
    const h = f64(0.5, 0);
    sgdUpdate(g, h, 0.1, 0.9);
    close(h, [0.55, -0.2]);
    close(g, [0.55, -0.2]);
  });

  it('SGD without momentum is plain lr·g', () => {
    const g = f64(3, -1);
    const h = f64(7, 7);
    sgdUpdate(g, h, 0.01, 0);
    close(g, [0.03, -0.01]);
  });

  it('Nesterov: step = (1+μ)·h_new − μ·h_old', () => {
    const g = f64(1, -2);
    const h = f64(0.5, 0);
    nesterovUpdate(g, h, 0.1, 0.9);
    close(h, [0.55, -0.2]);
    close(g, [1.9 * 0.55 - 0.9 * 0.5, 1.9 * -0.2]);
  });

  it('AdaGrad: h += g²; step = lr·g/(√h + δ)', () => {
    const g = f64(1, -2);
    const h = f64(1, 0);
    adaGradUpdate(g, h, 0.1, 1e-8);
    close(h, [2, 4]);
    close(g, [0.1 / (Math.SQRT2 + 1e-8), -0.2 / (2 + 1e-8)]);
  });

  it('RMSProp: h = ρh + (1−ρ)g²; step = lr·g/(√h + δ)', () => {
    const g = f64(1, -2);
    const h = f64(1, 0);
    rmsPropUpdate(g, h, 0.1, 0.9, 1e-8);
    close(h, [1, 0.4]);
    close(g, [0.1 / (1 + 1e-8), -0.2 / (Math.sqrt(0.4) + 1e-8)]);
  });

  it('AdaDelta: two histories; step = lr·g·√((h_u+δ)/(h_g+δ))', () => {
    const g = f64(1, -2);
    const hg = f64(0, 1);
    const hu = f64(0, 0.5);
    const d = 1e-6;
    adaDeltaUpdate(g, hg, hu, 1, 0.95, d);
    const hg1 = [0.05, 0.95 + 0.05 * 4];
    const u = [1 * Math.sqrt(d / (hg1[0]! + d)), -2 * Math.sqrt((0.5 + d) / (hg1[1]! + d))];
    close(hg, hg1);
    close(hu, [0.05 * u[0]! ** 2, 0.95 * 0.5 + 0.05 * u[1]! ** 2]);
    close(g, u);
  });

  it('Adam: bias-corrected step; the first step has magnitude ≈ lr', () => {
    const g = f64(1, -2);
    const m = f64(0, 0);
    const v = f64(0, 0);
    adamUpdate(g, m, v, 0.001, 0.9, 0.999, 1e-8, 1);
    close(m, [0.1, -0.2]);
    close(v, [0.001, 0.004]);
    const corr = Math.sqrt(1 - 0.999) / (1 - 0.9);
    close(g, [(0.001 * corr * 0.1) / (Math.sqrt(0.001) + 1e-8), (0.001 * corr * -0.2) / (Math.sqrt(0.004) + 1e-8)]);
    expect(g[0]).toBeCloseTo(0.001, 8);
    expect(g[1]).toBeCloseTo(-0.001, 8);
  });

  it('Adam at t = 3 uses β^t in the correction', () => {
    const g = f64(0.5);
    const m = f64(0.2);
    const v = f64(0.01);
    adamUpdate(g, m, v, 0.01, 0.9, 0.99, 1e-8, 3);
    const m1 = 0.9 * 0.2 + 0.1 * 0.5;
    const v1 = 0.99 * 0.01 + 0.01 * 0.25;
    const corr = Math.sqrt(1 - 0.99 ** 3) / (1 - 0.9 ** 3);
    close(g, [(0.01 * corr * m1) / (Math.sqrt(v1) + 1e-8)]);
  });
});
