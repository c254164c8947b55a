// Where SyncedMemory's host (CPU) arrays come from: the 'wasm' allocator places float32 arrays in
// the WebAssembly kernels' shared memory (wasm/kernel-heap.ts over the memory of wasm/threads.ts),
// so GEMM, convolution and pooling read and write blob data in place; 'js' allocates plain
// typed arrays, which the kernels copy into their memory and back on every call.
//
// The 'wasm' allocator serves float32 only, and only where a shared WebAssembly.Memory can be
// made (WebAssembly SIMD, SharedArrayBuffer: a browser page must be cross-origin isolated) and
// CAFFE_TS_GEMM is not 'js'. Everything else (float64, no shared memory, or the memory full at
// its 2 GiB maximum) gets a plain array, so blobs never fail to allocate for lack of it.
//
// Blocks go back to the heap when the last blob using a SyncedMemory lets go of it (reshape past
// capacity, Blob.dispose, re-sharing; SyncedMemory.release), or, for memory never released,
// once the garbage collector has taken the array and every view SyncedMemory handed out.
import { allocArray, type DType, type FloatArray } from './dtype.js';
import { defaultWasmChoice } from './wasm/gemm-wasm.js';
import { engine, type Engine } from './wasm/threads.js';
import { wasmApi } from './wasm/wasm-api.js';
import type { KernelHeapStats } from './wasm/kernel-heap.js';

export type HostAllocatorKind = 'wasm' | 'js';

interface HostState {
  /** setHostAllocator's choice; undefined: CAFFE_TS_HOST_ALLOCATOR, else the default. */
  chosen: HostAllocatorKind | undefined;
  /** Arrays the heap could not hold (plain arrays handed out instead). */
  fallbacks: number;
}

// On globalThis so duplicated copies of the package agree (the engine is shared the same way).
const KEY = Symbol.for('caffe-ts.hostAllocator');
function state(): HostState {
  const g = globalThis as unknown as Record<symbol, HostState | undefined>;
  return (g[KEY] ??= { chosen: undefined, fallbacks: 0 });
}

const DEFAULT_KIND: HostAllocatorKind = 'js';

function envKind(): HostAllocatorKind | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.CAFFE_TS_HOST_ALLOCATOR?.trim().toLowerCase();
  return v === 'wasm' || v === 'js' ? v : undefined;
}

/** The configured host allocator: setHostAllocator's choice, else CAFFE_TS_HOST_ALLOCATOR, else the default. */
export function hostAllocator(): HostAllocatorKind {
  return state().chosen ?? envKind() ?? DEFAULT_KIND;
}

/**
 * Chooses where new float32 host arrays are allocated ('wasm': in the kernels' shared memory;
 * 'js': plain Float32Arrays); undefined returns to CAFFE_TS_HOST_ALLOCATOR / the default.
 * Memory already allocated stays where it is (kernels accept both). Returns the previous choice.
 */
export function setHostAllocator(kind: HostAllocatorKind | undefined): HostAllocatorKind | undefined {
  if (kind !== undefined && kind !== 'wasm' && kind !== 'js') {
    throw new TypeError(`setHostAllocator: expected 'wasm' or 'js', got ${String(kind)}`);
  }
  const s = state();
  const prev = s.chosen;
  s.chosen = kind;
  return prev;
}

/** The engine whose memory float32 host arrays go to now, or null for plain arrays. */
function wasmEngine(): Engine | null {
  if (hostAllocator() !== 'wasm' || defaultWasmChoice() === 'js') return null;
  return engine();
}

export interface HostMemoryInfo {
  /** hostAllocator(). */
  allocator: HostAllocatorKind;
  /** Whether new float32 arrays really go to the kernels' memory here (else why not). */
  active: boolean;
  reason: string | null;
  /** Arrays handed out as plain arrays because the kernels' memory was full. */
  fallbacks: number;
  /** The kernel heap, once the shared memory exists. */
  heap: KernelHeapStats | null;
}

export function hostMemoryInfo(): HostMemoryInfo {
  const kind = hostAllocator();
  const e = wasmEngine();
  let reason: string | null = null;
  if (kind === 'js') reason = "the host allocator is 'js'";
  else if (defaultWasmChoice() === 'js') reason = 'CAFFE_TS_GEMM=js';
  else if (!e) reason = 'no shared WebAssembly memory here (see threadPoolInfo().reason)';
  const any = e ?? peekEngine();
  return { allocator: kind, active: e !== null, reason, fallbacks: state().fallbacks, heap: any ? any.heap.stats() : null };
}

