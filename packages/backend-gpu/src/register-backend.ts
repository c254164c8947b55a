import { registerBackend, registeredBackends } from '@caffe-ts/blob';
import { createGpuBackend, type GpuBackendOptions } from './backend.js';
import type { GpuMode } from './runtime.js';

/**
 * Register the gpu backend as 'gpu' (lazily started on first getBackend('gpu')). The mode can be
 * forced with CAFFE_TS_GPU_MODE, host fallback allowed with CAFFE_TS_GPU_CPU_FALLBACK=1.
 * Priority 0 keeps 'cpu' the default unless asked for by name.
 */
export function registerGpuBackend(options: GpuBackendOptions = {}): void {
  if (registeredBackends().includes(options.name ?? 'gpu')) return;
  const envMode = process.env.CAFFE_TS_GPU_MODE as GpuMode | undefined;
  registerBackend(options.name ?? 'gpu', () =>
    createGpuBackend({
      mode: options.mode ?? (envMode || undefined),
      allowCpuFallback: options.allowCpuFallback ?? process.env.CAFFE_TS_GPU_CPU_FALLBACK === '1',
      name: options.name,
    }), 0);
}
