import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { logger } from '@caffe-ts/blob';
import type { DecodeItem, ItemResult, OutputDType, WorkerReply, WorkerRequest } from './decode-protocol.js';
import type { TransformSpec } from './transform-kernel.js';

const log = logger('decode_pool.ts');

/*
 * Decode workers
 * --------------
 * Decoding an encoded Datum or an image file costs about a millisecond of JavaScript and sharp
 * bookkeeping per image besides libvips's own work, and the transformation as much again: on the
 * main thread that is time the net waits. Data layers therefore hand the decoding and transforming
 * of a batch to a small pool of worker threads (one per process, shared by every data layer):
 * - size: `setDecodeWorkers(n)`, else CAFFE_TS_DECODE_WORKERS, else min(cores − 1, 4), so that with
 *   the GEMM threads of @caffe-ts/blob the process stays near one thread per core; 0 turns the pool
 *   off and everything runs on the main thread as before;
 * - determinism: the random crop/mirror choices are drawn on the main thread in record order and
 *   sent with each image (transform-kernel.ts), so batches are bit-identical to the main-thread path;
 * - no copies of the results: the batch buffer is a SharedArrayBuffer the workers write into
 *   (items of an unexpected shape come back as transferred buffers); the encoded bytes travel as
 *   transferred buffers too;
 * - lifetime: the pool starts with the first data layer that needs it and its workers end when the
 *   last such layer is closed; an idle worker never keeps the process alive (unref);
 * - fallback: without worker_threads (a browser), or if a worker fails, layers decode on the main
 *   thread (a worker failure is logged once and turns the pool off for the process).
 */

const MAX_DEFAULT_WORKERS = 4;
let configured: number | 'auto' = 'auto';

/**
 * Set the number of decode worker threads for pools started from now on ('auto': the
 * CAFFE_TS_DECODE_WORKERS environment variable, else min(cores − 1, 4)); 0 decodes on the main thread.
 */
export function setDecodeWorkers(count: number | 'auto'): void {
  if (count !== 'auto' && !(Number.isInteger(count) && count >= 0)) {
    throw new RangeError(`decode workers must be a non-negative integer or 'auto' (got ${count})`);
  }
  configured = count;
}

/** The number of decode workers a pool started now would have. */
export function decodeWorkerCount(): number {
  if (configured !== 'auto') return configured;
  const env = typeof process !== 'undefined' ? process.env.CAFFE_TS_DECODE_WORKERS : undefined;
  if (env !== undefined && env.trim() !== '') {
    const n = Number(env);
    if (Number.isInteger(n) && n >= 0) return n;
    log.warn(`CAFFE_TS_DECODE_WORKERS='${env}' is not a non-negative integer; using the default`);
  }
  return Math.max(0, Math.min(availableParallelism() - 1, MAX_DEFAULT_WORKERS));
}

interface Slot {
  worker: Worker;
  /** Jobs sent and not answered; the worker is ref'd only while there are some. */
  pending: number;
}

interface PendingJob {
  slot: Slot;
  resolve: (results: ItemResult[]) => void;
  reject: (e: unknown) => void;
}

/** Thrown by `DecodePool.run` when the pool cannot do the work; callers decode on the main thread. */
export class DecodePoolUnavailable extends Error {
  override readonly name: string = 'DecodePoolUnavailable';
}

/** A set of decode workers (see the note above). Get it with `acquireDecodePool`. */
export class DecodePool {
  private readonly slots: Slot[];
  private readonly jobs = new Map<number, PendingJob>();
  private readonly specs = new Map<number, TransformSpec>();
  private nextJob = 1;
  private nextSpec = 1;
  private failure: Error | null = null;
  private closed = false;
  /** Layers holding the pool (acquireDecodePool / releaseDecodePool). */
  refs = 0;

