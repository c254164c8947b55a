// A float32 GEMM split across the kernel threads (threads.ts).
//
// op(A), op(B) and C are staged once in the shared memory; each thread then runs the module's
// blocked GEMM on its own slab of C with its own packing buffers: column slabs aligned to the
// micro-tile width NR when C is wide enough, else row slabs aligned to MR. A thread packs the
// whole of op(A) (column split) or op(B) (row split) for itself; that costs M·K (or K·N) copies
// per thread against M·N·K/T multiply-adds, which is small once a product is worth splitting.
import { engine, HEAP_BASE, type Engine } from './threads.js';

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
 * C ← alpha·op(A)·op(B) + beta·C on T threads. Returns false (doing nothing) where the shared
 * build for `relaxed` is unavailable or the operands are too large to stage at once.
 */
export function gemmThreaded(
  T: number, relaxed: boolean, blk: Blocking,
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
): boolean {
  const e: Engine | null = engine();
  if (!e || !e.has(relaxed) || M * K + K * N + M * N > MAX_THREADED_STAGED_FLOATS) return false;
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
  const pA = HEAP_BASE + parts * work;
  const pB = pA + align(4 * M * K);
  const pC = pB + align(4 * K * N);
  const { f32 } = e.heap(pC + 4 * M * N - HEAP_BASE, 'gemm (threads)');
  f32.set(A.subarray(0, M * K), pA >> 2);
  f32.set(B.subarray(0, K * N), pB >> 2);
  if (beta !== 0) f32.set(C.subarray(0, M * N), pC >> 2);
  const lda = transA ? M : K, ldb = transB ? K : N;
  const lists = e.lists(parts, relaxed);
  for (let t = 0; t < parts; t++) {
    const w = HEAP_BASE + t * work;
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
  C.set(e.heap(0, 'gemm (threads)').f32.subarray(pC >> 2, (pC >> 2) + M * N));
  return true;
}
