import {
  builtinWasmInferConv, checkConv2dPass, getNumThreads, LRN_WASM_BETAS, MathError, MIN_FLOPS_PER_THREAD, winogradApplies,
  type ActivationVersions, type Conv2dGeometry, type ConvEpilogue, type ConvSum, type InferConvRunner, type WasmInferConv,
} from '@caffe-ts/blob';
import { nativeAddon } from './addon.js';

/**
 * Most floats of one image's scratch (unfolded columns, or Winograd's transformed tiles and
 * products: 128 MiB) for which a convolution runs here rather than on the WebAssembly runner.
 */
export const NATIVE_MAX_SCRATCH_FLOATS = 1 << 25;

/**
 * Fewest input channels per group for which a Winograd-shaped 3×3 convolution goes to the
 * WebAssembly runner (a 5×5 one always does).
 */
export const NATIVE_WINOGRAD_MIN_CHANNELS = 32;

/**
 * Whether a convolution runs a native Winograd path, F(4×4, 3×3) or F(2×2, 5×5): 3×3 or 5×5,
 * stride 1, no dilation, NATIVE_WINOGRAD_MIN_TILES output tiles or more (4×4 or 2×2) per image,
 * and for 5×5 NATIVE_WINOGRAD5_MIN_CHANNELS channels in and out per group.
 */
export function nativeWinogradApplies(g: Conv2dGeometry): boolean {
  const R = g.kernelH;
  if ((R !== 3 && R !== 5) || g.kernelW !== R || g.strideH !== 1 || g.strideW !== 1 || g.dilationH !== 1 || g.dilationW !== 1) return false;
  // Groups run one after the other, each a convolution of its own (CaffeNet's conv2, 5×5 in two
  // groups of 48 channels at batch 10, one thread: 24.7 ms against 39.1 on the WebAssembly
  // runner), but one channel per group is depthwise's.
  const Cg = g.channels / g.group, m = g.outChannels / g.group;
  if (Cg < 2) return false;
  // A 5×5 over few channels spends more on its transforms than its products save (LeNet's conv1,
  // one channel in: 4.7 ms this way against 1.1 unfolded).
  if (R === 5 && (Cg < NATIVE_WINOGRAD5_MIN_CHANNELS || m < NATIVE_WINOGRAD5_MIN_CHANNELS)) return false;
  return winogradTiles(g) >= NATIVE_WINOGRAD_MIN_TILES;
}

/** Fewest input and output channels for the native F(2×2, 5×5) path. */
export const NATIVE_WINOGRAD5_MIN_CHANNELS = 16;

/** Output tiles per image of a native Winograd path: 4×4 for 3×3 kernels, 2×2 for 5×5. */
function winogradTiles(g: Conv2dGeometry): number {
  const R = g.kernelH, step = 7 - R;
  return Math.ceil((g.height + 2 * g.padH - R + 1) / step) * Math.ceil((g.width + 2 * g.padW - R + 1) / step);
}

/**
 * Fewest 4×4 output tiles per image for the native Winograd path: its products are as wide as
 * the tiles, and a 7×7 plane's 4 tiles fill a quarter of the kernel's 16 columns (ResNet-50's
 * res5 3×3 layers: 7.4-7.9 ms there, 4.6-5.0 on the WebAssembly runner's F(2×2, 3×3)).
 */
export const NATIVE_WINOGRAD_MIN_TILES = 16;

function checkEpilogue(what: string, O: number, scale: Float32Array | null, shift: Float32Array | null): void {
  if ((scale && scale.length < O) || (shift && shift.length < O)) {
    throw new MathError(`${what}: scale and shift need ${O} elements (one per output channel), got ${scale?.length ?? '-'} and ${shift?.length ?? '-'}`);
  }
}

