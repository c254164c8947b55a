// Pure exports only: importing this module registers nothing (see ./register).
export { createGpuBackend, gpuHostOnlyTypes, gpuKernelTypes, type GpuBackend, type GpuBackendInfo, type GpuBackendOptions } from './backend.js';
export { GpuBuffer, GpuDevice, type GpuDeviceStats, type KernelSpec } from './device.js';
export { GPU_MODE_ORDER, isModeSupported, type GpuMode, type GpuRuntimeInfo } from './runtime.js';
export type { GpuOps } from './kernels/sgd-update.js';
export { registerGpuBackend } from './register-backend.js';