  constructor(workers: Worker[]) {
    this.slots = workers.map((worker) => ({ worker, pending: 0 }));
    for (const slot of this.slots) {
      slot.worker.unref();
      slot.worker.on('message', (reply: WorkerReply) => this.onReply(slot, reply));
      slot.worker.on('error', (e) => this.fail(e));
      slot.worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`decode worker exited with code ${code}`));
      });
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** False once a worker failed or the pool was closed. */
  get usable(): boolean {
    return this.failure === null && !this.closed;
  }

  /** Send a transformation to every worker; jobs then name it by the returned id. */
  registerSpec(spec: TransformSpec): number {
    const specId = this.nextSpec++;
    this.specs.set(specId, spec);
    this.broadcast({ type: 'spec', specId, spec });
    return specId;
  }

  dropSpec(specId: number): void {
    if (this.specs.delete(specId)) this.broadcast({ type: 'drop', specId });
  }

  /**
   * Decode and transform `items` with transformation `specId`, writing results of shape `expect`
   * into `out` (a SharedArrayBuffer holding `dtype` values, item i at i · C·h·w). Resolves with one
   * result per item, in item order. Rejects with DecodePoolUnavailable when the pool is broken.
   * The items' bytes are transferred: the caller must not use them afterwards.
   */
  async run(specId: number, dtype: OutputDType, items: DecodeItem[], out: SharedArrayBuffer | null, expect: number[] | null): Promise<ItemResult[]> {
    if (items.length === 0) return [];
    if (!this.usable) throw new DecodePoolUnavailable(this.failure?.message ?? 'the decode pool is closed');
    // A couple of chunks per worker evens out images of different costs.
    const chunks = Math.min(items.length, this.slots.length * 2);
    const per = Math.ceil(items.length / chunks);
    const parts: Promise<ItemResult[]>[] = [];
    for (let start = 0; start < items.length; start += per) {
      const chunk = items.slice(start, start + per);
      const slot = this.slots.reduce((a, b) => (b.pending < a.pending ? b : a));
      parts.push(this.post(slot, specId, dtype, chunk, out, expect));
    }
    const results = (await Promise.all(parts)).flat();
    stats.itemsDone += results.length;
    const byIndex = new Map(results.map((r) => [r.index, r]));
    return items.map((item) => byIndex.get(item.index)!);
  }

  private post(slot: Slot, specId: number, dtype: OutputDType, items: DecodeItem[], out: SharedArrayBuffer | null, expect: number[] | null): Promise<ItemResult[]> {
    const jobId = this.nextJob++;
    const transfer: ArrayBuffer[] = [];
    for (const item of items) {
      if (item.source.kind !== 'bytes') continue;
      let bytes = item.source.bytes;
      // Only a buffer the bytes fill alone can be transferred; anything else is copied once here.
      if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength || !(bytes.buffer instanceof ArrayBuffer)) bytes = bytes.slice();
      item.source = { ...item.source, bytes };
      transfer.push(bytes.buffer as ArrayBuffer);
    }
    const promise = new Promise<ItemResult[]>((resolve, reject) => this.jobs.set(jobId, { slot, resolve, reject }));
    if (slot.pending++ === 0) slot.worker.ref();
    slot.worker.postMessage({ type: 'job', jobId, specId, dtype, out, expect, items } satisfies WorkerRequest, transfer);
    return promise;
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    const job = this.jobs.get(reply.jobId);
    if (!job) return;
    this.jobs.delete(reply.jobId);
    if (--slot.pending === 0) slot.worker.unref();
    if (reply.type === 'done') job.resolve(reply.results);
    else job.reject(new DecodePoolUnavailable(`decode worker failed: ${reply.message}`));
  }

  private broadcast(req: WorkerRequest): void {
    if (!this.usable) return;
    for (const slot of this.slots) slot.worker.postMessage(req);
  }

  /** A worker died: fail every job, and make this pool unusable (callers fall back). */
  private fail(e: unknown): void {
    if (this.failure) return;
    this.failure = e instanceof Error ? e : new Error(String(e));
    log.warn(`a decode worker failed (${this.failure.message}); data layers decode on the main thread from now on`);
    this.rejectAll(new DecodePoolUnavailable(`decode worker failed: ${this.failure.message}`));
    void this.terminate();
  }

  private rejectAll(e: Error): void {
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    for (const job of jobs) job.reject(e);
  }

  /** Stop the workers (pending jobs reject). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rejectAll(new DecodePoolUnavailable('the decode pool was closed'));
    await this.terminate();
  }

  private async terminate(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate().catch(() => 0)));
  }
}

/** Counters for tests and benchmarks. */
export interface DecodePoolStats {
  /** Pools started so far in this process. */
  poolsStarted: number;
  /** Worker threads running now. */
  workersRunning: number;
  /** Images decoded and transformed by workers so far (failed ones included). */
  itemsDone: number;
}

