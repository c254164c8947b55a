export {
  createWasmGemmKernel,
  wasmGemmInfo,
  defaultFloat32GemmKernel,
  WASM_GEMM_KERNEL_NAMES,
  type WasmGemmInfo,
  type WasmGemmOptions,
  type WasmGemmVariant,
} from './gemm-wasm.js';