function peekEngine(): Engine | null {
  const s = (globalThis as unknown as Record<symbol, { engine?: Engine | null } | undefined>)[Symbol.for('caffe-ts.threadPool')];
  return s?.engine ?? null;
}

/** A block of the kernel heap backing one host array and the views made of it. */
export interface HostLease {
  readonly heapOwner: Engine;
  readonly offset: number;
  readonly bytes: number;
  /** Registered arrays (the host array and its views) not yet collected. */
  live: number;
  freed: boolean;
}

const registry: { register(target: object, held: HostLease, token: object): void; unregister(token: object): boolean } | null =
  typeof (globalThis as { FinalizationRegistry?: unknown }).FinalizationRegistry === 'function'
    ? new FinalizationRegistry<HostLease>((lease) => {
      if (--lease.live === 0 && !lease.freed) {
        lease.freed = true;
        lease.heapOwner.heap.free(lease.offset, lease.bytes);
      }
    })
    : null;

/**
 * A zeroed host array of `n` elements: in the kernel heap for float32 under the 'wasm' allocator
 * (with its lease), else a plain array (lease null).
 */
export function allocHost(dtype: DType, n: number): { array: FloatArray; lease: HostLease | null } {
  if (dtype !== 'float32' || n === 0) return { array: allocArray(dtype, n), lease: null };
  const e = wasmEngine();
  if (!e) return { array: allocArray(dtype, n), lease: null };
  const bytes = 4 * n;
  const at = e.heap.alloc(bytes);
  if (at < 0) {
    state().fallbacks++;
    return { array: allocArray(dtype, n), lease: null };
  }
  const array = new Float32Array(e.heap.buffer(), at, n);
  const lease: HostLease = { heapOwner: e, offset: at, bytes, live: 0, freed: false };
  trackView(lease, array);
  return { array, lease };
}

/**
 * `n` zeroed float32s in the kernel heap and the shared WebAssembly.Memory holding them, for code
 * that runs WebAssembly of its own in place on that memory (the data-parallel arenas: the kernels
 * then read blobs viewing them without staging copies). `track(view)` counts a view made of the
 * block as a user, as the array is: the block is freed once all are collected, or at once by
 * `release()` (its owner knows nothing uses it any more). Null where the 'wasm' allocator is off
 * or the heap cannot hold it.
 */
export function allocKernelShared(n: number): { array: Float32Array; memory: WebAssembly.Memory; track(view: object): void; release(): void } | null {
  const e = wasmEngine();
  if (!e || n <= 0) return null;
  const { array, lease } = allocHost('float32', n);
  if (!lease) return null;
  return {
    array: array as Float32Array,
    memory: e.memory as unknown as WebAssembly.Memory,
    track: (view) => trackView(lease, view),
    release: () => releaseHost(lease),
  };
}

/**
 * `n` zeroed int32s: in the kernel heap under the 'wasm' allocator (so kernels read and write
 * them in place, e.g. a MAX pooling layer's argmax), else (or where the heap is full) a plain
 * Int32Array. The block is freed once the array is collected.
 */
export function allocHostInt32(n: number): Int32Array {
  const { array, lease } = allocHost('float32', n);
  if (!lease) return new Int32Array(n);
  const view = new Int32Array(array.buffer, array.byteOffset, n);
  trackView(lease, view);
  int32Leases.set(view, lease);
  return view;
}

const int32Leases = new WeakMap<Int32Array, HostLease>();

/**
 * Frees the kernel-heap block of an array from allocHostInt32 now, rather than when the array is
 * collected (a layer's dispose()); the array must not be used afterwards. Plain arrays: nothing
 * to do.
 */
export function releaseHostInt32(view: Int32Array): void {
  const lease = int32Leases.get(view);
  if (!lease) return;
  int32Leases.delete(view);
  releaseHost(lease);
}

const releaseListeners: ((arrays: readonly object[]) => void)[] = [];

/**
 * Calls `listener` with the arrays of a kernel-heap block that its memory gives back (a blob
 * disposed, or reshaped past its capacity), so that what is cached per array (the inference
 * kernels' packed weights) can go at once rather than when the arrays are collected.
 */
export function onHostReleased(listener: (arrays: readonly object[]) => void): void {
  releaseListeners.push(listener);
}

/** Tells the listeners of onHostReleased that `arrays` are dead. */
export function notifyHostReleased(arrays: readonly object[]): void {
  for (const listener of releaseListeners) listener(arrays);
}

