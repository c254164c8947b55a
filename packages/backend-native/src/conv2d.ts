import { checkConv2dPass, getNumThreads, MIN_FLOPS_PER_THREAD, type Conv2dGeometry, type Conv2dPass, type Conv2dRunner } from '@caffe-ts/blob';
import { nativeAddon } from './addon.js';

/**
 * A Conv2dRunner in native code: per chunk of images, im2col / col2im and the reordering in C,
 * the products in OpenBLAS's sgemm (Conv2dPass's semantics, on the caller's arrays in place).
 * A pass large enough splits its images over up to `threads` threads (default: the kernel thread
 * count, getNumThreads(), read on every call), each with one-thread GEMMs. Throws
 * NativeUnavailableError where the addon is not built.
 */
export function createNativeConv2d(options: { threads?: number } = {}): Conv2dRunner {
  const addon = nativeAddon();
  const geometry = new Int32Array(15);
  return {
    name: 'native-openblas',
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
