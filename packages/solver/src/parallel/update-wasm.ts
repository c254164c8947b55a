/*
 * The reduction and the fused plain-SGD update of update.ts as WebAssembly SIMD kernels working
 * in place on the shared arenas: the arenas of a run (params, every rank's diffs, the solver's
 * history) live in one shared WebAssembly.Memory that every rank instantiates the module on, so
 * nothing is copied. The kernels compute in float64 where the JavaScript loops do and round to
 * float32 where they store, so both give the same values bit for bit (tests); the JavaScript loops
 * stay the fallback (no SIMD, float64 nets, arenas too large for a 32-bit memory,
 * CAFFE_TS_PARALLEL_WASM=off).
 */
import { allocKernelShared } from '@caffe-ts/blob';
import { UPDATE_WASM_SIMD_BASE64 } from './generated/update-wasm.js';

/** The kernels of one instance over one shared memory (byte addresses into it). */
export interface UpdateKernels {
  /** g = fround((d_0 + … + d_{ranks−1}) × scale), d_r at g + r·stride bytes; d_1… zeroed. n floats. */
  reduce(g: number, stride: number, ranks: number, n: number, scale: number): void;
  /** The reduction, then plain SGD without weight decay over n floats; 1 when every new w is finite. */
  sgd(w: number, g: number, stride: number, ranks: number, h: number, n: number, scale: number, lr: number, decay: number, momentum: number): number;
  /** Zero `bytes` bytes from byte address p (memory.fill). */
  zero(p: number, bytes: number): void;
  /** The same with L2 weight decay `decay`. */
  sgd_decay(w: number, g: number, stride: number, ranks: number, h: number, n: number, scale: number, lr: number, decay: number, momentum: number): number;
}

const PAGE = 65536;
/** A 32-bit memory's limit (65536 pages); arenas beyond stay on a plain SharedArrayBuffer. */
const MAX_PAGES = 65536;

let compiled: WebAssembly.Module | null | undefined;

/** Whether the kernels are on: WebAssembly SIMD and threads present, not turned off by CAFFE_TS_PARALLEL_WASM=off. */
export function updateWasmEnabled(): boolean {
  return updateModule() !== null;
}

function updateModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  const env = typeof process !== 'undefined' ? process.env.CAFFE_TS_PARALLEL_WASM?.trim().toLowerCase() : undefined;
  if (env === 'off' || env === '0' || typeof WebAssembly === 'undefined') return null;
  try {
    const bytes = Uint8Array.from(Buffer.from(UPDATE_WASM_SIMD_BASE64, 'base64'));
    if (!WebAssembly.validate(bytes)) return null;
    compiled = new WebAssembly.Module(bytes);
  } catch {
    compiled = null;
  }
  return compiled;
}

/** The arenas' memory: a shared WebAssembly.Memory when the kernels can run on it, else a plain SharedArrayBuffer. */
export interface ArenaMemory {
  buffer: SharedArrayBuffer;
  memory: WebAssembly.Memory | null;
  /** Where the arenas start in `buffer` (bytes; 0 unless they sit in the blob kernels' heap). */
  byteOffset?: number;
  /**
   * In the blob kernels' heap (allocKernelShared): counts a view of the arenas as a user of that
   * block (the views that blobs keep, which may outlive the run); the block is freed once all are collected.
   */
  track?: (view: object) => void;
  /** The heap block's array (keep it while the arenas are in use). */
  owner?: Float32Array;
}

/**
 * Float32 arenas in the calling thread's blob kernel memory (the 'wasm' host allocator's heap)
 * when it can hold them: rank 0's params and diffs then live where its GEMM and convolution
 * kernels read and write, so they are not copied in and out of that memory on every call (LeNet's
 * ip1 weights and their gradient, 1.6 MB each, four copies a step on rank 0). The update kernels
 * are instantiated on the same memory (each worker imports it too). Else allocArenaMemory.
 */
export function allocArenaInKernelMemory(bytes: number): ArenaMemory {
  if (updateModule()) {
    const block = allocKernelShared(Math.ceil(bytes / 4));
    if (block) return { buffer: block.array.buffer as SharedArrayBuffer, memory: block.memory, byteOffset: block.array.byteOffset, track: block.track, owner: block.array };
  }
  return allocArenaMemory(bytes);
}

/** `bytes` of zeroed shared memory for the arenas (a WebAssembly.Memory where the kernels are on). */
export function allocArenaMemory(bytes: number): ArenaMemory {
  const pages = Math.max(1, Math.ceil(bytes / PAGE));
  if (updateModule() && pages <= MAX_PAGES) {
    try {
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      return { buffer: memory.buffer as unknown as SharedArrayBuffer, memory };
    } catch {
      // The engine refused a memory that size: the plain buffer below (JavaScript loops).
    }
  }
  return { buffer: new SharedArrayBuffer(Math.max(1, bytes)), memory: null };
}

/** The kernels over `memory` (this thread's instance), or null where they cannot run. */
export function createUpdateKernels(memory: WebAssembly.Memory | null | undefined): UpdateKernels | null {
  const module = memory ? updateModule() : null;
  if (!module || !memory) return null;
  try {
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    return instance.exports as unknown as UpdateKernels;
  } catch {
    return null;
  }
}
