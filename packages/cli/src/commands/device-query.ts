import { cpus, totalmem } from 'node:os';
import { activeGemmKernelName, registeredBackends, wasmGemmInfo } from '@caffe-ts/blob';
import type { Command } from './index.js';

export const deviceQueryCommand: Command = {
  summary: 'show the compute backends and the device they run on',
  usage: '[--backend cpu]',
  async run({ flags, io }) {
    const wanted = flags.string('backend');
    flags.checkAllUsed();
    const cpu = cpus();
    const lines = [
      `Backends registered: ${registeredBackends().join(', ')}`,
      `Backend: cpu${wanted && wanted !== 'cpu' ? ` (requested '${wanted}')` : ''}`,
      `CPU: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length}`,
      `Memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
      `WebAssembly SIMD: ${wasmSimdSupported() ? 'yes' : 'no'}`,
      `GEMM kernel (float32): ${gemmKernelDescription()}`,
      `Runtime: Node.js ${process.versions.node} (V8 ${process.versions.v8})`,
    ];
    io.stdout(lines.join('\n') + '\n');
    return 0;
  },
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
  if (process.env.CAFFE_TS_GEMM === 'js' || !info.variant) return 'js';
  return `wasm-${info.variant} (${info.blocking.MR}x${info.blocking.NR} micro-kernel, installed on first use)`;
}
