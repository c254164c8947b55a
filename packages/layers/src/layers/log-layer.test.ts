import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { LogLayer, logLayerDef } from './log-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];
/** (base, scale, shift) of Caffe's TestLog* cases. */
const CASES: [number, number, number][] = [
  [-1, 1, 0],
  [2, 1, 0],
  [2, 1, 1],
  [2, 3, 0],
  [2, 3, 1],
];

const log = (base: number, scale: number, shift: number) => createLayer<LogLayer>(logLayerDef, { name: 'log1', log_param: { base, scale, shift } });

/** Caffe's LogBottomInit: e^gaussian, so every input is positive. */
function positiveBottom(): Blob {
  const b = makeBlob(SHAPE, { rng: new Rng(1701) });
  const x = b.mutableCpuData();
  for (let i = 0; i < x.length; i++) x[i] = Math.exp(x[i]!);
  return b;
}

describe('Log', () => {
  it('defaults to the natural log', () => {
    const layer = createLayer<LogLayer>(logLayerDef);
    const bottom = makeBlob([3], { filler: [1, Math.E, 10] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual([0, 1, Math.log(10)]);
  });

  it('forwards log(shift + scale·x) / ln(base) within 2e-4 (Caffe TestLogLayer*)', () => {
    for (const [base, scale, shift] of CASES) {
      const layer = log(base, scale, shift);
      const bottom = positiveBottom();
      const top = f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      const x = blobValues(bottom);
      blobValues(top).forEach((y, i) => {
        const v = Math.log(shift + scale * x[i]!);
        expect(Math.abs(y - (base === -1 ? v : v / Math.log(base)))).toBeLessThanOrEqual(2e-4);
      });
    }
  });

  it('backward is scale / (ln(base)·(shift + scale·x))·dy', () => {
    const layer = log(2, 3, 1);
    const bottom = makeBlob([2], { filler: [0.5, 2] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2]);
    layer.backward([top], [true], [bottom]);
    const d = blobValues(bottom, 'diff');
    expect(d[0]).toBeCloseTo(3 / (Math.LN2 * 2.5), 13);
    expect(d[1]).toBeCloseTo((2 * 3) / (Math.LN2 * 7), 13);
  });

  it('passes the gradient checks (Caffe TestLogGradient*: 1e-2, 1e-2)', () => {
    for (const [base, scale, shift] of CASES) {
      new GradientChecker(1e-2, 1e-2).checkGradientEltwise(log(base, scale, shift), [positiveBottom()], [f64()]);
    }
  });

  it('rejects a non-positive base and base 1 (no finite 1/ln(base))', () => {
    expect(() => log(-3, 1, 0).setUp([makeBlob([2])], [f64()])).toThrow("Log layer 'log1': base must be strictly positive (got base -3).");
    expect(() => log(1, 1, 0).setUp([makeBlob([2])], [f64()])).toThrow("Log layer 'log1': Infinity result: 1/log(base) = 1/log(1) = Infinity");
  });
});
