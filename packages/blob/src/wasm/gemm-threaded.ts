// A float32 GEMM split across the kernel threads (threads.ts), or run on the calling thread in
// the shared memory when an operand already lives there (host-memory.ts, the 'wasm' allocator).
//
// op(A), op(B) and C are used in place when they are views of the shared memory, else staged
// there. With two or more threads ready, they run the module's cooperative gemm_mt together
// (scripts/gemm-wat.mjs, emitGemmMt): each block of op(B) is packed once into buffers they all
// read, and the work on it is handed out in small tasks from an atomic counter, so a thread that
// is held up (the caller staging operands, or another process on its core) just takes fewer
// tasks instead of making the others wait at the end. The caller stages op(B) first, starts the
// workers (they pack B meanwhile) and stages op(A) and C while they do, the workers' rows first
// (they start on those as soon as they are in); at the end it copies the rows of C that are
// finished while the others complete their last tasks.
//
// Without ready workers (they are still starting), or with CAFFE_TS_GEMM_COOP=off, the static
// split below runs instead: each thread runs the module's blocked GEMM on its own contiguous
// slab of C with its own packing buffers: row slabs aligned to the micro-tile height MR when C has at least as many
// tiles down as across, else column slabs aligned to NR. A thread packs the whole of op(B) (row
// split) or op(A) (column split) for itself; that costs K·N (or M·K) copies per thread against
// M·N·K/T multiply-adds, which is small once a product is worth splitting (packing B is a plain
// row copy, which is why rows are preferred).
//
// Staging runs on the calling thread only (workers cannot read its arrays), and copies into
// shared memory are slower than plain memcpy. So for the common row split with A stored
// untransposed, the caller stages only what the workers read (op(B), their rows of A and C),
// starts them, and stages its own rows while they already compute; it copies its rows of C
// out before waiting for them, and takes a slightly smaller slab to make up for that copying.
import { activeThreads, engine, type Engine } from './threads.js';

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
 * Copying one float into or out of the shared memory costs about as much time as this many
 * floating-point operations of the kernel (measured: ~12 GB/s against ~45 GFLOP/s per thread);
 * used to shrink the calling thread's slab by the copying it does while the workers compute.
 */
const COPY_FLOPS_PER_FLOAT = 15;

/**
 * CAFFE_TS_GEMM_COOP=off (in the environment, where there is one) keeps threaded products on the
 * static slab split below instead of the cooperative gemm_mt (read per call: for comparisons).
 */
export function coopEnabled(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.CAFFE_TS_GEMM_COOP?.trim().toLowerCase() !== 'off';
}

/** Floating-point operations a cooperative task aims at: about 0.2 ms on one core. */
const TASK_FLOPS = 8e6;
/** Tasks per thread and k-block at least, so that uneven progress evens out. */
const TASKS_PER_THREAD = 4;
/** B panels per chunk a thread claims and packs. */
const B_PANELS_PER_GRAB = 4;
/** Most bytes of packed B buffers a cooperative product keeps (at least two buffers). */
const MAX_B_BUFFER_BYTES = 16 << 20;

/** How the cooperative GEMM cuts its work (see gemm_mt in scripts/gemm-wat.mjs). */
export interface CoopPlan {
  /** Rows of op(A) per task: a multiple of MR, at most MC. */
  mcT: number;
  /** Column chunks (whole pairs of NR-wide panels) of a block (tasks = ceil(M / mcT) · nJ). */
  nJ: number;
  /** (jc, pc) blocks: ceil(N / NC) · ceil(K / KC). */
  blocks: number;
  /** Floats of one packed B buffer: min(KC, K) · min(NC, N) rounded up to NR. */
  bFloats: number;
}

