// Inference kernels in WebAssembly SIMD that the blocked GEMM serves badly (scripts/infer-wat.mjs):
// - rowdot: an inner product against row-stored weights for a few input rows (InnerProduct at
//   batch 1, where a GEMM would spend its time packing the whole weight matrix);
// - depthwise: a 2-D convolution with one filter per channel (group = channels = outputs),
//   which im2col + GEMM runs as one tiny GEMM per channel;
// - relu, affine (per-channel a·x + b, then optionally ReLU) and sum2 (c0·a + c1·b, then
//   optionally ReLU): float32 elementwise passes of inference, 4 lanes at a time.
// Operands that all live in the kernel threads' shared memory (blobs of the 'wasm' host
// allocator, host-memory.ts) are used in place by the shared build; otherwise they are copied
// into this module's own memory and the results copied back.
import { MathError } from '../math/errors.js';
import { convOutputSize } from '../math/im2col.js';
import { defaultWasmChoice, inSharedMemory } from './gemm-wasm.js';
import { decodeBase64, wasmApi, type WasmMemory } from './wasm-api.js';
import { INFER_WASM_SIMD_BASE64, INFER_WASM_SIMD_SHARED_BASE64 } from './generated/infer-wasm.js';
import type { InferModuleExports as InferExports } from './infer-exports.js';
import { engine, Op, planThreads, runShares, type CommandList, type Engine } from './threads.js';


/** Geometry of a depthwise convolution: `channels` planes of height × width, one kernelH × kernelW filter each. */
export interface DepthwiseGeometry {
  channels: number;
  height: number;
  width: number;
  kernelH: number;
  kernelW: number;
  padH: number;
  padW: number;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
}

export interface WasmInfer {
  readonly name: string;
  /**
   * y[m, n] = Σ_k x[m, k] · w[n, k] (+ bias[n]) for x M × K, w N × K (row-major), y M × N;
   * overwrites y. (The GEMM's transB product, summed in a different order.)
   */
  rowdot(M: number, N: number, K: number, x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array): void;
  /**
   * Depthwise convolution of `num` images [channels, height, width] with weights
   * [channels, kernelH, kernelW] and optional bias [channels]; overwrites y [num, channels, OH, OW].
   */
  depthwise(g: DepthwiseGeometry, num: number, x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array): void;
  /** y = max(x, 0) + slope·min(x, 0) over the first n elements (y may be x). */
  relu(x: Float32Array, y: Float32Array, n: number, slope: number): void;
  /**
   * For `outer` × `channels` planes of `spatial` elements: y = a[c]·x + b[c] (in float32), then,
   * when `relu` is a number, max(v, 0) + relu·min(v, 0). y may be x.
   */
  affine(x: Float32Array, y: Float32Array, outer: number, channels: number, spatial: number, a: Float32Array, b: Float32Array, relu: number | null): void;
  /** y = c0·a + c1·b over n elements (in float32), then the ReLU of slope `relu` when it is a number. y may be a or b. */
  sum2(a: Float32Array, b: Float32Array, y: Float32Array, n: number, c0: number, c1: number, relu: number | null): void;
  /**
   * Local Response Normalization across channels of `num` images [channels, plane]: s = k +
   * alphaOverSize · Σ x² over channels c − (size − 1)/2 … c + (size − 1)/2 (clipped), y = x · s^(−β),
   * in float32; writes s and y (y may be x). β must be one of LRN_WASM_BETAS (else MathError).
   */
  lrnAcross(x: Float32Array, s: Float32Array, y: Float32Array, num: number, channels: number, plane: number, size: number, k: number, alphaOverSize: number, beta: number): void;
  /**
   * MAX pooling of `planes` planes height × width into pooledH × pooledW (Caffe's windows: start
   * o·stride − pad, clipped to the plane, each window non-empty), values only (no argmax).
   * Each output is the largest of its window starting from −∞, NaNs never taken (Caffe's
   * `if (x > top) top = x`). Overwrites y.
   */
  maxPool(
    planes: number, height: number, width: number, pooledH: number, pooledW: number,
    kernelH: number, kernelW: number, strideH: number, strideW: number, padH: number, padW: number,
    x: Float32Array, y: Float32Array,
  ): void;
  /**
   * Global AVE pooling: y[p] = (the `size` values of plane p summed in order from 0, in float32)
   * / divisor, for `planes` planes (a window covering the whole plane with no padding: the same
   * sums as the window loops). Overwrites y.
   */
  aveGlobal(planes: number, size: number, divisor: number, x: Float32Array, y: Float32Array): void;
}

