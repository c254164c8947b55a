import { allocArray, type Blob, type FloatArray } from '@caffe-ts/blob';
import { Layer, LayerError, setBlobRecordKeys } from '@caffe-ts/layers';
import { CaffeError } from '@caffe-ts/proto';
import { trackPrefetcher, untrackPrefetcher } from './data-sources.js';
import { acquireDecodePool, releaseDecodePool, type DecodePool } from './decode-pool.js';
import type { TransformSpec } from './transform-kernel.js';
import { DataError } from './errors.js';

/*
 * Caffe's BasePrefetchingDataLayer, for an asynchronous world
 * -----------------------------------------------------------
 * Reading a database, a file or decoding an image is asynchronous here, while Layer.forward is
 * synchronous (as in Caffe). So a prefetching layer fills up to `prefetch` batches in an async
 * loop (Caffe's prefetch thread with its full/free queues); `forward` takes a ready batch and never
 * waits. Callers `await layer.prepare()` (or `net.prepare()`, `prepareDataLayers(net)`) before each
 * forward; it resolves once a batch is ready. `closeDataSources()` stops every prefetcher.
 */

/** One prefetched batch: data of `shape` and, when the layer has a label top, batch_size labels. */
export interface Batch {
  shape: number[];
  data: FloatArray;
  label: FloatArray | null;
  /**
   * The label top's shape when it is not [batch_size] (AnnotatedData's 1 × 1 × boxes × 8 rows);
   * `label` then holds at least that many values.
   */
  labelShape?: number[];
  /**
   * Where each item came from (database keys, image paths), named by errors about its label
   * (left out when the label is not one value per item).
   */
  keys?: string[];
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** A zeroed array of `count` values of `dtype` over a SharedArrayBuffer. */
function allocShared(dtype: 'float32' | 'float64', count: number): FloatArray {
  return dtype === 'float64' ? new Float64Array(new SharedArrayBuffer(count * 8)) : new Float32Array(new SharedArrayBuffer(count * 4));
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The prefetch machinery shared by Data, ImageData and WindowData: subclasses set `batchSize`,
 * `prefetchCount` and `outputLabels` in layerSetUp, call `startPrefetch()`, and implement
 * `loadBatch()` (which fills `takeBuffer(shape)`).
 */
export abstract class BasePrefetchingDataLayer extends Layer {
  protected batchSize = 0;
  protected prefetchCount = 4;
  protected outputLabels = false;
  private readonly full: Batch[] = [];
  private readonly free: Batch[] = [];
  private loading: Promise<void> | null = null;
  private error: unknown = null;
  private waiters: Waiter[] = [];
  private closed = false;
  private started = false;
  /** The decode workers this layer holds (see decode-pool.ts), once asked for. */
  private pool: { pool: DecodePool; specId: number } | null = null;
  private poolAsked: Promise<void> | null = null;

  /** Read and transform one batch (called by the prefetch loop; concurrently only as `loadsInFlight` allows). */
  protected abstract loadBatch(): Promise<Batch>;

  /** What the layer reads, for messages ("source 'train.txt'"). */
  protected abstract sourceLabel(): string;

  /** Work done once before the first batch (e.g. skipping rand_skip records). */
  protected async beforeFirstBatch(): Promise<void> {}

  /** Release what the subclass holds (cursors, files); called once by close(). */
  protected async releaseResources(): Promise<void> {}

  /** True once close() was called: loadBatch implementations stop early. */
  protected get isClosed(): boolean {
    return this.closed;
  }

  /** Start filling the queue (end of layerSetUp). */
  protected startPrefetch(): void {
    this.started = true;
    trackPrefetcher(this);
    this.pump();
  }

  /** Tops are shaped from each batch in forward (Caffe's data layers reshape there too). */
  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  /**
   * Data layers always run on the host: the batch is copied into the tops' CPU memory and a device
   * backend uploads it when the next layer asks (Caffe's Forward_gpu does the same copy).
   */
  override forward(bottom: Blob[], top: Blob[]): number {
    this.reshape(bottom, top);
    this.forwardCpu(bottom, top);
    return 0;
  }

  protected forwardCpu(_bottom: Blob[], top: Blob[]): void {
    const batch = this.full.shift();
    if (!batch) {
      if (this.error) throw this.error;
      if (this.closed) this.fail('the layer is closed (closeDataSources was called)');
      this.fail('no prefetched batch is ready; await prepareDataLayers(net) (or layer.prepare()) before each forward');
    }
    top[0]!.reshape(batch.shape);
    top[0]!.mutableCpuData().set(batch.data.subarray(0, top[0]!.count()));
    if (this.outputLabels && batch.label && top[1]) {
      top[1].reshape(batch.labelShape ?? [this.batchSize]);
      top[1].mutableCpuData().set(batch.label.subarray(0, top[1].count()));
      setBlobRecordKeys(top[1], batch.keys ?? null);
    }
    this.free.push(batch);
    this.pump();
  }

  /** Batches read and transformed ahead. */
  get readyBatches(): number {
    return this.full.length;
  }

  /** Resolves once at least one batch is ready; rejects with the prefetcher's error. */
  override async prepare(): Promise<void> {
    if (this.full.length > 0) {
      // Give the event loop a turn even when a batch is ready: completions of reads and decodes
      // (thread-pool callbacks) run only then, and the prefetcher needs them to go on filling
      // while the caller computes. Without it the queue would refill only once empty.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return;
    }
    if (this.error) throw this.error;
    if (this.closed) this.fail('the layer is closed (closeDataSources was called)');
    if (!this.started) this.fail('prepare() called before setUp()');
    const ready = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.pump();
    await ready;
  }

  /** Stop prefetching and release what the layer holds. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.loading;
    untrackPrefetcher(this);
    await this.releaseResources();
    await this.poolAsked;
    if (this.pool) {
      this.pool.pool.dropSpec(this.pool.specId);
      releaseDecodePool(this.pool.pool);
      this.pool = null;
    }
    const waiters = this.waiters;
    this.waiters = [];
    const err = new LayerError(`${this.type} layer '${this.name}': closed while waiting for data`);
    for (const w of waiters) w.reject(err);
  }

  /** Start the background loader unless it is running or the queue is full. */
  private pump(): void {
    if (this.loading || this.closed || this.error || !this.started) return;
    if (this.full.length >= this.prefetchCount) return;
    this.loading = this.fill().finally(() => {
      this.loading = null;
    });
  }

  private firstDone = false;

  /** Load batches until `prefetch` are ready. Never rejects: errors are kept for prepare/forward. */
  private async fill(): Promise<void> {
    const inFlight: Promise<Batch>[] = [];
    try {
      if (!this.firstDone) {
        this.firstDone = true;
        await this.beforeFirstBatch();
      }
      while (!this.closed) {
        // Start loads until `prefetch` batches are ready or coming; with decode workers several
        // run at once, so that the workers go on while this thread computes.
        const most = Math.max(1, this.loadsInFlight());
        while (this.full.length + inFlight.length < this.prefetchCount && inFlight.length < most) {
          const load = this.loadBatch();
          load.catch(() => {}); // awaited below in order; this only keeps later failures from being unhandled
          inFlight.push(load);
        }
        if (inFlight.length === 0) break;
        const batch = await inFlight.shift()!;
        if (this.closed) break;
        this.full.push(batch);
        const waiters = this.waiters;
        this.waiters = [];
        // Wake the waiting caller on a later turn: resolving now would run its whole (synchronous)
        // forward pass before this loop reads the next records and starts their decoding, so the
        // decoding would not overlap the computation.
        if (waiters.length > 0) setImmediate(() => waiters.forEach((w) => w.resolve()));
      }
    } catch (e) {
      if (this.closed) return;
      this.error = CaffeError.isInstance(e)
        ? e
        : new DataError(`${this.type} layer '${this.name}': reading ${this.sourceLabel()} failed: ${describeError(e)}`, { cause: e });
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(this.error);
    } finally {
      // Loads still running end before the loop does (close() waits for the loop).
      await Promise.allSettled(inFlight);
    }
  }

  /**
   * How many `loadBatch` calls may run at once (default 1). A layer that returns more must keep
   * its batches in order itself: everything that decides a batch's content (which records, the
   * random draws) must happen in call order, only the decoding may overlap.
   */
  protected loadsInFlight(): number {
    return 1;
  }

  /**
   * The decode workers with `spec` registered (asked for once, on the first call; layers call it
   * at set-up without waiting so that the workers start while the net is built), or null when
   * decoding stays on this thread. Released when the layer is closed.
   */
  protected async decodeWorkers(spec: TransformSpec): Promise<{ pool: DecodePool; specId: number } | null> {
    this.poolAsked ??= (async () => {
      const pool = await acquireDecodePool();
      if (!pool) return;
      if (this.closed) releaseDecodePool(pool);
      else this.pool = { pool, specId: pool.registerSpec(spec) };
    })();
    await this.poolAsked;
    return this.pool && this.pool.pool.usable ? this.pool : null;
  }

  /** Whether this layer holds a working decode pool (then its loads may overlap, see loadsInFlight). */
  protected get decodeWorkersActive(): boolean {
    return this.pool !== null && this.pool.pool.usable;
  }

  /** Put a buffer from takeBuffer back unused (e.g. when the batch turned out to have another shape). */
  protected returnBuffer(batch: Batch): void {
    this.free.push(batch);
  }

  /**
   * A batch buffer of `shape` (reusing a consumed one when it is large enough); `shared` asks for
   * memory the decode workers can write into (a SharedArrayBuffer).
   */
  protected takeBuffer(shape: number[], shared = false): Batch {
    const count = shape.reduce((a, b) => a * b, 1);
    const reuse = this.free.pop();
    const fits = reuse && reuse.data.length >= count && (!shared || reuse.data.buffer instanceof SharedArrayBuffer);
    const data = fits ? reuse.data : shared ? allocShared(this.dtype, count) : allocArray(this.dtype, count);
    const label = this.outputLabels ? (reuse?.label ?? allocArray(this.dtype, this.batchSize)) : null;
    return { shape, data: data.length === count ? data : data.subarray(0, count), label };
  }
}
