export { allocArray, dtypeOf, BYTES_PER_ELEMENT, type DType, type FloatArray } from './dtype.js';
export { newTransferStats, type DeviceAllocator, type TransferStats } from './device.js';
export { SyncedMemory, type SyncedHead } from './synced-memory.js';
export { setHostAllocator, hostAllocator, hostMemoryInfo, allocKernelShared, allocHostInt32, releaseHostInt32, copyFloats, zeroFill, type HostAllocatorKind, type HostMemoryInfo } from './host-memory.js';
export type { KernelHeapStats } from './wasm/kernel-heap.js';
export { Blob, BlobError, BlobSizeError, blobProtoData, blobProtoDiff, blobProtoShape, maxBlobBytes, setMaxBlobBytes, MAX_BLOB_AXES, type BlobOptions } from './blob.js';
export {
  createCpuBackend,
  cpuBackend,
  registerBackend,
  registeredBackends,
  getBackend,
  BackendError,
  type Backend,
  type BackendStats,
  type DeviceSolverOps,
  type SgdStepSettings,
} from './backend.js';
export { Rng, globalRng, setRandomSeed, type RngState } from './rng.js';
export { logger, setLogSink, setLogEnabled, type Logger, type LogSink, type LogLevel } from './log.js';
export {
  MathError,
  gemm,
  gemmJs,
  gemv,
  setGemmKernel,
  activeGemmKernelName,
  customGemmKernelInstalled,
  restoreDefaultGemmKernel,
  GEMM_KERNEL_MIN_WORK,
  type GemmKernel,
  axpy,
  axpby,
  scal,
  dot,
  stridedDot,
  asum,
  sumsq,
  im2col,
  col2im,
  im2colBatch,
  col2imBatch,
  im2colNd,
  col2imNd,
  convOutputSize,
} from './math/index.js';
/** Every CPU math routine, elementwise helpers included (math.add, math.exp, math.set, …). */
export * as math from './math/index.js';
export * from './fillers/index.js';
export {
  createWasmGemmKernel,
  wasmGemmInfo,
  WASM_GEMM_KERNEL_NAMES,
  type WasmGemmInfo,
  type WasmGemmOptions,
  type WasmGemmVariant,
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
  createWasmMaxPool,
  defaultWasmMaxPool,
  type WasmMaxPool,
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
} from './wasm/index.js';
export { createWasmInfer, defaultWasmInfer, LRN_WASM_BETAS, type DepthwiseGeometry, type WasmInfer } from './wasm/infer-wasm.js';
export { createWasmTrain, defaultWasmTrain, SMALL_CONV_MAX_TAPS, type PoolGeometry, type SmallConvGeometry, type WasmTrain } from './wasm/train-wasm.js';
export {
  builtinWasmInferConv, createWasmInferConv, defaultWasmInferConv, installedInferConvRunner, setInferConvRunner, winogradApplies,
  type ActivationVersions, type ConvEpilogue, type ConvSum, type InferConvRunner, type WasmInferConv,
} from './wasm/infer-conv.js';
export { relaxedSimdOptedOut, relaxedSimdStatus, type RelaxedSimdStatus } from './wasm/wasm-api.js';
