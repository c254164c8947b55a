import { BackendError, Blob } from '@caffe-ts/blob';
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
/**
 * The value `make` derives from `blob`'s data (its weights packed for the GEMM), kept on the device
 * under `key` until the data is written (GpuDevice.derive, keyed by the blob's dataVersion).
 */
export const derivedOf = (dev: GpuDevice, blob: Blob, key: string, make: () => GpuValue): GpuValue =>
  dev.derive(blob.gpuData() as GpuBuffer, blob.dataVersion, key, make);

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

/** Per-layer device scratch blobs (masks, saved inputs, statistics), kept while the layer lives. */
const scratch = new WeakMap<Layer, Map<string, Blob>>();

/** The part of whole images a layer is running on, while a layer runs part by part (batch-parts.ts). */
export interface LayerPart {
  /** Which part (0, 1, ...). */
  index: number;
  /** Where the part starts in the layer's bottom[0], in floats. */
  offset: number;
}
const currentPart = new WeakMap<Layer, LayerPart>();

/** Mark `layer` as running on `part` (null: on the whole batch again). */
export function setLayerPart(layer: Layer, part: LayerPart | null): void {
  if (part) currentPart.set(layer, part);
  else currentPart.delete(layer);
}

/** The part `layer` is running on, if it runs part by part. */
export const layerPart = (layer: Layer): LayerPart | undefined => currentPart.get(layer);

/**
 * The layer's scratch blob `key` holding `n` floats (made on first use, reshaped when `n` changes).
 * A layer running part by part gets one per part: a forward's mask or kept input must still be
 * there when the same part's backward runs.
 */
export function scratchBlob(layer: Layer, name: string, n: number): Blob {
  const part = currentPart.get(layer);
  const key = part ? `${name}#${part.index}` : name;
  let m = scratch.get(layer);
  if (!m) {
    m = new Map();
    scratch.set(layer, m);
  }
  let b = m.get(key);
  if (!b) {
    b = new Blob([n], { dtype: 'float32', device: layer.backend.device });
    m.set(key, b);
  } else if (b.count() !== n) {
    b.reshape([n]);
  }
  return b;
}

/** Disposes the layer's scratch blobs (Backend.releaseLayer). */
export function releaseScratch(layer: Layer): void {
  const m = scratch.get(layer);
  if (!m) return;
  scratch.delete(layer);
  for (const b of m.values()) b.dispose();
}

/** The device buffer of a scratch blob, for kernels to write. */
export const scratchBuffer = (layer: Layer, key: string, n: number): GpuBuffer => scratchBlob(layer, key, n).mutableGpuData() as GpuBuffer;

/** out[i] = X[i] (a device copy). */
export const copySpec: KernelSpec = {
  name: 'copy1',
  source: `function (X, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return X[i];
  }`,
};

/** Kernel source: `d`, the channel of flat index `i` in an (outer, D, inner) layout. */
export const CHANNEL_OF_I = `const ti = ${IDIV('i', 'inner')};
    const d = ti - ${IDIV('ti', 'D')} * D;`;

/**
 * Per-channel sums over an (outer, D, inner) layout: out[d] = beta·Old[d] + Σ_{n,j} A·(B when
 * useB) at (n·D + d)·inner + j. Bias/scale gradients and batch statistics use it.
 */
export const channelSumSpec = (outer: number, inner: number): KernelSpec => ({
  name: 'chan-sum',
  loop: outer * inner,
  source: `function (A, B, useB, Old, beta, outer, D, inner) {
    const d = this.thread.x;
    if (d >= D) { return 0; }
    let s = 0.0;
    for (let r = 0; r < outer * inner; r++) {
      const n = ${IDIV('r', 'inner')};
      const j = r - n * inner;
      const k = (n * D + d) * inner + j;
      if (useB > 0) { s += A[k] * B[k]; } else { s += A[k]; }
    }
    if (beta != 0) { s += beta * Old[d]; }
    return s;
  }`,
});

/**
 * `spec` with the named scalar arguments baked in as shader constants: they leave the argument
 * list and become `this.constants.NAME` in the source, so the GL compiler folds the divisions and
 * fixes the loop bounds (one compiled kernel per geometry). Callers drop them from the arguments.
 */
export function withConstants(spec: KernelSpec, values: Record<string, number>): KernelSpec {
  const names = Object.keys(values);
  let source = spec.source.replace(/^function\s*\(([^)]*)\)/, (_m, params: string) => {
    const kept = params
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p && !names.includes(p));
    return `function (${kept.join(', ')})`;
  });
  const head = source.indexOf('{');
  const body = source.slice(head).replace(new RegExp(`\\b(${names.join('|')})\\b`, 'g'), (m, name: string, off: number, all: string) =>
    all[off - 1] === '.' ? m : `this.constants.${name}`,
  );
  source = source.slice(0, head) + body;
  return { ...spec, source, constants: { ...spec.constants, ...values } };
}
