// Batched 2-D convolution passes for Float32 data, run in WebAssembly.
//
// A convolution layer's GEMMs over a chunk of images need the images unfolded (im2col), the
// GEMM-side images reordered between [n][c][s] and [c][n·s], and the results folded back
// (col2im). Done in JS those loops cost as much as the GEMMs; here they run in the GEMM
// module's own linear memory (scripts/gemm-wat.mjs, convHelpersWat), next to the GEMM, so a
// chunk is copied in once, goes through every step in WebAssembly, and is copied out once.
// With kernel threads (threads.ts) a pass large enough to split runs on several threads, each
// taking a range of images (conv-threaded.ts); `threads: 1` keeps a runner on one thread. Images
// that already live in the threads' shared memory (blobs of the 'wasm' host allocator,
// host-memory.ts) are not copied at all: the pass runs there (conv-threaded.ts, one thread).
// The GEMMs that read im2col(x) (W · im2col(x) forward, dy · im2col(x)ᵀ for the weight gradient)
// pack their B panels straight from the images (transB = 2 and 3, an implicit im2col:
// scripts/gemm-wat.mjs, emitPackIm2col/emitPackIm2colT): the column buffer is not written for
// them, and the packed panels hold the same floats, so the results are bit-identical.
// CAFFE_TS_CONV_IMPLICIT (or the `implicit` option): 'auto' (default) the forward product, and
// the weight gradient where no data gradient needs the column buffer anyway (where it does, the
// transposed unfolding measured no faster than im2col plus packing: small output rows); 'all'
// both always; 'off' the explicit im2col for A/B comparisons.
import { MathError } from '../math/errors.js';
import { convOutputSize } from '../math/im2col.js';
import { defaultWasmChoice, inSharedMemory, instantiateGemmModule, WASM_GEMM_KERNEL_NAMES, type GemmExports } from './gemm-wasm.js';
import { convThreaded, IM2COL_DESC_INTS, IM2COL_ROW_INTS, im2colDesc, im2colRows } from './conv-threaded.js';
import { MIN_FLOPS_PER_THREAD, planThreads } from './threads.js';

/**
 * Geometry of a 2-D convolution as its GEMMs see it. The "column side" is the image that
 * im2col unfolds (a Convolution's bottom, a Deconvolution's top): channels × height × width.
 * The "GEMM side" is the other image: outChannels × (outH·outW), outH/outW following from the
 * column side's geometry. Weights are [outChannels, channels/group · kernelH · kernelW].
 */
export interface Conv2dGeometry {
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
  outChannels: number;
  group: number;
}

/**
 * One pass over all images, in chunks. Per chunk, in this order:
 * - `colIn` is unfolded and `gemmIn` gathered (whichever are given);
 * - `biasDiff[o]` += the sum of gemmIn's channel o over images and positions (needs gemmIn);
 * - `weightDiff` += gemmIn · im2col(colIn)ᵀ per group (accumulates; needs colIn and gemmIn);
 * - `gemmOut` = W · im2col(colIn) (+ bias[o]) per group (overwrites; needs colIn);
 * - `colOut` = col2im(Wᵀ · gemmIn) per group (overwrites; needs gemmIn).
 * gemmOut and colOut exclude each other. Image arrays hold `num` images back to back.
 */
export interface Conv2dPass {
  colIn?: Float32Array;
  gemmIn?: Float32Array;
  weights: Float32Array;
  bias?: Float32Array | null;
  biasDiff?: Float32Array | null;
  weightDiff?: Float32Array | null;
  gemmOut?: Float32Array | null;
  colOut?: Float32Array | null;
}

export interface WasmConv2d {
  /** 'wasm-simd' or 'wasm-relaxed-simd', the build it runs. */
  readonly name: string;
  /** Runs `pass` over `num` images, `chunk` images per GEMM. */
  run(geometry: Conv2dGeometry, num: number, chunk: number, pass: Conv2dPass): void;
}

/**
 * Checks a pass against its geometry as every Conv2dRunner must (positive sizes, whole groups,
 * the arrays a product needs, lengths for `num` images), throwing a MathError that starts with
 * `what`; returns the output plane's size.
 */