/** The task shape of a cooperative product on T threads (pure: exported for tests). */
export function coopPlan(T: number, M: number, N: number, K: number, blk: Blocking): CoopPlan {
  const { MR, NR, MC, KC, NC } = blk;
  const want = TASKS_PER_THREAD * T;
  let mcT = MC;
  // Fewer row blocks than threads: thinner ones (not below 32 rows, where a B micro-panel would
  // be reused too little); more tasks come from cutting the columns.
  if (Math.ceil(M / MC) < T) mcT = Math.min(MC, Math.max(Math.min(32, roundUp(M, MR)), roundUp(Math.ceil(M / T), MR)));
  const nIc = Math.ceil(M / mcT);
  const nc = Math.min(NC, N), kc = Math.min(KC, K);
  const panels = Math.ceil(nc / NR);
  // Chunks are whole pairs of panels (64-byte lines of C are never written by two threads).
  const units = Math.ceil(panels / 2);
  const nJ = Math.max(1, Math.min(units, Math.max(Math.ceil((2 * mcT * nc * kc) / TASK_FLOPS), Math.ceil(want / nIc))));
  return { mcT, nJ, blocks: Math.ceil(N / NC) * Math.ceil(K / KC), bFloats: kc * panels * NR };
}

/**
 * Slab boundaries over `extent` rows (or columns) for `parts` threads, whole units (MR or NR)
 * each, thread 0's share scaled by `callerWeight` (≤ 1) against the others. Returns parts + 1
 * increasing offsets from 0 to extent; empty slabs are dropped by the caller.
 */
export function splitSlabs(extent: number, parts: number, unit: number, callerWeight = 1): number[] {
  const units = Math.ceil(extent / unit);
  const share = units / (callerWeight + parts - 1);
  const bounds = [0];
  let acc = 0;
  for (let t = 0; t < parts; t++) {
    acc += t === 0 ? share * callerWeight : share;
    const u = t === parts - 1 ? units : Math.min(units, Math.round(acc));
    bounds.push(Math.min(extent, u * unit));
  }
  return bounds;
}

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
  const ready = T > 1 ? Math.min(T, activeThreads()) : 1;
  if (ready > 1 && coopEnabled()) {
    coop(e, ready, relaxed, blk, transA, transB, M, N, K, alpha, A, B, beta, C, oA, oB, oC);
    return true;
  }
  // Split the side with more micro-tiles so that every thread gets whole tiles.
  const byCols = N / NR > M / MR;
  const unit = byCols ? NR : MR, extent = byCols ? N : M;
  // Overlapped staging (see the header): row slabs of an untransposed, staged A.
  const overlap = T > 1 && !byCols && !transA && oA < 0;
  const callerCopies = overlap ? K + (oC < 0 ? N * (beta !== 0 ? 2 : 1) : 0) : 0;
  const callerWeight = (2 * N * K) / (2 * N * K + COPY_FLOPS_PER_FLOAT * callerCopies);
  const bounds = splitSlabs(extent, Math.min(T, Math.ceil(extent / unit)), unit, callerWeight);
  const slabs: Array<[number, number]> = [];
  for (let t = 0; t + 1 < bounds.length; t++) if (bounds[t + 1]! > bounds[t]!) slabs.push([bounds[t]!, bounds[t + 1]! - bounds[t]!]);
  const parts = slabs.length;
  const widest = Math.max(...slabs.map(([, len]) => len));
  const kc = Math.min(KC, K);
  const mSpan = byCols ? M : widest, nSpan = byCols ? widest : N;
  const packA = align(4 * Math.min(MC, roundUp(mSpan, MR)) * kc);
  const packB = align(4 * kc * Math.min(NC, roundUp(nSpan, NR)));
  const work = packA + packB + align(4 * MR * NR);
  const bytes = parts * work + (oA < 0 ? align(4 * M * K) : 0) + (oB < 0 ? align(4 * K * N) : 0) + (oC < 0 ? 4 * M * N : 0);
  const { base, f32 } = e.scratch(bytes, 'gemm (threads)');
  let p = base + parts * work;
  const reserve = (o: number, n: number): number => {
    if (o >= 0) return o;
    const at = p;
    p += align(4 * n);
    return at;
  };
  const pA = reserve(oA, M * K);
  const pB = reserve(oB, K * N);
  const pC = reserve(oC, M * N);
  const stageA = oA < 0, stageB = oB < 0, stageC = oC < 0 && beta !== 0;
  const lda = transA ? M : K, ldb = transB ? K : N;
  const lists = e.lists(parts, relaxed);
  for (let t = 0; t < parts; t++) {
    const w = base + t * work;
    const [s0, len] = slabs[t]!;
    if (byCols) {
      lists[t]!.gemm(transA ? 1 : 0, transB ? 1 : 0, M, len, K, alpha, pA, lda,
        pB + 4 * (transB ? s0 * ldb : s0), ldb, beta, pC + 4 * s0, N, w, w + packA, w + packA + packB);
    } else {
      lists[t]!.gemm(transA ? 1 : 0, transB ? 1 : 0, len, N, K, alpha, pA + 4 * (transA ? s0 : s0 * lda), lda,
        pB, ldb, beta, pC + 4 * s0 * N, N, w, w + packA, w + packA + packB);
    }
  }
  const copyIn = (src: Float32Array, at: number, from: number, to: number) => f32.set(src.subarray(from, to), (at >> 2) + from);
  if (stageB) copyIn(B, pB, 0, K * N);
  if (!overlap) {
    if (stageA) copyIn(A, pA, 0, M * K);
    if (stageC) copyIn(C, pC, 0, M * N);
    e.run(lists, 'gemm (threads)');
    if (oC < 0) C.set(e.views().f32.subarray(pC >> 2, (pC >> 2) + M * N));
    return true;
  }
  // Row slabs, A untransposed and staged: the workers' rows first, the caller's once they run.
  const r0 = slabs[0]![1];
  copyIn(A, pA, r0 * K, M * K);
  if (stageC) copyIn(C, pC, r0 * N, M * N);
  e.run(lists, 'gemm (threads)', {
    beforeOwn: () => {
      copyIn(A, pA, 0, r0 * K);
      if (stageC) copyIn(C, pC, 0, r0 * N);
    },
    afterOwn: () => {
      if (oC < 0) C.set(e.views().f32.subarray(pC >> 2, (pC >> 2) + r0 * N));
    },
  });
  if (oC < 0) C.set(e.views().f32.subarray((pC >> 2) + r0 * N, (pC >> 2) + M * N), r0 * N);
  return true;
}

