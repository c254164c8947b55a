// Training-step kernels in WebAssembly SIMD (scripts/train-wat.mjs): ReLU backward, MAX pooling
// with the argmax and AVE pooling forward, AVE pooling backward, and the parameter gradients of
// a convolution with few taps (smallConvBackward: a first layer such as LeNet's conv1, whose
// im2col + GEMM weight gradient is a GEMM with tiny sides), and the SGD step of a float32 param
// (sgdStep, bit-identical to the solver's JS loops). Windows cut by padding or by
// Caffe's ceil rounding cost the same as whole ones: each plane is pooled from a bordered copy
// (edge cells repeated for MAX, zeros for AVE), four outputs of a row per SIMD step for any
// kernel and stride. Operands are copied into the module's own memory a cache-sized chunk of
// planes at a time and the results copied back. Where an operand lives in the kernel threads'
// shared memory (a blob of the 'wasm' host allocator), the call runs in the shared build of the
// module on that memory instead: such inputs are read in place, outputs that the kernels write
// exactly (ReLU backward, MAX unpooling, the SGD step) are written in place, and the rest is
// staged in the jobs' scratch block with memory.copy (copyFloats) rather than V8's element-wise
// copies between SharedArrayBuffer views. Same kernels, same order: the results are identical.
import { copyFloats, zeroFill } from '../host-memory.js';
import { MathError } from '../math/errors.js';
import { defaultWasmChoice, inSharedMemory } from './gemm-wasm.js';
import { engine, Op, planThreads, runShares, type Engine } from './threads.js';
import { decodeBase64, wasmApi, type WasmMemory } from './wasm-api.js';
import { TRAIN_WASM_RELAXED_SIMD_BASE64, TRAIN_WASM_SIMD_BASE64 } from './generated/train-wasm.js';

type PoolFn = (
  src: number, planes: number, H: number, W: number, PH: number, PW: number, KH: number, KW: number,
  SH: number, SW: number, padH: number, padW: number, div: number, dst: number, idx: number, pad: number, Hp: number, Wp: number,
) => void;

type Variant = 's1' | 's2' | 'sn';
type PoolExportName = `${'max' | 'ave'}pool_${Variant}${'' | '_k2' | '_k3'}` | 'aveunpool';

type TrainExports = {
  memory: WasmMemory;
  sconv_stage(src: number, planes: number, H: number, W: number, padH: number, padW: number, Hp: number, Wp: number, dst: number): void;
  sconv_wgrad(xp: number, dy: number, nb: number, xImg: number, Wp: number, OH: number, OWV: number, O4: number, K2: number, tab: number, acc: number): void;
  sconv_bsum(dy: number, nb: number, O4: number, plane: number, acc: number): void;
  sgd_step(w: number, g: number, h: number, n: number, decay: number, hasDecay: number, rate: number, momentum: number): number;
  relu_bwd(x: number, dy: number, dx: number, n: number, slope: number): void;
  maxunpool(top: number, idx: number, planes: number, inPlane: number, outPlane: number, bottom: number): void;
} & { [K in PoolExportName]: PoolFn };

/** Caffe's pooling geometry over planes of height × width (the Pooling layer's output size rules already applied). */
export interface PoolGeometry {
  height: number;
  width: number;
  pooledH: number;
  pooledW: number;
  kernelH: number;
  kernelW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

/**
 * A 2-D convolution for the small-convolution kernels: stride 1, no dilation, one group, images
 * channels × height × width, weights [outChannels, channels, kernelH, kernelW].
 */
export interface SmallConvGeometry {
  channels: number;
  height: number;
  width: number;
  kernelH: number;
  kernelW: number;
  padH: number;
  padW: number;
  outChannels: number;
}

/** Most taps (channels · kernelH · kernelW) the small-convolution kernels take. */
export const SMALL_CONV_MAX_TAPS = 128;

export interface WasmTrain {
  readonly name: string;
  /** dx = dy · (x > 0 ? 1 : slope) over the first n elements (Caffe's ReLU backward; dx may be dy or x). */
  reluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number, slope: number): void;
  /**
   * MAX pooling of `planes` planes with the argmax (flat index h·width + w within the plane, the
   * first maximum in row-major order of the clipped window, its first element seeding the scan),
   * or AVE pooling (float32 window sum in row-major order over Caffe's pool_size, padding counted;
   * `idx` unused). Every clipped window must be non-empty.
   */
  pool(method: 'max' | 'ave', g: PoolGeometry, planes: number, src: Float32Array, dst: Float32Array, idx: Int32Array | null): void;
  /** MAX pooling backward: bottomDiff (planes × inPlane) = 0, then each topDiff element added at its argmax idx (checked to lie in the plane). */
  maxUnpool(topDiff: Float32Array, idx: Int32Array, planes: number, inPlane: number, outPlane: number, bottomDiff: Float32Array): void;
  /** AVE pooling backward: bottomDiff = Σ over the windows holding each cell of topDiff / pool_size. */
  aveUnpool(g: PoolGeometry, planes: number, topDiff: Float32Array, bottomDiff: Float32Array): void;
  /**
   * Caffe's SGD step of a float32 param (SGDSolver's regularize → update value → Blob.update), in
   * one pass: g = g + decay·w (L2 weight decay; skipped when decay is 0), h = rate·g +
   * momentum·h, g = h (the step, left in the diff as Caffe does), w = w − g. Computed in float64
   * and rounded to float32 at the same points as the JS loops (a store to a Float32Array), so the
   * results are bit-identical to theirs. Returns whether every new w is finite (no NaN, no ±Inf).
   */
  sgdStep(w: Float32Array, g: Float32Array, h: Float32Array, rate: number, momentum: number, decay: number): boolean;
  /**
   * The parameter gradients of a convolution with few taps (g's channels · kernelH · kernelW
   * at most SMALL_CONV_MAX_TAPS), without the input gradient: weightDiff += dy ⋆ x and
   * biasDiff[o] += Σ dy[·, o, ·] (each when given; they accumulate, as Caffe's param diffs do).
   * Sums run lane-wise over four output columns, then across the lanes.
   */
  smallConvBackward(
    g: SmallConvGeometry, num: number, x: Float32Array, dy: Float32Array, weightDiff: Float32Array | null, biasDiff: Float32Array | null,
  ): void;
}

