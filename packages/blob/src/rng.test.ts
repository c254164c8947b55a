import { describe, expect, it } from 'vitest';
import { globalRng, Rng, setRandomSeed } from './rng.js';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.nextUint32());

describe('Rng', () => {
  it('a seed fixes the sequence; different seeds differ', () => {
    expect(draw(new Rng(123), 20)).toEqual(draw(new Rng(123), 20));
    expect(draw(new Rng(123), 20)).not.toEqual(draw(new Rng(124), 20));
    const r = new Rng(5);
    const first = draw(r, 10);
    r.seed(5);
    expect(draw(r, 10)).toEqual(first);
  });

  it('reseeding also drops a cached Box–Muller value', () => {
    const r = new Rng(8);
    const g1 = [r.gaussian(), r.gaussian(), r.gaussian()];
    r.seed(8);
    expect([r.gaussian(), r.gaussian(), r.gaussian()]).toEqual(g1);
    r.gaussian(); // leaves a spare behind
    r.seed(8);
    expect(r.gaussian()).toBe(g1[0]);
  });

  it('uniform() lies in [0, 1) with mean 1/2 and variance 1/12', () => {
    const r = new Rng(1);
    const n = 50000;
    let s = 0, s2 = 0, lo = 1, hi = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      s += u;
      s2 += u * u;
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(s / n).toBeCloseTo(0.5, 2);
    expect(s2 / n - (s / n) ** 2).toBeCloseTo(1 / 12, 2);
    const a = r.uniformIn(-3, -2);
    expect(a).toBeGreaterThanOrEqual(-3);
    expect(a).toBeLessThan(-2);
  });

  it('gaussian(mean, std) has the asked moments and normal tails', () => {
    const r = new Rng(2);
    const n = 50000;
    let s = 0, s2 = 0, beyond2 = 0;
    for (let i = 0; i < n; i++) {
      const g = r.gaussian(3, 2);
      s += g;
      s2 += g * g;
      if (Math.abs(g - 3) > 4) beyond2++;
    }
    const mean = s / n;
    expect(mean).toBeCloseTo(3, 1);
    expect(Math.sqrt(s2 / n - mean * mean)).toBeCloseTo(2, 1);
    expect(beyond2 / n).toBeGreaterThan(0.035); // P(|z| > 2) ≈ 0.0455
    expect(beyond2 / n).toBeLessThan(0.056);
  });

  it('int(n) is uniform over 0..n-1 and bernoulli(p) hits with probability p', () => {
    const r = new Rng(3);
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < 70000; i++) counts[r.int(7)]!++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(400);
    let hits = 0;
    for (let i = 0; i < 20000; i++) if (r.bernoulli(0.3)) hits++;
    expect(hits / 20000).toBeCloseTo(0.3, 1);
    expect(Array.from({ length: 100 }, () => r.bernoulli(0)).some(Boolean)).toBe(false);
    expect(Array.from({ length: 100 }, () => r.bernoulli(1)).every(Boolean)).toBe(true);
  });

  it('fork() gives an independent but reproducible stream', () => {
    const a = new Rng(4), b = new Rng(4);
    const fa = a.fork(), fb = b.fork();
    expect(draw(fa, 5)).toEqual(draw(fb, 5));
    expect(draw(fa, 5)).not.toEqual(draw(a, 5));
  });

  it('setRandomSeed reseeds the process-wide generator shared on globalThis', () => {
    const g = globalRng();
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('caffe-ts.rng')]).toBe(g);
    setRandomSeed(77);
    const x = draw(globalRng(), 3);
    setRandomSeed(77);
    expect(draw(globalRng(), 3)).toEqual(x);
  });

  it('getState/setState resume the same stream, Gaussian spare included', () => {
    const a = new Rng(9);
    a.gaussian(0, 1); // leaves a spare Box–Muller value behind
    const saved = a.getState();
    const next = [a.gaussian(0, 1), a.uniform(), a.int(1000)];
    const b = new Rng(1);
    b.setState(saved);
    expect([b.gaussian(0, 1), b.uniform(), b.int(1000)]).toEqual(next);
    a.setState(saved);
    expect([a.gaussian(0, 1), a.uniform(), a.int(1000)]).toEqual(next);
  });
});