export function checkConv2dPass(what: string, g: Conv2dGeometry, num: number, chunk: number, pass: Conv2dPass): { OH: number; OW: number } {
  const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, outChannels: O, group: G } = g;
  const OH = convOutputSize(H, KH, g.padH, g.strideH, g.dilationH), OW = convOutputSize(W, KW, g.padW, g.strideW, g.dilationW);
  for (const [k, v] of Object.entries({ channels: C, height: H, width: W, outChannels: O, group: G, num, chunk, OH, OW })) {
    if (!Number.isInteger(v) || v < 1) throw new MathError(`${what}: ${k} must be a positive integer, got ${v}`);
  }
  if (C % G !== 0 || O % G !== 0) throw new MathError(`${what}: channels ${C} and outChannels ${O} must be multiples of group ${G}`);
  const { colIn, gemmIn, weights, bias, biasDiff, weightDiff, gemmOut, colOut } = pass;
  if (gemmOut && colOut) throw new MathError(`${what}: a pass writes gemmOut or colOut, not both`);
  if ((weightDiff && !(colIn && gemmIn)) || (gemmOut && !colIn) || ((colOut || biasDiff) && !gemmIn)) {
    throw new MathError(`${what}: weightDiff needs colIn and gemmIn, gemmOut needs colIn, colOut and biasDiff need gemmIn`);
  }
  const imgIn = C * H * W, imgOut = O * OH * OW, K = (C / G) * KH * KW;
  const need = (name: string, a: Float32Array | null | undefined, n: number) => {
    if (a && a.length < n) throw new MathError(`${what}: ${name} has ${a.length} elements, needs ${n}`);
  };
  need('colIn', colIn, num * imgIn);
  need('colOut', colOut, num * imgIn);
  need('gemmIn', gemmIn, num * imgOut);
  need('gemmOut', gemmOut, num * imgOut);
  need('weights', weights, O * K);
  need('weightDiff', weightDiff, O * K);
  need('bias', bias, O);
  need('biasDiff', biasDiff, O);
  return { OH, OW };
}

const PAGE_BYTES = 65536;
const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** Which products of a pass read the images directly (see the top of this file). */
export type ImplicitIm2col = 'auto' | 'all' | 'off';

/** CAFFE_TS_CONV_IMPLICIT (in the environment, where there is one): 'off', 'all', else 'auto'. */
export function implicitIm2colDefault(): ImplicitIm2col {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.CAFFE_TS_CONV_IMPLICIT?.trim().toLowerCase();
  return v === 'off' || v === 'all' ? v : 'auto';
}

/**
 * A WebAssembly runner of batched convolution passes (own module instance and memory, grown to
 * the largest chunk seen and kept), or null where WebAssembly SIMD is missing. `relaxed` picks
 * the build as createWasmGemmKernel's option does; `threads` and `minFlopsPerThread` as there;
 * `implicit` picks the products that read the images directly (default: CAFFE_TS_CONV_IMPLICIT).
 */
