import { Blob, Rng } from '@caffe-ts/blob';
import { Phase, PoolingParameter_PoolMethod as PoolMethod } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { PoolingLayer, poolingLayerDef } from './pooling-layer.js';

// STOCHASTIC pooling, after Caffe's test_stochastic_pooling.cpp (2×3×6×5 bottom, uniform in
// [0.1, 1], kernel 3, stride 2).

const f64 = () => new Blob([], { dtype: 'float64' });

function stochastic(phase: Phase, extra: Record<string, unknown> = {}, seed = 1701, dtype: 'float32' | 'float64' = 'float64'): PoolingLayer {
  return createLayer(
    poolingLayerDef,
    { name: 'pool', phase, pooling_param: { kernel_size: 3, stride: 2, pool: PoolMethod.STOCHASTIC, ...extra } },
    { rng: new Rng(seed), dtype },
  );
}

const bottomBlob = (dtype: 'float32' | 'float64' = 'float64') => makeBlob([2, 3, 6, 5], { filler: 'uniform', min: 0.1, max: 1, dtype });

function run(layer: PoolingLayer, bottom: Blob): Blob {
  const top = new Blob([], { dtype: bottom.dtype });
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

/** The values of window (ph, pw) of plane p: rows [2ph, 2ph+3) ∩ [0, 6), cols [2pw, 2pw+3) ∩ [0, 5). */
function windowValues(bottom: Blob, p: number, ph: number, pw: number): number[] {
  const x = bottom.cpuData();
  const out: number[] = [];
  for (let h = 2 * ph; h < Math.min(2 * ph + 3, 6); h++) for (let w = 2 * pw; w < Math.min(2 * pw + 3, 5); w++) out.push(x[p * 30 + h * 5 + w]!);
  return out;
}

describe('Pooling STOCHASTIC', () => {
  it('set-up: 2×3×6×5, k3 s2 → 2×3×3×2', () => {
    expect(run(stochastic(Phase.TRAIN), bottomBlob()).shape).toEqual([2, 3, 3, 2]);
  });

  it('TRAIN: every output is one of its window\'s values; the mean favours large values (≥ 0.55)', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const bottom = bottomBlob(dtype);
      const top = run(stochastic(Phase.TRAIN, {}, 1701, dtype), bottom);
      let total = 0;
      for (let p = 0; p < 6; p++) {
        for (let ph = 0; ph < 3; ph++) {
          for (let pw = 0; pw < 2; pw++) {
            const v = top.cpuData()[(p * 3 + ph) * 2 + pw]!;
            total += v;
            expect(windowValues(bottom, p, ph, pw)).toContain(v);
          }
        }
      }
      expect(total / top.count()).toBeGreaterThanOrEqual(0.55);
    }
  });

  it('TRAIN: samples each element with probability proportional to its value, from the layer\'s rng', () => {
    const bottom = makeBlob([1, 1, 2, 2], { filler: [1, 2, 3, 4] });
    const layer = createLayer<PoolingLayer>(
      poolingLayerDef,
      { phase: Phase.TRAIN, pooling_param: { kernel_size: 2, pool: PoolMethod.STOCHASTIC } },
      { rng: new Rng(5) },
    );
    const top = f64();
    layer.setUp([bottom], [top]);
    const counts = new Map<number, number>();
    const trials = 4000;
    for (let i = 0; i < trials; i++) {
      layer.forward([bottom], [top]);
      const v = top.cpuData()[0]!;
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    for (const v of [1, 2, 3, 4]) expect(Math.abs((counts.get(v) ?? 0) / trials - v / 10)).toBeLessThan(0.03);
    // Same seed, same samples.
    const a = run(stochastic(Phase.TRAIN, {}, 42), bottomBlob());
    const b = run(stochastic(Phase.TRAIN, {}, 42), bottomBlob());
    expect(Array.from(a.cpuData())).toEqual(Array.from(b.cpuData()));
  });

  it('TRAIN backward routes each top diff to the sampled element', () => {
    const bottom = bottomBlob();
    const layer = stochastic(Phase.TRAIN);
    const top = run(layer, bottom);
    top.mutableCpuDiff().fill(1);
    layer.backward([top], [true], [bottom]);
    const dx = bottom.cpuDiff();
    const x = bottom.cpuData();
    let total = 0;
    for (let i = 0; i < dx.length; i++) {
      total += dx[i]!;
      // Each nonzero gradient sits on an element that was output.
      if (dx[i] !== 0) expect(Array.from(top.cpuData())).toContain(x[i]);
    }
    expect(total).toBe(top.count());
  });

  it('TEST: the weighted average Σx²/Σx, never above the window maximum; 0 for an all-zero window', () => {
    const bottom = bottomBlob();
    const top = run(stochastic(Phase.TEST), bottom);
    for (let p = 0; p < 6; p++) {
      for (let ph = 0; ph < 3; ph++) {
        for (let pw = 0; pw < 2; pw++) {
          const win = windowValues(bottom, p, ph, pw);
          const v = top.cpuData()[(p * 3 + ph) * 2 + pw]!;
          const want = win.reduce((a, b) => a + b * b, 0) / win.reduce((a, b) => a + b, 0);
          expect(v).toBeCloseTo(want, 12);
          expect(v).toBeLessThanOrEqual(Math.max(...win));
        }
      }
    }
    expect(Array.from(run(stochastic(Phase.TEST), makeBlob([1, 1, 3, 3], { filler: 0 })).cpuData())).toEqual([0]);
  });

  it('windows ignore pad, as Caffe\'s kernels do; a window past the image outputs 0', () => {
    const bottom = bottomBlob();
    const padded = run(stochastic(Phase.TEST, { pad: 1 }), bottom);
    const plain = run(stochastic(Phase.TEST), bottom);
    expect(padded.shape).toEqual([2, 3, 4, 3]);
    // Window (0, 0) covers rows/cols [0, 3) either way; row 3 starts at 6 = H.
    expect(padded.cpuData()[0]).toBe(plain.cpuData()[0]);
    for (let pw = 0; pw < 3; pw++) expect(padded.cpuData()[3 * 3 + pw]).toBe(0);
  });

  it('gradient TRAIN, Caffe (1e-4, 1e-2), reseeded so every forward samples alike', () => {
    new GradientChecker(1e-4, 1e-2).checkGradient(stochastic(Phase.TRAIN), [bottomBlob()], [f64()]);
  });

  it('gradient TEST (the weighted average), (1e-4, 1e-2) exhaustive', () => {
    new GradientChecker(1e-4, 1e-2).checkGradientExhaustive(stochastic(Phase.TEST), [makeBlob([1, 2, 5, 4], { filler: 'uniform', min: 0.1, max: 1 })], [f64()]);
  });
});
