import type { DeviceAllocator } from './device.js';
import type { DType, FloatArray } from './dtype.js';
import { allocHost, notifyHostReleased, releaseHost, trackView, type HostLease } from './host-memory.js';

/** Where the freshest copy lives, as Caffe's SyncedMemory::SyncedHead. */
export type SyncedHead = 'uninitialized' | 'cpu' | 'gpu' | 'synced';

/** Source of SyncedMemory versions: unique across all memories, so one number names the contents. */
let versionCounter = 0;

/**
 * A buffer of `capacity` elements with a host copy and an optional device copy, allocated
 * lazily and synchronised on demand. Readers call `cpuData()`/`gpuData()`; writers call the
 * `mutable*` accessors, which mark the other side stale.
 */
export class SyncedMemory {
  readonly capacity: number;
  readonly dtype: DType;
  private host: FloatArray | null = null;
  /** The kernel-heap block behind `host` when the 'wasm' host allocator placed it (host-memory.ts). */
  private lease: HostLease | null = null;
  private deviceHandle: unknown = null;
  private _head: SyncedHead = 'uninitialized';
  private views = new Map<number, FloatArray>();
  private _version = ++versionCounter;
  /** Produces the contents on the next access (setLazyContents), then cleared. */
  private lazyFill: ((host: FloatArray) => void) | null = null;

  constructor(capacity: number, dtype: DType = 'float32', private readonly device: DeviceAllocator | null = null) {
    this.capacity = capacity;
    this.dtype = dtype;
  }

  get head(): SyncedHead {
    return this._head;
  }

  /**
   * Changes whenever the contents may have changed through this object (every mutable access,
   * setCpuData, release); unique across memories. Kernels key caches of derived data (packed
   * weights) on it, so writers must go through the mutable accessors, as Caffe's do.
   */
  get version(): number {
    return this._version;
  }

  /** Read-only host view of the first `length` elements (default: all). */
  cpuData(length = this.capacity): FloatArray {
    this.toCpu();
    return this.view(length);
  }

  /** Writable host view; the device copy becomes stale. */
  mutableCpuData(length = this.capacity): FloatArray {
    this.toCpu();
    this._head = 'cpu';
    this._version = ++versionCounter;
    return this.view(length);
  }

  /** Device handle holding current data (uploads if the host copy is newer). */
  gpuData(): unknown {
    this.toGpu();
    return this.deviceHandle;
  }

  /** Device handle for writing; the host copy becomes stale. */
  mutableGpuData(): unknown {
    this.toGpu();
    this._head = 'gpu';
    this._version = ++versionCounter;
    return this.deviceHandle;
  }

  /**
   * The contents are now whatever `fill` writes into the host array, called on the next access
   * of either copy (once). A fused kernel that wrote these values somewhere else (Net's inference
   * fusion writes a Concat's bottoms into its top) leaves the copy to whoever reads them. `null`
   * drops a pending fill without running it, for a writer about to replace every value.
   */
  setLazyContents(fill: ((host: FloatArray) => void) | null): void {
    this.lazyFill = fill;
    if (!fill) return;
    // The host array exists from here on, so that the head can say 'cpu' with or without the fill.
    this.allocHost();
    this._head = 'cpu';
    this._version = ++versionCounter;
  }

  /** Replace the host buffer by an external array of at least `capacity` elements (shared, not copied). */
  setCpuData(array: FloatArray): void {
    if (array.length < this.capacity) {
      throw new RangeError(`setCpuData: array has ${array.length} elements, memory needs ${this.capacity}`);
    }
    this.lazyFill = null;
    this.host = array;
    this._version = ++versionCounter;
    // An old kernel-heap block goes back once its views are collected (callers may hold some).
    this.lease = null;
    this.views.clear();
    this._head = 'cpu';
  }

  private refs = 1;

  /** Another blob now uses this memory too (Blob.shareData/shareDiff). */
  retain(): void {
    this.refs++;
  }

  /**
   * One user stopped using this memory (its blob was reshaped past capacity, re-shared or
   * disposed). When the last one lets go the values are dead: the device copy is freed without
   * a readback, so device memory follows the blobs' lifetimes.
   */
  release(): void {
    if (--this.refs > 0) return;
    this._version = ++versionCounter;
    this.lazyFill = null;
    if (this.deviceHandle !== null && this.device) this.device.free(this.deviceHandle);
    this.deviceHandle = null;
    if (this.lease) {
      // Caches derived from these arrays (the inference kernels' packed weights) go too.
      if (this.host) notifyHostReleased([this.host, ...this.views.values()]);
      // The kernel heap takes its block back at once; anyone touching this memory again gets a
      // fresh zeroed array rather than a block another blob may own by then.
      releaseHost(this.lease);
      this.lease = null;
      this.host = null;
      this.views.clear();
    }
    this._head = this.host ? 'cpu' : 'uninitialized';
  }

  /** Release device memory (after syncing it to the host so nothing is lost). */
  releaseDevice(): void {
    if (this.deviceHandle === null || !this.device) return;
    if (this._head === 'gpu') this.toCpu();
    this.device.free(this.deviceHandle);
    this.deviceHandle = null;
    if (this._head === 'synced') this._head = 'cpu';
  }

  private view(length: number): FloatArray {
    const host = this.host as FloatArray;
    if (length === host.length) return host;
    let v = this.views.get(length);
    if (!v) {
      if (length > host.length) throw new RangeError(`view of ${length} elements exceeds capacity ${host.length}`);
      v = host.subarray(0, length);
      if (this.lease) trackView(this.lease, v);
      this.views.set(length, v);
    }
    return v;
  }

  /** Runs a pending setLazyContents fill into the host array. */
  private settleLazy(): void {
    const fill = this.lazyFill;
    if (!fill) return;
    this.lazyFill = null;
    this.allocHost();
    fill(this.host!);
  }

  private toCpu(): void {
    this.settleLazy();
    switch (this._head) {
      case 'uninitialized':
        this.allocHost();
        this._head = 'cpu';
        break;
      case 'gpu':
        this.allocHost();
        this.device!.download(this.deviceHandle, this.host!);
        this._head = 'synced';
        break;
      default:
        break;
    }
  }

  private allocHost(): void {
    if (this.host) return;
    const { array, lease } = allocHost(this.dtype, this.capacity);
    this.host = array;
    this.lease = lease;
  }

  private toGpu(): void {
    if (!this.device) throw new Error('this memory has no device allocator (CPU backend)');
    this.settleLazy();
    switch (this._head) {
      case 'uninitialized':
        this.deviceHandle ??= this.device.allocate(this.capacity, this.dtype);
        this._head = 'gpu';
        break;
      case 'cpu':
        this.deviceHandle ??= this.device.allocate(this.capacity, this.dtype);
        this.device.upload(this.deviceHandle, this.host as FloatArray);
        this._head = 'synced';
        break;
      default:
        break;
    }
  }
}
