import { gemm, MathError, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { nativeAvailability } from './addon.js';
import { createNativeGemm } from './gemm.js';

const { available } = nativeAvailability();

function random(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

/** C ← alpha·op(A)·op(B) + beta·C in float64, row-major, as Caffe's caffe_cpu_gemm. */
function reference(tA: boolean, tB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array) {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += A[tA ? k * M + i : i * K + k]! * B[tB ? j * K + k : k * N + j]!;
    out[i * N + j] = alpha * s + (beta === 0 ? 0 : beta * C[i * N + j]!);
  }
  return out;
}

describe.skipIf(!available)('createNativeGemm', () => {
  for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    for (const threads of [1, 2]) {
      it(`transA ${tA}, transB ${tB}, ${threads} thread(s): alpha·op(A)·op(B) + beta·C`, () => {
        const rng = new Rng(11);
        const kernel = createNativeGemm({ threads });
        for (const [M, N, K, alpha, beta] of [[1, 1, 1, 1, 0], [3, 40, 33, 1, 0], [4, 17, 9, 0.5, 1], [7, 5, 3, 0.5, 1], [65, 130, 257, 1, 0.25], [300, 200, 100, -2, 0]] as const) {
          const A = random(rng, M * K), B = random(rng, K * N), C = random(rng, M * N);
          if (beta === 0) C.fill(Number.NaN); // beta 0 overwrites, NaN included
          const want = reference(tA, tB, M, N, K, alpha, A, B, beta, C);
          kernel(tA, tB, M, N, K, alpha, A, B, beta, C);
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(C[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
          expect(worst, `${M}×${N}×${K}`).toBeLessThan(1e-5);
        }
      });
    }
  }

  it('reads views from their offsets and refuses arrays shorter than their matrices', () => {
    const kernel = createNativeGemm({ threads: 1 });
    const A = new Float32Array([9, 1, 2, 3, 4]).subarray(1), B = new Float32Array([9, 9, 1, 0, 0, 1]).subarray(2);
    const C = new Float32Array(4);
    kernel(false, false, 2, 2, 2, 1, A, B, 0, C);
    expect(Array.from(C)).toEqual([1, 2, 3, 4]);
    expect(() => kernel(false, false, 3, 2, 2, 1, A, B, 0, C)).toThrow(MathError);
    expect(() => kernel(false, false, 3, 2, 2, 1, A, B, 0, C)).toThrow(/native gemm: M=3 N=2 K=2 need A, B, C of 6, 4, 6 elements, got 4, 4, 4/);
  });

  it('gives the same products as the default kernel through gemm()', () => {
    const rng = new Rng(2);
    const A = random(rng, 64 * 96), B = random(rng, 96 * 80);
    const viaDefault = new Float32Array(64 * 80), viaNative = new Float32Array(64 * 80);
    gemm(false, false, 64, 80, 96, 1, A, B, 0, viaDefault);
    createNativeGemm({ threads: 1 })(false, false, 64, 80, 96, 1, A, B, 0, viaNative);
    for (let i = 0; i < viaDefault.length; i++) expect(Math.abs(viaNative[i]! - viaDefault[i]!)).toBeLessThan(1e-4);
  });
});