const PAGE_BYTES = 65536;
/** Input floats per chunk of planes, so a chunk stays in cache between copy-in, pooling and copy-out. */
const CHUNK_FLOATS = 1 << 16;
/** Floats of slack after each staged array (SIMD steps may read or write up to 3 lanes past a row or plane). */
const SLACK = 8;
const align = (bytes: number) => (bytes + 15) & ~15;
/** Most floats the small-convolution kernels stage per call (images are taken in chunks within it). */
const SMALL_CONV_CHUNK_FLOATS = 1 << 22;
/** Bytes added between staged arrays (see layout). */
const SKEW = 1088;
/** Work planThreads counts per element of an SGD step (a streaming pass over three arrays): LeNet's ip1 weights (400k) split on two threads, its biases do not. */
const SGD_FLOPS_PER_ELEMENT = 8;
/** Bytes of one sgd_step_at parameter block (a multiple of 16, so the f64 fields stay aligned). */
const SGD_BLOCK_BYTES = 48;

/** Windows along one axis: Caffe's pool_size factor and whether every clipped window is non-empty. */
function axisWindows(pooled: number, size: number, kernel: number, stride: number, pad: number): { sizes: Int32Array; ok: boolean } {
  const sizes = new Int32Array(pooled);
  let ok = true;
  for (let i = 0; i < pooled; i++) {
    const start = i * stride - pad;
    const end = Math.min(start + kernel, size + pad);
    sizes[i] = end - start;
    if (Math.max(start, 0) >= Math.min(end, size)) ok = false;
  }
  return { sizes, ok };
}

function checkGeometry(what: string, g: PoolGeometry): void {
  const { height, width, pooledH, pooledW, kernelH, kernelW, strideH, strideW, padH, padW } = g;
  const entries = Object.entries({ height, width, pooledH, pooledW, kernelH, kernelW, strideH, strideW });
  for (const [k, v] of entries) if (!Number.isInteger(v) || v < 1) throw new MathError(`wasm ${what}: ${k} must be a positive integer, got ${v}`);
  for (const [k, v] of Object.entries({ padH, padW })) if (!Number.isInteger(v) || v < 0) throw new MathError(`wasm ${what}: ${k} must be a non-negative integer, got ${v}`);
  if (kernelW >= 1 << 16) throw new MathError(`wasm ${what}: kernelW ${kernelW} must be below 65536`);
}

type Operand = Float32Array | Int32Array | null | undefined;

/**
 * This thread's instance of the shared build of `relaxed` on the engine's memory, or null: the
 * engine's own (it instantiates the training module for its threads' commands too).
 */
function sharedExports(e: Engine, relaxed: boolean): TrainExports | null {
  return e.trainExports(relaxed) as unknown as TrainExports | null;
}

/**
 * Where a call runs: `ex` and views of its memory, the staging area's byte offset `base`, and
 * `at(a)`, the byte offset of an operand the kernels can use in place (-1: stage it).
 */
interface Space {
  ex: TrainExports;
  base: number;
  f32: Float32Array;
  i32: Int32Array;
  at(a: Operand): number;
  /** Makes sure `bytes` past `offset` exist (kernels may read a few floats past an in-place operand). */
  require(end: number): void;
}

/**
 * A runner of the training kernels with its own module instance and memory, or null without
 * WebAssembly SIMD. `relaxed` as createWasmGemmKernel's option: true the relaxed-SIMD build (the
 * small convolutions multiply-add fused) or nothing, false the plain SIMD build, unset relaxed
 * where the engine validates it, else plain. `smallConvChunkFloats`: most floats the small-
 * convolution kernels stage per call (default SMALL_CONV_CHUNK_FLOATS; images go in chunks).
 */
