import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import {
  activeGemmKernelName,
  customGemmKernelInstalled,
  gemm,
  gemmJs,
  gemv,
  GEMM_KERNEL_MIN_WORK,
  MathError,
  restoreDefaultGemmKernel,
  setGemmKernel,
  type GemmKernel,
} from './index.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

function rand(T: Ctor, n: number, rng: Rng): Float32Array | Float64Array {
  const a = new T(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniformIn(-1, 1);
  return a;
}

/** The definition, in float64: C ← alpha·op(A)·op(B) + beta·C. */
function naive(
  tA: boolean, tB: boolean, M: number, N: number, K: number,
  alpha: number, A: ArrayLike<number>, B: ArrayLike<number>, beta: number, C: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (tA ? A[k * M + i]! : A[i * K + k]!) * (tB ? B[j * K + k]! : B[k * N + j]!);
      out[i * N + j] = alpha * s + (beta === 0 ? 0 : beta * C[i * N + j]!);
    }
  }
  return out;
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return m;
}

afterEach(() => setGemmKernel(null));

describe('gemm', () => {
  // Shapes straddle the 4×4 register blocks and the k/j cache tiles (128, 256, 512).
  const shapes: [number, number, number][] = [
    [1, 1, 1], [3, 5, 7], [4, 4, 4], [5, 9, 6], [17, 3, 130], [2, 260, 5], [9, 13, 515], [33, 1, 8],
  ];
  for (const [T, tol] of [[Float32Array, 2e-5], [Float64Array, 1e-12]] as [Ctor, number][]) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        it(`${T.name} transA=${tA} transB=${tB} matches the definition`, () => {
          const rng = new Rng(7);
          for (const [M, N, K] of shapes) {
            for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25], [1.5, -1]] as const) {
              const A = rand(T, M * K, rng), B = rand(T, K * N, rng), C = rand(T, M * N, rng);
              const want = naive(tA, tB, M, N, K, alpha, A, B, beta, C);
              // gemmJs is the JS path alone; gemm may hand Float32 work to an installed kernel.
              const Cjs = C.slice();
              gemmJs(tA, tB, M, N, K, alpha, A, B, beta, Cjs);
              expect(maxRelErr(Cjs, want), `gemmJs ${M}×${N}×${K} α=${alpha} β=${beta}`).toBeLessThan(tol);
              gemm(tA, tB, M, N, K, alpha, A, B, beta, C);
              expect(maxRelErr(C, want), `gemm (${activeGemmKernelName()}) ${M}×${N}×${K} α=${alpha} β=${beta}`).toBeLessThan(tol);
            }
          }
        });
      }
    }
  }

  it('beta = 0 overwrites NaN and Inf in C; alpha = 0 only scales C', () => {
    setGemmKernel(null);
    for (const T of [Float32Array, Float64Array] as Ctor[]) {
      const A = new T([1, 2, 3, 4]), B = new T([5, 6, 7, 8]);
      const C = new T([NaN, Infinity, -Infinity, NaN]);
      gemm(false, false, 2, 2, 2, 1, A, B, 0, C);
      expect(Array.from(C)).toEqual([19, 22, 43, 50]);
      gemm(false, false, 2, 2, 2, 0, A, B, 2, C);
      expect(Array.from(C)).toEqual([38, 44, 86, 100]);
    }
  });

  it('K = 0 leaves beta·C', () => {
    const C = new Float32Array([1, 2]);
    gemm(false, false, 1, 2, 0, 1, new Float32Array(0), new Float32Array(0), 3, C);
    expect(Array.from(C)).toEqual([3, 6]);
  });

  it('works on subarray views and leaves elements past M·N alone', () => {
    const buf = new Float32Array(20).fill(9);
    const A = new Float32Array([0, 0, 1, 2, 3, 4]).subarray(2);
    const B = new Float32Array([1, 0, 0, 1]);
    gemm(false, false, 2, 2, 2, 1, A, B, 0, buf.subarray(3));
    expect(Array.from(buf.subarray(0, 9))).toEqual([9, 9, 9, 1, 2, 3, 4, 9, 9]);
  });

  it('rejects arrays too short for the shape, and mixed element types', () => {
    expect(() => gemm(false, false, 2, 2, 2, 1, new Float32Array(3), new Float32Array(4), 0, new Float32Array(4)))
      .toThrow(/gemm: A has 3 elements, 2×2 needs 4/);
    expect(() => gemm(false, true, 2, 3, 2, 1, new Float32Array(4), new Float32Array(4), 0, new Float32Array(6)))
      .toThrow(/B has 4 elements, 3×2 needs 6/);
    expect(() => gemm(false, false, 1, 1, 1, 1, new Float64Array(1), new Float32Array(1), 0, new Float32Array(1)))
      .toThrow(MathError);
    expect(() => gemm(false, false, -1, 1, 1, 1, new Float32Array(1), new Float32Array(1), 0, new Float32Array(1)))
      .toThrow(/M must be a non-negative integer/);
  });
});

