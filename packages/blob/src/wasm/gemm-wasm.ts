// The WebAssembly SIMD float32 GEMM behind gemm() for Float32Array operands.
//
// The module (scripts/gemm-wat.mjs, assembled into generated/gemm-wasm.ts) owns one linear
// memory per kernel instance. Products large enough to split go to the kernel threads instead
// (gemm-threaded.ts, over the pool's shared memory) when more than one thread is set, and so do
// products whose operands already live in that memory (blobs of the 'wasm' host allocator,
// host-memory.ts), on the calling thread and without copies. Otherwise a call stages op(A), op(B) and C blocks in that memory with
// TypedArray.set (a memcpy), runs the blocked, packed GEMM there, and copies C back. Nothing
// here reads files, so it works unchanged in browsers; the module is small enough for the
// synchronous WebAssembly.Module constructor.
import type { GemmKernel } from '../math/gemm.js';
export { decodeBase64 } from './wasm-api.js';
import { MathError } from '../math/errors.js';
import { decodeBase64, wasmApi, type WasmMemory } from './wasm-api.js';
import { GEMM_WASM_RELAXED_SIMD_BASE64, GEMM_WASM_SIMD_BASE64 } from './generated/gemm-wasm.js';
import { gemmThreaded } from './gemm-threaded.js';
import { MIN_FLOPS_PER_THREAD, planThreads } from './threads.js';

/** 'simd': f32x4.mul + f32x4.add; 'relaxed-simd': f32x4.relaxed_madd (FMA where available). */
export type WasmGemmVariant = 'simd' | 'relaxed-simd';

export interface WasmGemmOptions {
  /**
   * true: the relaxed-SIMD build or nothing; false: the plain SIMD build; unset: relaxed
   * when the engine validates it (on Node 20 the package turns on --experimental-wasm-relaxed-simd
   * itself: see relaxedSimdStatus), else plain.
   */
  relaxed?: boolean;
  /**
   * Most floats staged in WebAssembly memory by one call (op(A), op(B) and C blocks
   * together); larger products are split into blocks. Default 2^26 (256 MiB).
   */
  maxStagedFloats?: number;
  /**
   * Kernel threads (threads.ts): 'auto' (the default) splits products of at least
   * minFlopsPerThread per thread across up to getNumThreads() threads; 1 keeps every call on
   * the calling thread.
   */
  threads?: 'auto' | 1;
  /** Floating-point operations per thread below which a product stays on one thread. */
  minFlopsPerThread?: number;
}

export interface WasmGemmInfo {
  /** The plain SIMD build compiles here. */
  simd: boolean;
  /** The relaxed-SIMD build compiles here. */
  relaxedSimd: boolean;
  /** What createWasmGemmKernel() picks without options; null when WebAssembly SIMD is missing. */
  variant: WasmGemmVariant | null;
  /** Register tile (MR×NR) and cache blocks (MC, KC, NC) the module was generated with. */
  blocking: { MR: number; NR: number; MC: number; KC: number; NC: number };
}

/** Kernel names, as reported by activeGemmKernelName() once installed. */
export const WASM_GEMM_KERNEL_NAMES: Readonly<Record<WasmGemmVariant, string>> = {
  simd: 'wasm-simd',
  'relaxed-simd': 'wasm-relaxed-simd',
};

const DEFAULT_MAX_STAGED_FLOATS = 1 << 26;
const PAGE_BYTES = 65536;

/** The conv helpers the GEMM module also exports (scripts/gemm-wat.mjs, convHelpersWat). */
export interface ConvExports {
  im2col(x: number, nb: number, C: number, H: number, W: number, KH: number, KW: number, SH: number, SW: number, OH: number, OW: number, tab: number, col: number): void;
  col2im(col: number, nb: number, C: number, H: number, W: number, KH: number, KW: number, SH: number, SW: number, OH: number, OW: number, tab: number, x: number): void;
  gather(y: number, C: number, nb: number, S: number, r: number): void;
  scatter(r: number, C: number, nb: number, S: number, y: number, addBias: number, bias: number): void;
  rowsum(r: number, rows: number, len: number, out: number): void;
}
export interface GemmExports extends ConvExports {
  memory: WasmMemory;
  MR: { value: number };
  NR: { value: number };
  MC: { value: number };
  KC: { value: number };
  NC: { value: number };
  gemm(
    transA: number, transB: number, M: number, N: number, K: number,
    alpha: number, pA: number, lda: number, pB: number, ldb: number,
    beta: number, pC: number, ldc: number, packA: number, packB: number, scratch: number,
  ): void;
}

const modules = new Map<WasmGemmVariant, object | null>();

/** The compiled module for a variant, or null where the engine rejects it (compiled once). */
function compiledModule(variant: WasmGemmVariant): object | null {
  if (modules.has(variant)) return modules.get(variant)!;
  const api = wasmApi();
  let module: object | null = null;
  if (api) {
    const bytes = decodeBase64(variant === 'simd' ? GEMM_WASM_SIMD_BASE64 : GEMM_WASM_RELAXED_SIMD_BASE64);
    // validate() is the feature test: without SIMD (or relaxed SIMD) support it is false.
    if (api.validate(bytes)) {
      try {
        module = new api.Module(bytes);
      } catch {
        module = null;
      }
    }
  }
  modules.set(variant, module);
  return module;
}