export function createWasmConv2d(
  options: { relaxed?: boolean; threads?: 'auto' | 1; minFlopsPerThread?: number; implicit?: ImplicitIm2col } = {},
): WasmConv2d | null {
  const instance = instantiateGemmModule(options.relaxed);
  if (!instance) return null;
  const threaded = options.threads !== 1;
  const implicit = options.implicit ?? implicitIm2colDefault();
  const relaxedBuild = instance.variant === 'relaxed-simd';
  const minFlops = options.minFlopsPerThread ?? MIN_FLOPS_PER_THREAD;
  const ex: GemmExports = instance.exports;
  const name = WASM_GEMM_KERNEL_NAMES[instance.variant];
  const MR = ex.MR.value, NR = ex.NR.value, MC = ex.MC.value, KC = ex.KC.value, NC = ex.NC.value;
  const memory = ex.memory;

  function heap(bytes: number): { f32: Float32Array; i32: Int32Array } {
    const have = memory.buffer.byteLength;
    if (bytes > have) {
      try {
        memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
      } catch (e) {
        throw new MathError(`${name} conv: cannot grow WebAssembly memory to ${bytes} bytes (${String(e)})`);
      }
    }
    return { f32: new Float32Array(memory.buffer), i32: new Int32Array(memory.buffer) };
  }

  function run(g: Conv2dGeometry, num: number, chunk: number, pass: Conv2dPass): void {
    const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, padH, padW, strideH: SH, strideW: SW, dilationH: DH, dilationW: DW } = g;
    const O = g.outChannels, G = g.group;
    const { OH, OW } = checkConv2dPass(`${name} conv`, g, num, chunk, pass);
    const { colIn, gemmIn, weights, bias, biasDiff, weightDiff, gemmOut, colOut } = pass;
    const S = OH * OW, K = (C / G) * KH * KW, m = O / G, imgIn = C * H * W, imgOut = O * S;
    // The products that read im2col(colIn) pack their panels straight from the images.
    // (directW: the weight gradient too; see the top of this file.)
    const direct = implicit !== 'off' && !!colIn;
    const directW = direct && !!weightDiff && (implicit === 'all' || !colOut);
    const needCol = (!!colIn && ((!!gemmOut && !direct) || (!!weightDiff && !directW))) || !!colOut;
    // Window table: per kernel row, then per kernel column: input offset and valid output range.
    const table = (kk: number, dil: number, pad: number, size: number, stride: number, out: number, i32: Int32Array, at: number) => {
      const off = kk * dil - pad;
      const lo = off >= 0 ? 0 : Math.min(Math.ceil(-off / stride), out);
      const hi = Math.max(lo, size - off <= 0 ? 0 : Math.min(Math.ceil((size - off) / stride), out));
      i32[at] = off;
      i32[at + 1] = lo;
      i32[at + 2] = hi;
    };
    const fillTable = (i32: Int32Array, at: number) => {
      for (let kh = 0; kh < KH; kh++) table(kh, DH, padH, H, SH, OH, i32, at + 3 * kh);
      for (let kw = 0; kw < KW; kw++) table(kw, DW, padW, W, SW, OW, i32, at + 3 * (KH + kw));
    };

    let T = 1;
    if (threaded) {
      const gemms = (gemmOut ? 1 : 0) + (colOut ? 1 : 0) + (weightDiff ? 1 : 0);
      T = planThreads(2 * num * S * K * O * gemms, num, minFlops);
    }
    // Split across threads, or, with the images in the threads' shared memory (the 'wasm' host
    // allocator), run there on this thread without copying them.
    if (T > 1 || inSharedMemory(colIn, gemmIn, gemmOut, colOut)) {
      const tab = new Int32Array(3 * (KH + KW));
      fillTable(tab, 0);
      const dims = { C, H, W, KH, KW, SH, SW, OH, OW, O, G, table: tab, implicit: direct, implicitW: directW };
      if (convThreaded(T, relaxedBuild, { MR, NR, MC, KC, NC }, dims, num, chunk, pass)) return;
    }

    const nb0 = Math.min(chunk, num);
    const Nmax = nb0 * S;

    // Layout (bytes): pack buffers and edge tile, window table, weights, bias, weight diff,
    // then the chunk's column-side images, GEMM-side images, columns and GEMM-side rows.
    const pPackA = 0;
    const pPackB = pPackA + align(4 * Math.min(MC, Math.ceil(Math.max(m, K) / MR) * MR) * KC);
    const pScratch = pPackB + align(4 * KC * Math.min(NC, Math.ceil(Math.max(Nmax, K) / NR) * NR));
    // With the implicit im2col the weight gradient's GEMM (transB = 3) unfolds NR lines of KC
    // floats past the edge tile.
    const pTab = pScratch + align(4 * MR * NR + (directW ? 4 * NR * KC : 0));
    const pDesc = pTab + align(12 * (KH + KW));
    const pRows = pDesc + align(4 * IM2COL_DESC_INTS);
    const pW = pRows + align(direct ? 4 * IM2COL_ROW_INTS * K : 0);
    const pBias = pW + align(4 * O * K);
    const pDB = pBias + align(4 * O);
    const pDW = pDB + align(4 * O);
    const pX = pDW + align(weightDiff ? 4 * O * K : 0);
    const pY = pX + align(4 * nb0 * imgIn);
    const pCol = pY + align(4 * nb0 * imgOut);
    const pR = pCol + align(needCol ? 4 * K * G * Nmax : 0);
    const { f32, i32 } = heap(pR + 4 * O * Nmax);

    fillTable(i32, pTab >> 2);
    if (direct) {
      i32.set(im2colDesc(C, C / G, H, W, KW, SH, SW, OH, OW, pRows), pDesc >> 2);
      i32.set(im2colRows(C / G, H, W, KH, KW, i32.subarray(pTab >> 2, (pTab >> 2) + 3 * (KH + KW))), pRows >> 2);
    }
    f32.set(weights.subarray(0, O * K), pW >> 2);
    if (bias) f32.set(bias.subarray(0, O), pBias >> 2);
    if (weightDiff) f32.set(weightDiff.subarray(0, O * K), pDW >> 2);
    if (biasDiff) f32.set(biasDiff.subarray(0, O), pDB >> 2);

    for (let n0 = 0; n0 < num; n0 += nb0) {
      const nb = Math.min(nb0, num - n0), N = nb * S;
      if (colIn) {
        f32.set(colIn.subarray(n0 * imgIn, (n0 + nb) * imgIn), pX >> 2);
        // One call unfolds all channels: group g's rows are g·K … (g+1)·K − 1.
        if (!direct || (weightDiff && !directW)) ex.im2col(pX, nb, C, H, W, KH, KW, SH, SW, OH, OW, pTab, pCol);
      }
      if (gemmIn) {
        f32.set(gemmIn.subarray(n0 * imgOut, (n0 + nb) * imgOut), pY >> 2);
        ex.gather(pY, O, nb, S, pR);
        if (biasDiff) ex.rowsum(pR, O, N, pDB);
      }
      if (weightDiff) {
        for (let q = 0; q < G; q++) {
          if (directW) {
            ex.gemm(0, 3, m, K, N, 1, pR + 4 * q * m * N, N, pDesc, pX + 4 * q * (C / G) * H * W, 1, pDW + 4 * q * m * K, K, pPackA, pPackB, pScratch);
          } else {
            ex.gemm(0, 1, m, K, N, 1, pR + 4 * q * m * N, N, pCol + 4 * q * K * N, N, 1, pDW + 4 * q * m * K, K, pPackA, pPackB, pScratch);
          }
        }
      }
      if (gemmOut) {
        for (let q = 0; q < G; q++) {
          if (direct) {
            // Group q's channels start q·C/G planes into the images.
            ex.gemm(0, 2, m, N, K, 1, pW + 4 * q * m * K, K, pDesc, pX + 4 * q * (C / G) * H * W, 0, pR + 4 * q * m * N, N, pPackA, pPackB, pScratch);
          } else {
            ex.gemm(0, 0, m, N, K, 1, pW + 4 * q * m * K, K, pCol + 4 * q * K * N, N, 0, pR + 4 * q * m * N, N, pPackA, pPackB, pScratch);
          }
        }
        ex.scatter(pR, O, nb, S, pY, bias ? 1 : 0, pBias);
        gemmOut.set(f32.subarray(pY >> 2, (pY >> 2) + nb * imgOut), n0 * imgOut);
      }
      if (colOut) {
        for (let q = 0; q < G; q++) {
          // op(A) = W_qᵀ: W_q is stored m × K, so lda = K.
          ex.gemm(1, 0, K, N, m, 1, pW + 4 * q * m * K, K, pR + 4 * q * m * N, N, 0, pCol + 4 * q * K * N, N, pPackA, pPackB, pScratch);
        }
        f32.fill(0, pX >> 2, (pX >> 2) + nb * imgIn);
        ex.col2im(pCol, nb, C, H, W, KH, KW, SH, SW, OH, OW, pTab, pX);
        colOut.set(f32.subarray(pX >> 2, (pX >> 2) + nb * imgIn), n0 * imgIn);
      }
    }
    if (weightDiff) weightDiff.set(f32.subarray(pDW >> 2, (pDW >> 2) + O * K));
    if (biasDiff) biasDiff.set(f32.subarray(pDB >> 2, (pDB >> 2) + O));
  }

  return { name, run };
}

