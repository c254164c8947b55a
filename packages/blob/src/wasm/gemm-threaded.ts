// A float32 GEMM split across the kernel threads (threads.ts), or run on the calling thread in
// the shared memory when an operand already lives there (host-memory.ts, the 'wasm' allocator).
//
// op(A), op(B) and C are used in place when they are views of the shared memory, else staged
// once there; each thread then runs the module's
// blocked GEMM on its own slab of C with its own packing buffers: column slabs aligned to the
// micro-tile width NR when C is wide enough, else row slabs aligned to MR. A thread packs the
// whole of op(A) (column split) or op(B) (row split) for itself; that costs M·K (or K·N) copies
// per thread against M·N·K/T multiply-adds, which is small once a product is worth splitting.
import { engine, type Engine } from './threads.js';

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;
const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** Blocking the module was generated with (scripts/gemm-wat.mjs). */
export interface Blocking {
  MR: number;
  NR: number;
  MC: number;
  KC: number;
  NC: number;
}

/** Most floats a threaded GEMM stages (A, B and C together); larger products stay on one thread. */
export const MAX_THREADED_STAGED_FLOATS = 1 << 26;

/**
 * C ← alpha·op(A)·op(B) + beta·C on T threads (T = 1: on the calling thread, in the shared
 * memory). Operands that are views of the shared memory (blobs of the 'wasm' host allocator) are
 * used in place; the others are staged in the jobs' scratch block and C copied back. Returns
 * false (doing nothing) where the shared build for `relaxed` is unavailable or the operands to
 * stage are too large.
 */
export function gemmThreaded(
  T: number, relaxed: boolean, blk: Blocking,
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
): boolean {
  const e: Engine | null = engine();
  if (!e || !e.has(relaxed)) return false;
  const oA = e.offsetOf(A), oB = e.offsetOf(B);
  let oC = e.offsetOf(C);
  // C written in place must not overlap what the kernel still reads (BLAS forbids it; staging C
  // keeps such a call correct as before).
  const overlaps = (o: number, n: number) => o >= 0 && oC < o + 4 * n && o < oC + 4 * M * N;
  if (oC >= 0 && (overlaps(oA, M * K) || overlaps(oB, K * N))) oC = -1;
  const staged = (oA < 0 ? M * K : 0) + (oB < 0 ? K * N : 0) + (oC < 0 ? M * N : 0);
  if (staged > MAX_THREADED_STAGED_FLOATS) return false;
  const { MR, NR, MC, KC, NC } = blk;
  // Split the wider side (in micro-tiles) so that every thread gets whole tiles.
  const byCols = N / NR >= M / MR;
  const unit = byCols ? NR : MR, extent = byCols ? N : M;
  const per = roundUp(Math.ceil(extent / T), unit);
  const parts = Math.ceil(extent / per);
  const kc = Math.min(KC, K);
  const mSpan = byCols ? M : per, nSpan = byCols ? per : N;
  const packA = align(4 * Math.min(MC, roundUp(mSpan, MR)) * kc);
  const packB = align(4 * kc * Math.min(NC, roundUp(nSpan, NR)));
  const work = packA + packB + align(4 * MR * NR);
  const bytes = parts * work + (oA < 0 ? align(4 * M * K) : 0) + (oB < 0 ? align(4 * K * N) : 0) + (oC < 0 ? 4 * M * N : 0);
  const { base, f32 } = e.scratch(bytes, 'gemm (threads)');
  let p = base + parts * work;
  const place = (o: number, src: Float32Array, n: number, copy: boolean): number => {
    if (o >= 0) return o;
    const at = p;
    if (copy) f32.set(src.subarray(0, n), at >> 2);
    p += align(4 * n);
    return at;
  };
  const pA = place(oA, A, M * K, true);
  const pB = place(oB, B, K * N, true);
  const pC = place(oC, C, M * N, beta !== 0);
  const lda = transA ? M : K, ldb = transB ? K : N;
  const lists = e.lists(parts, relaxed);
  for (let t = 0; t < parts; t++) {
    const w = base + t * work;
    const s0 = t * per, len = Math.min(per, extent - s0);
    if (byCols) {
      lists[t]!.gemm(transA ? 1 : 0, transB ? 1 : 0, M, len, K, alpha, pA, lda,
        pB + 4 * (transB ? s0 * ldb : s0), ldb, beta, pC + 4 * s0, N, w, w + packA, w + packA + packB);
    } else {
      lists[t]!.gemm(transA ? 1 : 0, transB ? 1 : 0, len, N, K, alpha, pA + 4 * (transA ? s0 : s0 * lda), lda,
        pB, ldb, beta, pC + 4 * s0 * N, N, w, w + packA, w + packA + packB);
    }
  }
  e.run(lists, 'gemm (threads)');
  if (oC < 0) C.set(e.views().f32.subarray(pC >> 2, (pC >> 2) + M * N));
  return true;
}
