// A batched 2-D convolution pass (conv-wasm.ts's Conv2dPass) split across the kernel threads
// by images: each thread unfolds, multiplies and folds back its own contiguous range of images
// with its own column, GEMM-side and packing buffers, and accumulates weight and bias gradients
// into private buffers that the calling thread sums at the end. Images already in the shared
// memory (blobs of the 'wasm' host allocator) are used in place; others go in once and come back
// once, in super-chunks that bound the staged floats. With T = 1 it is conv-wasm.ts's in-place
// path on the calling thread. With `implicit` the GEMMs that read im2col(colIn) pack their B
// panels from the images themselves (transB = 2 and 3, see conv-wasm.ts): no columns for colIn.
import { engine, MAX_COMMANDS, Op } from './threads.js';
import type { Blocking } from './gemm-threaded.js';
import type { Conv2dPass } from './conv-wasm.js';

const align = (bytes: number) => Math.ceil(bytes / 64) * 64;
/** i32 fields of the implicit-im2col geometry the GEMM reads (emitPackIm2col in gemm-wat.mjs). */
export const IM2COL_DESC_INTS = 12;
/**
 * The implicit-im2col geometry (IM2COL_DESC_INTS i32) that "gemm" with transB = 2 reads at its
 * pB: H, W, bytes of one group's channels of an image (Cg·H·W·4), KW, SH, SW, OH, OW, the row
 * table's byte address, bytes per channel plane, bytes per image (all C channels), OH·OW. Its
 * ldb is then the group's first image plane.
 */
export function im2colDesc(C: number, Cg: number, H: number, W: number, KW: number, SH: number, SW: number, OH: number, OW: number, pRows: number): number[] {
  return [H, W, 4 * Cg * H * W, KW, SH, SW, OH, OW, pRows, 4 * H * W, 4 * C * H * W, OH * OW];
}
/** i32 per row of the implicit im2col's row table. */
export const IM2COL_ROW_INTS = 8;
/**
 * The implicit im2col's row table for the `Cg` channels of one group: per column-matrix row
 * (c·KH + kh)·KW + kw IM2COL_ROW_INTS i32: the byte offset of its window origin
 * (c·H·W + hOff·W + wOff)·4, hOff, wOff, then the output rows [ohLo, ohHi) and columns
 * [owLo, owHi) whose window element lies inside the image, from the window `table` (3 i32 per
 * kernel row, then per kernel column: offset, lo, hi).
 */
export function im2colRows(Cg: number, H: number, W: number, KH: number, KW: number, table: Int32Array): Int32Array {
  const rows = new Int32Array(IM2COL_ROW_INTS * Cg * KH * KW);
  let r = 0;
  for (let c = 0; c < Cg; c++) {
    for (let kh = 0; kh < KH; kh++) {
      const hOff = table[3 * kh]!;
      for (let kw = 0; kw < KW; kw++, r += IM2COL_ROW_INTS) {
        const wOff = table[3 * (KH + kw)]!;
        rows[r] = 4 * (c * H * W + hOff * W + wOff);
        rows[r + 1] = hOff;
        rows[r + 2] = wOff;
        rows[r + 3] = table[3 * kh + 1]!;
        rows[r + 4] = table[3 * kh + 2]!;
        rows[r + 5] = table[3 * (KH + kw) + 1]!;
        rows[r + 6] = table[3 * (KH + kw) + 2]!;
      }
    }
  }
  return rows;
}

/** Most image floats (inputs and outputs) staged per super-chunk. */
const MAX_STAGED_IMAGE_FLOATS = 1 << 25;

/** The resolved geometry conv-wasm.ts has already checked. */
export interface ConvDims {
  C: number; H: number; W: number; KH: number; KW: number; SH: number; SW: number;
  OH: number; OW: number; O: number; G: number;
  /** Window table (3 i32 per kernel row, then per kernel column), as conv-wasm.ts builds it. */
  table: Int32Array;
  /** The forward product reads the images directly (implicit im2col). */
  implicit?: boolean;
  /** So does the weight gradient's. */
  implicitW?: boolean;
}