describe('gemm kernels', () => {
  it('routes large Float32 products to the installed kernel, small and Float64 ones to JS', () => {
    const calls: number[][] = [];
    const kernel: GemmKernel = (tA, tB, M, N, K, alpha, A, B, beta, C) => {
      calls.push([M, N, K]);
      gemmJs(tA, tB, M, N, K, alpha, A, B, beta, C);
    };
    expect(activeGemmKernelName()).toBe('js');
    setGemmKernel(kernel, { name: 'spy' });
    expect(activeGemmKernelName()).toBe('spy');
    const n = Math.ceil(Math.cbrt(GEMM_KERNEL_MIN_WORK));
    const rng = new Rng(1);
    const A = rand(Float32Array, n * n, rng), B = rand(Float32Array, n * n, rng);
    const C = new Float32Array(n * n);
    gemm(false, false, n, n, n, 1, A, B, 0, C);
    gemm(false, false, 2, 2, 2, 1, A, B, 0, C);
    gemm(false, false, n, n, n, 1, new Float64Array(n * n), new Float64Array(n * n), 0, new Float64Array(n * n));
    expect(calls).toEqual([[n, n, n]]);
    setGemmKernel(null);
    expect(activeGemmKernelName()).toBe('js');
    gemm(false, false, n, n, n, 1, A, B, 0, C);
    expect(calls).toHaveLength(1);
  });

  it('restoreDefaultGemmKernel undoes setGemmKernel: the default kernel serves again, chosen on first use', () => {
    const kernel: GemmKernel = (...args) => gemmJs(...args);
    setGemmKernel(kernel, { name: 'custom' });
    expect(customGemmKernelInstalled()).toBe(true);
    restoreDefaultGemmKernel();
    expect(customGemmKernelInstalled()).toBe(false);
    expect(activeGemmKernelName()).toBe('js');
    const n = 32, A = new Float32Array(n * n).fill(1), C = new Float32Array(n * n);
    gemm(false, false, n, n, n, 1, A, A, 0, C);
    expect(C[0]).toBe(n);
    // The first large product installs the default (WebAssembly where SIMD exists; CAFFE_TS_GEMM=js keeps JS).
    expect(activeGemmKernelName()).not.toBe('custom');
    expect(customGemmKernelInstalled()).toBe(false);
  });

  it('names a kernel after its function by default', () => {
    function wasmSimd(...args: Parameters<GemmKernel>): void {
      gemmJs(...args);
    }
    setGemmKernel(wasmSimd);
    expect(activeGemmKernelName()).toBe('wasmSimd');
  });
});

describe('gemm-f64.ts', () => {
  it('is gemm-f32.ts with the element type changed (keep the two in step)', () => {
    const body = (f: string) => readFileSync(new URL(f, import.meta.url), 'utf8').split('\n').slice(3).join('\n');
    const f32 = body('./gemm-f32.ts').replace(/Float32Array/g, 'Float64Array').replace(/F32\b/g, 'F64');
    expect(body('./gemm-f64.ts')).toBe(f32);
  });
});

describe('gemv', () => {
  for (const T of [Float32Array, Float64Array] as Ctor[]) {
    it(`${T.name} matches gemm with a one-column operand, both orientations`, () => {
      const rng = new Rng(3);
      for (const [M, N] of [[1, 1], [3, 5], [6, 1], [7, 8]]) {
        for (const tA of [false, true]) {
          const A = rand(T, M * N, rng);
          const x = rand(T, tA ? M : N, rng);
          const y = rand(T, tA ? N : M, rng);
          const want = naive(tA, false, tA ? N : M, 1, tA ? M : N, 0.5, A, x, 2, y);
          gemv(tA, M, N, 0.5, A, x, 2, y);
          expect(maxRelErr(y, want)).toBeLessThan(1e-6);
        }
      }
    });
  }

  it('beta = 0 overwrites NaN in y', () => {
    const y = new Float32Array([NaN, NaN]);
    gemv(false, 2, 2, 1, new Float32Array([1, 2, 3, 4]), new Float32Array([1, 1]), 0, y);
    expect(Array.from(y)).toEqual([3, 7]);
  });

  it('rejects a short x', () => {
    expect(() => gemv(true, 3, 2, 1, new Float32Array(6), new Float32Array(2), 0, new Float32Array(2)))
      .toThrow(/gemv: x has 2 elements, length 3 needs 3/);
  });
});
