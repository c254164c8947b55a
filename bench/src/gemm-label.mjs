// Which float32 GEMM build a caffe-ts run used, for the benches' headers and version columns.
// activeGemmKernelName() names the kernel gemm() installs on its first large product, and says
// 'js' until then; an inference-only run may never call gemm() (its convolutions and inner
// products go to the packed WebAssembly runners, which run the same default build), so before
// that install this names the build those runners use.
export function gemmLabel(blob) {
  const active = blob.activeGemmKernelName?.();
  if (active === undefined) return '?';
  if (active !== 'js' || process.env.CAFFE_TS_GEMM?.trim().toLowerCase() === 'js') return active;
  const variant = blob.wasmGemmInfo?.().variant;
  return variant ? blob.WASM_GEMM_KERNEL_NAMES?.[variant] ?? variant : 'js';
}