/** The β values the WebAssembly LRN computes (through square roots). */
export const LRN_WASM_BETAS: readonly number[] = [0.75, 0.5, 1];

const PAGE_BYTES = 65536;
/** Weight floats staged per block by rowdot (256 KiB: within a core's L2). */
const ROWDOT_CHUNK_FLOATS = 1 << 16;
const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** Padded scratch plane of the depthwise kernel, in bytes (as infer-wat.mjs lays it out). */
function padBytes(g: DepthwiseGeometry): number {
  return 4 * (g.height + 2 * g.padH) * (g.width + 2 * g.padW + 8);
}

function checkGeometry(g: DepthwiseGeometry, num: number): { OH: number; OW: number } {
  const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
  const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  const dims = { ...g, num, OH, OW };
  for (const [k, v] of Object.entries(dims)) {
    const min = k === 'padH' || k === 'padW' ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new MathError(`wasm depthwise: ${k} must be an integer ≥ ${min}, got ${v}`);
  }
  return { OH, OW };
}

// The shared build's instance over an engine's memory, made once per engine.
const sharedInstances = new WeakMap<Engine, InferExports | null>();
function sharedExports(e: Engine): InferExports | null {
  let ex = sharedInstances.get(e);
  if (ex === undefined) {
    const api = wasmApi()!;
    const bytes = decodeBase64(INFER_WASM_SIMD_SHARED_BASE64);
    ex = api.validate(bytes) ? (new api.Instance(new api.Module(bytes), { env: { memory: e.memory } }).exports as InferExports) : null;
    sharedInstances.set(e, ex);
  }
  return ex;
}

/** The shared build and the byte offsets of `arrays` when every one of them lives in the kernel threads' memory; else null. */
function inPlace(...arrays: (Float32Array | null)[]): { ex: InferExports; e: Engine; at: number[] } | null {
  if (!inSharedMemory(...arrays)) return null;
  const e = engine();
  if (!e) return null;
  const at = arrays.map((a) => (a ? e.offsetOf(a) : 0));
  if (at.some((o) => o < 0)) return null;
  const ex = sharedExports(e);
  return ex ? { ex, e, at } : null;
}

/**
 * Window taps (planes × outputs × window) per thread below which a pooling pass stays on the
 * calling thread: LeNet's pool1 at batch 64 (737k taps, about 0.3 ms) splits, its pool2 (205k)
 * does not.
 */
const POOL_TAPS_PER_THREAD = 2e5;

const bitsView = new Float32Array(1);
/** The bits of `v` as a float32, as an integer (for a command's integer arguments). */
const floatBits = (v: number): number => {
  bitsView[0] = v;
  return new Int32Array(bitsView.buffer)[0]!;
};

/** Kernel threads for a pass of `taps` window taps over `parts` independent parts (1: stay on the caller). */
const passThreads = (taps: number, parts: number): number => Math.max(1, planThreads(taps, parts, POOL_TAPS_PER_THREAD));

/**
 * Runs a pass split over T ≥ 2 kernel threads: thread t takes parts [cut(t), cut(t + 1)) of `n`
 * (each cut a multiple of `unit`, the last at n) and `emit(list, t, p0, p1)` writes its command;
 * the caller runs its own share. Each part is computed as on one thread, so the results are the
 * same bits. Returns false, running nothing, where neither shared build is there (or T < 2).
 */
function runSplit(e: Engine, T: number, n: number, unit: number, what: string, emit: (list: CommandList, t: number, p0: number, p1: number) => void): boolean {
  if (T < 2) return false;
  // Either build serves: pooling and LRN have no multiply-add to fuse.
  const relaxed = e.inferExports(true) ? true : e.inferExports(false) ? false : null;
  if (relaxed === null) return false;
  runShares(e, T, relaxed, n, unit, what, emit);
  return true;
}

