import { checkConv2dPass, getNumThreads, MIN_FLOPS_PER_THREAD, type Conv2dGeometry, type Conv2dPass, type Conv2dRunner } from '@caffe-ts/blob';
import { nativeAddon } from './addon.js';

/** Fewest pooling outputs per thread (fewer: one thread, which measured faster than waking another). */
export const MIN_POOL_OUTPUTS_PER_THREAD = 16384;

/**
 * Fewest elements per thread of an SGD step. The step streams three arrays and writes them back,
 * so a second thread adds little: LeNet's ip1 (431k elements with the others) 0.40-0.59 ms on two
 * threads against 0.46-0.50 on one.
 */
export const MIN_SGD_ELEMENTS_PER_THREAD = 1 << 21;

/**
 * A Conv2dRunner in native code: per chunk of images, im2col / col2im and the reordering in C,
 * the weight gradient in OpenBLAS's sgemm, the products by the weights (forward, bottom gradient)
 * on weights packed once per pass (Conv2dPass's semantics, on the caller's arrays in place).
 * A pass large enough splits its images over up to `threads` threads (default: the kernel thread
 * count, getNumThreads(), read on every call), each with one-thread GEMMs. It also runs the
 * training pooling passes (MAX with the argmax: maxPool, maxUnpool; AVE: avePool, aveUnpool, with
 * the WebAssembly kernels' bits), planes split over the threads, and SGDSolver's fused step of
 * float32 params (sgdStep, WasmTrain.sgdStep's bits).
 * Throws NativeUnavailableError where the addon is not built.
 */
export function createNativeConv2d(options: { threads?: number } = {}): Conv2dRunner {
  const addon = nativeAddon();
  const geometry = new Int32Array(15);
  // Pooling moves a few floats per compare: a thread takes at least this many outputs, unless
  // `threads` was given.
  const poolThreads = (outputs: number) => options.threads ?? Math.max(1, Math.min(getNumThreads(), Math.floor(outputs / MIN_POOL_OUTPUTS_PER_THREAD)));
  return {
    name: 'native-openblas',
    maxPool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, argmax) {
      const outputs = planes * PH * PW;
      if (x.length < planes * H * W || y.length < outputs || argmax.length < outputs) return false;
      addon.maxPool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, poolThreads(outputs), argmax);
      return true;
    },
    maxUnpool(dy, argmax, planes, inPlane, outPlane, dx) {
      const outputs = planes * outPlane;
      if (dy.length < outputs || argmax.length < outputs || dx.length < planes * inPlane) return false;
      addon.maxUnpool(dy, argmax, planes, inPlane, outPlane, dx, poolThreads(outputs));
      return true;
    },
    avePool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y) {
      const outputs = planes * PH * PW;
      if (x.length < planes * H * W || y.length < outputs) return false;
      addon.avePool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y, poolThreads(outputs));
      return true;
    },
    aveUnpool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, dy, dx) {
      const outputs = planes * PH * PW;
      if (dy.length < outputs || dx.length < planes * H * W) return false;
      addon.aveUnpool(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, dy, dx, poolThreads(outputs));
      return true;
    },
    sgdStep(w, g, h, rate, momentum, decay) {
      if (g.length !== w.length || h.length !== w.length) return null;
      const threads = options.threads ?? Math.max(1, Math.min(getNumThreads(), Math.floor(w.length / MIN_SGD_ELEMENTS_PER_THREAD)));
      return addon.sgdStep(w, g, h, rate, momentum, decay, threads);
    },
    run(g: Conv2dGeometry, num: number, chunk: number, pass: Conv2dPass): void {
      const { OH, OW } = checkConv2dPass('native conv', g, num, chunk, pass);
      geometry.set([
        g.channels, g.height, g.width, g.kernelH, g.kernelW, g.padH, g.padW, g.strideH, g.strideW,
        g.dilationH, g.dilationW, g.outChannels, g.group, OH, OW,
      ]);
      const products = (pass.gemmOut ? 1 : 0) + (pass.colOut ? 1 : 0) + (pass.weightDiff ? 1 : 0);
      const flops = 2 * num * OH * OW * g.outChannels * (g.channels / g.group) * g.kernelH * g.kernelW * products;
      // Up to one thread per image; past that (fewer images than threads) the addon splits each
      // product instead.
      const threads = Math.max(1, Math.min(options.threads ?? getNumThreads(), Math.floor(flops / MIN_FLOPS_PER_THREAD)));
      addon.conv2d(
        geometry, num, Math.min(chunk, num), threads,
        pass.colIn ?? null, pass.gemmIn ?? null, pass.weights, pass.bias ?? null,
        pass.biasDiff ?? null, pass.weightDiff ?? null, pass.gemmOut ?? null, pass.colOut ?? null,
      );
    },
  };
}
