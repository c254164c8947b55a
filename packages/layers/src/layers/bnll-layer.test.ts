import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { bnllLayerDef } from './bnll-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('BNLL', () => {
  it('forwards log(1 + e^x) ≥ max(x, 0) (Caffe TestBNLL)', () => {
    const layer = createLayer(bnllLayerDef);
    const bottom = makeBlob([2, 3, 4, 5]);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const x = blobValues(bottom);
    blobValues(top).forEach((y, i) => {
      expect(y).toBeGreaterThanOrEqual(0);
      expect(y).toBeGreaterThanOrEqual(x[i]!);
      expect(y).toBeCloseTo(Math.log(1 + Math.exp(x[i]!)), 14);
    });
  });

  it('stays finite and exact for large |x|', () => {
    const layer = createLayer(bnllLayerDef);
    const bottom = makeBlob([4], { filler: [-800, -40, 40, 800] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const y = blobValues(top);
    expect(y[0]).toBe(0);
    // Caffe's log(1 + e^x) for x ≤ 0 (not log1p): e^−40 vanishes next to 1.
    expect(y[1]).toBe(Math.log(1 + Math.exp(-40)));
    expect(y[2]).toBeCloseTo(40, 14);
    expect(y[3]).toBe(800);
  });

  it('backward is dy·e^x/(1 + e^x) with x clamped at 50', () => {
    const layer = createLayer(bnllLayerDef);
    const bottom = makeBlob([4], { filler: [-1, 0, 2, 1000] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer.backward([top], [true], [bottom]);
    const d = blobValues(bottom, 'diff');
    const sig = (v: number) => Math.exp(v) / (1 + Math.exp(v));
    expect(d[0]).toBeCloseTo(sig(-1), 14);
    expect(d[1]).toBe(1);
    expect(d[2]).toBeCloseTo(3 * sig(2), 14);
    // e^1000 would overflow to Infinity/Infinity = NaN without the clamp.
    expect(d[3]).toBe((4 * Math.exp(50)) / (Math.exp(50) + 1));
  });

  it('passes the gradient check (Caffe TestBNLLGradient: 1e-2, 1e-3)', () => {
    new GradientChecker(1e-2, 1e-3).checkGradientEltwise(createLayer(bnllLayerDef), [makeBlob([2, 3, 4, 5])], [f64()]);
  });

  it('rejects the wrong number of bottoms', () => {
    expect(() => createLayer(bnllLayerDef, { name: 'b' }).setUp([], [f64()])).toThrow("BNLL layer 'b': BNLL Layer takes 1 bottom blob(s) as input (got 0).");
  });
});