export function createWasmTrain(options: { relaxed?: boolean; smallConvChunkFloats?: number } = {}): WasmTrain | null {
  const api = wasmApi();
  if (!api) return null;
  const builds = options.relaxed === true ? [true] : options.relaxed === false ? [false] : [true, false];
  let found: TrainExports | null = null;
  let relaxed = false;
  for (const r of builds) {
    const bytes = decodeBase64(r ? TRAIN_WASM_RELAXED_SIMD_BASE64 : TRAIN_WASM_SIMD_BASE64);
    if (!api.validate(bytes)) continue;
    try {
      found = new api.Instance(new api.Module(bytes), {}).exports as TrainExports;
      relaxed = r;
      break;
    } catch {
      found = null;
    }
  }
  if (!found) return null;
  const ex: TrainExports = found;
  const name = relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
  const heap = (bytesNeeded: number): { f32: Float32Array; i32: Int32Array } => {
    const have = ex.memory.buffer.byteLength;
    if (bytesNeeded > have) {
      try {
        ex.memory.grow(Math.ceil((bytesNeeded - have) / PAGE_BYTES));
      } catch (err) {
        throw new MathError(`${name} training kernels: cannot grow WebAssembly memory to ${bytesNeeded} bytes (${String(err)})`);
      }
    }
    return { f32: new Float32Array(ex.memory.buffer), i32: new Int32Array(ex.memory.buffer) };
  };
  const notPlaced = () => -1;
  /**
   * The space for a call needing `bytes` of staging: the shared build on the kernel memory (the
   * jobs' scratch block) when one of `operands` lives there, else the own memory from offset 0.
   */
  const space = (bytes: number, what: string, ...operands: Operand[]): Space => {
    if (inSharedMemory(...operands)) {
      const e = engine();
      const sx = e && operands.some((a) => e.offsetOf(a) >= 0) ? sharedExports(e, relaxed) : null;
      if (e && sx) {
        const { base, f32, i32 } = e.scratch(bytes, `${name} ${what}`);
        return { ex: sx, base, f32, i32, at: (a) => e.offsetOf(a), require: (end) => e.heap.require(end, `${name} ${what}`) };
      }
    }
    return { ex, base: 0, ...heap(bytes), at: notPlaced, require: () => {} };
  };

  function reluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, n: number, slope: number): void {
    if (!Number.isInteger(n) || n < 0) throw new MathError(`wasm reluBackward: element count must be a non-negative integer, got ${n}`);
    for (const [k, a] of Object.entries({ x, dy, dx })) if (a.length < n) throw new MathError(`wasm reluBackward: ${k} has ${a.length} elements, needs ${n}`);
    if (n === 0) return;
    const chunk = Math.min(n, CHUNK_FLOATS);
    const sp = space(align(4 * chunk) + SKEW + 4 * chunk, 'reluBackward', x, dy, dx);
    const oX = sp.at(x), oDy = sp.at(dy), oDx = sp.at(dx);
    if (oX >= 0 && oDy >= 0 && oDx >= 0) {
      // All three in the kernel memory: one pass in place (the kernel writes exactly n floats).
      sp.ex.relu_bwd(oX, oDy, oDx, n, slope);
      return;
    }
    const { f32 } = sp;
    const pX = sp.base, pDy = sp.base + align(4 * chunk) + SKEW;
    for (let i0 = 0; i0 < n; i0 += chunk) {
      const m = Math.min(chunk, n - i0);
      const xAt = oX >= 0 ? oX + 4 * i0 : pX, dyAt = oDy >= 0 ? oDy + 4 * i0 : pDy;
      if (oX < 0) copyFloats(f32, x.subarray(i0, i0 + m), pX >> 2);
      if (oDy < 0) copyFloats(f32, dy.subarray(i0, i0 + m), pDy >> 2);
      sp.ex.relu_bwd(xAt, dyAt, pDy, m, slope);
      copyFloats(dx, f32.subarray(pDy >> 2, (pDy >> 2) + m), i0);
    }
  }

  /** The staging layout for `planes` planes of g and the kernel variant for its column stride. */
  function layout(what: string, g: PoolGeometry, planes: number, ...operands: Operand[]) {
    checkGeometry(what, g);
    if (!Number.isInteger(planes) || planes < 0) throw new MathError(`wasm ${what}: planes must be a non-negative integer, got ${planes}`);
    const { height: H, width: W, pooledH: PH, pooledW: PW, kernelH: KH, kernelW: KW, strideH: SH, strideW: SW, padH, padW } = g;
    const rows = axisWindows(PH, H, KH, SH, padH), cols = axisWindows(PW, W, KW, SW, padW);
    if (!rows.ok || !cols.ok) throw new MathError(`wasm ${what}: a window of ${JSON.stringify(g)} holds no cell of the plane`);
    const inPlane = H * W, outPlane = PH * PW;
    // The bordered plane: every window of the (4-rounded) output rows lies inside it.
    // (Outputs go in groups of four, two groups at a time while the second has one in the row.)
    const PW4 = Math.ceil(PW / 4) * 4;
    const Hp = Math.max(padH + H, (PH - 1) * SH + KH);
    const Wp = Math.ceil(Math.max(padW + Math.ceil(W / 8) * 8, (PW4 - 1) * SW + KW + 8) / 4) * 4;
    const chunk = Math.max(1, Math.min(planes, Math.floor(CHUNK_FLOATS / Math.max(inPlane, outPlane))));
    const rel = { div: 0, src: 0, dst: 0, idx: 0, pad: 0 };
    rel.src = align(rel.div + 4 * (outPlane + SLACK));
    // Each staged array starts a different number of cache lines past a 4 KiB multiple, so the
    // streamed loads and the stores of different arrays do not alias in the store buffer.
    rel.dst = align(rel.src + 4 * (chunk * Math.max(inPlane, outPlane) + SLACK)) + SKEW;
    rel.idx = align(rel.dst + 4 * (chunk * Math.max(inPlane, outPlane) + SLACK)) + SKEW;
    rel.pad = align(rel.idx + 4 * (chunk * outPlane + SLACK)) + SKEW;
    // The bordered plane, then one bordered row (AVE backward's column sums).
    const sp = space(rel.pad + 4 * (Hp + 1) * Wp, what, ...operands);
    const { f32, i32, base } = sp;
    const pDiv = base + rel.div, pSrc = base + rel.src, pDst = base + rel.dst, pIdx = base + rel.idx, pPad = base + rel.pad;
    // Caffe's divisor per output (only AVE reads it); the slack past the table holds 1s.
    for (let y = 0; y < PH; y++) for (let x = 0; x < PW; x++) f32[(pDiv >> 2) + y * PW + x] = rows.sizes[y]! * cols.sizes[x]!;
    f32.fill(1, (pDiv >> 2) + outPlane, (pDiv >> 2) + outPlane + SLACK);
    // The column stride's variant, with the column loop unrolled for 2- and 3-wide kernels.
    const variant = `${SW === 1 ? 's1' : SW === 2 ? 's2' : 'sn'}${KW === 2 ? '_k2' : KW === 3 ? '_k3' : ''}` as const;
    const call = (fn: PoolFn, src: number, np: number, dst: number, idx: number) =>
      fn(src, np, H, W, PH, PW, KH, KW, SH, SW, padH, padW, pDiv, dst, idx, pPad, Hp, Wp);
    return { sp, inPlane, outPlane, chunk, pSrc, pDst, pIdx, f32, i32, variant, call };
  }

  function pool(method: 'max' | 'ave', g: PoolGeometry, planes: number, src: Float32Array, dst: Float32Array, idx: Int32Array | null): void {
    const what = `${method}Pool`;
    const { sp, inPlane, outPlane, chunk, pSrc, pDst, pIdx, f32, i32, variant, call } = layout(what, g, planes, src, dst, idx);
    if (src.length < planes * inPlane || dst.length < planes * outPlane || (method === 'max' && (!idx || idx.length < planes * outPlane))) {
      throw new MathError(
        `wasm ${what}: ${planes} planes of ${g.height}×${g.width} → ${g.pooledH}×${g.pooledW} need src ${planes * inPlane}, dst ${planes * outPlane}` +
          `${method === 'max' ? `, idx ${planes * outPlane}` : ''} elements, got ${src.length}, ${dst.length}${method === 'max' ? `, ${idx?.length ?? 'none'}` : ''}`,
      );
    }
    const fn = sp.ex[`${method}pool_${variant}` as const];
    // A source in the kernel memory is read in place (the bordering copy reads a few floats past
    // a plane: they must exist); outputs are staged (SIMD steps store a few lanes past a plane).
    const oSrc = sp.at(src);
    if (oSrc >= 0) sp.require(oSrc + 4 * (planes * inPlane + SLACK));
    for (let p0 = 0; p0 < planes; p0 += chunk) {
      const np = Math.min(chunk, planes - p0);
      if (oSrc < 0) copyFloats(f32, src.subarray(p0 * inPlane, (p0 + np) * inPlane), pSrc >> 2);
      call(fn, oSrc >= 0 ? oSrc + 4 * p0 * inPlane : pSrc, np, pDst, pIdx);
      copyFloats(dst, f32.subarray(pDst >> 2, (pDst >> 2) + np * outPlane), p0 * outPlane);
      if (method === 'max') copyFloats(idx!, i32.subarray(pIdx >> 2, (pIdx >> 2) + np * outPlane), p0 * outPlane);
    }
  }

  function maxUnpool(topDiff: Float32Array, idx: Int32Array, planes: number, inPlane: number, outPlane: number, bottomDiff: Float32Array): void {
    for (const [k, v] of Object.entries({ planes, inPlane, outPlane })) {
      if (!Number.isInteger(v) || v < 0) throw new MathError(`wasm maxUnpool: ${k} must be a non-negative integer, got ${v}`);
    }
    if (topDiff.length < planes * outPlane || idx.length < planes * outPlane || bottomDiff.length < planes * inPlane) {
      throw new MathError(
        `wasm maxUnpool: ${planes} planes of ${inPlane} → ${outPlane} need topDiff ${planes * outPlane}, idx ${planes * outPlane}, ` +
          `bottomDiff ${planes * inPlane} elements, got ${topDiff.length}, ${idx.length}, ${bottomDiff.length}`,
      );
    }
    if (planes === 0 || inPlane === 0) return;
    const chunk = Math.max(1, Math.min(planes, Math.floor(CHUNK_FLOATS / Math.max(inPlane, outPlane, 1))));
    // Staged arrays a few cache lines off 4 KiB multiples of each other (no false store-to-load
    // dependences between the scattered stores and the streamed loads).
    const rIdx = align(4 * chunk * outPlane) + SKEW, rBottom = align(rIdx + 4 * chunk * outPlane) + SKEW;
    const sp = space(rBottom + 4 * chunk * inPlane, 'maxUnpool', topDiff, idx, bottomDiff);
    const { f32, i32, base } = sp;
    const pTop = base, pIdx = base + rIdx, pBottom = base + rBottom;
    // In the kernel memory each operand is used in place (the kernel writes exactly the planes).
    const oTop = sp.at(topDiff), oIdx = sp.at(idx), oBottom = sp.at(bottomDiff);
    for (let p0 = 0; p0 < planes; p0 += chunk) {
      const np = Math.min(chunk, planes - p0);
      if (oTop < 0) copyFloats(f32, topDiff.subarray(p0 * outPlane, (p0 + np) * outPlane), pTop >> 2);
      if (oIdx < 0) copyFloats(i32, idx.subarray(p0 * outPlane, (p0 + np) * outPlane), pIdx >> 2);
      const bAt = oBottom >= 0 ? oBottom + 4 * p0 * inPlane : pBottom;
      try {
        sp.ex.maxunpool(oTop >= 0 ? oTop + 4 * p0 * outPlane : pTop, oIdx >= 0 ? oIdx + 4 * p0 * outPlane : pIdx, np, inPlane, outPlane, bAt);
      } catch (err) {
        throw new MathError(`wasm maxUnpool: an argmax among planes ${p0}…${p0 + np - 1} is outside the plane of ${inPlane} elements`, { cause: err });
      }
      if (oBottom < 0) copyFloats(bottomDiff, f32.subarray(pBottom >> 2, (pBottom >> 2) + np * inPlane), p0 * inPlane);
    }
  }

  function aveUnpool(g: PoolGeometry, planes: number, topDiff: Float32Array, bottomDiff: Float32Array): void {
    const { sp, inPlane, outPlane, chunk, pSrc, pDst, f32, call } = layout('aveUnpool', g, planes, topDiff, bottomDiff);
    if (topDiff.length < planes * outPlane || bottomDiff.length < planes * inPlane) {
      throw new MathError(
        `wasm aveUnpool: ${planes} planes of ${g.height}×${g.width} → ${g.pooledH}×${g.pooledW} need topDiff ${planes * outPlane}, ` +
          `bottomDiff ${planes * inPlane} elements, got ${topDiff.length}, ${bottomDiff.length}`,
      );
    }
    const fn = sp.ex.aveunpool;
    // The top diff is read in place from the kernel memory; the result is staged (see pool).
    const oTop = sp.at(topDiff);
    if (oTop >= 0) sp.require(oTop + 4 * (planes * outPlane + SLACK));
    for (let p0 = 0; p0 < planes; p0 += chunk) {
      const np = Math.min(chunk, planes - p0);
      if (oTop < 0) copyFloats(f32, topDiff.subarray(p0 * outPlane, (p0 + np) * outPlane), pSrc >> 2);
      call(fn, oTop >= 0 ? oTop + 4 * p0 * outPlane : pSrc, np, pDst, 0);
      copyFloats(bottomDiff, f32.subarray(pDst >> 2, (pDst >> 2) + np * inPlane), p0 * inPlane);
    }
  }

  /**
   * sgdStep split over the kernel threads, each updating a contiguous slice in place (the same
   * element-wise float64 arithmetic: the same bits), where w, g and h all live in their shared
   * memory (blobs and solver history of the 'wasm' host allocator). Whether every new weight is
   * finite, or null where it does not apply or the param is too small to split.
   */
  function sgdStepThreaded(w: Float32Array, g: Float32Array, h: Float32Array, n: number, rate: number, momentum: number, decay: number): boolean | null {
    const e = engine();
    if (!e) return null;
    const oW = e.offsetOf(w), oG = e.offsetOf(g), oH = e.offsetOf(h);
    if (oW < 0 || oG < 0 || oH < 0 || !e.trainExports(relaxed)) return null;
    const T = planThreads(SGD_FLOPS_PER_ELEMENT * n, Math.floor(n / 1024));
    if (T < 2) return null;
    // One parameter block per thread (sgd_step_at's layout: five i32, the result, three f64).
    const { base, i32 } = e.scratch(SGD_BLOCK_BYTES * T, 'wasm sgdStep');
    const f64 = new Float64Array(i32.buffer);
    // An empty share (none at these sizes) reports finite.
    for (let t = 0; t < T; t++) i32[(base + SGD_BLOCK_BYTES * t + 20) >> 2] = 1;
    runShares(e, T, relaxed, n, 4, 'wasm sgdStep (threads)', (list, t, i0, i1) => {
      const b = base + SGD_BLOCK_BYTES * t;
      i32.set([oW + 4 * i0, oG + 4 * i0, oH + 4 * i0, i1 - i0, decay ? 1 : 0, 0], b >> 2);
      f64.set([decay, rate, momentum], (b + 24) >> 3);
      list.train(Op.SgdStepAt, b);
    });
    let finite = true;
    for (let t = 0; t < T; t++) if (i32[(base + SGD_BLOCK_BYTES * t + 20) >> 2] === 0) finite = false;
    return finite;
  }

  function sgdStep(w: Float32Array, g: Float32Array, h: Float32Array, rate: number, momentum: number, decay: number): boolean {
    const n = w.length;
    if (g.length !== n || h.length !== n) {
      throw new MathError(`wasm sgdStep: data, diff and history must have the same length, got ${n}, ${g.length}, ${h.length}`);
    }
    for (const [k, v] of Object.entries({ rate, momentum, decay })) {
      if (typeof v !== 'number') throw new MathError(`wasm sgdStep: ${k} must be a number, got ${String(v)}`);
    }
    if (n === 0) return true;
    const threaded = sgdStepThreaded(w, g, h, n, rate, momentum, decay);
    if (threaded !== null) return threaded;
    let finite = true;
    // Three cache-sized slices staged at a time (each lands a few cache lines off the others).
    const chunk = Math.min(n, CHUNK_FLOATS);
    const rG = align(4 * chunk) + SKEW, rH = align(rG + 4 * chunk) + SKEW;
    const sp = space(rH + 4 * chunk, 'sgdStep', w, g, h);
    const { f32, base } = sp;
    // Arrays in the kernel memory are updated in place (the kernel writes exactly n floats).
    const oW = sp.at(w), oG = sp.at(g), oH = sp.at(h);
    const pW = base, pG = base + rG, pH = base + rH;
    for (let i0 = 0; i0 < n; i0 += chunk) {
      const m = Math.min(chunk, n - i0);
      if (oW < 0) copyFloats(f32, w.subarray(i0, i0 + m), pW >> 2);
      if (oG < 0) copyFloats(f32, g.subarray(i0, i0 + m), pG >> 2);
      if (oH < 0) copyFloats(f32, h.subarray(i0, i0 + m), pH >> 2);
      const wAt = oW >= 0 ? oW + 4 * i0 : pW, gAt = oG >= 0 ? oG + 4 * i0 : pG, hAt = oH >= 0 ? oH + 4 * i0 : pH;
      if (!sp.ex.sgd_step(wAt, gAt, hAt, m, decay, decay ? 1 : 0, rate, momentum)) finite = false;
      if (oW < 0) copyFloats(w, f32.subarray(pW >> 2, (pW >> 2) + m), i0);
      if (oG < 0) copyFloats(g, f32.subarray(pG >> 2, (pG >> 2) + m), i0);
      if (oH < 0) copyFloats(h, f32.subarray(pH >> 2, (pH >> 2) + m), i0);
    }
    return finite;
  }

  /** The resolved small-convolution geometry: output size, the bordered plane, taps. */
  function smallGeometry(what: string, g: SmallConvGeometry, num: number) {
    const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, padH, padW, outChannels: O } = g;
    for (const [k, v] of Object.entries({ channels: C, height: H, width: W, kernelH: KH, kernelW: KW, outChannels: O })) {
      if (!Number.isInteger(v) || v < 1) throw new MathError(`wasm ${what}: ${k} must be a positive integer, got ${v}`);
    }
    for (const [k, v] of Object.entries({ padH, padW, num })) {
      if (!Number.isInteger(v) || v < 0) throw new MathError(`wasm ${what}: ${k} must be a non-negative integer, got ${v}`);
    }
    const OH = H + 2 * padH - KH + 1, OW = W + 2 * padW - KW + 1;
    if (OH < 1 || OW < 1) throw new MathError(`wasm ${what}: a ${KH}×${KW} kernel with pad ${padH}, ${padW} leaves no output of a ${H}×${W} image`);
    const K = C * KH * KW;
    if (K > SMALL_CONV_MAX_TAPS) throw new MathError(`wasm ${what}: ${K} taps (channels · kernelH · kernelW) exceed SMALL_CONV_MAX_TAPS (${SMALL_CONV_MAX_TAPS})`);
    const OWV = Math.ceil(OW / 4), O4 = Math.ceil(O / 4) * 4, K2 = K + (K & 1);
    const Hp = H + 2 * padH;
    // Row copies run 8 floats at a time ($border); output tiles read 8 columns past each tap.
    const Wp = Math.ceil(Math.max(padW + Math.ceil(W / 8) * 8, KW - 1 + 8 * Math.ceil(OW / 8)) / 4) * 4;
    const xImg = C * Hp * Wp;
    // Byte offset of each tap within an image's bordered planes (a padded odd tap reads tap 0).
    const taps = new Int32Array(K2);
    for (let c = 0; c < C; c++) {
      for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) taps[(c * KH + kh) * KW + kw] = 4 * ((c * Hp + kh) * Wp + kw);
    }
    return { C, H, W, KH, KW, padH, padW, O, OH, OW, OWV, O4, K, K2, Hp, Wp, xImg, taps };
  }

  /** Images per call: the staged images (raw and bordered input, output gradient) within the chunk budget. */
  const chunkFloats = options.smallConvChunkFloats ?? SMALL_CONV_CHUNK_FLOATS;
  const imagesPerChunk = (num: number, perImage: number) => Math.max(1, Math.min(num, Math.floor(chunkFloats / perImage)));

  /**
   * smallConvBackward split by images over the kernel threads, where x and dy are blobs in their
   * shared memory (the 'wasm' host allocator) and dy needs no staging (OW and O multiples of 4):
   * each thread borders its images into its own block and sums into its own accumulators, which
   * this thread then adds up, thread by thread. False (nothing done) where that does not apply or
   * the pass is too small to split; the results then come from the one-thread path (summed in
   * another order: they may differ in the last bits).
   */
  function smallConvThreaded(
    s: ReturnType<typeof smallGeometry>, num: number, x: Float32Array, dy: Float32Array, weightDiff: Float32Array | null, biasDiff: Float32Array | null,
  ): boolean {
    const { C, H, W, padH, padW, O, OH, OW, OWV, O4, K, K2, Hp, Wp, xImg, taps } = s;
    const e = engine();
    if (!e || OW % 4 !== 0 || O4 !== O) return false;
    const oX = weightDiff ? e.offsetOf(x) : -1, oDy = e.offsetOf(dy);
    if (oDy < 0 || (weightDiff && oX < 0) || !e.trainExports(relaxed)) return false;
    const T = planThreads(2 * num * OH * OW * O * (weightDiff ? K : 1), num);
    if (T < 2) return false;
    const imgIn = C * H * W, imgOut = O * OH * OW, plane = OH * OWV * 4;
    const nb0 = imagesPerChunk(Math.ceil(num / T), weightDiff ? xImg : 1);
    // Per thread: its accumulators, then its bordered images (+ zeroed slack the kernel reads).
    const rB4 = align(16 * O4 * K2), rX = align(rB4 + 16 * O4) + SKEW;
    const perT = align(rX + 4 * (weightDiff ? nb0 * xImg + 2 * SLACK : 0)) + SKEW, tabBytes = align(4 * K2);
    if (oX >= 0) e.heap.require(oX + 4 * (num * imgIn + 2 * SLACK), 'wasm smallConvBackward');
    const { base, f32, i32 } = e.scratch(tabBytes + T * perT, 'wasm smallConvBackward');
    i32.set(taps, base >> 2);
    for (let t = 0; t < T; t++) {
      const at = base + tabBytes + t * perT;
      f32.fill(0, at >> 2, (at + rX) >> 2);
      if (weightDiff) f32.fill(0, ((at + rX) >> 2) + nb0 * xImg, ((at + rX) >> 2) + nb0 * xImg + 2 * SLACK);
    }
    runShares(e, T, relaxed, num, 1, 'wasm smallConvBackward (threads)', (list, t, n0, n1) => {
      const at = base + tabBytes + t * perT;
      for (let n = n0; n < n1; n += nb0) {
        const nb = Math.min(nb0, n1 - n), dyAt = oDy + 4 * n * imgOut;
        if (weightDiff) {
          list.train(Op.SconvStage, oX + 4 * n * imgIn, nb * C, H, W, padH, padW, Hp, Wp, at + rX);
          list.train(Op.SconvWgrad, at + rX, dyAt, nb, xImg, Wp, OH, OWV, O4, K2, base, at);
        }
        if (biasDiff) list.train(Op.SconvBsum, dyAt, nb, O4, plane, at + rB4);
      }
    });
    const lanes = (a: number) => (f32[a]! + f32[a + 1]!) + (f32[a + 2]! + f32[a + 3]!);
    for (let t = 0; t < T; t++) {
      const at = (base + tabBytes + t * perT) >> 2;
      if (weightDiff) {
        for (let o = 0; o < O; o++) for (let k = 0; k < K; k++) weightDiff[o * K + k] = weightDiff[o * K + k]! + lanes(at + 4 * (o * K2 + k));
      }
      if (biasDiff) for (let o = 0; o < O; o++) biasDiff[o] = biasDiff[o]! + lanes(at + (rB4 >> 2) + 4 * o);
    }
    return true;
  }

  function smallConvBackward(
    g: SmallConvGeometry, num: number, x: Float32Array, dy: Float32Array, weightDiff: Float32Array | null, biasDiff: Float32Array | null,
  ): void {
    const s = smallGeometry('smallConvBackward', g, num);
    const { C, H, W, padH, padW, O, OH, OW, OWV, O4, K, K2, Hp, Wp, xImg, taps } = s;
    const imgIn = C * H * W, imgOut = O * OH * OW, plane = OH * OWV * 4, dyImg = O4 * plane;
    if (x.length < num * imgIn || dy.length < num * imgOut || (weightDiff && weightDiff.length < O * K) || (biasDiff && biasDiff.length < O)) {
      throw new MathError(
        `wasm smallConvBackward: ${num} images need x ${num * imgIn}, dy ${num * imgOut}${weightDiff ? `, weightDiff ${O * K}` : ''}` +
          `${biasDiff ? `, biasDiff ${O}` : ''} elements, got ${x.length}, ${dy.length}${weightDiff ? `, ${weightDiff.length}` : ''}` +
          `${biasDiff ? `, ${biasDiff.length}` : ''}`,
      );
    }
    if (num === 0 || (!weightDiff && !biasDiff)) return;
    if (smallConvThreaded(s, num, x, dy, weightDiff, biasDiff)) return;
    const nb0 = imagesPerChunk(num, (weightDiff ? imgIn + xImg : 0) + dyImg);
    const rAcc = align(4 * K2);
    const rB4 = align(rAcc + 16 * O4 * K2);
    const rSrc = align(rB4 + 16 * O4) + SKEW;
    const rX = align(rSrc + 4 * (nb0 * imgIn + SLACK)) + SKEW;
    const rDy = align(rX + 4 * (nb0 * xImg + 2 * SLACK)) + SKEW;
    const sp = space(rDy + 4 * nb0 * dyImg, 'smallConvBackward', x, dy);
    const { f32, i32, base } = sp;
    const pTab = base, pAcc = base + rAcc, pB4 = base + rB4, pSrc = base + rSrc, pX = base + rX, pDy = base + rDy;
    // In the kernel memory, x is bordered straight from the blob (the row copies read a few floats
    // past it: they must exist), and dy is read in place when its rows need no padding
    // (OW a multiple of 4, O a multiple of 4: the staged layout is the blob's own).
    const oX = weightDiff ? sp.at(x) : -1;
    if (oX >= 0) sp.require(oX + 4 * (num * imgIn + 2 * SLACK));
    const oDyIn = OW % 4 === 0 && O4 === O ? sp.at(dy) : -1;
    i32.set(taps, pTab >> 2);
    f32.fill(0, pAcc >> 2, (pB4 >> 2) + 4 * O4);
    f32.fill(0, (pX >> 2) + nb0 * xImg, (pX >> 2) + nb0 * xImg + 2 * SLACK);
    const d0 = pDy >> 2;
    for (let n0 = 0; n0 < num; n0 += nb0) {
      const nb = Math.min(nb0, num - n0);
      const dyAt = oDyIn >= 0 ? oDyIn + 4 * n0 * imgOut : pDy;
      // dy staged as [n][O4][OH][OWV·4]: zero lanes past OW and zero planes past O.
      if (oDyIn < 0 && OW % 4 === 0) {
        for (let n = 0; n < nb; n++) {
          copyFloats(f32, dy.subarray((n0 + n) * imgOut, (n0 + n + 1) * imgOut), d0 + n * dyImg);
          if (O4 > O) zeroFill(f32, d0 + n * dyImg + O * plane, d0 + (n + 1) * dyImg);
        }
      } else if (oDyIn < 0) {
        zeroFill(f32, d0, d0 + nb * dyImg);
        for (let n = 0; n < nb; n++) {
          for (let r = 0; r < O * OH; r++) {
            const src = (n0 + n) * imgOut + r * OW, dst = d0 + n * dyImg + r * OWV * 4;
            for (let c = 0; c < OW; c++) f32[dst + c] = dy[src + c]!;
          }
        }
      }
      if (weightDiff) {
        if (oX < 0) copyFloats(f32, x.subarray(n0 * imgIn, (n0 + nb) * imgIn), pSrc >> 2);
        sp.ex.sconv_stage(oX >= 0 ? oX + 4 * n0 * imgIn : pSrc, nb * C, H, W, padH, padW, Hp, Wp, pX);
        sp.ex.sconv_wgrad(pX, dyAt, nb, xImg, Wp, OH, OWV, O4, K2, pTab, pAcc);
      }
      if (biasDiff) sp.ex.sconv_bsum(dyAt, nb, O4, plane, pB4);
    }
    // Each gradient: its four lane sums added, then onto the caller's.
    const lanes = (at: number) => (f32[at]! + f32[at + 1]!) + (f32[at + 2]! + f32[at + 3]!);
    if (weightDiff) {
      for (let o = 0; o < O; o++) {
        for (let k = 0; k < K; k++) weightDiff[o * K + k] = weightDiff[o * K + k]! + lanes((pAcc >> 2) + 4 * (o * K2 + k));
      }
    }
    if (biasDiff) for (let o = 0; o < O; o++) biasDiff[o] = biasDiff[o]! + lanes((pB4 >> 2) + 4 * o);
  }

  return { name, reluBackward, pool, maxUnpool, aveUnpool, sgdStep, smallConvBackward };
}

const TRAIN_KEY = Symbol.for('caffe-ts.wasmTrain');

/**
 * The process-wide training-kernel runner layers use for float32 blobs, created on first use;
 * null when CAFFE_TS_GEMM=js or WebAssembly SIMD is missing.
 */
export function defaultWasmTrain(): WasmTrain | null {
  const g = globalThis as Record<symbol, { k: WasmTrain | null } | undefined>;
  let slot = g[TRAIN_KEY];
  if (!slot) {
    const choice = defaultWasmChoice();
    slot = { k: choice === 'js' ? null : createWasmTrain({ relaxed: choice }) };
    g[TRAIN_KEY] = slot;
  }
  return slot.k;
}
