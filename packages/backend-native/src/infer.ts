import {
  builtinWasmInferConv, checkConv2dPass, getNumThreads, MathError, MIN_FLOPS_PER_THREAD,
  type ActivationVersions, type Conv2dGeometry, type ConvEpilogue, type ConvSum, type InferConvRunner, type WasmInferConv,
} from '@caffe-ts/blob';
import { nativeAddon } from './addon.js';

function checkEpilogue(what: string, O: number, scale: Float32Array | null, shift: Float32Array | null): void {
  if ((scale && scale.length < O) || (shift && shift.length < O)) {
    throw new MathError(`${what}: scale and shift need ${O} elements (one per output channel), got ${scale?.length ?? '-'} and ${shift?.length ?? '-'}`);
  }
}

/**
 * An InferConvRunner in native code: the packed-path forwards of Convolution (and the
 * convolutions Deconvolution runs for its bottom gradient) as im2col in C and OpenBLAS's sgemm,
 * with the epilogue (scale, shift, ReLU) and a folded Eltwise SUM applied to each block of the
 * output right after its product. Whole images go to threads where there are as many images as
 * threads; one image is split by output channels or positions. InnerProduct rows go through
 * sgemm (sgemv for up to 4 rows), its bias added after.
 *
 * Depthwise convolutions run a direct kernel in C (a GEMM of one input channel per output
 * would be all overhead), their channels split over the threads. `fallback` (default: the
 * WebAssembly packed runner, builtinWasmInferConv()) keeps the packed weights' cache that
 * stats(), clear() and release() report and empty. Threads: up to `threads` (default
 * getNumThreads(), read on every call), and at most one per `minFlopsPerThread` of the call's
 * work (default MIN_FLOPS_PER_THREAD). Throws NativeUnavailableError where the addon is not
 * built.
 */
export function createNativeInferConv(
  options: { threads?: number; minFlopsPerThread?: number; fallback?: WasmInferConv | null } = {},
): InferConvRunner {
  const addon = nativeAddon();
  const geometry = new Int32Array(15);
  const fallback = () => (options.fallback !== undefined ? options.fallback : builtinWasmInferConv());
  const threadsFor = (flops: number) =>
    Math.max(1, Math.min(options.threads ?? getNumThreads(), Math.floor(flops / (options.minFlopsPerThread ?? MIN_FLOPS_PER_THREAD))));

  const conv2d = (
    g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, _version: number | undefined, epilogue: ConvEpilogue,
    y: Float32Array, _io?: ActivationVersions, sum?: ConvSum,
  ): boolean => {
    const { OH, OW } = checkConv2dPass('native inference conv', g, num, num, { colIn: x, gemmOut: y, weights });
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
    const flops = 2 * num * imgOut * (g.channels / g.group) * g.kernelH * g.kernelW;
    addon.conv2dInfer(
      geometry, num, threadsFor(flops), x, weights, scale, shift, relu ?? NaN, y,
      sum?.other ?? null, sum?.z ?? null, sum?.convFirst ?? true, sum?.c0 ?? 1, sum?.c1 ?? 1, sum?.relu ?? NaN,
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
      addon.depthwiseInfer(geometry, num, threadsFor(2 * num * O * OH * OW * g.kernelH * g.kernelW), x, weights, scale, shift, relu ?? NaN, y);
      return true;
    },
    innerProduct(M, N, K, x, w, _version, bias, y) {
      if (x.length < M * K || w.length < N * K || y.length < M * N || (bias && bias.length < N)) {
        throw new MathError(`native inner product: M=${M} N=${N} K=${K} need x, w, y of ${M * K}, ${N * K}, ${M * N} elements and bias of ${N}, got ${x.length}, ${w.length}, ${y.length}, ${bias?.length ?? '-'}`);
      }
      if (M === 0 || N === 0) return true;
      addon.sgemm(false, true, M, N, K, 1, x, w, 0, y, threadsFor(2 * M * N * K));
      if (bias) {
        for (let m = 0; m < M; m++) {
          const row = m * N;
          for (let n = 0; n < N; n++) y[row + n] = y[row + n]! + bias[n]!;
        }
      }
      return true;
    },
    stats() {
      // Nothing is packed or cached here (the products read the layers' arrays in place); the
      // fallback's own blocks, where it holds any.
      return fallback()?.stats() ?? { cachedBytes: 0, cachedEntries: 0, memoryBytes: 0 };
    },
    clear() {
      fallback()?.clear();
    },
    release(w) {
      fallback()?.release(w);
    },
  };
}