function pickVariant(relaxed: boolean | undefined): WasmGemmVariant | null {
  if (relaxed === true) return compiledModule('relaxed-simd') ? 'relaxed-simd' : null;
  if (relaxed === false) return compiledModule('simd') ? 'simd' : null;
  if (compiledModule('relaxed-simd')) return 'relaxed-simd';
  return compiledModule('simd') ? 'simd' : null;
}

/**
 * A fresh instance (own memory) of the GEMM module's build for `relaxed` (as in
 * createWasmGemmKernel's options), with its variant; null where WebAssembly SIMD is missing.
 */
export function instantiateGemmModule(relaxed?: boolean): { exports: GemmExports; variant: WasmGemmVariant } | null {
  const variant = pickVariant(relaxed);
  if (!variant) return null;
  return { exports: new (wasmApi()!).Instance(compiledModule(variant)!, {}).exports as GemmExports, variant };
}

/** Which WebAssembly GEMM builds this engine runs, and which one is the default. */
export function wasmGemmInfo(): WasmGemmInfo {
  const simd = compiledModule('simd') !== null;
  const relaxedSimd = compiledModule('relaxed-simd') !== null;
  let blocking = { MR: 0, NR: 0, MC: 0, KC: 0, NC: 0 };
  const variant = pickVariant(undefined);
  if (variant) {
    const ex = new (wasmApi()!).Instance(compiledModule(variant)!, {}).exports as GemmExports;
    blocking = { MR: ex.MR.value, NR: ex.NR.value, MC: ex.MC.value, KC: ex.KC.value, NC: ex.NC.value };
  }
  return { simd, relaxedSimd, variant, blocking };
}

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/**
 * A Float32 GEMM kernel (the GemmKernel contract of setGemmKernel) running WebAssembly SIMD,
 * or null when this engine lacks WebAssembly SIMD (or relaxed SIMD, with relaxed: true).
 * Each kernel owns its WebAssembly memory, which grows to the largest product staged and is
 * kept for reuse; a kernel is not re-entrant (JS is single-threaded, so that only matters
 * if it were called from inside itself).
 */
export function createWasmGemmKernel(options: WasmGemmOptions = {}): GemmKernel | null {
  const maxStaged = options.maxStagedFloats ?? DEFAULT_MAX_STAGED_FLOATS;
  if (!(maxStaged >= 3)) throw new MathError(`createWasmGemmKernel: maxStagedFloats must be >= 3, got ${maxStaged}`);
  const instance = instantiateGemmModule(options.relaxed);
  if (!instance) return null;
  const { exports: ex, variant } = instance;
  const { memory } = ex;
  const name = WASM_GEMM_KERNEL_NAMES[variant];
  const MR = ex.MR.value, NR = ex.NR.value, MC = ex.MC.value, KC = ex.KC.value, NC = ex.NC.value;
  const blk = { MR, NR, MC, KC, NC };
  const threaded = options.threads !== 1;
  const relaxedBuild = variant === 'relaxed-simd';
  const minFlops = options.minFlopsPerThread ?? MIN_FLOPS_PER_THREAD;

  /** Grows memory to hold `bytes` and returns a fresh view (views die when memory grows). */
  function heap(bytes: number): Float32Array {
    const have = memory.buffer.byteLength;
    if (bytes > have) {
      try {
        memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
      } catch (e) {
        throw new MathError(`${name}: cannot grow WebAssembly memory to ${bytes} bytes (${String(e)})`);
      }
    }
    return new Float32Array(memory.buffer);
  }

  const kernel: GemmKernel = (transA, transB, M, N, K, alpha, A, B, beta, C) => {
    if (M * K > A.length || K * N > B.length || M * N > C.length) {
      throw new MathError(
        `${name}: M=${M} N=${N} K=${K} need A, B, C of ${M * K}, ${K * N}, ${M * N} elements, ` +
          `got ${A.length}, ${B.length}, ${C.length}`,
      );
    }
    if (M === 0 || N === 0) return;
    if (K === 0 || alpha === 0) {
      // Nothing to multiply (BLAS does not read A or B then): C ← beta·C, beta = 0 overwrites.
      if (beta === 0) C.fill(0, 0, M * N);
      else if (beta !== 1) for (let i = 0; i < M * N; i++) C[i] = beta * C[i]!;
      return;
    }

    if (threaded) {
      const T = planThreads(2 * M * N * K, Infinity, minFlops);
      if (T > 1 && gemmThreaded(T, relaxedBuild, blk, transA, transB, M, N, K, alpha, A, B, beta, C)) return;
    }
    // Operands in the kernel threads' shared memory (the 'wasm' host allocator): run there, on
    // this thread, using them in place.
    if (inSharedMemory(A, B, C) && gemmThreaded(1, relaxedBuild, blk, transA, transB, M, N, K, alpha, A, B, beta, C)) return;

    // Block sizes of the staged sub-problems: whole operands unless they exceed maxStaged.
    let ms = M, ns = N, ks = K;
    while (ms * ks + ks * ns + ms * ns > maxStaged) {
      if (ns >= ms && ns >= ks && ns > NR) ns = roundUp(Math.ceil(ns / 2), NR);
      else if (ms >= ks && ms > MR) ms = roundUp(Math.ceil(ms / 2), MR);
      else if (ks > 1) ks = Math.ceil(ks / 2);
      else break;
    }
    // Layout (byte offsets): packed A block, packed B block, edge scratch tile, A, B, C.
    const kc = Math.min(KC, ks);
    const pPackA = 0;
    const pPackB = pPackA + 4 * Math.min(MC, roundUp(ms, MR)) * kc;
    const pScratch = pPackB + 4 * kc * Math.min(NC, roundUp(ns, NR));
    const pA = pScratch + 4 * MR * NR;
    const pB = pA + 4 * ms * ks;
    const pC = pB + 4 * ks * ns;
    const f32 = heap(pC + 4 * ms * ns);
    const a0 = pA >> 2, b0 = pB >> 2, c0 = pC >> 2;

    for (let i0 = 0; i0 < M; i0 += ms) {
      const mi = Math.min(ms, M - i0);
      for (let j0 = 0; j0 < N; j0 += ns) {
        const nj = Math.min(ns, N - j0);
        if (beta !== 0) stage(C, N, i0, mi, j0, nj, f32, c0);
        for (let p0 = 0; p0 < K; p0 += ks) {
          const kk = Math.min(ks, K - p0);
          // op(A)[i0:+mi, p0:+kk] and op(B)[p0:+kk, j0:+nj], staged in their stored orientation.
          if (transA) stage(A, M, p0, kk, i0, mi, f32, a0);
          else stage(A, K, i0, mi, p0, kk, f32, a0);
          if (transB) stage(B, K, j0, nj, p0, kk, f32, b0);
          else stage(B, N, p0, kk, j0, nj, f32, b0);
          ex.gemm(
            transA ? 1 : 0, transB ? 1 : 0, mi, nj, kk,
            alpha, pA, transA ? mi : kk, pB, transB ? kk : nj,
            p0 === 0 ? beta : 1, pC, nj, pPackA, pPackB, pScratch,
          );
        }
        unstage(f32, c0, C, N, i0, mi, j0, nj);
      }
    }
  };
  Object.defineProperty(kernel, 'name', { value: name });
  return kernel;
}

