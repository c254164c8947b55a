// A batched 2-D convolution pass (conv-wasm.ts's Conv2dPass) split across the kernel threads
// by images: each thread unfolds, multiplies and folds back its own contiguous range of images
// with its own column, GEMM-side and packing buffers, and accumulates weight and bias gradients
// into private buffers that the calling thread sums at the end. The images go into the shared
// memory once and the outputs come back once, in super-chunks that bound the staged floats.
import { engine, HEAP_BASE, Op } from './threads.js';
import type { Blocking } from './gemm-threaded.js';
import type { Conv2dPass } from './conv-wasm.js';

const align = (bytes: number) => Math.ceil(bytes / 64) * 64;
/** Most image floats (inputs and outputs) staged per super-chunk. */
const MAX_STAGED_IMAGE_FLOATS = 1 << 25;

/** The resolved geometry conv-wasm.ts has already checked. */
export interface ConvDims {
  C: number; H: number; W: number; KH: number; KW: number; SH: number; SW: number;
  OH: number; OW: number; O: number; G: number;
  /** Window table (3 i32 per kernel row, then per kernel column), as conv-wasm.ts builds it. */
  table: Int32Array;
}

/**
 * Runs `pass` over `num` images on T threads, `chunk` images per GEMM at most. Returns false
 * (doing nothing) where the shared build for `relaxed` is unavailable.
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
  const perImage = (colIn ? imgIn : 0) + (colOut ? imgIn : 0) + (gemmIn ? imgOut : 0) + (gemmOut ? imgOut : 0);
  const superN = Math.max(T, Math.min(num, Math.floor(MAX_STAGED_IMAGE_FLOATS / perImage)));
  const share = Math.ceil(Math.min(num, superN) / T);
  const nb0 = Math.max(1, Math.min(chunk, share));
  const Nmax = nb0 * S;

  // Per thread: packing buffers, edge tile, columns, GEMM-side rows, private dW and dB.
  const packA = align(4 * Math.min(MC, Math.ceil(Math.max(m, K) / MR) * MR) * KC);
  const packB = align(4 * KC * Math.min(NC, Math.ceil(Math.max(Nmax, K) / NR) * NR));
  const tile = align(4 * MR * NR);
  const col = align(4 * K * G * Nmax);
  const rows = align(4 * O * Nmax);
  const dW = weightDiff ? align(4 * O * K) : 0;
  const dB = biasDiff ? align(4 * O) : 0;
  const work = packA + packB + tile + col + rows + dW + dB;
  const pTab = HEAP_BASE + T * work;
  const pW = pTab + align(4 * d.table.length);
  const pBias = pW + align(4 * O * K);
  const pXin = pBias + align(4 * O);
  const pXout = pXin + (colIn ? align(4 * superN * imgIn) : 0);
  const pYin = pXout + (colOut ? align(4 * superN * imgIn) : 0);
  const pYout = pYin + (gemmIn ? align(4 * superN * imgOut) : 0);
  const end = pYout + (gemmOut ? 4 * superN * imgOut : 0);
  let { f32, i32 } = e.heap(end - HEAP_BASE, 'convolution (threads)');

  i32.set(d.table, pTab >> 2);
  f32.set(weights.subarray(0, O * K), pW >> 2);
  if (bias) f32.set(bias.subarray(0, O), pBias >> 2);
  const wsOf = (t: number) => {
    const w = HEAP_BASE + t * work;
    const p = { packA: w, packB: w + packA, tile: w + packA + packB, col: w + packA + packB + tile };
    return { ...p, rows: p.col + col, dW: p.col + col + rows, dB: p.col + col + rows + dW };
  };
  // Thread 0 accumulates onto the caller's gradients; the others start from zero.
  for (let t = 0; t < T; t++) {
    const ws = wsOf(t);
    if (weightDiff) {
      if (t === 0) f32.set(weightDiff.subarray(0, O * K), ws.dW >> 2);
      else f32.fill(0, ws.dW >> 2, (ws.dW >> 2) + O * K);
    }
    if (biasDiff) {
      if (t === 0) f32.set(biasDiff.subarray(0, O), ws.dB >> 2);
      else f32.fill(0, ws.dB >> 2, (ws.dB >> 2) + O);
    }
  }

  for (let s0 = 0; s0 < num; s0 += superN) {
    const sn = Math.min(superN, num - s0);
    if (colIn) f32.set(colIn.subarray(s0 * imgIn, (s0 + sn) * imgIn), pXin >> 2);
    if (gemmIn) f32.set(gemmIn.subarray(s0 * imgOut, (s0 + sn) * imgOut), pYin >> 2);
    const per = Math.ceil(sn / T);
    const parts = Math.ceil(sn / per);
    const lists = e.lists(parts, relaxed);
    for (let t = 0; t < parts; t++) {
      const L = lists[t]!, ws = wsOf(t);
      const a = t * per, b = Math.min(sn, a + per);
      for (let n0 = a; n0 < b; n0 += nb0) {
        const nb = Math.min(nb0, b - n0), N = nb * S;
        if (colIn) L.call(Op.Im2col, pXin + 4 * n0 * imgIn, nb, C, H, W, KH, KW, SH, SW, OH, OW, pTab, ws.col);
        if (gemmIn) {
          L.call(Op.Gather, pYin + 4 * n0 * imgOut, O, nb, S, ws.rows);
          if (biasDiff) L.call(Op.Rowsum, ws.rows, O, N, ws.dB);
        }
        if (weightDiff) {
          for (let q = 0; q < G; q++) {
            L.gemm(0, 1, m, K, N, 1, ws.rows + 4 * q * m * N, N, ws.col + 4 * q * K * N, N, 1, ws.dW + 4 * q * m * K, K, ws.packA, ws.packB, ws.tile);
          }
        }
        if (gemmOut) {
          for (let q = 0; q < G; q++) {
            L.gemm(0, 0, m, N, K, 1, pW + 4 * q * m * K, K, ws.col + 4 * q * K * N, N, 0, ws.rows + 4 * q * m * N, N, ws.packA, ws.packB, ws.tile);
          }
          L.call(Op.Scatter, ws.rows, O, nb, S, pYout + 4 * n0 * imgOut, bias ? 1 : 0, pBias);
        }
        if (colOut) {
          for (let q = 0; q < G; q++) {
            L.gemm(1, 0, K, N, m, 1, pW + 4 * q * m * K, K, ws.rows + 4 * q * m * N, N, 0, ws.col + 4 * q * K * N, N, ws.packA, ws.packB, ws.tile);
          }
          L.call(Op.Zero, pXout + 4 * n0 * imgIn, nb * imgIn);
          L.call(Op.Col2im, ws.col, nb, C, H, W, KH, KW, SH, SW, OH, OW, pTab, pXout + 4 * n0 * imgIn);
        }
      }
    }
    e.run(lists, 'convolution (threads)');
    ({ f32, i32 } = e.heap(0, 'convolution (threads)'));
    if (gemmOut) gemmOut.set(f32.subarray(pYout >> 2, (pYout >> 2) + sn * imgOut), s0 * imgOut);
    if (colOut) colOut.set(f32.subarray(pXout >> 2, (pXout >> 2) + sn * imgIn), s0 * imgIn);
  }

  // Sum the private gradients into thread 0's and hand them back.
  const w0 = wsOf(0);
  if (weightDiff) {
    const acc = f32.subarray(w0.dW >> 2, (w0.dW >> 2) + O * K);
    for (let t = 1; t < T; t++) {
      const src = f32.subarray(wsOf(t).dW >> 2, (wsOf(t).dW >> 2) + O * K);
      for (let i = 0; i < O * K; i++) acc[i] = acc[i]! + src[i]!;
    }
    weightDiff.set(acc);
  }
  if (biasDiff) {
    const acc = f32.subarray(w0.dB >> 2, (w0.dB >> 2) + O);
    for (let t = 1; t < T; t++) {
      const src = f32.subarray(wsOf(t).dB >> 2, (wsOf(t).dB >> 2) + O);
      for (let i = 0; i < O; i++) acc[i] = acc[i]! + src[i]!;
    }
    biasDiff.set(acc);
  }
  return true;
}
