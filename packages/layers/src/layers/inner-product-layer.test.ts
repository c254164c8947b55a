import { Blob, defaultWasmInfer, defaultWasmInferConv, Rng } from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { LayerError } from '../errors.js';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { InnerProductLayer, innerProductLayerDef, ROWDOT_MAX_ROWS } from './inner-product-layer.js';

type Props = Record<string, unknown>;

function ip(p: Props, dtype: 'float32' | 'float64' = 'float64'): InnerProductLayer {
  return createLayer(innerProductLayerDef, { name: 'fc1', inner_product_param: p }, { dtype, rng: new Rng(1701) });
}

const f64 = () => new Blob([], { dtype: 'float64' });
const uniformFillers = { weight_filler: { type: 'uniform', min: -1, max: 1 }, bias_filler: { type: 'uniform', min: 1, max: 2 } };

/** y[m, n] = Σ_k x[m, k]·W[n, k] + b[n] (W is [K, N] when transposed). */
function reference(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, M: number, N: number, K: number, transpose: boolean): number[] {
  const y: number[] = [];
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[transpose ? k * N + n : n * K + k]!;
      y.push(s);
    }
  }
  return y;
}

function forward(layer: InnerProductLayer, bottom: Blob): Blob {
  const top = new Blob([], { dtype: layer.dtype });
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol);
}