/**
 * Whether any array is a view of some SharedArrayBuffer (cheap test first; the callee then asks
 * the engine whether that buffer is its memory).
 */
export function inSharedMemory(...arrays: (Float32Array | Int32Array | null | undefined)[]): boolean {
  for (const a of arrays) if (a && !(a.buffer instanceof ArrayBuffer)) return true;
  return false;
}

/** Copies rows r0:+nr, columns c0:+nc of a row-major matrix (row stride ld) to dst[at…], packed. */
function stage(src: Float32Array, ld: number, r0: number, nr: number, c0: number, nc: number, dst: Float32Array, at: number): void {
  if (c0 === 0 && nc === ld) {
    dst.set(src.subarray(r0 * ld, (r0 + nr) * ld), at);
    return;
  }
  for (let r = 0; r < nr; r++) {
    const s = (r0 + r) * ld + c0;
    dst.set(src.subarray(s, s + nc), at + r * nc);
  }
}

/** The inverse of stage(): packed src[at…] back into rows r0:+nr, columns c0:+nc of dst. */
function unstage(src: Float32Array, at: number, dst: Float32Array, ld: number, r0: number, nr: number, c0: number, nc: number): void {
  if (c0 === 0 && nc === ld) {
    dst.set(src.subarray(at, at + nr * nc), r0 * ld);
    return;
  }
  for (let r = 0; r < nr; r++) dst.set(src.subarray(at + r * nc, at + (r + 1) * nc), (r0 + r) * ld + c0);
}

/**
 * The kernel gemm() installs on its first large Float32 product: CAFFE_TS_GEMM=js (in the
 * environment, where there is one) keeps the JS path, =wasm-simd or =wasm-relaxed-simd pins
 * a build, anything else picks the best build this engine runs. Null means "stay on JS".
 */
export function defaultFloat32GemmKernel(): { kernel: GemmKernel; name: string } | null {
  const choice = defaultWasmChoice();
  if (choice === 'js') return null;
  const kernel = createWasmGemmKernel({ relaxed: choice });
  return kernel ? { kernel, name: kernel.name } : null;
}

/**
 * CAFFE_TS_GEMM (in the environment, where there is one) as a choice of build: 'js' for no
 * WebAssembly, false for the plain SIMD build, true for relaxed SIMD, undefined for the best.
 */
export function defaultWasmChoice(): 'js' | boolean | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const choice = env?.CAFFE_TS_GEMM?.trim().toLowerCase();
  if (choice === 'js') return 'js';
  return choice === 'wasm-simd' ? false : choice === 'wasm-relaxed-simd' ? true : undefined;
}
