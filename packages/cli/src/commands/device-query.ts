import { cpus, totalmem } from 'node:os';
import { activeGemmKernelName, installedConv2dRunner, installedInferConvRunner, registeredBackends, relaxedSimdStatus, wasmGemmInfo, type Backend, type RelaxedSimdStatus } from '@caffe-ts/blob';
import type { GpuBackendInfo } from '@caffe-ts/backend-gpu';
import { backendFromFlags } from './common.js';
import type { Command } from './index.js';

export const deviceQueryCommand: Command = {
  summary: 'show the compute backends and the device they run on',
  usage: '[--backend cpu|gpu]',
  async run({ flags, io }) {
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    const cpu = cpus();
    const lines = [
      `Backends registered: ${registeredBackends().join(', ')}`,
      `Backend: ${backend.name}`,
      ...deviceLines(backend),
      `CPU: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length}`,
      `Memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
      `WebAssembly SIMD: ${wasmSimdSupported() ? 'yes' : 'no'}`,
      `WebAssembly relaxed SIMD (fused multiply-add kernels): ${RELAXED_SIMD_WORDS[relaxedSimdStatus()]}`,
      `GEMM kernel (float32): ${gemmKernelDescription()}`,
      `Convolution passes (float32): ${installedConv2dRunner()?.name ?? 'the WebAssembly kernels'}`,
      `Inference forwards (float32): ${installedInferConvRunner()?.name ?? 'the WebAssembly packed runner'}`,
      `Runtime: Node.js ${process.versions.node} (V8 ${process.versions.v8})`,
    ];
    io.stdout(lines.join('\n') + '\n');
    return 0;
  },
};

/** What a device backend reports about itself (the gpu backend: gpu.js mode, texture limit, precision). */
function deviceLines(backend: Backend): string[] {
  const withInfo = backend as Backend & { info?: () => GpuBackendInfo };
  if (!backend.device || typeof withInfo.info !== 'function') return [];
  const info = withInfo.info();
  const limit = Number.isFinite(info.maxTextureSize)
    ? `${info.maxTextureSize}x${info.maxTextureSize} texels (${info.maxTextureSize ** 2} floats per buffer)`
    : 'none (host arrays)';
  return [
    `Device: ${backend.device.name}`,
    `gpu.js mode: ${info.mode} (gpu.js '${info.gpuJsMode}')`,
    ...(info.renderer !== undefined ? [`Renderer: ${info.renderer}`] : []),
    ...info.skipped.map((s) => `  passed over ${s.mode}: ${s.reason}`),
    `Max texture size: ${limit}`,
    `Float precision: ${info.floatPrecision}${info.mantissaBits !== undefined ? ` (${info.mantissaBits} mantissa bits kept through a device round trip, epsilon ${info.epsilon})` : ''}`,
    `Device kernels: ${info.kernels.join(', ')}`,
    ...(info.texturePool !== undefined ? [`Output textures: recycled (CAFFE_TS_GPU_TEXTURE_POOL=off allocates each anew)`] : []),
    ...(info.packed !== undefined ? [`Convolution/InnerProduct: ${info.packed ? 'packed GEMMs (4 floats per texel)' : 'direct kernels'}`] : []),
  ];
}

const RELAXED_SIMD_WORDS: Record<RelaxedSimdStatus, string> = {
  native: 'yes',
  enabled: 'yes (--experimental-wasm-relaxed-simd, set at start-up)',
  off: 'no: the engine needs --experimental-wasm-relaxed-simd, left off by CAFFE_TS_RELAXED_SIMD=off or CAFFE_TS_GEMM',
  unavailable: 'no (the plain builds: a multiply, then an add)',
};

function wasmSimdSupported(): boolean {
  // The smallest module using a v128 value: (func (result v128) v128.const i32x4 0 0 0 0)
  const bytes = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 11,
  ]);
  return typeof WebAssembly === 'object' && WebAssembly.validate(bytes);
}

function gemmKernelDescription(): string {
  const active = activeGemmKernelName();
  if (active !== 'js') return active;
  // The WASM kernel installs itself on the first large float32 product unless CAFFE_TS_GEMM=js.
  const info = wasmGemmInfo();
  if (process.env.CAFFE_TS_GEMM?.trim().toLowerCase() === 'js' || !info.variant) return 'js';
  return `wasm-${info.variant} (${info.blocking.MR}x${info.blocking.NR} micro-kernel, installed on first use)`;
}
