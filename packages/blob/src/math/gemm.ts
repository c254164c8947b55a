import type { FloatArray } from '../dtype.js';
import { MathError } from './errors.js';
import { gemmF32 } from './gemm-f32.js';
import { gemmF64 } from './gemm-f64.js';
import { defaultFloat32GemmKernel } from '../wasm/gemm-wasm.js';

/**
 * A fast Float32 GEMM (e.g. WASM SIMD) with exactly gemm()'s contract: row-major,
 * C ← alpha·op(A)·op(B) + beta·C, op(A) M×K, op(B) K×N, beta = 0 overwrites C.
 */
export type GemmKernel = (
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
) => void;

/** Below this many multiply-adds (M·N·K) the JS path wins over a kernel call's overhead. */
export const GEMM_KERNEL_MIN_WORK = 4096;

interface KernelSlot {
  kernel: GemmKernel | null;
  name: string;
  minWork: number;
  /** No kernel chosen yet: the first large Float32 gemm() installs the WASM one (once). */
  auto?: boolean;
  /** Installed by setGemmKernel (not the default WebAssembly kernel). */
  custom?: boolean;
}

// Shared through globalThis so that duplicated copies of this package agree on the kernel.
const KERNEL_KEY = Symbol.for('caffe-ts.gemmKernel');

function slot(): KernelSlot {
  const g = globalThis as Record<symbol, unknown>;
  let s = g[KERNEL_KEY] as KernelSlot | undefined;
  if (!s) {
    s = { kernel: null, name: 'js', minWork: GEMM_KERNEL_MIN_WORK, auto: true };
    g[KERNEL_KEY] = s;
  }
  return s;
}

/**
 * Install (or, with null, remove) the Float32 kernel gemm() hands large products to.
 * `name` defaults to the function's name; `minWork` to GEMM_KERNEL_MIN_WORK.
 */
export function setGemmKernel(
  kernel: GemmKernel | null,
  options: { name?: string; minWork?: number } = {},
): void {
  const s = slot();
  s.kernel = kernel;
  s.name = kernel ? options.name ?? (kernel.name || 'custom') : 'js';
  s.minWork = options.minWork ?? GEMM_KERNEL_MIN_WORK;
  s.auto = false;
  s.custom = kernel !== null;
}

/** Undoes setGemmKernel: the default kernel (CAFFE_TS_GEMM, else WebAssembly) serves again. */
export function restoreDefaultGemmKernel(): void {
  const s = slot();
  Object.assign(s, { kernel: null, name: 'js', minWork: GEMM_KERNEL_MIN_WORK, auto: true, custom: false });
}

/**
 * True while a kernel installed by setGemmKernel serves gemm(): layers with WebAssembly paths
 * of their own (InnerProduct's dot-product and packed-weights forwards) then call gemm() instead.
 */
export function customGemmKernelInstalled(): boolean {
  return slot().custom === true;
}

/** 'js' when no kernel is installed, else the installed kernel's name. */
export function activeGemmKernelName(): string {
  return slot().name;
}

// Positional rather than a Record so the hot path allocates nothing.
function checkDims(what: string, M: number, N: number, K = 0): void {
  if (isDim(M) && isDim(N) && isDim(K)) return;
  for (const [k, v] of [['M', M], ['N', N], ['K', K]] as const) {
    if (!isDim(v)) throw new MathError(`${what}: ${k} must be a non-negative integer, got ${v}`);
  }
}

function isDim(v: number): boolean {
  return Number.isInteger(v) && v >= 0;
}

function checkLength(what: string, name: string, arr: FloatArray, need: number, shape: string): void {
  if (arr.length < need) {
    throw new MathError(`${what}: ${name} has ${arr.length} elements, ${shape} needs ${need}`);
  }
}

/**
 * Caffe's caffe_cpu_gemm: C ← alpha·op(A)·op(B) + beta·C, all row-major, op(A) M×K,
 * op(B) K×N, C M×N (lda = transA ? M : K, ldb = transB ? K : N, ldc = N). Operands are
 * read from index 0 (pass `subarray` views for offsets). beta = 0 overwrites C, NaN included.
 * A, B and C must share one element type; Float32 products of at least the kernel's minWork
 * go to the kernel installed by setGemmKernel, all else to the JS path.
 */