// Shared through globalThis, like the GEMM kernel slot, so duplicated copies of the package agree.
const CONV_KEY = Symbol.for('caffe-ts.wasmConv2d');

/**
 * The process-wide WebAssembly convolution runner that convolution layers use for Float32
 * blobs, created on first use; null when CAFFE_TS_GEMM=js or WebAssembly SIMD is missing
 * (layers then run their JS loops). Honors CAFFE_TS_GEMM=wasm-simd / wasm-relaxed-simd. Where
 * setConv2dRunner installed another runner, that one.
 */
export function defaultWasmConv2d(): WasmConv2d | null {
  const override = runnerSlot().runner;
  if (override) return override;
  const g = globalThis as Record<symbol, { conv: WasmConv2d | null } | undefined>;
  let slot = g[CONV_KEY];
  if (!slot) {
    const choice = defaultWasmChoice();
    slot = { conv: choice === 'js' ? null : createWasmConv2d({ relaxed: choice }) };
    g[CONV_KEY] = slot;
  }
  return slot.conv;
}

/**
 * Caffe's pooling windows as the pooling runners take them: the plane count, the plane and
 * pooled sizes, then kernel, stride and padding, each as height then width.
 */
export type PoolWindows = [
  planes: number, height: number, width: number, pooledH: number, pooledW: number,
  kernelH: number, kernelW: number, strideH: number, strideW: number, padH: number, padW: number,
];