/** Counts `view` (of the lease's block) as a user: the block is freed after every user is collected. */
export function trackView(lease: HostLease, view: object): void {
  if (!registry) return;
  lease.live++;
  registry.register(view, lease, lease);
}

/**
 * Frees the lease's block now (its owner knows no one uses the values any more); later
 * collection of its views does nothing.
 */
export function releaseHost(lease: HostLease): void {
  if (lease.freed) return;
  lease.freed = true;
  registry?.unregister(lease);
  lease.heapOwner.heap.free(lease.offset, lease.bytes);
}

/**
 * a[start:end] = 0. V8 fills a typed array on a SharedArrayBuffer one element at a time (about 9×
 * slower than on a plain buffer: 0.29 ms for LeNet's 431k param diffs), so blob memory in the
 * kernel heap is zeroed by the WebAssembly module's vector loop instead; anything else by fill.
 */
export function zeroFill(a: FloatArray, start = 0, end = a.length): void {
  if (end - start >= 1024 && a instanceof Float32Array && typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer) {
    const e = engine();
    const at = e ? e.offsetOf(a) : -1;
    const ex = at >= 0 ? (e!.callerExports(true) ?? e!.callerExports(false)) : null;
    if (ex && start >= 0 && end <= a.length && start <= end) {
      ex.zero(at + 4 * start, end - start);
      return;
    }
  }
  a.fill(0, start, end);
}

/**
 * The module behind copyFloats, bound to a memory:
 *   (module (import "env" "memory" (memory 1 65536 shared))
 *     (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2))))
 * (wat2wasm --enable-threads output, 72 bytes). Hand-assembled rather than generated: it is one
 * instruction, and bulk memory and shared memories come with every engine that runs the kernels.
 */
const COPY_MODULE_HEX =
  '0061736d0100000001070160037f7f7f0002120103656e76066d656d6f72790203018080040302010007080104636f707900000a0e010c00200020012002fc0a00000b';
/** Below this many elements TypedArray.set is as fast as the call into WebAssembly. */
const COPY_MIN_ELEMENTS = 512;
type CopyFn = (dst: number, src: number, bytes: number) => void;
// Per engine (a test may make several memories); null where the module does not instantiate.
const copiers = new WeakMap<Engine, CopyFn | null>();
let copyModule: object | null | undefined;

function copier(e: Engine): CopyFn | null {
  let fn = copiers.get(e);
  if (fn !== undefined) return fn;
  fn = null;
  const api = wasmApi();
  try {
    if (copyModule === undefined) {
      const bytes = new Uint8Array(COPY_MODULE_HEX.length / 2);
      for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(COPY_MODULE_HEX.slice(2 * i, 2 * i + 2), 16);
      copyModule = api && api.validate(bytes) ? new api.Module(bytes) : null;
    }
    if (api && copyModule) {
      const instance = new api.Instance(copyModule, { env: { memory: e.memory } });
      fn = (instance.exports as { copy: CopyFn }).copy;
    }
  } catch {
    fn = null;
  }
  copiers.set(e, fn);
  return fn;
}

/**
 * dst.set(src, at): the same result, faster where both arrays are Float32Array or Int32Array
 * views of the kernel heap (blob memory of the 'wasm' allocator). V8 copies between
 * SharedArrayBuffer views element by element (relaxed atomics; 2-3× a plain memmove: 390 against
 * 170 us for 737k floats), so those go through WebAssembly's memory.copy on the same memory;
 * anything else (plain arrays, float64, mixed types, short runs) through TypedArray.set, which
 * also throws the usual RangeError when src does not fit. Overlapping views copy as set does
 * (as if through a temporary).
 */
export function copyFloats<T extends FloatArray | Int32Array>(dst: T, src: T, at = 0): void {
  const n = src.length;
  if (
    n >= COPY_MIN_ELEMENTS && at >= 0 && at + n <= dst.length && typeof SharedArrayBuffer !== 'undefined' &&
    dst.buffer instanceof SharedArrayBuffer && src.buffer instanceof SharedArrayBuffer &&
    dst.BYTES_PER_ELEMENT === 4 && (dst instanceof Float32Array ? src instanceof Float32Array : dst instanceof Int32Array && src instanceof Int32Array)
  ) {
    const e = engine();
    const d = e ? e.offsetOf(dst as Float32Array | Int32Array) : -1;
    const s = d >= 0 ? e!.offsetOf(src as Float32Array | Int32Array) : -1;
    const fn = s >= 0 ? copier(e!) : null;
    if (fn) {
      fn(d + 4 * at, s, 4 * n);
      return;
    }
  }
  (dst as Float32Array).set(src as Float32Array, at);
}
