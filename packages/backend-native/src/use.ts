import { restoreDefaultGemmKernel, setConv2dRunner, setGemmKernel } from '@caffe-ts/blob';
import { nativeAddon } from './addon.js';
import { createNativeConv2d } from './conv2d.js';
import { createNativeGemm } from './gemm.js';

/**
 * Installs the native kernels in this thread's @caffe-ts/blob: gemm() hands its Float32 products
 * to OpenBLAS, and convolution layers their passes (all but depthwise forwards) to the native
 * runner. Pooling, activations and the other layers keep their WebAssembly and JS loops. Throws
 * NativeUnavailableError (saying why and how to build it) where the addon is not built.
 * Returns the OpenBLAS build in use.
 */
export function useNativeKernels(options: { threads?: number } = {}): { core: string; config: string } {
  const addon = nativeAddon();
  setGemmKernel(createNativeGemm(options), { name: 'native-openblas' });
  setConv2dRunner(createNativeConv2d(options));
  const { core, config } = addon.info();
  return { core, config };
}

/** Removes the native kernels: the WebAssembly ones serve again. */
export function stopNativeKernels(): void {
  restoreDefaultGemmKernel();
  setConv2dRunner(null);
}
