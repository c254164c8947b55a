import { kernelThreadSpin, restoreDefaultGemmKernel, setConv2dRunner, setGemmKernel, setInferConvRunner, setKernelThreadSpin } from '@caffe-ts/blob';
import { nativeAddon, nativeAvailability } from './addon.js';
import { createNativeConv2d } from './conv2d.js';
import { createNativeGemm } from './gemm.js';
import { createNativeInferConv } from './infer.js';

/** The kernel threads' spin before useNativeKernels set it to 0, for stopNativeKernels. */
let spinBefore: number | undefined;

/**
 * Installs the native kernels in this thread's @caffe-ts/blob:
 * - gemm() hands its Float32 products to OpenBLAS;
 * - convolution layers hand their training passes to the native pass runner (all but depthwise
 *   and Winograd forwards, which stay on the WebAssembly packed runner);
 * - inference (TEST-phase) convolutions go to the native inference runner, with their fused
 *   epilogues (createNativeInferConv), unless `inference` is false.
 * Pooling, activations and the other layers keep their WebAssembly and JS loops, and idle
 * kernel threads stop spinning (setKernelThreadSpin(0)). Throws NativeUnavailableError (saying
 * why and how to build it) where the addon is not built. Returns the OpenBLAS build in use.
 */
export function useNativeKernels(options: { threads?: number; inference?: boolean } = {}): { core: string; config: string } {
  const addon = nativeAddon();
  setGemmKernel(createNativeGemm(options), { name: 'native-openblas' });
  setConv2dRunner(createNativeConv2d(options));
  setInferConvRunner(options.inference === false ? null : createNativeInferConv(options));
  // Idle WebAssembly kernel threads sleep at once instead of spinning for the next job: the
  // native kernels' own threads need those cores between the WebAssembly layers.
  spinBefore ??= kernelThreadSpin();
  setKernelThreadSpin(0);
  const { core, config } = addon.info();
  return { core, config };
}

/** Removes the native kernels: the WebAssembly ones serve again, and their buffers are freed. */
export function stopNativeKernels(): void {
  restoreDefaultGemmKernel();
  setConv2dRunner(null);
  setInferConvRunner(null);
  if (spinBefore !== undefined) setKernelThreadSpin(spinBefore);
  spinBefore = undefined;
  if (nativeAvailability().available) releaseNativeMemory();
}

/**
 * Frees this thread's native column and gradient buffers, which grow to the largest pass run
 * and stay (a net built after a larger one need not keep them); returns the bytes freed. The
 * next pass allocates what it needs again.
 */
export function releaseNativeMemory(): number {
  return nativeAddon().release();
}