/**
 * An InferConvRunner in native code, for inference (TEST-phase) forwards:
 * - convolutions unfold their input in C (none for 1×1, stride 1) and multiply it by the weights
 *   packed once per version (kept per weights array; `packed: false` uses OpenBLAS's sgemm
 *   instead), in 6×16 register tiles, AVX2 with FMA where the CPU has them. The epilogue (scale,
 *   shift, ReLU) and a folded Eltwise SUM are applied to each tile before it is stored. A plane of
 *   up to 4 positions runs as OpenBLAS matrix-vector products;
 * - 3×3 and 5×5 stride-1 convolutions that nativeWinogradApplies to run as Winograd
 *   F(4×4, 3×3) or F(2×2, 5×5) on transformed weights kept the same way (`winograd: false`:
 *   never), group after group. With as many images as threads each thread takes whole images,
 *   batched where they have few tiles;
 * - the other Winograd-shaped ones (stride 1: 5×5, and 3×3 over NATIVE_WINOGRAD_MIN_CHANNELS
 *   channels or more) go to `fallback` (default: the WebAssembly packed runner,
 *   builtinWasmInferConv()), whose Winograd kernels beat the products here;
 * - depthwise convolutions run a direct kernel in C (3×3 over a zero-padded copy of each
 *   channel), their channels split over the threads;
 * - InnerProduct rows go to the fallback, else through OpenBLAS (sgemv for up to 4 rows), the
 *   bias added after;
 * - MAX pooling (maxPool) reduces each window's rows, then its columns (whole 2×2 stride-2
 *   windows eight at a time), planes split over the threads;
 * - LRN across channels (lrnAcross) and global AVE pooling (aveGlobal) with the WebAssembly
 *   kernels' float32 steps, planes split over the threads.
 * Whole images go to threads where there are as many images as threads; one image is split by
 * output channels or positions. stats(), clear() and release() cover the packed weights held
 * here and the fallback's. Threads: up to `threads` (default getNumThreads(), read on every
 * call), and at most one per `minFlopsPerThread` of the call's work (default
 * MIN_FLOPS_PER_THREAD). Throws NativeUnavailableError where the addon is not built.
 */