/** The cooperative GEMM on T ready threads (operands at byte offsets oA, oB, oC, or -1: staged). */
function coop(
  e: Engine, T: number, relaxed: boolean, blk: Blocking,
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
  oA: number, oB: number, oC: number,
): void {
  const { MR, NR, KC } = blk;
  const plan = coopPlan(T, M, N, K, blk);
  const kc = Math.min(KC, K);
  const packA = align(4 * plan.mcT * kc), scratch = align(4 * MR * NR);
  const perThread = packA + scratch;
  const bBytes = align(4 * plan.bFloats);
  const nIc = Math.ceil(M / plan.mcT);
  const maxChunks = Math.ceil(plan.bFloats / (kc * NR) / B_PANELS_PER_GRAB);
  const tasks = nIc * plan.nJ;
  // One B buffer per k block where that fits MAX_B_BUFFER_BYTES (then no thread ever waits for
  // a buffer to be free), at least two.
  const nbuf = Math.min(plan.blocks, Math.max(2, Math.floor(MAX_B_BUFFER_BYTES / bBytes)));
  const rowDoneAt = 192 + 64 * (T + 3) * plan.blocks;
  const flagsAt = rowDoneAt + 4 * nIc;
  const taskFlagsAt = flagsAt + 2 * maxChunks * plan.blocks;
  const syncBytes = align(taskFlagsAt + tasks * plan.blocks);
  const bytes = syncBytes + nbuf * bBytes + T * perThread +
    (oA < 0 ? align(4 * M * K) : 0) + (oB < 0 ? align(4 * K * N) : 0) + (oC < 0 ? 4 * M * N : 0);
  const { base, i32, f32 } = e.scratch(bytes, 'gemm (threads)');
  const sync = base, packB0 = base + syncBytes;
  let p = packB0 + nbuf * bBytes + T * perThread;
  const reserve = (o: number, n: number): number => {
    if (o >= 0) return o;
    const at = p;
    p += align(4 * n);
    return at;
  };
  const pA = reserve(oA, M * K), pB = reserve(oB, K * N), pC = reserve(oC, M * N);
  i32.fill(0, sync >> 2, (sync + syncBytes) >> 2);
  i32[(sync + 128) >> 2] = sync + rowDoneAt;
  i32[(sync + 132) >> 2] = sync + flagsAt;
  i32[(sync + 140) >> 2] = nbuf;
  i32[(sync + 144) >> 2] = sync + taskFlagsAt;
  i32[(sync + 136) >> 2] = maxChunks;
  const lda = transA ? M : K, ldb = transB ? K : N;
  const lists = e.lists(T, relaxed);
  for (let t = 0; t < T; t++) {
    const w = packB0 + nbuf * bBytes + t * perThread;
    lists[t]!.gemmMt(transA ? 1 : 0, transB ? 1 : 0, M, N, K, alpha, pA, lda, pB, ldb, beta, pC, N,
      w, packB0, bBytes, w + packA, sync, T, plan.mcT, plan.nJ,
      // bit 16: the thread may sleep while it waits (workers always; the caller where allowed);
      // bits 17+: its index (its segment of the tasks; the caller's is segment 0)
      B_PANELS_PER_GRAB | (t > 0 || e.callerMayBlock ? 1 << 16 : 0) | (t << 17), e.errorWordAt);
  }
  // op(B) first: the workers pack it while the caller stages op(A) and C, row block by row
  // block from the last (the workers' segments come after the caller's), counting them in the
  // staged word (the second line of the sync words): a task starts once its rows are there.
  if (oB < 0) f32.set(B.subarray(0, K * N), pB >> 2);
  const staged = (sync + 64) >> 2;
  const stageLater = oA < 0 || (oC < 0 && beta !== 0);
  if (!stageLater) i32[staged] = nIc;
  // Rows of C to copy back: those whose last-block tasks are all done once the caller has run
  // out of tasks are copied while the others finish, the rest after the join.
  const copied = oC < 0 ? new Uint8Array(nIc) : null;
  const copyRows = (ic: number) => {
    const r0 = ic * plan.mcT, r1 = Math.min(M, r0 + plan.mcT);
    C.set(f32.subarray((pC >> 2) + r0 * N, (pC >> 2) + r1 * N), r0 * N);
  };
  e.run(lists, 'gemm (threads)', {
    beforeOwn: () => {
      if (!stageLater) return;
      // op(A) rows are rows of A only untransposed; a transposed A goes in at once.
      if (oA < 0 && transA) f32.set(A.subarray(0, M * K), pA >> 2);
      for (let ic = nIc - 1; ic >= 0; ic--) {
        const r0 = ic * plan.mcT, r1 = Math.min(M, r0 + plan.mcT);
        if (oA < 0 && !transA) f32.set(A.subarray(r0 * K, r1 * K), (pA >> 2) + r0 * K);
        if (oC < 0 && beta !== 0) f32.set(C.subarray(r0 * N, r1 * N), (pC >> 2) + r0 * N);
        Atomics.store(i32, staged, nIc - ic);
        Atomics.notify(i32, staged);
      }
    },
    afterOwn: () => {
      if (!copied) return;
      const rowDone = (sync + rowDoneAt) >> 2;
      for (let ic = 0; ic < nIc; ic++) {
        // final once the last k block of every column block is done on these rows
        if (Atomics.load(i32, rowDone + ic) === plan.nJ * Math.ceil(N / blk.NC)) {
          copyRows(ic);
          copied[ic] = 1;
        }
      }
    },
  });
  if (copied) for (let ic = 0; ic < nIc; ic++) if (!copied[ic]) copyRows(ic);
}