describe('InnerProductLayer', () => {
  describe('shapes', () => {
    it('2×3×4×5, num_output 10 → 2×10; weight 10 60, bias 10', () => {
      const layer = ip({ num_output: 10 });
      const top = forward(layer, makeBlob([2, 3, 4, 5]));
      expect(top.shape).toEqual([2, 10]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[10, 60], [10]]);
      expect(layer.type).toBe('InnerProduct');
    });

    it('transpose stores the weight as K×N', () => {
      const layer = ip({ num_output: 10, transpose: true });
      forward(layer, makeBlob([2, 3, 4, 5]));
      expect(layer.blobs[0]!.shape).toEqual([60, 10]);
    });

    it('axis keeps the leading axes (axis 2, and −1)', () => {
      expect(forward(ip({ num_output: 7, axis: 2 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 3, 7]);
      expect(forward(ip({ num_output: 7, axis: -1 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 3, 4, 7]);
      expect(forward(ip({ num_output: 7, axis: 0 }), makeBlob([2, 3])).shape).toEqual([7]);
    });
  });

  describe('forward', () => {
    it('hand-computed 2×3 · 2 outputs + bias', () => {
      const layer = ip({ num_output: 2 });
      const bottom = makeBlob([2, 3], { filler: [1, 2, 3, 4, 5, 6] });
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([bottom], [top]);
      layer.blobs[0]!.mutableCpuData().set([1, 0, -1, 0.5, 0.5, 0.5]);
      layer.blobs[1]!.mutableCpuData().set([10, 20]);
      layer.forward([bottom], [top]);
      expect(blobValues(top)).toEqual([1 - 3 + 10, 3 + 20, 4 - 6 + 10, 7.5 + 20]);
    });

    for (const transpose of [false, true]) {
      for (const dtype of ['float32', 'float64'] as const) {
        it(`matches x·Wᵀ + b (transpose ${transpose}, ${dtype})`, () => {
          const layer = ip({ num_output: 5, transpose, ...uniformFillers }, dtype);
          const bottom = makeBlob([3, 2, 2, 3], { dtype, filler: 'uniform' });
          const top = forward(layer, bottom);
          const want = reference(bottom.cpuData(), layer.blobs[0]!.cpuData(), layer.blobs[1]!.cpuData(), 3, 5, 12, transpose);
          expectClose(top.cpuData(), want, dtype === 'float32' ? 1e-5 : 1e-12);
          // Caffe's TestForward: uniform [0,1) inputs and weights in [-1,1], biases in [1,2].
          expect(Math.min(...Array.from(layer.blobs[1]!.cpuData()))).toBeGreaterThanOrEqual(1);
        });
      }
    }

    it('transpose with the transposed weights gives the same output', () => {
      const bottom = makeBlob([2, 6]);
      const a = ip({ num_output: 4, ...uniformFillers });
      const ta = forward(a, bottom);
      const b = ip({ num_output: 4, transpose: true, ...uniformFillers });
      const tb = new Blob([], { dtype: 'float64' });
      b.setUp([bottom], [tb]);
      const wa = a.blobs[0]!.cpuData();
      const wb = b.blobs[0]!.mutableCpuData();
      for (let n = 0; n < 4; n++) for (let k = 0; k < 6; k++) wb[k * 4 + n] = wa[n * 6 + k]!;
      b.blobs[1]!.copyFrom(a.blobs[1]!);
      b.forward([bottom], [tb]);
      expectClose(tb.cpuData(), ta.cpuData(), 1e-12);
    });

    it('bias_term: false', () => {
      const layer = ip({ num_output: 3, bias_term: false, ...uniformFillers });
      const bottom = makeBlob([2, 4]);
      const top = forward(layer, bottom);
      expect(layer.blobs.length).toBe(1);
      expectClose(top.cpuData(), reference(bottom.cpuData(), layer.blobs[0]!.cpuData(), null, 2, 3, 4, false), 1e-12);
    });
  });

  describe('backward', () => {
    it('hand-computed diffs; param diffs accumulate', () => {
      const layer = ip({ num_output: 2 });
      const bottom = makeBlob([1, 3], { filler: [1, 2, 3] });
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([bottom], [top]);
      layer.blobs[0]!.mutableCpuData().set([1, 0, -1, 2, 2, 2]);
      layer.forward([bottom], [top]);
      top.mutableCpuDiff().set([1, -1]);
      layer.backward([top], [true], [bottom]);
      expect(blobValues(bottom, 'diff')).toEqual([-1, -2, -3]);
      expect(blobValues(layer.blobs[0]!, 'diff')).toEqual([1, 2, 3, -1, -2, -3]);
      expect(blobValues(layer.blobs[1]!, 'diff')).toEqual([1, -1]);
      layer.backward([top], [true], [bottom]);
      expect(blobValues(bottom, 'diff')).toEqual([-1, -2, -3]);
      expect(blobValues(layer.blobs[0]!, 'diff')).toEqual([2, 4, 6, -2, -4, -6]);
      expect(blobValues(layer.blobs[1]!, 'diff')).toEqual([2, -2]);
    });

    it('an empty batch (no rows) gives an empty top, and backward leaves the param diffs alone', () => {
      for (const dtype of ['float32', 'float64'] as const) {
        const layer = ip({ num_output: 3 }, dtype);
        const bottom = new Blob([0, 4], { dtype });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        expect(top.shape).toEqual([0, 3]);
        layer.blobs[0]!.mutableCpuDiff().fill(7);
        layer.backward([top], [true], [bottom]);
        expect(blobValues(layer.blobs[0]!, 'diff')).toEqual(new Array(12).fill(7));
      }
    });
  });

  describe('gradient (float64, Caffe (1e-2, 1e-3) exhaustive)', () => {
    const check = (p: Props, shape: number[]) =>
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(ip({ ...uniformFillers, ...p }), [makeBlob(shape)], [f64()]);
    it('plain', () => check({ num_output: 4 }, [2, 3, 2, 2]));
    it('transpose', () => check({ num_output: 4, transpose: true }, [2, 3, 2, 2]));
    it('axis 2, no bias', () => check({ num_output: 3, axis: 2, bias_term: false }, [2, 2, 3, 2]));
  });

  describe('params', () => {
    it('defaults: bias on, axis 1, no transpose, constant-0 fillers', () => {
      const layer = createLayer(innerProductLayerDef, { inner_product_param: { num_output: 2 } });
      const top = forward(layer, makeBlob([3, 2, 2]));
      expect(top.shape).toEqual([3, 2]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[2, 4], [2]]);
      expect(layer.blobs[0]!.asumData() + layer.blobs[1]!.asumData()).toBe(0);
    });

    it('num_output must be set', () => {
      let err: unknown;
      try {
        forward(ip({}), makeBlob([2, 3]));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LayerError);
      expect((err as Error).message).toBe("InnerProduct layer 'fc1': num_output must be positive (got 0)");
    });

    it('a bottom with another K is rejected', () => {
      const layer = ip({ num_output: 2 });
      const top = forward(layer, makeBlob([2, 3, 4]));
      expect(() => layer.forward([makeBlob([2, 3, 5])], [top])).toThrow(
        "InnerProduct layer 'fc1': Input size incompatible with inner product parameters (expected 12 inputs from axis 1, bottom 2 3 5 (30) gives 15).",
      );
    });

    it('preloaded weights of the wrong shape', () => {
      const layer = ip({ num_output: 2, transpose: true });
      layer.blobs = [new Blob([2, 6], { dtype: 'float64' }), new Blob([2], { dtype: 'float64' })];
      expect(() => layer.setUp([makeBlob([1, 6])], [f64()])).toThrow(
        "InnerProduct layer 'fc1': Incorrect weight shape: expected shape 6 2 (12); instead, shape was 2 6 (12)",
      );
    });
  });

  describe('float32 at few rows (the dot-product kernel)', () => {
    // Row counts around ROWDOT_MAX_ROWS, output counts with and without a multiple of 4, K odd.
    for (const [M, N, K, bias, transpose] of [
      [1, 7, 13, true, false], [3, 8, 21, false, false], [ROWDOT_MAX_ROWS, 5, 9, true, false],
      [ROWDOT_MAX_ROWS + 1, 6, 10, true, false], [2, 5, 7, true, true],
    ] as [number, number, number, boolean, boolean][]) {
      it(`M=${M} N=${N} K=${K}${bias ? '' : ', no bias'}${transpose ? ', transposed' : ''} matches the definition`, () => {
        const layer = ip({ num_output: N, bias_term: bias, transpose, ...uniformFillers }, 'float32');
        const bottom = makeBlob([M, K], { dtype: 'float32', rng: new Rng(5) });
        const top = forward(layer, bottom);
        const want = reference(bottom.cpuData(), layer.blobs[0]!.cpuData(), bias ? layer.blobs[1]!.cpuData() : null, M, N, K, transpose);
        expectClose(top.cpuData(), want, 1e-5 * K);
      });
    }
    it('is the path float32 takes (CAFFE_TS_GEMM unset)', () => {
      const k = defaultWasmInfer();
      if (process.env.CAFFE_TS_GEMM === 'js') {
        expect(k).toBeNull();
        return;
      }
      const rowdot = k!.rowdot;
      let calls = 0;
      k!.rowdot = (...args) => {
        calls++;
        rowdot(...args);
      };
      try {
        forward(ip({ num_output: 3, ...uniformFillers }, 'float32'), makeBlob([2, 5], { dtype: 'float32' }));
        forward(ip({ num_output: 3, ...uniformFillers }, 'float32'), makeBlob([ROWDOT_MAX_ROWS + 1, 5], { dtype: 'float32' }));
        forward(ip({ num_output: 3, ...uniformFillers }), makeBlob([2, 5]));
      } finally {
        k!.rowdot = rowdot;
      }
      expect(calls).toBe(1);
    });
  });

  describe('inference (TEST phase, float32): weights kept in the kernel memory', () => {
    const testIp = (p: Props) =>
      createLayer(innerProductLayerDef, { name: 'fc1', inner_product_param: { ...uniformFillers, ...p } }, { dtype: 'float32', rng: new Rng(1701), phase: Phase.TEST });
    it.each([[1, 7, 13, true], [4, 9, 30, false], [ROWDOT_MAX_ROWS, 5, 9, true]] as [number, number, number, boolean][])(
      'M=%i N=%i K=%i (bias %s) matches the definition, and follows weight updates',
      (M, N, K, bias) => {
        const layer = testIp({ num_output: N, bias_term: bias });
        const bottom = makeBlob([M, K], { dtype: 'float32', rng: new Rng(5) });
        const check = (top: Blob) => {
          const want = reference(bottom.cpuData(), layer.blobs[0]!.cpuData(), bias ? layer.blobs[1]!.cpuData() : null, M, N, K, false);
          expectClose(top.cpuData(), want, 1e-5 * K);
        };
        const top = forward(layer, bottom);
        check(top);
        layer.forward([bottom], [top]);
        check(top);
        const w = layer.blobs[0]!;
        w.mutableCpuDiff().fill(0.5);
        w.update();
        layer.forward([bottom], [top]);
        check(top);
      },
    );
    it('is the path TEST-phase float32 takes at few rows', () => {
      const runner = defaultWasmInferConv();
      if (process.env.CAFFE_TS_GEMM === 'js') {
        expect(runner).toBeNull();
        return;
      }
      const innerProduct = runner!.innerProduct;
      let calls = 0;
      runner!.innerProduct = (...args) => {
        calls++;
        return innerProduct(...args);
      };
      try {
        forward(testIp({ num_output: 3 }), makeBlob([2, 5], { dtype: 'float32' }));
        forward(ip({ num_output: 3, ...uniformFillers }, 'float32'), makeBlob([2, 5], { dtype: 'float32' }));
      } finally {
        runner!.innerProduct = innerProduct;
      }
      expect(calls).toBe(1);
    });
  });
});
