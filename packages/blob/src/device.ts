import type { DType, FloatArray } from './dtype.js';

/**
 * Device memory a backend owns (GPU textures, buffers…). SyncedMemory keeps a host copy and at
 * most one device copy in step, and moves data lazily when the other side asks for it.
 */
export interface DeviceAllocator<Handle = unknown> {
  readonly name: string;
  allocate(length: number, dtype: DType): Handle;
  /** Host → device. */
  upload(handle: Handle, source: FloatArray): void;
  /** Device → host: a readback, counted in `stats`. */
  download(handle: Handle, target: FloatArray): void;
  free(handle: Handle): void;
  readonly stats: TransferStats;
}

export interface TransferStats {
  uploads: number;
  readbacks: number;
}

export function newTransferStats(): TransferStats {
  return { uploads: 0, readbacks: 0 };
}