/**
 * A runner of batched convolution passes with WasmConv2d's contract (Conv2dPass: the same
 * products, accumulations and overwrites, on the caller's arrays), e.g. a native one. It may
 * also run the training MAX and AVE pooling passes (Pooling layers hand them over where it has them).
 */
export interface Conv2dRunner extends WasmConv2d {
  /**
   * MAX pooling forward with the argmax kept for the backward: Caffe's windows (start
   * o·stride − pad, clipped to the plane, each non-empty), each from its first element, a later
   * one taken only where larger (the first maximum in row-major order); `argmax` receives each
   * value's index in its input plane. False where it declines (nothing written).
   */
  maxPool?(...args: [...windows: PoolWindows, x: Float32Array, y: Float32Array, argmax: Int32Array]): boolean;
  /**
   * MAX pooling backward: dx (planes · inPlane) overwritten with zeros, then dx[argmax] += dy per
   * output. False where it declines (nothing written).
   */
  maxUnpool?(dy: Float32Array, argmax: Int32Array, planes: number, inPlane: number, outPlane: number, dx: Float32Array): boolean;
  /**
   * AVE pooling forward over the same windows, with WasmTrain.pool('ave')'s arithmetic (each
   * window's cells in the plane summed in row-major order from 0 in float32, divided by Caffe's
   * pool_size, the padding counted: the same bits). False where it declines (nothing written).
   */
  avePool?(...args: [...windows: PoolWindows, x: Float32Array, y: Float32Array]): boolean;
  /**
   * AVE pooling backward, with WasmTrain.aveUnpool's arithmetic (the same bits): dx (planes · H ·
   * W) overwritten. False where it declines (nothing written).
   */
  aveUnpool?(...args: [...windows: PoolWindows, dy: Float32Array, dx: Float32Array]): boolean;
  /**
   * SGDSolver's fused step of a float32 param, with WasmTrain.sgdStep's contract and arithmetic
   * (float64, rounded to float32 where the solver's template stores: the same bits): w, g (the
   * diff) and h (the history) updated in place. Whether every new weight is finite, or null where
   * it declines (nothing written).
   */
  sgdStep?(w: Float32Array, g: Float32Array, h: Float32Array, rate: number, momentum: number, decay: number): boolean | null;
}

const RUNNER_KEY = Symbol.for('caffe-ts.conv2dRunner');

function runnerSlot(): { runner: Conv2dRunner | null } {
  // Through globalThis, as the GEMM kernel's slot, so that duplicated copies of this package agree.
  const g = globalThis as Record<symbol, { runner: Conv2dRunner | null } | undefined>;
  return (g[RUNNER_KEY] ??= { runner: null });
}

/**
 * Install (or, with null, remove) the runner that convolution layers hand their Float32 passes
 * to in place of the WebAssembly one (defaultWasmConv2d then returns it). While one is
 * installed, training forwards go through it too rather than through the packed-weights paths,
 * except depthwise ones (their own kernel) and Winograd ones, which go to the runner
 * setInferConvRunner installed, else to the packed runner; inference forwards go to the packed runner, or to the one setInferConvRunner
 * installed.
 */
export function setConv2dRunner(runner: Conv2dRunner | null): void {
  runnerSlot().runner = runner;
}

/** The runner setConv2dRunner installed, or null. */
export function installedConv2dRunner(): Conv2dRunner | null {
  return runnerSlot().runner;
}