/** A runner of the inference kernels with its own module instance and memory, or null without WebAssembly SIMD. */
export function createWasmInfer(): WasmInfer | null {
  const api = wasmApi();
  if (!api) return null;
  const bytes = decodeBase64(INFER_WASM_SIMD_BASE64);
  if (!api.validate(bytes)) return null;
  let ex: InferExports & { memory: WasmMemory };
  try {
    ex = new api.Instance(new api.Module(bytes), {}).exports as InferExports & { memory: WasmMemory };
  } catch {
    return null;
  }
  const name = 'wasm-simd';
  const memory = ex.memory;
  const heap = (bytes: number): Float32Array => {
    const have = memory.buffer.byteLength;
    if (bytes > have) {
      try {
        memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
      } catch (err) {
        throw new MathError(`${name} inference kernels: cannot grow WebAssembly memory to ${bytes} bytes (${String(err)})`);
      }
    }
    return new Float32Array(memory.buffer);
  };

  function rowdot(M: number, N: number, K: number, x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array): void {
    for (const [k, v] of [['M', M], ['N', N], ['K', K]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new MathError(`wasm rowdot: ${k} must be a positive integer, got ${v}`);
    }
    if (x.length < M * K || w.length < N * K || y.length < M * N || (bias && bias.length < N)) {
      throw new MathError(`wasm rowdot: operands too short for M=${M} N=${N} K=${K} (x ${x.length}, w ${w.length}, y ${y.length}${bias ? `, bias ${bias.length}` : ''})`);
    }
    const shared = inPlace(x, w, bias, y);
    if (shared) {
      const [px, pw, pb, py] = shared.at as [number, number, number, number];
      shared.ex.rowdot(px, M, K, pw, N, pb, bias ? 1 : 0, py, N);
      return;
    }
    if (N * K > ROWDOT_CHUNK_FLOATS) {
      // Large weights: staged a cache-sized block of rows at a time, each block used for every
      // input row while it is still in cache (the weights cross main memory once, not three times).
      const R = Math.max(4, Math.floor(ROWDOT_CHUNK_FLOATS / K / 4) * 4);
      const pX = 0, pB = align(4 * M * K), pY = align(pB + 4 * N), pW = align(pY + 4 * M * N);
      const f32 = heap(pW + 4 * R * K);
      f32.set(x.subarray(0, M * K), 0);
      if (bias) f32.set(bias.subarray(0, N), pB >> 2);
      for (let n0 = 0; n0 < N; n0 += R) {
        const rows = Math.min(R, N - n0);
        f32.set(w.subarray(n0 * K, (n0 + rows) * K), pW >> 2);
        ex.rowdot(pX, M, K, pW, rows, pB + 4 * n0, bias ? 1 : 0, pY + 4 * n0, N);
      }
      y.set(f32.subarray(pY >> 2, (pY >> 2) + M * N));
      return;
    }
    const pX = 0, pW = align(pX + 4 * M * K), pB = align(pW + 4 * N * K), pY = align(pB + 4 * N);
    const f32 = heap(pY + 4 * M * N);
    f32.set(x.subarray(0, M * K), pX >> 2);
    f32.set(w.subarray(0, N * K), pW >> 2);
    if (bias) f32.set(bias.subarray(0, N), pB >> 2);
    ex.rowdot(pX, M, K, pW, N, pB, bias ? 1 : 0, pY, N);
    y.set(f32.subarray(pY >> 2, (pY >> 2) + M * N));
  }

  function depthwise(g: DepthwiseGeometry, num: number, x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array): void {
    const { OH, OW } = checkGeometry(g, num);
    const C = g.channels, inImg = C * g.height * g.width, outImg = C * OH * OW, wLen = C * g.kernelH * g.kernelW;
    if (x.length < num * inImg || y.length < num * outImg || w.length < wLen || (bias && bias.length < C)) {
      throw new MathError(`wasm depthwise: operands too short (x ${x.length} of ${num * inImg}, y ${y.length} of ${num * outImg}, w ${w.length} of ${wLen}${bias ? `, bias ${bias.length} of ${C}` : ''})`);
    }
    const run = (k: InferExports, px: number, pw: number, pb: number, py: number, pad: number) => {
      for (let n = 0; n < num; n++) {
        k.depthwise(
          px + 4 * n * inImg, C, g.height, g.width, pw, g.kernelH, g.kernelW, g.strideH, g.strideW,
          g.padH, g.padW, g.dilationH, g.dilationW, pb, bias ? 1 : 0, py + 4 * n * outImg, OH, OW, pad,
        );
      }
    };
    const shared = inPlace(x, w, bias, y);
    if (shared) {
      const [px, pw, pb, py] = shared.at as [number, number, number, number];
      const pad = shared.e.scratch(padBytes(g), 'wasm depthwise').base;
      run(shared.ex, px, pw, pb, py, pad);
      return;
    }
    const pX = 0, pW = align(4 * num * inImg), pB = align(pW + 4 * wLen), pY = align(pB + 4 * C);
    const pPad = align(pY + 4 * num * outImg);
    const f32 = heap(pPad + padBytes(g));
    f32.set(x.subarray(0, num * inImg), pX >> 2);
    f32.set(w.subarray(0, wLen), pW >> 2);
    if (bias) f32.set(bias.subarray(0, C), pB >> 2);
    run(ex, pX, pW, pB, pY, pPad);
    y.set(f32.subarray(pY >> 2, (pY >> 2) + num * outImg));
  }

  const checkLen = (what: string, n: number, arrays: Record<string, Float32Array>) => {
    if (!Number.isInteger(n) || n < 0) throw new MathError(`wasm ${what}: element count must be a non-negative integer, got ${n}`);
    for (const [k, a] of Object.entries(arrays)) {
      if (a.length < n) throw new MathError(`wasm ${what}: ${k} has ${a.length} elements, needs ${n}`);
    }
  };

  function relu(x: Float32Array, y: Float32Array, n: number, slope: number): void {
    checkLen('relu', n, { x, y });
    if (n === 0) return;
    const shared = inPlace(x, y);
    if (shared) {
      shared.ex.relu(shared.at[0]!, shared.at[1]!, n, slope);
      return;
    }
    const f32 = heap(4 * n);
    f32.set(x.subarray(0, n), 0);
    ex.relu(0, 0, n, slope);
    y.set(f32.subarray(0, n));
  }

  function affine(x: Float32Array, y: Float32Array, outer: number, channels: number, spatial: number, a: Float32Array, b: Float32Array, reluSlope: number | null): void {
    const n = outer * channels * spatial;
    checkLen('affine', n, { x, y });
    checkLen('affine', channels, { a, b });
    if (n === 0) return;
    const r = reluSlope === null ? 0 : 1, slope = reluSlope ?? 0;
    const shared = inPlace(x, y, a, b);
    if (shared) {
      const [px, py, pa, pb] = shared.at as [number, number, number, number];
      shared.ex.affine(px, py, outer, channels, spatial, pa, pb, r, slope);
      return;
    }
    const pA = align(4 * n), pB = align(pA + 4 * channels);
    const f32 = heap(pB + 4 * channels);
    f32.set(x.subarray(0, n), 0);
    f32.set(a.subarray(0, channels), pA >> 2);
    f32.set(b.subarray(0, channels), pB >> 2);
    ex.affine(0, 0, outer, channels, spatial, pA, pB, r, slope);
    y.set(f32.subarray(0, n));
  }

  function sum2(a: Float32Array, b: Float32Array, y: Float32Array, n: number, c0: number, c1: number, reluSlope: number | null): void {
    checkLen('sum2', n, { a, b, y });
    if (n === 0) return;
    const r = reluSlope === null ? 0 : 1, slope = reluSlope ?? 0;
    const shared = inPlace(a, b, y);
    if (shared) {
      const [pa, pb, py] = shared.at as [number, number, number];
      shared.ex.sum2(pa, pb, py, n, c0, c1, r, slope);
      return;
    }
    const pB = align(4 * n);
    const f32 = heap(pB + 4 * n);
    f32.set(a.subarray(0, n), 0);
    f32.set(b.subarray(0, n), pB >> 2);
    ex.sum2(0, pB, 0, n, c0, c1, r, slope);
    y.set(f32.subarray(0, n));
  }

  function lrnAcross(x: Float32Array, s: Float32Array, y: Float32Array, num: number, channels: number, plane: number, size: number, k: number, alphaOverSize: number, beta: number): void {
    const mode = LRN_WASM_BETAS.indexOf(beta);
    if (mode < 0) throw new MathError(`wasm lrn: beta must be one of ${LRN_WASM_BETAS.join(', ')}, got ${beta}`);
    if (!Number.isInteger(size) || size < 1 || size % 2 !== 1) throw new MathError(`wasm lrn: size must be a positive odd integer, got ${size}`);
    const n = num * channels * plane;
    checkLen('lrn', n, { x, s, y });
    if (n === 0) return;
    const pre = (size - 1) / 2;
    const shared = inPlace(x, s, y);
    if (shared) {
      const [px, ps, py] = shared.at as [number, number, number];
      // Kernel threads split each plane's positions (a multiple of four each but the last); a
      // position's sums read only that position, so every output is the same bits.
      const T = passThreads(n * size, Math.floor(plane / 4));
      const qBytes = Math.ceil((4 * plane) / 64) * 64;
      const q = shared.e.scratch(T * qBytes, 'wasm lrn').base;
      // k travels as its bits among the integer arguments (a command carries one float).
      const split = runSplit(shared.e, T, plane, 4, 'wasm lrn', (list, t, p0, p1) =>
        list.infer(Op.Lrn, [px + 4 * p0, ps + 4 * p0, py + 4 * p0, num, channels, p1 - p0, pre, floatBits(k), alphaOverSize, mode, q + t * qBytes, plane], 8));
      if (!split) shared.ex.lrn(px, ps, py, num, channels, plane, pre, k, alphaOverSize, mode, q, plane);
      return;
    }
    // x, then y, s and the window sums; y gets its own block since x is read throughout.
    const pY = align(4 * n), pS = align(pY + 4 * n), pQ = align(pS + 4 * n);
    const f32 = heap(pQ + 4 * plane);
    f32.set(x.subarray(0, n), 0);
    ex.lrn(0, pS, pY, num, channels, plane, pre, k, alphaOverSize, mode, pQ, plane);
    s.set(f32.subarray(pS >> 2, (pS >> 2) + n));
    y.set(f32.subarray(pY >> 2, (pY >> 2) + n));
  }

  function maxPool(
    planes: number, height: number, width: number, pooledH: number, pooledW: number,
    kernelH: number, kernelW: number, strideH: number, strideW: number, padH: number, padW: number,
    x: Float32Array, y: Float32Array,
  ): void {
    const dims = { planes, height, width, pooledH, pooledW, kernelH, kernelW, strideH, strideW, padH, padW };
    for (const [k, v] of Object.entries(dims)) {
      const min = k === 'padH' || k === 'padW' ? 0 : 1;
      if (!Number.isInteger(v) || v < min) throw new MathError(`wasm maxPool: ${k} must be an integer ≥ ${min}, got ${v}`);
    }
    // Every window must start inside the padded plane (Caffe's pooled sizes guarantee it).
    if ((pooledH - 1) * strideH >= height + padH || (pooledW - 1) * strideW >= width + padW) {
      throw new MathError(`wasm maxPool: the last ${pooledH}×${pooledW} window starts past the ${height}×${width} plane (pad ${padH}×${padW}, stride ${strideH}×${strideW})`);
    }
    const inN = planes * height * width, outN = planes * pooledH * pooledW, taps = outN * kernelH * kernelW;
    checkLen('maxPool', inN, { x });
    checkLen('maxPool', outN, { y });
    if (padH === 0 && padW === 0) {
      // No padding: the windows are read where they lie (no padded copy of each plane).
      const direct = (k: InferExports, px: number, py: number) =>
        k.maxpool_direct(px, planes, height, width, kernelH, kernelW, strideH, strideW, py, pooledH, pooledW);
      const resident = inPlace(x, y);
      if (resident) {
        const [px, py] = resident.at as [number, number];
        const inPlane = 4 * height * width, outPlane = 4 * pooledH * pooledW;
        const split = runSplit(resident.e, passThreads(taps, planes), planes, 1, 'wasm maxPool', (list, _t, p0, p1) =>
          list.infer(Op.MaxpoolDirect, [px + p0 * inPlane, p1 - p0, height, width, kernelH, kernelW, strideH, strideW, py + p0 * outPlane, pooledH, pooledW], -1));
        if (!split) direct(resident.ex, px, py);
        return;
      }
      const out = align(4 * inN);
      const view = heap(out + 4 * outN);
      view.set(x.subarray(0, inN), 0);
      direct(ex, 0, out);
      y.set(view.subarray(out >> 2, (out >> 2) + outN));
      return;
    }
    const Hs = Math.max(height + 2 * padH, (pooledH - 1) * strideH + kernelH);
    const Ws = Math.max(width + 2 * padW, (pooledW - 1) * strideW + kernelW) + 8;
    const call = (k: InferExports, px: number, py: number, pad: number) =>
      k.maxpool(px, planes, height, width, kernelH, kernelW, strideH, strideW, padH, padW, py, pooledH, pooledW, pad, Hs, Ws);
    const shared = inPlace(x, y);
    if (shared) {
      const [px, py] = shared.at as [number, number];
      const inPlane = 4 * height * width, outPlane = 4 * pooledH * pooledW, padBytes = Math.ceil((4 * Hs * Ws) / 64) * 64;
      // Each thread pads its planes into its own block of the scratch (taken before the lists:
      // the scratch may move the memory's views).
      const T = passThreads(taps, planes);
      const pads = shared.e.scratch(T * padBytes, 'wasm maxPool').base;
      const split = runSplit(shared.e, T, planes, 1, 'wasm maxPool', (list, t, p0, p1) =>
        list.infer(Op.Maxpool, [px + p0 * inPlane, p1 - p0, height, width, kernelH, kernelW, strideH, strideW, padH, padW,
          py + p0 * outPlane, pooledH, pooledW, pads + t * padBytes, Hs, Ws], -1));
      if (!split) call(shared.ex, px, py, pads);
      return;
    }
    const pY = align(4 * inN), pPad = align(pY + 4 * outN);
    const f32 = heap(pPad + 4 * Hs * Ws);
    f32.set(x.subarray(0, inN), 0);
    call(ex, 0, pY, pPad);
    y.set(f32.subarray(pY >> 2, (pY >> 2) + outN));
  }

  function aveGlobal(planes: number, size: number, divisor: number, x: Float32Array, y: Float32Array): void {
    for (const [k, v] of Object.entries({ planes, size })) {
      if (!Number.isInteger(v) || v < 1) throw new MathError(`wasm aveGlobal: ${k} must be a positive integer, got ${v}`);
    }
    checkLen('aveGlobal', planes * size, { x });
    checkLen('aveGlobal', planes, { y });
    const resident = inPlace(x, y);
    if (resident) {
      resident.ex.avepool_global(resident.at[0]!, planes, size, divisor, resident.at[1]!);
      return;
    }
    const inN = planes * size, out = align(4 * inN);
    const view = heap(out + 4 * planes);
    view.set(x.subarray(0, inN), 0);
    ex.avepool_global(0, planes, size, divisor, out);
    y.set(view.subarray(out >> 2, (out >> 2) + planes));
  }

  return { name, rowdot, depthwise, relu, affine, sum2, lrnAcross, maxPool, aveGlobal };
}

const INFER_KEY = Symbol.for('caffe-ts.wasmInfer');

/**
 * The process-wide runner of the inference kernels, created on first use; null when
 * CAFFE_TS_GEMM=js or WebAssembly SIMD is missing (layers then run their other paths).
 */
export function defaultWasmInfer(): WasmInfer | null {
  const g = globalThis as Record<symbol, { infer: WasmInfer | null } | undefined>;
  let slot = g[INFER_KEY];
  if (!slot) {
    slot = { infer: defaultWasmChoice() === 'js' ? null : createWasmInfer() };
    g[INFER_KEY] = slot;
  }
  return slot.infer;
}