export function createNativeInferConv(
  options: {
    threads?: number; minFlopsPerThread?: number; packed?: boolean; winograd?: boolean; maxScratchFloats?: number;
    fallback?: WasmInferConv | null;
  } = {},
): InferConvRunner {
  const addon = nativeAddon();
  // Packed weights per weights array, kept while their version stays (a WeakMap: a disposed
  // layer's arrays take their packed copy with them).
  let packs = new WeakMap<Float32Array, { version: number; O: number; K: number; G: number; R: number; packed: Float32Array }>();
  let packedBytes = 0, packedEntries = 0;
  // `R` 0: packWeights' G groups of O / G × K; else the Winograd transform of O × K R×R filters
  // in G groups (K: the channels of a group; packWinograd).
  const packedFor = (weights: Float32Array, version: number | undefined, O: number, K: number, G: number, R = 0): Float32Array => {
    const held = version === undefined ? undefined : packs.get(weights);
    if (held && held.version === version && held.O === O && held.K === K && held.G === G && held.R === R) return held.packed;
    const floats = R ? G * addon.winogradFloats(O / G, K) : addon.packedFloats(O, K, G);
    const packed = held && held.packed.length === floats ? held.packed : new Float32Array(floats);
    if (R) addon.packWinograd(weights, O, K * G, packed, R, G);
    else addon.packWeights(weights, O, K, G, packed);
    if (version !== undefined) {
      if (!held) packedEntries++;
      packedBytes += packed.byteLength - (held?.packed.byteLength ?? 0);
      packs.set(weights, { version, O, K, G, R, packed });
    }
    return packed;
  };
  const geometry = new Int32Array(15);
  const fallback = () => (options.fallback !== undefined ? options.fallback : builtinWasmInferConv());
  const threadsFor = (flops: number) =>
    Math.max(1, Math.min(options.threads ?? getNumThreads(), Math.floor(flops / (options.minFlopsPerThread ?? MIN_FLOPS_PER_THREAD))));

  const conv2d = (
    g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, version: number | undefined, epilogue: ConvEpilogue,
    y: Float32Array, io?: ActivationVersions, sum?: ConvSum,
  ): boolean => {
    // Where the native Winograd path does not apply, the WebAssembly runner's Winograd kernels
    // (a quarter of the multiplies or fewer) beat unfolding and the products here: on ResNet-50's
    // 7×7 3×3 layers (4.6-5.0 ms there), on any 3×3 before that path existed (3.0-4.7 ms there
    // against 4.5-6.9), but not a 3×3 over 16 channels (SqueezeNet's fire2 expand pair: 1.8 ms
    // here, 2.3-2.5 there), where their transforms weigh more than the products they save. A
    // 5×5 saves more (LeNet's conv2 over 20 channels at batch 64: 5.0 ms there, 6.9 here).
    const { OH, OW } = checkConv2dPass('native inference conv', g, num, num, { colIn: x, gemmOut: y, weights });
    // One image's scratch: Winograd's transformed input and products, or the unfolded columns.
    // Past maxScratchFloats (a large image) the WebAssembly runner, which unfolds as it goes, runs
    // the layer instead.
    const maxScratch = options.maxScratchFloats ?? NATIVE_MAX_SCRATCH_FLOATS;
    const winograd = options.winograd !== false && nativeWinogradApplies(g) && 36 * (g.channels + g.outChannels) / g.group * winogradTiles(g) <= maxScratch;
    const unfolded = (g.channels / g.group) * g.kernelH * g.kernelW * OH * OW;
    const tooLarge = !winograd && unfolded > maxScratch;
    const wasm = tooLarge || (!winograd && winogradApplies(g) && (g.kernelH === 5 || g.channels / g.group >= NATIVE_WINOGRAD_MIN_CHANNELS)) ? fallback() : null;
    if (wasm?.conv2d(g, num, x, weights, version, epilogue, y, io, sum)) return true;
    const O = g.outChannels, imgOut = O * OH * OW;
    const { scale = null, shift = null, relu = null } = epilogue;
    checkEpilogue('native inference conv', O, scale, shift);
    if (sum && (sum.other.length < num * imgOut || sum.z.length < num * imgOut)) {
      throw new MathError(`native inference conv: the sum's other and z need ${num * imgOut} elements, got ${sum.other.length} and ${sum.z.length}`);
    }
    geometry.set([
      g.channels, g.height, g.width, g.kernelH, g.kernelW, g.padH, g.padW, g.strideH, g.strideW,
      g.dilationH, g.dilationW, O, g.group, OH, OW,
    ]);
    const K = (g.channels / g.group) * g.kernelH * g.kernelW;
    const flops = 2 * num * imgOut * K;
    if (winograd) {
      addon.winogradInfer(
        geometry, num, threadsFor(flops), x, packedFor(weights, version, O, g.channels / g.group, g.group, g.kernelH), scale, shift, relu ?? NaN, y,
        sum?.other ?? null, sum?.z ?? null, sum?.convFirst ?? true, sum?.c0 ?? 1, sum?.c1 ?? 1, sum?.relu ?? NaN,
      );
      return true;
    }
    // A plane of a few positions runs as matrix-vector products, which read the weights as they
    // are. Those stream every weight for a multiply-add or few, so they count as eight products
    // each, as depthwise work does: MobileNet v2's fc7 (1,280 × 1,000 weights over one position)
    // stayed on one thread, where two took 0.57-0.69 of its time.
    const vector = OH * OW <= 4;
    const packed = options.packed !== false && !vector ? packedFor(weights, version, O, K, g.group) : null;
    addon.conv2dInfer(
      geometry, num, threadsFor(vector ? 8 * flops : flops), x, weights, scale, shift, relu ?? NaN, y,
      sum?.other ?? null, sum?.z ?? null, sum?.convFirst ?? true, sum?.c0 ?? 1, sum?.c1 ?? 1, sum?.relu ?? NaN, packed,
    );
    return true;
  };

  return {
    name: 'native-openblas',
    conv2d,
    depthwise(g, num, x, weights, epilogue, y) {
      const { channels: C, outChannels: O, group: G } = g;
      if (G !== C || O !== C) throw new MathError(`native depthwise conv: group ${G}, channels ${C} and outChannels ${O} must be equal`);
      const { OH, OW } = checkConv2dPass('native depthwise conv', g, num, num, { colIn: x, gemmOut: y, weights });
      const { scale = null, shift = null, relu = null } = epilogue;
      checkEpilogue('native depthwise conv', O, scale, shift);
      geometry.set([C, g.height, g.width, g.kernelH, g.kernelW, g.padH, g.padW, g.strideH, g.strideW, g.dilationH, g.dilationW, O, G, OH, OW]);
      // A depthwise layer moves a float for every few multiply-adds (the padded copy, nine taps
      // per output), so its work counts eight times a product's: counted as products, MobileNet
      // v2's 14×14 and 7×7 depthwise layers (1.4-2 MFLOP) stayed on one thread, and the net took
      // 23.9 ms on two threads against 17.3-19.1 this way.
      addon.depthwiseInfer(geometry, num, threadsFor(16 * num * O * OH * OW * g.kernelH * g.kernelW), x, weights, scale, shift, relu ?? NaN, y);
      return true;
    },
    innerProduct(M, N, K, x, w, version, bias, y) {
      if (x.length < M * K || w.length < N * K || y.length < M * N || (bias && bias.length < N)) {
        throw new MathError(`native inner product: M=${M} N=${N} K=${K} need x, w, y of ${M * K}, ${N * K}, ${M * N} elements and bias of ${N}, got ${x.length}, ${w.length}, ${y.length}, ${bias?.length ?? '-'}`);
      }
      if (M === 0 || N === 0) return true;
      // The WebAssembly runner keeps the weights packed in its memory and streams them faster
      // than OpenBLAS's sgemv (CaffeNet's fc6 at batch 1, two threads: 8.7 against 10.7 ms).
      if (fallback()?.innerProduct(M, N, K, x, w, version, bias, y)) return true;
      addon.sgemm(false, true, M, N, K, 1, x, w, 0, y, threadsFor(2 * M * N * K));
      if (bias) {
        for (let m = 0; m < M; m++) {
          const row = m * N;
          for (let n = 0; n < N; n++) y[row + n] = y[row + n]! + bias[n]!;
        }
      }
      return true;
    },
    maxPool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y) {
      if (x.length < planes * H * W || y.length < planes * PH * PW) {
        throw new MathError(`native max pool: ${planes} planes of ${H}×${W} into ${PH}×${PW} need x, y of ${planes * H * W}, ${planes * PH * PW} elements, got ${x.length}, ${y.length}`);
      }
      // Caffe's windows must each hold a value (the layer checks; a call here that breaks it declines).
      if ((PH - 1) * SH >= H + padH || (PW - 1) * SW >= W + padW || padH >= KH || padW >= KW) return false;
      // A compare per float read: counted as eight products each, as depthwise work is.
      addon.maxPool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, threadsFor(16 * planes * PH * PW * KH * KW));
      return true;
    },
    lrnAcross(x, s, y, num, channels, plane, size, k, alphaOverSize, beta) {
      const n = num * channels * plane;
      if (x.length < n || y.length < n || (s && s.length < n)) {
        throw new MathError(`native lrn: ${num} × ${channels} planes of ${plane} need x, y${s ? ', s' : ''} of ${n} elements, got ${x.length}, ${y.length}${s ? `, ${s.length}` : ''}`);
      }
      // The square roots' betas and odd sizes only (what the WebAssembly kernel runs too); not in
      // place, as each plane's y is written while the next planes still read x there.
      if (!LRN_WASM_BETAS.includes(beta) || !Number.isInteger(size) || size < 1 || size % 2 !== 1 || shareMemory(x, y) || (s && (shareMemory(x, s) || shareMemory(s, y)))) return false;
      // A few flops per float read and written (sums of squares, two square roots and a
      // division each): counted as eight products per window element, as depthwise work is.
      addon.lrnAcross(x, s, y, num, channels, plane, size, k, alphaOverSize, beta, threadsFor(8 * n * size));
      return true;
    },
    aveGlobal(planes, size, divisor, x, y) {
      if (!Number.isInteger(planes) || planes < 1 || !Number.isInteger(size) || size < 1) {
        throw new MathError(`native aveGlobal: planes and size must be positive integers, got ${planes} and ${size}`);
      }
      if (x.length < planes * size || y.length < planes) {
        throw new MathError(`native aveGlobal: ${planes} planes of ${size} need x, y of ${planes * size}, ${planes} elements, got ${x.length}, ${y.length}`);
      }
      // An add per float read: counted as eight products each, as pooling work is.
      addon.aveGlobal(planes, size, divisor, x, y, threadsFor(16 * planes * size));
      return true;
    },
    stats() {
      // The packed weights held here (a disposed layer's go with it, uncounted), and the
      // fallback's own blocks.
      const own = { cachedBytes: packedBytes, cachedEntries: packedEntries, memoryBytes: 0 };
      const other = fallback()?.stats();
      return other ? { cachedBytes: own.cachedBytes + other.cachedBytes, cachedEntries: own.cachedEntries + other.cachedEntries, memoryBytes: other.memoryBytes } : own;
    },
    clear() {
      packs = new WeakMap();
      packedBytes = packedEntries = 0;
      fallback()?.clear();
    },
    release(w) {
      const held = packs.get(w);
      if (held) {
        packs.delete(w);
        packedBytes -= held.packed.byteLength;
        packedEntries--;
      }
      fallback()?.release(w);
    },
  };
}

/** Whether two arrays share memory. */
function shareMemory(a: Float32Array, b: Float32Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
