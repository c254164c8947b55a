export {
  createWasmGemmKernel,
  wasmGemmInfo,
  defaultFloat32GemmKernel,
  WASM_GEMM_KERNEL_NAMES,
  type WasmGemmInfo,
  type WasmGemmOptions,
  type WasmGemmVariant,
} from './gemm-wasm.js';
export {
  createWasmConv2d,
  defaultWasmConv2d,
  setConv2dRunner,
  checkConv2dPass,
  installedConv2dRunner,
  type Conv2dRunner,
  type PoolWindows,
  type Conv2dGeometry,
  type Conv2dPass,
  type WasmConv2d,
} from './conv-wasm.js';
export { createWasmMaxPool, defaultWasmMaxPool, type WasmMaxPool } from './pool-wasm.js';
export {
  setNumThreads,
  setKernelThreadSpin,
  kernelThreadSpin,
  getNumThreads,
  initThreads,
  shutdownThreads,
  threadPoolInfo,
  defaultNumThreads,
  hardwareThreads,
  MIN_FLOPS_PER_THREAD,
  MAX_THREADS,
  type ThreadPoolInfo,
} from './threads.js';