const stats = { poolsStarted: 0, itemsDone: 0 };

export function decodePoolStats(): DecodePoolStats {
  return { poolsStarted: stats.poolsStarted, itemsDone: stats.itemsDone, workersRunning: current && current.usable ? current.size : 0 };
}

let current: DecodePool | null = null;
let starting: Promise<DecodePool | null> | null = null;
/** Set once pools cannot be had (no worker_threads, no worker script, a worker failed). */
let disabled = false;

/**
 * The process's decode pool, started if needed, with one more holder; null when decoding must
 * stay on the main thread (0 workers configured, no worker_threads, or the pool failed before).
 * Every successful acquire needs a `releaseDecodePool`.
 */
export async function acquireDecodePool(): Promise<DecodePool | null> {
  for (;;) {
    if (disabled || decodeWorkerCount() === 0) return null;
    if (current && current.usable) {
      current.refs++;
      return current;
    }
    if (current && !current.usable) {
      // It failed: fall back for good rather than restarting workers that may fail again.
      disabled = true;
      current = null;
      return null;
    }
    if (!starting) {
      starting = startPool().finally(() => {
        starting = null;
      });
    }
    const pool = await starting;
    if (!pool) return null;
    if (!current) current = pool;
  }
}

/** Give a pool back; its workers stop when no layer holds it any more. */
export function releaseDecodePool(pool: DecodePool): void {
  if (--pool.refs > 0) return;
  if (current === pool) current = null;
  void pool.close();
}

async function startPool(): Promise<DecodePool | null> {
  const count = decodeWorkerCount();
  if (count <= 0) return null;
  let WorkerClass: typeof Worker;
  try {
    ({ Worker: WorkerClass } = await import('node:worker_threads'));
  } catch {
    disabled = true;
    return null;
  }
  const script = await workerScript();
  if (!script) {
    disabled = true;
    log.warn('the decode worker script was not found; data layers decode on the main thread');
    return null;
  }
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < count; i++) workers.push(new WorkerClass(script, { name: 'caffe-ts decode' }));
  } catch (e) {
    disabled = true;
    for (const w of workers) void w.terminate();
    log.warn(`cannot start decode workers (${e instanceof Error ? e.message : String(e)}); data layers decode on the main thread`);
    return null;
  }
  stats.poolsStarted++;
  return new DecodePool(workers);
}

/**
 * The worker's module: dist/decode-worker.js beside the built package. Run from the TypeScript
 * sources (tests), the worker is bundled once with esbuild (a dev dependency of the workspace)
 * into node_modules/.cache of this package, where `sharp` resolves.
 */
let scriptUrl: Promise<URL | null> | null = null;

function workerScript(): Promise<URL | null> {
  scriptUrl ??= findWorkerScript();
  return scriptUrl;
}

async function findWorkerScript(): Promise<URL | null> {
  const here = new URL(import.meta.url);
  if (!here.pathname.endsWith('.ts')) {
    const built = new URL('./decode-worker.js', here);
    return here.protocol !== 'file:' || existsSync(fileURLToPath(built)) ? built : null;
  }
  try {
    const entry = fileURLToPath(new URL('./decode-worker.ts', here));
    // A computed specifier: bundlers of this package must not try to pull esbuild in.
    const esbuildName = 'esbuild';
    const esbuild = (await import(esbuildName)) as {
      build(options: Record<string, unknown>): Promise<{ outputFiles: { text: string }[] }>;
    };
    const result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['sharp'],
      write: false,
      logLevel: 'silent',
    });
    const text = result.outputFiles[0]!.text;
    const dir = join(dirname(entry), '..', 'node_modules', '.cache', 'caffe-ts-decode-worker');
    const file = join(dir, `decode-worker-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.mjs`);
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, file);
    }
    return pathToFileURL(file);
  } catch {
    return null;
  }
}
