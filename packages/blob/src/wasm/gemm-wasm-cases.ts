// Agreement cases shared by the SIMD and relaxed-SIMD kernel tests (gemm-wasm.test.ts,
// gemm-wasm-relaxed.test.ts): every case is checked against a float64 triple loop.
import { expect, it } from 'vitest';
import type { GemmKernel } from '../math/gemm.js';
import { Rng } from '../rng.js';

/** C ← alpha·op(A)·op(B) + beta·C in float64, beta = 0 ignoring C. */
export function naiveGemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[transA ? k * M + i : i * K + k]! * B[transB ? j * K + k : k * N + j]!;
      out[i * N + j] = alpha * s + (beta === 0 ? 0 : beta * C[i * N + j]!);
    }
  }
  return out;
}

export function randomArray(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

/**
 * Runs the kernel and the float64 oracle on the same random inputs and expects agreement to
 * float32 accuracy (|err| ≤ 1e-5·(|alpha|·Σ|a·b| + |beta·c|) + 1e-6, so the bound scales with K).
 */
export function checkAgainstNaive(
  kernel: GemmKernel, transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, beta: number, seed = M * 1_000_003 + N * 1009 + K,
  { nanInC = false } = {},
): void {
  const rng = new Rng(seed);
  const A = randomArray(rng, M * K), B = randomArray(rng, K * N), C = randomArray(rng, M * N);
  if (nanInC) C.fill(Number.NaN);
  const want = naiveGemm(transA, transB, M, N, K, alpha, A, B, beta, C);
  const abs = naiveGemm(transA, transB, M, N, K, Math.abs(alpha), A.map(Math.abs), B.map(Math.abs), 0, C);
  const C0 = C.slice();
  kernel(transA, transB, M, N, K, alpha, A, B, beta, C);
  let worst = 0, at = -1;
  for (let i = 0; i < M * N; i++) {
    const tol = 1e-5 * (abs[i]! + (beta === 0 ? 0 : Math.abs(beta * C0[i]!))) + 1e-6;
    const err = Math.abs(C[i]! - want[i]!) / tol;
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  const where = `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} M=${M} N=${N} K=${K} alpha=${alpha} beta=${beta}`;
  expect(worst <= 1, `${where}: C[${at}] = ${C[at]} but float64 gives ${want[at]}`).toBe(true);
}

const TRANS: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];

/** Registers the agreement tests for one kernel factory. */
export function defineAgreementTests(make: () => GemmKernel): void {
  it('agrees with float64 for all transposes on odd sizes (edge tiles, partial panels)', () => {
    const kernel = make();
    const sizes = [1, 3, 7, 17, 33, 65, 129];
    for (const [tA, tB] of TRANS) {
      for (let s = 0; s < sizes.length; s++) {
        // Rotate sizes between M, N and K so each dimension sees every size.
        const M = sizes[s]!, N = sizes[(s + 2) % sizes.length]!, K = sizes[(s + 4) % sizes.length]!;
        checkAgainstNaive(kernel, tA, tB, M, N, K, 1, 0);
      }
    }
  });

  it('applies alpha and beta (beta = 1, general beta, negative alpha)', () => {
    const kernel = make();
    for (const [tA, tB] of TRANS) {
      for (const [alpha, beta] of [[1, 1], [0.5, 2], [-1.5, -0.25], [2, 1]] as const) {
        checkAgainstNaive(kernel, tA, tB, 13, 19, 11, alpha, beta);
      }
    }
  });

  it('beta = 0 overwrites C, NaN included', () => {
    const kernel = make();
    for (const [tA, tB] of TRANS) {
      // First leave NaN wherever C is staged (beta = 1 keeps NaN), so that a kernel reading
      // C under beta = 0 would be caught even though it does not stage C then.
      const M = 9, N = 21, K = 5;
      const C = new Float32Array(M * N).fill(Number.NaN);
      kernel(tA, tB, M, N, K, 1, new Float32Array(M * K), new Float32Array(K * N), 1, C);
      expect(C.every(Number.isNaN)).toBe(true);
      checkAgainstNaive(kernel, tA, tB, M, N, K, 0.75, 0, 7, { nanInC: true });
    }
  });

  it('agrees on a 200×300×150 product (several cache blocks of k) for all transposes', () => {
    const kernel = make();
    for (const [tA, tB] of TRANS) checkAgainstNaive(kernel, tA, tB, 200, 300, 150, 1, 0.5);
    // K beyond one KC-deep block (KC = 512): beta must apply once, later blocks accumulate.
    checkAgainstNaive(kernel, false, false, 33, 40, 600, 1, 2);
  });

  it('stays correct when memory grows between calls and shrinks back to small products', () => {
    const kernel = make();
    checkAgainstNaive(kernel, false, false, 8, 8, 8, 1, 0);
    checkAgainstNaive(kernel, true, false, 150, 170, 190, 1, 1);
    checkAgainstNaive(kernel, false, true, 8, 8, 8, 1, 1);
  });

  it('alpha = 0 or K = 0 only scales C (A and B are not read)', () => {
    const kernel = make();
    const A = new Float32Array([Number.NaN, 1, 2, 3]);
    const B = new Float32Array([1, Number.NaN, 3, 4]);
    const C = new Float32Array([1, 2, 3, 4]);
    kernel(false, false, 2, 2, 2, 0, A, B, 3, C);
    expect(Array.from(C)).toEqual([3, 6, 9, 12]);
    C.fill(Number.NaN);
    kernel(false, false, 2, 2, 0, 1, A, B, 0, C);
    expect(Array.from(C)).toEqual([0, 0, 0, 0]);
  });

  it('reads operands from index 0 of longer arrays and leaves C past M·N alone', () => {
    const kernel = make();
    const rng = new Rng(3);
    const A = randomArray(rng, 5 * 6 + 10), B = randomArray(rng, 6 * 7 + 10);
    const C = new Float32Array(5 * 7 + 4).fill(42);
    const want = naiveGemm(false, false, 5, 7, 6, 1, A, B, 0, C);
    kernel(false, false, 5, 7, 6, 1, A, B, 0, C);
    for (let i = 0; i < 35; i++) expect(Math.abs(C[i]! - want[i]!)).toBeLessThan(1e-5);
    expect(Array.from(C.subarray(35))).toEqual([42, 42, 42, 42]);
  });
}
