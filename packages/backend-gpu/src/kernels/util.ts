import { BackendError, type Blob } from '@caffe-ts/blob';
import type { Layer } from '@caffe-ts/layers';
import type { GpuBuffer, GpuDevice, KernelSpec } from '../device.js';
import type { GpuValue } from '../runtime.js';

/** The GPU device of the backend a layer runs on. */
export function deviceOf(layer: Layer): GpuDevice {
  const d = layer.backend.device as GpuDevice | null;
  if (!d || typeof (d as Partial<GpuDevice>).runInto !== 'function') {
    throw new BackendError(`${layer.type} layer '${layer.name}': gpu kernel called on backend '${layer.backend.name}', which has no gpu.js device`);
  }
  return d;
}

export const dataOf = (dev: GpuDevice, blob: Blob): GpuValue => dev.read(blob.gpuData() as GpuBuffer);
export const diffOf = (dev: GpuDevice, blob: Blob): GpuValue => dev.read(blob.gpuDiff() as GpuBuffer);

/** Run `spec` over the blob's data buffer (all of its capacity; kernels guard on the count). */
export function writeData(dev: GpuDevice, blob: Blob, spec: KernelSpec, args: unknown[]): void {
  dev.runInto(blob.mutableGpuData() as GpuBuffer, spec, args);
}
export function writeDiff(dev: GpuDevice, blob: Blob, spec: KernelSpec, args: unknown[]): void {
  dev.runInto(blob.mutableGpuDiff() as GpuBuffer, spec, args);
}

/**
 * Integer arithmetic in kernels runs on floats in GL: `(a + 0.5) / b` floored is exact for the
 * index ranges used here (below 2^22), where a plain `a / b` can land just under an integer.
 */
export const IDIV = (a: string, b: string): string => `Math.floor((${a} + 0.5) / ${b})`;

/** A 1-float placeholder argument for a kernel input that is switched off (no bias, no old value). */
export function placeholder(dev: GpuDevice): GpuValue {
  return dev.read(dev.placeholder);
}
