import { registerBackend, registeredBackends } from '@caffe-ts/blob';
import type { GpuBackendOptions } from './backend.js';
import type { GpuMode } from './runtime.js';

/**
 * Register the gpu backend as 'gpu' (lazily started on first getBackend('gpu')). The mode can be
 * forced with CAFFE_TS_GPU_MODE, host fallback allowed with CAFFE_TS_GPU_CPU_FALLBACK=1 (in the
 * environment, where there is one: browsers have none). Priority 0 keeps 'cpu' the default
 * unless asked for by name. The backend module (and gpu.js with it) is imported on first use,
 * so registering costs a program that never asks for 'gpu' nothing.
 */
export function registerGpuBackend(options: GpuBackendOptions = {}): void {
  if (registeredBackends().includes(options.name ?? 'gpu')) return;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  const envMode = env.CAFFE_TS_GPU_MODE?.trim().toLowerCase() as GpuMode | undefined;
  registerBackend(options.name ?? 'gpu', async () => {
    const { createGpuBackend } = await import('./backend.js');
    return createGpuBackend({
      mode: options.mode ?? (envMode || undefined),
      allowCpuFallback: options.allowCpuFallback ?? env.CAFFE_TS_GPU_CPU_FALLBACK?.trim() === '1',
      cpuFallbackHint: options.cpuFallbackHint ?? "set CAFFE_TS_GPU_CPU_FALLBACK=1 (or register the backend with { allowCpuFallback: true })",
      name: options.name,
    });
  }, 0);
}