export function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, B: FloatArray, beta: number, C: FloatArray,
): void {
  checkDims('gemm', M, N, K);
  const mk = M * K, kn = K * N, mn = M * N;
  checkLength('gemm', 'A', A, mk, transA ? `${K}×${M}` : `${M}×${K}`);
  checkLength('gemm', 'B', B, kn, transB ? `${N}×${K}` : `${K}×${N}`);
  checkLength('gemm', 'C', C, mn, `${M}×${N}`);
  if (C instanceof Float32Array) {
    if (!(A instanceof Float32Array) || !(B instanceof Float32Array)) throw mixed(A, B, C);
    const s = slot();
    if (s.auto && mn * K >= s.minWork) {
      // Lazily, so that importing the package compiles nothing (CAFFE_TS_GEMM=js opts out).
      s.auto = false;
      const d = defaultFloat32GemmKernel();
      if (d) Object.assign(s, d);
    }
    if (s.kernel && mn * K >= s.minWork) s.kernel(transA, transB, M, N, K, alpha, A, B, beta, C);
    else gemmF32(transA, transB, M, N, K, alpha, A, B, beta, C);
  } else {
    if (!(A instanceof Float64Array) || !(B instanceof Float64Array)) throw mixed(A, B, C);
    gemmF64(transA, transB, M, N, K, alpha, A, B, beta, C);
  }
}

/** The JS path of gemm() regardless of any installed kernel (oracle for kernel tests). */
export function gemmJs(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, B: FloatArray, beta: number, C: FloatArray,
): void {
  checkDims('gemmJs', M, N, K);
  checkLength('gemmJs', 'A', A, M * K, transA ? `${K}×${M}` : `${M}×${K}`);
  checkLength('gemmJs', 'B', B, K * N, transB ? `${N}×${K}` : `${K}×${N}`);
  checkLength('gemmJs', 'C', C, M * N, `${M}×${N}`);
  if (C instanceof Float32Array && A instanceof Float32Array && B instanceof Float32Array) {
    gemmF32(transA, transB, M, N, K, alpha, A, B, beta, C);
  } else if (C instanceof Float64Array && A instanceof Float64Array && B instanceof Float64Array) {
    gemmF64(transA, transB, M, N, K, alpha, A, B, beta, C);
  } else {
    throw mixed(A, B, C);
  }
}

function mixed(A: FloatArray, B: FloatArray, C: FloatArray): MathError {
  const t = (x: FloatArray) => x.constructor.name;
  return new MathError(`gemm: A, B and C must share one element type, got ${t(A)}, ${t(B)}, ${t(C)}`);
}

/**
 * Caffe's caffe_cpu_gemv: y ← alpha·op(A)·x + beta·y with A row-major M×N; op(A) = A gives
 * y of length M from x of length N, op(A) = Aᵀ gives y of length N from x of length M.
 */
export function gemv(
  transA: boolean, M: number, N: number,
  alpha: number, A: FloatArray, x: FloatArray, beta: number, y: FloatArray,
): void {
  checkDims('gemv', M, N);
  const xn = transA ? M : N, yn = transA ? N : M;
  checkLength('gemv', 'A', A, M * N, `${M}×${N}`);
  checkLength('gemv', 'x', x, xn, `length ${xn}`);
  checkLength('gemv', 'y', y, yn, `length ${yn}`);
  if (beta === 0) y.fill(0, 0, yn);
  else if (beta !== 1) for (let i = 0; i < yn; i++) y[i] = beta * y[i]!;
  if (alpha === 0) return;
  if (!transA) {
    for (let i = 0; i < M; i++) {
      const r = i * N;
      let s0 = 0, s1 = 0;
      let j = 0;
      for (; j + 1 < N; j += 2) {
        s0 += A[r + j]! * x[j]!;
        s1 += A[r + j + 1]! * x[j + 1]!;
      }
      if (j < N) s0 += A[r + j]! * x[j]!;
      y[i] = y[i]! + alpha * (s0 + s1);
    }
  } else {
    // y += alpha · Σ_i x[i] · A[i, :], walking A by contiguous rows.
    for (let i = 0; i < M; i++) {
      const a = alpha * x[i]!;
      const r = i * N;
      for (let j = 0; j < N; j++) y[j] = y[j]! + a * A[r + j]!;
    }
  }
}
