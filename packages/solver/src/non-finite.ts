import type { Blob } from '@caffe-ts/blob';
import type { Net } from '@caffe-ts/net';

/** Where the first NaN/±Inf in a net's params is. */
export interface NonFiniteParam {
  layer: string;
  type: string;
  /** Index of the param blob within its layer (0 weights, 1 bias, …). */
  param: number;
  /** Flat element index in the blob, and the blob's shape string. */
  index: number;
  shape: string;
  value: number;
}

/** The data memory is current on a device only: reading it on the host would cost a transfer. */
const onDeviceOnly = (b: Blob): boolean => b.data.head === 'gpu';

/**
 * Whether every learnable param of `net` is finite. Cheap (one multiply-add per element, no
 * branch: x·0 is 0 for a finite x and NaN for NaN/±Inf, so the sum is NaN iff one is not
 * finite). Params whose data lives only on a device are skipped unless `includeDevice` (a
 * readback per blob).
 */
export function paramsFinite(net: Net, { includeDevice = false }: { includeDevice?: boolean } = {}): boolean {
  for (const blob of net.learnableParams) {
    if (!includeDevice && onDeviceOnly(blob)) continue;
    if (!allFinite(blob.cpuData())) return false;
  }
  return true;
}

/** Whether every value is finite (x·0 is NaN for NaN/±Inf); four independent sums run ~2x faster on V8. */
export function allFinite(d: ArrayLike<number>): boolean {
  let a = 0;
  let b = 0;
  let c = 0;
  let e = 0;
  const n = d.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    a += d[i]! * 0;
    b += d[i + 1]! * 0;
    c += d[i + 2]! * 0;
    e += d[i + 3]! * 0;
  }
  for (; i < n; i++) a += d[i]! * 0;
  return a + b + c + e === 0;
}

/** The first non-finite param value, in layer order (owners and sharers alike), or null. */
export function findNonFiniteParam(net: Net): NonFiniteParam | null {
  for (let i = 0; i < net.layers.length; i++) {
    const layer = net.layers[i]!;
    for (let j = 0; j < layer.blobs.length; j++) {
      const blob = layer.blobs[j]!;
      const d = blob.cpuData();
      for (let k = 0; k < d.length; k++) {
        const v = d[k]!;
        if (!Number.isFinite(v)) {
          return { layer: net.layerNames[i]!, type: layer.type, param: j, index: k, shape: blob.shapeString(), value: v };
        }
      }
    }
  }
  return null;
}
