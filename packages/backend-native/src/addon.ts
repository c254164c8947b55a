import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The compiled addon's functions (native/caffe_native.c). */
export interface NativeAddon {
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array, threads: number,
  ): void;
  conv2d(
    geometry: Int32Array, num: number, chunk: number, threads: number,
    colIn: Float32Array | null, gemmIn: Float32Array | null, weights: Float32Array, bias: Float32Array | null,
    biasDiff: Float32Array | null, weightDiff: Float32Array | null, gemmOut: Float32Array | null, colOut: Float32Array | null,
  ): void;
  conv2dInfer(
    geometry: Int32Array, num: number, threads: number, x: Float32Array, weights: Float32Array,
    scale: Float32Array | null, shift: Float32Array | null, relu: number, y: Float32Array,
    other: Float32Array | null, z: Float32Array | null, convFirst: boolean, c0: number, c1: number, sumRelu: number,
    packed: Float32Array | null,
  ): void;
  winogradInfer(
    geometry: Int32Array, num: number, threads: number, x: Float32Array, transformed: Float32Array,
    scale: Float32Array | null, shift: Float32Array | null, relu: number, y: Float32Array,
    other: Float32Array | null, z: Float32Array | null, convFirst: boolean, c0: number, c1: number, sumRelu: number,
  ): void;
  packWinograd(weights: Float32Array, O: number, C: number, out: Float32Array, R: number, G: number): number;
  winogradFloats(O: number, C: number): number;
  packWeights(weights: Float32Array, O: number, K: number, G: number, out: Float32Array): number;
  packedFloats(O: number, K: number, G: number): number;
  depthwiseInfer(
    geometry: Int32Array, num: number, threads: number, x: Float32Array, weights: Float32Array,
    scale: Float32Array | null, shift: Float32Array | null, relu: number, y: Float32Array,
  ): void;
  maxPool(
    planes: number, H: number, W: number, PH: number, PW: number, KH: number, KW: number,
    SH: number, SW: number, padH: number, padW: number, x: Float32Array, y: Float32Array, threads: number,
    argmax?: Int32Array | null,
  ): void;
  maxUnpool(dy: Float32Array, argmax: Int32Array, planes: number, inPlane: number, outPlane: number, dx: Float32Array, threads: number): void;
  avePool(
    planes: number, H: number, W: number, PH: number, PW: number, KH: number, KW: number,
    SH: number, SW: number, padH: number, padW: number, x: Float32Array, y: Float32Array, threads: number,
  ): void;
  aveUnpool(
    planes: number, H: number, W: number, PH: number, PW: number, KH: number, KW: number,
    SH: number, SW: number, padH: number, padW: number, dy: Float32Array, dx: Float32Array, threads: number,
  ): void;
  lrnAcross(
    x: Float32Array, s: Float32Array | null, y: Float32Array, num: number, channels: number, plane: number, size: number,
    k: number, alphaOverSize: number, beta: number, threads: number,
  ): void;
  aveGlobal(planes: number, size: number, divisor: number, x: Float32Array, y: Float32Array, threads: number): void;
  sgdStep(w: Float32Array, g: Float32Array, h: Float32Array, rate: number, momentum: number, decay: number, threads: number): boolean;
  /** Allows (the default) or forbids the kernels' AVX2 branches (tests of the portable ones); returns whether they run. */
  allowWide(allowed: boolean): boolean;
  info(): { config: string; core: string; maxThreads: number };
  release(): number;
}

/** The addon could not be loaded: not built (no compiler or no OpenBLAS), or built for another Node. */
export class NativeUnavailableError extends Error {
  override readonly name = 'NativeUnavailableError';
}

// The package root, from src/ (tests) and dist/ (the published build) alike.
const root = fileURLToPath(new URL('..', import.meta.url));
const addonPath = fileURLToPath(new URL('../build/Release/caffe_native.node', import.meta.url));
const failureLog = fileURLToPath(new URL('../build/build-addon-failed.txt', import.meta.url));

let loaded: { addon: NativeAddon | null; reason: string } | undefined;

function load(): { addon: NativeAddon | null; reason: string } {
  if (loaded) return loaded;
  if (!existsSync(addonPath)) {
    const why = existsSync(failureLog) ? readFileSync(failureLog, 'utf8').trim().split('\n').slice(-6).join('\n') : 'it was never built';
    loaded = {
      addon: null,
      reason: `the native addon ${addonPath} is missing: ${why}\n` +
        `Install a C compiler and OpenBLAS (Debian: apt-get install g++ make libopenblas-dev), then run ` +
        `\`node scripts/build-addon.mjs\` in ${root}.`,
    };
    return loaded;
  }
  // The addon splits products over threads of its own and calls OpenBLAS single-threaded:
  // OpenBLAS's pool threads spin after each threaded call (about 2^28 cycles) before they sleep,
  // taking the cores from every other thread. One thread: no pool. Read when the library loads,
  // so set first; a value the user set stays.
  process.env.OPENBLAS_NUM_THREADS ||= '1';
  try {
    loaded = { addon: createRequire(import.meta.url)(addonPath) as NativeAddon, reason: '' };
  } catch (e) {
    loaded = { addon: null, reason: `the native addon ${addonPath} does not load: ${e instanceof Error ? e.message : String(e)}` };
  }
  return loaded;
}

/** The addon, or a NativeUnavailableError saying why it is missing and how to build it. */
export function nativeAddon(): NativeAddon {
  const { addon, reason } = load();
  if (!addon) throw new NativeUnavailableError(`@caffe-ts/backend-native: ${reason}`);
  return addon;
}

/** Whether the addon loads here; `reason` says why not. */
export function nativeAvailability(): { available: boolean; reason: string } {
  const { addon, reason } = load();
  return { available: addon !== null, reason };
}
