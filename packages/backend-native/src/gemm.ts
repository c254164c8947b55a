import { getNumThreads, MathError, type GemmKernel } from '@caffe-ts/blob';
import { nativeAddon } from './addon.js';

/** Below this many multiply-adds a product runs on one thread (a wake-up costs more). */
export const NATIVE_GEMM_MIN_WORK_PER_THREAD = 1 << 18;

/**
 * gemm()'s Float32 contract (row-major C ← alpha·op(A)·op(B) + beta·C, beta = 0 overwrites)
 * through OpenBLAS's sgemm, on up to `threads` OpenBLAS threads (default: the kernel thread
 * count, getNumThreads(), read on every call). Throws NativeUnavailableError where the addon
 * is not built.
 */
export function createNativeGemm(options: { threads?: number } = {}): GemmKernel {
  const addon = nativeAddon();
  const nativeGemm: GemmKernel = (transA, transB, M, N, K, alpha, A, B, beta, C) => {
    if (M * K > A.length || K * N > B.length || M * N > C.length) {
      throw new MathError(`native gemm: M=${M} N=${N} K=${K} need A, B, C of ${M * K}, ${K * N}, ${M * N} elements, got ${A.length}, ${B.length}, ${C.length}`);
    }
    const work = M * N * K;
    const threads = Math.max(1, Math.min(options.threads ?? getNumThreads(), Math.floor(work / NATIVE_GEMM_MIN_WORK_PER_THREAD)));
    addon.sgemm(transA, transB, M, N, K, alpha, A, B, beta, C, threads);
  };
  return nativeGemm;
}
