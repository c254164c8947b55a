export { nativeAvailability, NativeUnavailableError, type NativeAddon } from './addon.js';
export { createNativeGemm, NATIVE_GEMM_MIN_WORK_PER_THREAD } from './gemm.js';
export { createNativeConv2d, MIN_POOL_OUTPUTS_PER_THREAD, MIN_SGD_ELEMENTS_PER_THREAD } from './conv2d.js';
export {
  createNativeInferConv, NATIVE_MAX_SCRATCH_FLOATS, NATIVE_WINOGRAD5_MIN_CHANNELS, NATIVE_WINOGRAD_MIN_CHANNELS, NATIVE_WINOGRAD_MIN_TILES,
  nativeWinogradApplies,
} from './infer.js';
export { useNativeKernels, stopNativeKernels, releaseNativeMemory } from './use.js';