/**
 * Runs `pass` over `num` images on T threads (T = 1: on the calling thread, in the shared
 * memory), `chunk` images per GEMM at most. Arrays that are views of the shared memory (blobs of
 * the 'wasm' host allocator) are read and written in place, thread 0 accumulating straight into
 * the caller's gradients; the others are staged. Returns false (doing nothing) where the shared
 * build for `relaxed` is unavailable.
 */
export function convThreaded(
  T: number, relaxed: boolean, blk: Blocking, d: ConvDims, num: number, chunk: number, pass: Conv2dPass,
): boolean {
  const e = engine();
  if (!e || !e.has(relaxed)) return false;
  const { C, H, W, KH, KW, SH, SW, OH, OW, O, G } = d;
  const { MR, NR, MC, KC, NC } = blk;
  const { colIn, gemmIn, weights, bias, biasDiff, weightDiff, gemmOut, colOut } = pass;
  const S = OH * OW, K = (C / G) * KH * KW, m = O / G, imgIn = C * H * W, imgOut = O * S;
  // Byte offsets of the arrays already in the shared memory (-1: staged).
  const at = {
    colIn: e.offsetOf(colIn), gemmIn: e.offsetOf(gemmIn), gemmOut: e.offsetOf(gemmOut), colOut: e.offsetOf(colOut),
    weights: e.offsetOf(weights), bias: e.offsetOf(bias), weightDiff: e.offsetOf(weightDiff), biasDiff: e.offsetOf(biasDiff),
  };
  const stagedPerImage = (colIn && at.colIn < 0 ? imgIn : 0) + (colOut && at.colOut < 0 ? imgIn : 0) +
    (gemmIn && at.gemmIn < 0 ? imgOut : 0) + (gemmOut && at.gemmOut < 0 ? imgOut : 0);
  // Super-chunks bound the staged image floats; with nothing to stage, one covers every image.
  const superN = stagedPerImage === 0 ? num : Math.max(T, Math.min(num, Math.floor(MAX_STAGED_IMAGE_FLOATS / stagedPerImage)));
  const share = Math.ceil(Math.min(num, superN) / T);
  const nb0 = Math.max(1, Math.min(chunk, share));
  const Nmax = nb0 * S;

  // Per thread: packing buffers, edge tile, columns, GEMM-side rows, private dW and dB (thread 0
  // uses the caller's own gradients when they are in the shared memory).
  const packA = align(4 * Math.min(MC, Math.ceil(Math.max(m, K) / MR) * MR) * KC);
  const packB = align(4 * KC * Math.min(NC, Math.ceil(Math.max(Nmax, K) / NR) * NR));
  const direct = !!d.implicit, directW = direct && !!d.implicitW;
  // transB = 3 (the implicit weight gradient) unfolds NR lines of KC floats past the edge tile.
  const tile = align(4 * MR * NR + (directW ? 4 * NR * KC : 0));
  const unfold = !!colIn && ((!!gemmOut && !direct) || (!!weightDiff && !directW));
  const col = unfold || colOut ? align(4 * K * G * Nmax) : 0;
  const rows = align(4 * O * Nmax);
  const dW = weightDiff ? align(4 * O * K) : 0;
  const dB = biasDiff ? align(4 * O) : 0;
  const work = packA + packB + tile + col + rows + dW + dB;
  const imgBytes = (resident: boolean, present: unknown, n: number) => (present && !resident ? align(4 * superN * n) : 0);
  const K3 = direct ? IM2COL_ROW_INTS * K : 0;
  const bytes = T * work + align(4 * d.table.length) + align(4 * IM2COL_DESC_INTS) + align(4 * K3) + (at.weights < 0 ? align(4 * O * K) : 0) + (bias && at.bias < 0 ? align(4 * O) : 0) +
    imgBytes(at.colIn >= 0, colIn, imgIn) + imgBytes(at.colOut >= 0, colOut, imgIn) +
    imgBytes(at.gemmIn >= 0, gemmIn, imgOut) + imgBytes(at.gemmOut >= 0, gemmOut, imgOut);
  const scratch = e.scratch(bytes, 'convolution (threads)');
  const base = scratch.base;
  let { f32, i32 } = scratch;
  let p = base + T * work;
  const take = (n: number) => {
    const q = p;
    p += n;
    return q;
  };
  const pTab = take(align(4 * d.table.length));
  const pDesc = take(align(4 * IM2COL_DESC_INTS));
  const pRows = take(align(4 * K3));
  const pW = at.weights >= 0 ? at.weights : take(align(4 * O * K));
  const pBias = !bias ? 0 : at.bias >= 0 ? at.bias : take(align(4 * O));
  const pXin = at.colIn >= 0 ? at.colIn : take(imgBytes(false, colIn, imgIn));
  const pXout = at.colOut >= 0 ? at.colOut : take(imgBytes(false, colOut, imgIn));
  const pYin = at.gemmIn >= 0 ? at.gemmIn : take(imgBytes(false, gemmIn, imgOut));
  const pYout = at.gemmOut >= 0 ? at.gemmOut : take(imgBytes(false, gemmOut, imgOut));
  // Staged image buffers hold one super-chunk (image s0 at index 0); resident ones hold them all.
  const img = (resident: boolean, ptr: number, s0: number, n: number) => (resident ? ptr + 4 * s0 * n : ptr);

  i32.set(d.table, pTab >> 2);
  if (direct) {
    i32.set(im2colDesc(C, C / G, H, W, KW, SH, SW, OH, OW, pRows), pDesc >> 2);
    i32.set(im2colRows(C / G, H, W, KH, KW, d.table), pRows >> 2);
  }
  if (at.weights < 0) f32.set(weights.subarray(0, O * K), pW >> 2);
  if (bias && at.bias < 0) f32.set(bias.subarray(0, O), pBias >> 2);
  const wsOf = (t: number) => {
    const w = base + t * work;
    const q = { packA: w, packB: w + packA, tile: w + packA + packB, col: w + packA + packB + tile };
    return {
      ...q,
      rows: q.col + col,
      dW: t === 0 && at.weightDiff >= 0 ? at.weightDiff : q.col + col + rows,
      dB: t === 0 && at.biasDiff >= 0 ? at.biasDiff : q.col + col + rows + dW,
    };
  };
  // Thread 0 accumulates onto the caller's gradients; the others start from zero.
  for (let t = 0; t < T; t++) {
    const ws = wsOf(t);
    if (weightDiff) {
      if (t > 0) f32.fill(0, ws.dW >> 2, (ws.dW >> 2) + O * K);
      else if (at.weightDiff < 0) f32.set(weightDiff.subarray(0, O * K), ws.dW >> 2);
    }
    if (biasDiff) {
      if (t > 0) f32.fill(0, ws.dB >> 2, (ws.dB >> 2) + O);
      else if (at.biasDiff < 0) f32.set(biasDiff.subarray(0, O), ws.dB >> 2);
    }
  }

  const commandsPerBlock = (unfold ? 1 : 0) + (gemmIn ? (biasDiff ? 2 : 1) : 0) + (weightDiff ? G : 0)
    + (gemmOut ? G + 1 : 0) + (colOut ? G + 2 : 0);
  for (let s0 = 0; s0 < num; s0 += superN) {
    const sn = Math.min(superN, num - s0);
    if (colIn && at.colIn < 0) f32.set(colIn.subarray(s0 * imgIn, (s0 + sn) * imgIn), pXin >> 2);
    if (gemmIn && at.gemmIn < 0) f32.set(gemmIn.subarray(s0 * imgOut, (s0 + sn) * imgOut), pYin >> 2);
    const xin = img(at.colIn >= 0, pXin, s0, imgIn), xout = img(at.colOut >= 0, pXout, s0, imgIn);
    const yin = img(at.gemmIn >= 0, pYin, s0, imgOut), yout = img(at.gemmOut >= 0, pYout, s0, imgOut);
    const per = Math.ceil(sn / T);
    const parts = Math.ceil(sn / per);
    // A thread's command list has room for MAX_COMMANDS calls: a long batch (many images, many
    // groups) runs as several jobs of at most `blocksPerJob` image blocks per thread.
    const blocksPerThread = Math.ceil(per / nb0);
    const blocksPerJob = Math.max(1, Math.floor(MAX_COMMANDS / commandsPerBlock));
    for (let r0 = 0; r0 < blocksPerThread; r0 += blocksPerJob) {
      const lists = e.lists(parts, relaxed);
      for (let t = 0; t < parts; t++) {
        const L = lists[t]!, ws = wsOf(t);
        const a = t * per, b = Math.min(sn, a + per);
        const from = a + r0 * nb0, to = Math.min(b, a + (r0 + blocksPerJob) * nb0);
        for (let n0 = from; n0 < to; n0 += nb0) {
          const nb = Math.min(nb0, b - n0), N = nb * S;
          if (unfold) L.call(Op.Im2col, xin + 4 * n0 * imgIn, nb, C, H, W, KH, KW, SH, SW, OH, OW, pTab, ws.col);
          if (gemmIn) {
            L.call(Op.Gather, yin + 4 * n0 * imgOut, O, nb, S, ws.rows);
            if (biasDiff) L.call(Op.Rowsum, ws.rows, O, N, ws.dB);
          }
          if (weightDiff) {
            for (let q = 0; q < G; q++) {
              if (directW) {
                L.gemm(0, 3, m, K, N, 1, ws.rows + 4 * q * m * N, N, pDesc, xin + 4 * (n0 * imgIn + q * (C / G) * H * W), 1, ws.dW + 4 * q * m * K, K, ws.packA, ws.packB, ws.tile);
              } else {
                L.gemm(0, 1, m, K, N, 1, ws.rows + 4 * q * m * N, N, ws.col + 4 * q * K * N, N, 1, ws.dW + 4 * q * m * K, K, ws.packA, ws.packB, ws.tile);
              }
            }
          }
          if (gemmOut) {
            for (let q = 0; q < G; q++) {
              if (direct) {
                L.gemm(0, 2, m, N, K, 1, pW + 4 * q * m * K, K, pDesc, xin + 4 * (n0 * imgIn + q * (C / G) * H * W), 0, ws.rows + 4 * q * m * N, N, ws.packA, ws.packB, ws.tile);
              } else {
                L.gemm(0, 0, m, N, K, 1, pW + 4 * q * m * K, K, ws.col + 4 * q * K * N, N, 0, ws.rows + 4 * q * m * N, N, ws.packA, ws.packB, ws.tile);
              }
            }
            L.call(Op.Scatter, ws.rows, O, nb, S, yout + 4 * n0 * imgOut, bias ? 1 : 0, pBias);
          }
          if (colOut) {
            for (let q = 0; q < G; q++) {
              L.gemm(1, 0, K, N, m, 1, pW + 4 * q * m * K, K, ws.rows + 4 * q * m * N, N, 0, ws.col + 4 * q * K * N, N, ws.packA, ws.packB, ws.tile);
            }
            L.call(Op.Zero, xout + 4 * n0 * imgIn, nb * imgIn);
            L.call(Op.Col2im, ws.col, nb, C, H, W, KH, KW, SH, SW, OH, OW, pTab, xout + 4 * n0 * imgIn);
          }
        }
      }
      e.run(lists, 'convolution (threads)');
    }
    ({ f32, i32 } = e.views());
    if (gemmOut && at.gemmOut < 0) gemmOut.set(f32.subarray(pYout >> 2, (pYout >> 2) + sn * imgOut), s0 * imgOut);
    if (colOut && at.colOut < 0) colOut.set(f32.subarray(pXout >> 2, (pXout >> 2) + sn * imgIn), s0 * imgIn);
  }

  // Sum the private gradients into thread 0's and hand them back (unless they are the caller's).
  const w0 = wsOf(0);
  if (weightDiff) {
    const acc = f32.subarray(w0.dW >> 2, (w0.dW >> 2) + O * K);
    for (let t = 1; t < T; t++) {
      const src = f32.subarray(wsOf(t).dW >> 2, (wsOf(t).dW >> 2) + O * K);
      for (let i = 0; i < O * K; i++) acc[i] = acc[i]! + src[i]!;
    }
    if (at.weightDiff < 0) weightDiff.set(acc);
  }
  if (biasDiff) {
    const acc = f32.subarray(w0.dB >> 2, (w0.dB >> 2) + O);
    for (let t = 1; t < T; t++) {
      const src = f32.subarray(wsOf(t).dB >> 2, (wsOf(t).dB >> 2) + O);
      for (let i = 0; i < O; i++) acc[i] = acc[i]! + src[i]!;
    }
    if (at.biasDiff < 0) biasDiff.set(acc);
  }
  return true;
}
