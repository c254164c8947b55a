import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ExpLayer, expLayerDef } from './exp-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];
/** (base, scale, shift) of Caffe's TestExp* cases. */
const CASES: [number, number, number][] = [
  [-1, 1, 0],
  [-1, 1, 1],
  [2, 1, 0],
  [2, 1, 1],
  [2, 3, 0],
  [2, 3, 1],
];

const exp = (base: number, scale: number, shift: number) => createLayer<ExpLayer>(expLayerDef, { name: 'exp1', exp_param: { base, scale, shift } });

describe('Exp', () => {
  it('defaults to base e, scale 1, shift 0', () => {
    const layer = createLayer<ExpLayer>(expLayerDef);
    const bottom = makeBlob([3], { filler: [-1, 0, 2] });
    const top = f64();
    layer.setUp([bottom], [top]);
    expect([layer.innerScale, layer.outerScale]).toEqual([1, 1]);
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual([Math.exp(-1), 1, Math.exp(2)]);
  });

  it('forwards base^(shift + scale·x) within 2e-4 (Caffe TestExpLayer*)', () => {
    for (const [base, scale, shift] of CASES) {
      const layer = exp(base, scale, shift);
      const bottom = makeBlob(SHAPE);
      const top = f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      const x = blobValues(bottom);
      blobValues(top).forEach((y, i) => {
        const expected = base === -1 ? Math.exp(shift + scale * x[i]!) : Math.pow(base, shift + scale * x[i]!);
        expect(Math.abs(y - expected)).toBeLessThanOrEqual(2e-4);
      });
    }
  });

  it('backward is ln(base)·scale·y·dy, also in place', () => {
    const layer = exp(2, 3, 1);
    const blob = makeBlob([2], { filler: [0.5, -1] });
    layer.setUp([blob], [blob]);
    layer.forward([blob], [blob]);
    blob.mutableCpuDiff().set([1, 2]);
    layer.backward([blob], [true], [blob]);
    const d = blobValues(blob, 'diff');
    expect(d[0]).toBeCloseTo(Math.LN2 * 3 * Math.pow(2, 2.5), 12);
    expect(d[1]).toBeCloseTo(Math.LN2 * 3 * Math.pow(2, -2) * 2, 12);
  });

  it('passes the gradient checks (Caffe TestExpGradient*: 1e-2, 1e-3)', () => {
    for (const [base, scale, shift] of CASES) {
      new GradientChecker(1e-2, 1e-3).checkGradientEltwise(exp(base, scale, shift), [makeBlob(SHAPE)], [f64()]);
    }
  });

  it('rejects a non-positive base other than −1', () => {
    expect(() => exp(-2, 1, 0).setUp([makeBlob([2])], [f64()])).toThrow("Exp layer 'exp1': base must be strictly positive (got base -2).");
    expect(() => exp(0, 1, 0).setUp([makeBlob([2])], [f64()])).toThrow("Exp layer 'exp1': base must be strictly positive (got base 0).");
  });
});
