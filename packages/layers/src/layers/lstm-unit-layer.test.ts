import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { lstmUnitLayerDef } from './lstm-unit-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const sig = (v: number) => 1 / (1 + Math.exp(-v));

/** Caffe's unit fixture: N = 3 streams, D = 7 cells, c_prev and x ~ U(−1, 1). */
function fixture(cont: number[]) {
  const rng = new Rng(1701);
  const cPrev = makeBlob([1, 3, 7], { filler: 'uniform', min: -1, max: 1, rng });
  const x = makeBlob([1, 3, 28], { filler: 'uniform', min: -1, max: 1, rng });
  return { cPrev, x, cont: makeBlob([1, 3], { filler: cont }) };
}

describe('LSTMUnit', () => {
  it('sets up c and h shaped like c_prev (Caffe TestLSTMUnitSetUp)', () => {
    const { cPrev, x, cont } = fixture([0, 0, 0]);
    const [c, h] = [f64(), f64()];
    createLayer(lstmUnitLayerDef).setUp([cPrev, x, cont], [c, h]);
    expect(c.shape).toEqual([1, 3, 7]);
    expect(h.shape).toEqual([1, 3, 7]);
  });

  it('forwards c = cont·σ(f)·c_prev + σ(i)·tanh(g), h = σ(o)·tanh(c)', () => {
    const { cPrev, x, cont } = fixture([1, 0, 0.5]);
    const layer = createLayer(lstmUnitLayerDef);
    const [c, h] = [f64(), f64()];
    layer.setUp([cPrev, x, cont], [c, h]);
    layer.forward([cPrev, x, cont], [c, h]);
    const X = x.cpuData();
    for (let n = 0; n < 3; n++) {
      for (let d = 0; d < 7; d++) {
        const g = (k: number) => X[n * 28 + k * 7 + d]!;
        const cell = cont.cpuData()[n]! * sig(g(1)) * cPrev.cpuData()[n * 7 + d]! + sig(g(0)) * Math.tanh(g(3));
        expect(c.cpuData()[n * 7 + d]).toBeCloseTo(cell, 14);
        expect(h.cpuData()[n * 7 + d]).toBeCloseTo(sig(g(2)) * Math.tanh(cell), 14);
      }
    }
  });

  it('passes the gradient checks of Caffe (1e-2, 1e-3) with cont 0 0 0 and 1 0 1, and for a fractional cont', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    for (const contValues of [[0, 0, 0], [1, 0, 1], [0.5, 1, 0.25]]) {
      const { cPrev, x, cont } = fixture(contValues);
      for (const b of [0, 1]) checker.checkGradientExhaustive(createLayer(lstmUnitLayerDef), [cPrev, x, cont], [f64(), f64()], b);
    }
  });

  it('gives no gradient to c_prev or the forget gate where cont = 0', () => {
    const { cPrev, x, cont } = fixture([0, 1, 0]);
    const layer = createLayer(lstmUnitLayerDef);
    const [c, h] = [f64(), f64()];
    layer.setUp([cPrev, x, cont], [c, h]);
    layer.forward([cPrev, x, cont], [c, h]);
    c.mutableCpuDiff().fill(1);
    h.mutableCpuDiff().fill(1);
    layer.backward([c, h], [true, true, false], [cPrev, x, cont]);
    const dcPrev = blobValues(cPrev, 'diff');
    const dx = blobValues(x, 'diff');
    for (let d = 0; d < 7; d++) {
      for (const n of [0, 2]) {
        expect(dcPrev[n * 7 + d]).toBe(0);
        expect(dx[n * 28 + 7 + d]).toBe(0);
      }
      expect(dcPrev[7 + d]).not.toBe(0);
    }
  });

  it('checks shapes and refuses backward into cont', () => {
    const { cPrev, x, cont } = fixture([1, 1, 1]);
    const layer = createLayer(lstmUnitLayerDef, { name: 'unit' });
    expect(() => layer.setUp([cPrev, makeBlob([1, 3, 27]), cont], [f64(), f64()])).toThrow(
      "LSTMUnit layer 'unit': bottom 1 (x) must hold 4·D = 28 gate inputs per stream (got 1 3 27 (81))",
    );
    expect(() => layer.setUp([cPrev, x, makeBlob([1, 2])], [f64(), f64()])).toThrow(
      "LSTMUnit layer 'unit': bottom 2 (cont) must have shape 1×N with 2 axes and N = 3 (got 1 2 (2))",
    );
    expect(() => layer.setUp([makeBlob([2, 3, 7]), x, cont], [f64(), f64()])).toThrow(
      "LSTMUnit layer 'unit': bottom 0 (c_prev) must have shape 1×N×… with 3 axes and N = 3 (got 2 3 7 (42))",
    );
    const [c, h] = [f64(), f64()];
    layer.setUp([cPrev, x, cont], [c, h]);
    layer.forward([cPrev, x, cont], [c, h]);
    expect(() => layer.backward([c, h], [true, true, true], [cPrev, x, cont])).toThrow(
      "LSTMUnit layer 'unit': Cannot backpropagate to sequence indicators.",
    );
    expect([0, 1, 2].map((i) => layer.allowForceBackward(i))).toEqual([true, true, false]);
  });
});
