// Kernel threads: a persistent pool of worker threads over one shared WebAssembly.Memory.
//
// Public API (exported from @caffe-ts/blob):
//   getNumThreads()      threads the kernels may use (the calling thread included)
//   setNumThreads(n)     set it; n > 1 starts the missing workers (they become usable once
//                        ready, a few ms later); n = 1 costs nothing and starts nothing
//   initThreads(n?)      async: setNumThreads(n ?? default) and wait until the workers are ready
//   threadPoolInfo()     what is requested, ready and supported, and why not where it is not
//   shutdownThreads()    stop the workers (they are unref'd in Node, so a process exits anyway)
// The default is CAFFE_TS_THREADS from the environment where set, else the machine's cores
// (os.availableParallelism() in Node, navigator.hardwareConcurrency in browsers). Where there is
// no shared memory (a browser page without cross-origin isolation) or no Worker, kernels run on
// the calling thread only. Workers start lazily: with the default count, on the first product
// big enough to split; so a data-parallel replica that calls setNumThreads(1) first never
// starts any.
//
// How a job runs: the calling thread stages operands in the shared memory (threadHeap), writes
// one command list per participating thread (calls of the module's exports: gemm, im2col, …),
// bumps the job counter and wakes the workers, runs its own list, then runs the lists of workers
// that have not picked theirs up yet (a list is claimed by compare-exchange on its job word, by
// its worker or by the caller), then waits until every worker that claimed one has counted the
// job down. Workers never touch JS arrays, so nothing is copied
// between threads but the operands, once each way.
//
// Shared-memory layout (bytes):
//   [0, 4096)                       control words (ctl): SEQ, PENDING, ERRORS, STOP, WORKER_LISTS,
//                                   READY[w]
//   [REGION_BASE + t·REGION_BYTES)  command region of thread t (t = 0 is the calling thread):
//                                   word 0 job number it belongs to, 1 command count, 2 the
//                                   command running (for error reports), from word HEAD:
//                                   commands of CMD words: opcode | variant << 8, then arguments
//   HEAP_BASE …                     the kernel heap (kernel-heap.ts): float32 blob memory when
//                                   the host allocator is 'wasm' (host-memory.ts), and the
//                                   jobs' scratch block (staged operands, per-thread workspaces)
import { MathError } from '../math/errors.js';
import { decodeBase64, wasmApi, type SharedWasmMemory as SharedMemory, type WasmApi } from './wasm-api.js';
import { GEMM_WASM_RELAXED_SIMD_SHARED_BASE64, GEMM_WASM_SIMD_SHARED_BASE64 } from './generated/gemm-wasm.js';
import { INFER_WASM_RELAXED_SIMD_SHARED_BASE64, INFER_WASM_SIMD_SHARED_BASE64 } from './generated/infer-wasm.js';
import { TRAIN_WASM_RELAXED_SIMD_SHARED_BASE64, TRAIN_WASM_SIMD_SHARED_BASE64 } from './generated/train-wasm.js';
import { WORKER_SOURCE } from './thread-worker-source.js';
import type { InferModuleExports } from './infer-exports.js';
import { KernelHeap } from './kernel-heap.js';

/** Most workers a pool holds (so at most MAX_THREADS threads with the caller). */
export const MAX_THREADS = 64;
/** Below this many floating-point operations per thread a product stays on one thread. */
export const MIN_FLOPS_PER_THREAD = 1.5e6;

const PAGE = 65536;
const CTL_WORDS = 1024;
const SEQ = 0, PENDING = 1, ERRORS = 2, STOP = 3, WORKER_LISTS = 4, READY = 16;
/** Control word holding 1 + the workers' spin limit (0: SPIN), read each time a worker goes idle. */
const SPIN_WORD = 5;
const REGION_BASE = 4096;
const REGION_BYTES = 16384;
const REGION_WORDS = REGION_BYTES / 4;
const HEAD = 4;
// Opcode word + 23 arguments (the packed convolution's pconv has the most).
const CMD = 24;
/** Most commands one thread's list holds in one job; longer work runs as several jobs. */
export const MAX_COMMANDS = Math.floor((REGION_WORDS - HEAD) / CMD);
/** Where job data starts: after the control page and every possible thread's command region. */
export const HEAP_BASE = Math.ceil((REGION_BASE + MAX_THREADS * REGION_BYTES) / PAGE) * PAGE;
/**
 * Declared maximum of the shared memory: 2 GiB, so that byte offsets stay below 2^31 (the
 * kernels' JS side indexes views with offset >> 2).
 */
export const MAX_MEMORY_BYTES = 2 ** 31;
/** Worker spin iterations (Atomics.load) before sleeping on the job counter. */
const SPIN = 20000;

/** Command opcodes (the worker source switches on the same numbers). */
export const Op = { Gemm: 1, Im2col: 2, Col2im: 3, Gather: 4, Scatter: 5, Rowsum: 6, Zero: 7, Pconv: 8, Wgemm: 9, Rowdot: 10, Depthwise: 11, Relu: 12, WinoIn: 13, WinoOut: 14, Wino4In: 15, Wino4Out: 16, GemmMt: 17, PadImg: 18, PadImg2: 19, Wino25In: 20, Wino25Out: 21, MaxpoolDirect: 22, Maxpool: 23, Lrn: 24, Maxpool2x2: 25, Maxunpool: 26, SconvStage: 27, SconvWgrad: 28, SconvBsum: 29, SgdStepAt: 30 } as const;
export type Op = (typeof Op)[keyof typeof Op];
const OP_NAMES = ['', 'gemm', 'im2col', 'col2im', 'gather', 'scatter', 'rowsum', 'zero', 'pconv', 'wgemm', 'rowdot', 'depthwise', 'relu', 'wino_in', 'wino_out', 'wino4_in', 'wino4_out', 'gemm_mt', 'padimg', 'padimg2', 'wino25_in', 'wino25_out', 'maxpool_direct', 'maxpool', 'lrn', 'maxpool2x2', 'maxunpool', 'sconv_stage', 'sconv_wgrad', 'sconv_bsum', 'sgd_step_at'];

/** The exports of the shared-memory module builds (scripts/gemm-wat.mjs with shared: true). */
export interface SharedExports {
  gemm(
    transA: number, transB: number, M: number, N: number, K: number,
    alpha: number, pA: number, lda: number, pB: number, ldb: number,
    beta: number, pC: number, ldc: number, packA: number, packB: number, scratch: number,
  ): void;
  /**
   * The cooperative GEMM (scripts/gemm-wat.mjs, emitGemmMt): every one of T threads calls it
   * with the same arguments but its own packA and scratch; they share the packed B buffers.
   */
  gemm_mt(
    transA: number, transB: number, M: number, N: number, K: number,
    alpha: number, pA: number, lda: number, pB: number, ldb: number,
    beta: number, pC: number, ldc: number, packA: number, packB0: number, packB1: number,
    scratch: number, sync: number, T: number, mcT: number, nJ: number, bChunk: number, abort: number,
  ): void;
  im2col(...args: number[]): void;
  col2im(...args: number[]): void;
  gather(y: number, C: number, nb: number, S: number, r: number): void;
  scatter(r: number, C: number, nb: number, S: number, y: number, addBias: number, bias: number): void;
  rowsum(r: number, rows: number, len: number, out: number): void;
  zero(dst: number, n: number): void;
  maxpool2x2(src: number, planes: number, H: number, W: number, PH: number, PW: number, dst: number, idx: number): void;
  maxpool(src: number, planes: number, H: number, W: number, PH: number, PW: number, rows: number, cols: number, dst: number, idx: number): void;
  maxpool_v(
    src: number, planes: number, H: number, W: number, PH: number, PW: number, rows: number, cols: number,
    KW: number, SW: number, padW: number, xv0: number, xv1: number, dst: number, idx: number,
  ): void;
  maxunpool(top: number, idx: number, planes: number, inPlane: number, outPlane: number, bottom: number): void;
}

/** The inference module's exports as the pool's shared builds give them (infer-exports.ts). */
export type SharedInferExports = InferModuleExports;

/**
 * The training module's exports that commands call (scripts/train-wat.mjs, shared builds; the
 * instance has the module's other exports too, which train-wasm.ts calls in place).
 */
export interface SharedTrainExports {
  sconv_stage(src: number, planes: number, H: number, W: number, padH: number, padW: number, Hp: number, Wp: number, dst: number): void;
  sconv_wgrad(xp: number, dy: number, nb: number, xImg: number, Wp: number, OH: number, OWV: number, O4: number, K2: number, tab: number, acc: number): void;
  sconv_bsum(dy: number, nb: number, O4: number, plane: number, acc: number): void;
  sgd_step_at(block: number): void;
}

// Just the slices of the Worker and Node APIs used here (the package's TypeScript
// lib declares neither WebAssembly nor DOM nor Node types).
interface AnyWorker {
  postMessage?(m: unknown): void;
  terminate(): unknown;
  unref?(): void;
  ref?(): void;
  on?(event: string, f: (m: unknown) => void): void;
  onmessage?: ((e: { data: unknown }) => void) | null;
  onerror?: ((e: unknown) => void) | null;
}
type WorkerFactory = (data: Record<string, unknown>) => AnyWorker;
interface G {
  WebAssembly?: WasmApi;
  SharedArrayBuffer?: unknown;
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number };
  process?: {
    env?: Record<string, string | undefined>;
    versions?: { node?: string };
    getBuiltinModule?: (name: string) => unknown;
  };
  Worker?: new (url: string) => AnyWorker;
  Blob?: new (parts: string[], opts: { type: string }) => unknown;
  URL?: { createObjectURL(b: unknown): string };
  setTimeout?(f: () => void, ms: number): unknown;
  clearTimeout?(t: unknown): void;
}
const g = globalThis as unknown as G;
const isNode = typeof g.process?.versions?.node === 'string';

interface WorkerSlot {
  worker: AnyWorker;
  ready: Promise<void>;
  failed: string | null;
}

interface PoolState {
  requested: number | null;
  defaultCount?: number;
  engine: Engine | null | undefined;
  /** Why threads are unavailable (set once an attempt failed). */
  unsupported: string | null;
  workers: WorkerSlot[];
  /** Node's worker_threads module once loaded. */
  nodeWorker: (new (code: string, opts: object) => AnyWorker) | null;
  /** setKernelThreadSpin's value (undefined: SPIN). */
  spin?: number;
}

// One pool per JS realm (a worker thread has its own), shared by duplicated package copies.
const KEY = Symbol.for('caffe-ts.threadPool');
function state(): PoolState {
  const s = globalThis as unknown as Record<symbol, PoolState | undefined>;
  let p = s[KEY];
  if (!p) {
    p = { requested: null, engine: undefined, unsupported: null, workers: [], nodeWorker: null };
    s[KEY] = p;
  }
  return p;
}

/** The machine's cores as the platform reports them (at least 1). */
export function hardwareThreads(): number {
  let n = 0;
  const os = nodeBuiltin('node:os') as { availableParallelism?: () => number; cpus?: () => unknown[] } | null;
  if (os) n = os.availableParallelism ? os.availableParallelism() : os.cpus?.().length ?? 0;
  if (!n) n = g.navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.floor(n));
}

function nodeBuiltin(name: string): unknown {
  try {
    return g.process?.getBuiltinModule?.(name) ?? null;
  } catch {
    return null;
  }
}

/** CAFFE_TS_THREADS where set to a positive integer, else hardwareThreads(). */
export function defaultNumThreads(): number {
  const env = g.process?.env?.CAFFE_TS_THREADS?.trim();
  const n = env ? Number(env) : NaN;
  return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_THREADS) : Math.min(hardwareThreads(), MAX_THREADS);
}

/** Threads the kernels may use, the calling thread included (the default until set). */
export function getNumThreads(): number {
  const s = state();
  // The default is read once: kernels ask on every call.
  return s.requested ?? (s.defaultCount ??= defaultNumThreads());
}

function checkCount(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new MathError(`${what}: the thread count must be a positive integer, got ${n}`);
  if (n > MAX_THREADS) throw new MathError(`${what}: at most ${MAX_THREADS} threads, got ${n}`);
  return n;
}

/**
 * Sets how many threads the WebAssembly kernels use (the calling thread included). With n > 1
 * the missing workers start now and join jobs once ready; setNumThreads(1) starts nothing.
 * Where threads are unsupported, kernels stay on one thread whatever n is (see threadPoolInfo).
 */
export function setNumThreads(n: number): void {
  const s = state();
  s.requested = checkCount(n, 'setNumThreads');
  if (n > 1) ensureWorkers(n - 1);
}

/** How long initThreads waits for the workers by default (they take milliseconds when all is well). */
const INIT_THREADS_TIMEOUT_MS = 30_000;

/**
 * setNumThreads(n ?? getNumThreads()) and waits until those workers are ready (or failed), at
 * most `timeoutMs` (INIT_THREADS_TIMEOUT_MS): a worker that never starts (a browser that stalls
 * it, say) must not hang the caller. Resolves to the number of threads jobs will use now; a
 * worker ready later joins the jobs from then on.
 */
export async function initThreads(n?: number, options: { timeoutMs?: number } = {}): Promise<number> {
  const s = state();
  const want = n === undefined ? getNumThreads() : checkCount(n, 'initThreads');
  s.requested = want;
  if (want > 1) {
    if (!s.nodeWorker && isNode && !nodeBuiltin('node:worker_threads')) {
      // Node before 20.16 has no process.getBuiltinModule: load worker_threads asynchronously.
      // The specifier is a variable so that browser bundlers leave it alone.
      const spec = 'node:worker_threads';
      try {
        const mod = (await import(/* @vite-ignore */ spec)) as { Worker: PoolState['nodeWorker'] };
        s.nodeWorker = mod.Worker;
      } catch {
        /* no worker_threads: stay single-threaded */
      }
    }
    ensureWorkers(want - 1);
    const starting = s.workers.slice(0, want - 1);
    // Keep the process alive while waiting for the 'ready' messages (workers are unref'd).
    for (const w of starting) w.worker.ref?.();
    const timeoutMs = options.timeoutMs ?? INIT_THREADS_TIMEOUT_MS;
    let timer: unknown;
    const late = new Promise<void>((resolve) => {
      timer = g.setTimeout?.(resolve, timeoutMs);
    });
    try {
      await Promise.race([Promise.all(starting.map((w) => w.ready)), late]);
    } finally {
      g.clearTimeout?.(timer);
      for (const w of starting) w.worker.unref?.();
    }
  }
  return activeThreads();
}

/** Stops every worker; later jobs run on the calling thread until threads are asked for again. */
export async function shutdownThreads(): Promise<void> {
  const s = state();
  const e = s.engine;
  if (e) Atomics.store(e.ctl(), STOP, 1);
  const workers = s.workers;
  s.workers = [];
  await Promise.all(workers.map((w) => Promise.resolve(w.worker.terminate()).catch(() => undefined)));
  if (e) {
    const ctl = e.ctl();
    Atomics.store(ctl, STOP, 0);
    for (let w = 0; w < MAX_THREADS; w++) Atomics.store(ctl, READY + w, 0);
  }
}

export interface ThreadPoolInfo {
  /** getNumThreads(). */
  requested: number;
  /** Threads a large job would use right now (ready workers + the caller, capped by requested). */
  active: number;
  /** Workers started (ready or not). */
  started: number;
  /** Whether this engine can run kernel threads at all. */
  supported: boolean;
  /** Why not, where unsupported. */
  reason: string | null;
  /**
   * Command lists the worker threads have run since the pool's memory was made. The caller runs a
   * worker's list itself when that worker has not picked it up by the time the caller's own share
   * is done, so a count that grows is what shows the workers taking part in the work.
   */
  workerLists: number;
}

export function threadPoolInfo(): ThreadPoolInfo {
  const s = state();
  const reason = unsupportedReason();
  const workerLists = s.engine ? Atomics.load(s.engine.ctl(), WORKER_LISTS) : 0;
  return { requested: getNumThreads(), active: activeThreads(), started: s.workers.length, supported: reason === null, reason, workerLists };
}

function unsupportedReason(): string | null {
  const s = state();
  if (s.unsupported) return s.unsupported;
  if (!g.WebAssembly) return 'no WebAssembly';
  if (typeof g.SharedArrayBuffer !== 'function') return 'no SharedArrayBuffer (a browser page needs cross-origin isolation: COOP/COEP headers)';
  if (g.crossOriginIsolated === false) return 'the page is not cross-origin isolated (COOP/COEP headers), so memory cannot be shared';
  if (!workerFactory()) return 'no Worker (node:worker_threads or the Web Worker API)';
  return null;
}

function workerFactory(): WorkerFactory | null {
  const s = state();
  if (isNode) {
    if (!s.nodeWorker) {
      const wt = nodeBuiltin('node:worker_threads') as { Worker: PoolState['nodeWorker'] } | null;
      if (wt) s.nodeWorker = wt.Worker;
    }
    const W = s.nodeWorker;
    if (!W) return null;
    return (data) => {
      const w = new W(WORKER_SOURCE, { eval: true, workerData: data, name: `caffe-ts kernel ${String(data.id)}` });
      w.unref?.();
      return w;
    };
  }
  const W = g.Worker, B = g.Blob, U = g.URL;
  if (!W || !B || !U) return null;
  let url: string | null = null;
  return (data) => {
    url ??= U.createObjectURL(new B([WORKER_SOURCE], { type: 'text/javascript' }));
    const w = new W(url);
    w.postMessage!(data);
    return w;
  };
}

/** Starts workers until `count` exist (where supported). */
function ensureWorkers(count: number): void {
  const s = state();
  if (s.workers.length >= count || unsupportedReason()) return;
  const e = engine();
  const make = workerFactory();
  if (!e || !make) return;
  while (s.workers.length < count) {
    const id = s.workers.length + 1;
    const data = {
      memory: e.memory, modules: [...e.modules, ...e.inferModules, ...e.trainModules], id, region: REGION_BASE + id * REGION_BYTES, regionWords: REGION_WORDS,
      ctlWords: CTL_WORDS, SEQ, PENDING, ERRORS, STOP, WORKER_LISTS, READY, HEAD, CMD, SPIN, SPIN_WORD,
    };
    let worker: AnyWorker;
    try {
      worker = make(data);
    } catch (err) {
      s.unsupported = `cannot start a worker thread (${String(err)})`;
      return;
    }
    const slot: WorkerSlot = { worker, ready: Promise.resolve(), failed: null };
    slot.ready = new Promise<void>((resolve) => {
      const onMessage = (m: unknown) => {
        const msg = m as { ready?: number; error?: string; op?: number };
        if (msg.ready !== undefined) resolve();
        if (msg.error !== undefined) e.lastError = `${OP_NAMES[(msg.op ?? 0) & 255] ?? 'command'}: ${msg.error}`;
      };
      const onError = (err: unknown) => {
        slot.failed = String(err);
        resolve();
      };
      if (worker.on) {
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.on('exit', () => onError('exited'));
        // After the listeners: adding a 'message' listener refs the worker's port again, and a
        // pool must never keep a process alive.
        worker.unref?.();
      } else {
        worker.onmessage = (ev) => onMessage(ev.data);
        worker.onerror = onError;
      }
    });
    s.workers.push(slot);
  }
}

/** Threads a job may use now: the caller plus the ready workers among the first requested − 1. */
export function activeThreads(): number {
  const s = state();
  const want = getNumThreads();
  if (want <= 1 || s.workers.length === 0 || !s.engine) return 1;
  const ctl = s.engine.ctl();
  let t = 1;
  while (t < want && t <= s.workers.length && Atomics.load(ctl, READY + t) === 1) t++;
  return t;
}

/**
 * Threads to use for a job of `flops` floating-point operations that splits into at most
 * `parts` pieces: 1 when it is small (under minFlopsPerThread per thread) or the pool is off. With the default thread count this
 * starts the pool on the first job that would use it (that job still runs on one thread).
 */
export function planThreads(flops: number, parts = Infinity, minFlopsPerThread = MIN_FLOPS_PER_THREAD): number {
  if (flops < 2 * minFlopsPerThread || parts < 2) return 1;
  const want = Math.min(getNumThreads(), Math.floor(flops / minFlopsPerThread), parts);
  if (want <= 1) return 1;
  const s = state();
  if (s.workers.length < want - 1) ensureWorkers(getNumThreads() - 1);
  // The job is split into `want` parts even while workers are still starting (the caller then
  // runs the parts of the workers not ready yet): how a product is split, and so the summation
  // order of split reductions, depends on the thread count asked for, never on start-up timing.
  return s.engine && s.workers.length > 0 ? want : 1;
}

/**
 * Splits `n` items into T contiguous shares (cuts at multiples of `unit`, the last at n), has
 * `emit(list, t, p0, p1)` write each non-empty share's commands into thread t's list of the
 * `relaxed` build, and runs the lists (the calling thread takes share 0).
 */
export function runShares(
  e: Engine, T: number, relaxed: boolean, n: number, unit: number, what: string,
  emit: (list: CommandList, t: number, p0: number, p1: number) => void,
): void {
  const lists = e.lists(T, relaxed);
  const cut = (t: number) => (t >= T ? n : Math.floor((t * n) / unit / T) * unit);
  for (let t = 0; t < T; t++) {
    const p0 = cut(t), p1 = cut(t + 1);
    if (p1 > p0) emit(lists[t]!, t, p0, p1);
  }
  e.run(lists, what);
}

/** The pool's shared memory and the calling thread's instances (null where unsupported). */
export function engine(): Engine | null {
  const s = state();
  if (s.engine === undefined) {
    s.engine = null;
    if (unsupportedReason() === null) {
      try {
        s.engine = new Engine();
        if (s.spin !== undefined) Atomics.store(s.engine.ctl(), SPIN_WORD, s.spin + 1);
      } catch (err) {
        s.unsupported = `cannot create a shared WebAssembly memory (${String(err)})`;
      }
    }
  }
  return s.engine;
}

/**
 * How many times an idle kernel thread checks for the next job before it sleeps (default
 * 20,000: back-to-back jobs, such as a layer's products, start without a wake-up). Kernels that
 * run outside these threads (native ones, with threads of their own) want it low: a spinning
 * worker holds a core they need. Applies to the running workers at once.
 */
export function setKernelThreadSpin(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < 0) throw new MathError(`setKernelThreadSpin: expected a non-negative integer, got ${iterations}`);
  const s = state();
  s.spin = iterations;
  if (s.engine) Atomics.store(s.engine.ctl(), SPIN_WORD, iterations + 1);
}

/** setKernelThreadSpin's value. */
export function kernelThreadSpin(): number {
  return state().spin ?? SPIN;
}

/** A command list for one thread: calls of the shared module's exports. */
export class CommandList {
  n = 0;
  constructor(
    private readonly i32: Int32Array,
    private readonly f32: Float32Array,
    readonly base: number,
    private readonly variant: number,
  ) {}

  private slot(op: Op): number {
    if (this.n >= MAX_COMMANDS) throw new MathError(`kernel threads: more than ${MAX_COMMANDS} commands in one job`);
    const o = this.base + HEAD + this.n++ * CMD;
    this.i32[o] = op | (this.variant << 8);
    return o + 1;
  }
  /** The module's gemm (see scripts/gemm-wat.mjs); alpha and beta are stored as floats. */
  gemm(tA: number, tB: number, M: number, N: number, K: number, alpha: number, pA: number, lda: number,
    pB: number, ldb: number, beta: number, pC: number, ldc: number, packA: number, packB: number, scratch: number): void {
    const a = this.slot(Op.Gemm), i = this.i32;
    i[a] = tA; i[a + 1] = tB; i[a + 2] = M; i[a + 3] = N; i[a + 4] = K; this.f32[a + 5] = alpha;
    i[a + 6] = pA; i[a + 7] = lda; i[a + 8] = pB; i[a + 9] = ldb; this.f32[a + 10] = beta;
    i[a + 11] = pC; i[a + 12] = ldc; i[a + 13] = packA; i[a + 14] = packB; i[a + 15] = scratch;
  }
  /** The module's gemm_mt (one thread's share of a cooperative GEMM); alpha, beta as floats. */
  gemmMt(tA: number, tB: number, M: number, N: number, K: number, alpha: number, pA: number, lda: number,
    pB: number, ldb: number, beta: number, pC: number, ldc: number, packA: number, packB0: number, packB1: number,
    scratch: number, sync: number, T: number, mcT: number, nJ: number, bChunk: number, abort: number): void {
    const a = this.slot(Op.GemmMt), i = this.i32;
    i[a] = tA; i[a + 1] = tB; i[a + 2] = M; i[a + 3] = N; i[a + 4] = K; this.f32[a + 5] = alpha;
    i[a + 6] = pA; i[a + 7] = lda; i[a + 8] = pB; i[a + 9] = ldb; this.f32[a + 10] = beta;
    i[a + 11] = pC; i[a + 12] = ldc; i[a + 13] = packA; i[a + 14] = packB0; i[a + 15] = packB1;
    i[a + 16] = scratch; i[a + 17] = sync; i[a + 18] = T; i[a + 19] = mcT; i[a + 20] = nJ; i[a + 21] = bChunk; i[a + 22] = abort;
  }
  /**
   * A call of the inference module's shared build (variant + 2 of this list's build): pconv,
   * wgemm, relu, wino*_out (their one float argument, the ReLU slope, at index `floatAt` of
   * `args`), rowdot, depthwise, wino*_in, padimg or padimg2 (floatAt −1: integers only).
   */
  infer(op: Op, args: number[], floatAt: number): void {
    if (this.variant > 1) throw new MathError('kernel threads: infer() on a list of the inference build');
    const o = this.base + HEAD + this.n * CMD;
    const a = this.slot(op);
    this.i32[o] = op | ((this.variant + 2) << 8);
    for (let k = 0; k < args.length; k++) {
      if (k === floatAt) this.f32[a + k] = args[k]!;
      else this.i32[a + k] = args[k]!;
    }
  }
  /** A call of the training module's shared build (variant + 4 of this list's build): integer arguments only. */
  train(op: Op, ...args: number[]): void {
    if (this.variant > 1) throw new MathError('kernel threads: train() on a list of another build');
    const o = this.base + HEAD + this.n * CMD;
    const a = this.slot(op);
    this.i32[o] = op | ((this.variant + 4) << 8);
    for (let k = 0; k < args.length; k++) this.i32[a + k] = args[k]!;
  }
  /** Any other export: integer arguments only. */
  call(op: Op, ...args: number[]): void {
    const a = this.slot(op);
    for (let k = 0; k < args.length; k++) this.i32[a + k] = args[k]!;
  }
}

/** The shared memory, the calling thread's instances of the shared builds, and job dispatch. */
export class Engine {
  readonly memory: SharedMemory;
  /** Compiled shared builds: [plain SIMD, relaxed SIMD] (null where the engine rejects one). */
  readonly modules: [object | null, object | null];
  private readonly instances: [SharedExports | null, SharedExports | null];
  /** Compiled shared builds of the inference module: [plain SIMD, relaxed SIMD]. */
  readonly inferModules: [object | null, object | null];
  private readonly inferInstances: [SharedInferExports | null, SharedInferExports | null];
  /** Compiled shared builds of the training module: [plain SIMD, relaxed SIMD]. */
  readonly trainModules: [object | null, object | null];
  private readonly trainInstances: [SharedTrainExports | null, SharedTrainExports | null];
  private seq = 0;
  private canBlock = true;
  lastError: string | null = null;
  /**
   * Byte offset of the control word counting failed threads in the current job: cooperative
   * kernels (gemm_mt) stop waiting for each other once it is nonzero.
   */
  readonly errorWordAt = ERRORS * 4;
  /**
   * Whether the calling thread may sleep in Atomics.wait / memory.atomic.wait32 (Node's main
   * thread and workers may; a browser page's main thread may not, and must spin).
   */
  get callerMayBlock(): boolean {
    return this.canBlock && (isNode || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined');
  }
  private cachedViews: { buf: SharedArrayBuffer; i32: Int32Array; f32: Float32Array } | null = null;
  /** Blocks of the shared memory above the command regions (blob memory and job scratch). */
  readonly heap: KernelHeap;
  private scratchAt = -1;
  private scratchBytes = 0;

  constructor() {
    // Settle relaxed SIMD first (on Node 20 that sets V8's flag): a blob of the 'wasm' host
    // allocator can create the engine before any kernel has compiled, and builds compiled
    // without the flag would leave the relaxed kernels with no threaded or in-place path.
    wasmApi();
    const api = g.WebAssembly!;
    this.memory = new api.Memory({ initial: HEAP_BASE / PAGE + 16, maximum: MAX_MEMORY_BYTES / PAGE, shared: true });
    this.heap = new KernelHeap(this.memory, HEAP_BASE, MAX_MEMORY_BYTES);
    const compile = (b64: string): object | null => {
      const bytes = decodeBase64(b64);
      if (!api.validate(bytes)) return null;
      try {
        return new api.Module(bytes);
      } catch {
        return null;
      }
    };
    this.modules = [compile(GEMM_WASM_SIMD_SHARED_BASE64), compile(GEMM_WASM_RELAXED_SIMD_SHARED_BASE64)];
    if (!this.modules[0] && !this.modules[1]) throw new MathError('no shared-memory WebAssembly SIMD build compiles here');
    const env = { env: { memory: this.memory } };
    this.instances = this.modules.map((m) => (m ? (new api.Instance(m, env).exports as SharedExports) : null)) as Engine['instances'];
    // Commands name a build by variant: 0, 1 the GEMM module's, 2, 3 the inference module's,
    // 4, 5 the training module's.
    this.inferModules = [compile(INFER_WASM_SIMD_SHARED_BASE64), compile(INFER_WASM_RELAXED_SIMD_SHARED_BASE64)];
    this.inferInstances = this.inferModules.map((m) => (m ? (new api.Instance(m, env).exports as SharedInferExports) : null)) as Engine['inferInstances'];
    this.trainModules = [compile(TRAIN_WASM_SIMD_SHARED_BASE64), compile(TRAIN_WASM_RELAXED_SIMD_SHARED_BASE64)];
    this.trainInstances = this.trainModules.map((m) => (m ? (new api.Instance(m, env).exports as SharedTrainExports) : null)) as Engine['trainInstances'];
  }

  /**
   * The calling thread's instance of the training module's shared build of `relaxed` (null where
   * it does not compile, or where the GEMM build of the same kind, which command lists carry, does not).
   */
  trainExports(relaxed: boolean): SharedTrainExports | null {
    return this.instances[relaxed ? 1 : 0] ? this.trainInstances[relaxed ? 1 : 0] : null;
  }

  /**
   * The calling thread's instance of the inference module's shared build of `relaxed` (null
   * where it does not compile, or where the GEMM build of the same kind, which its commands'
   * lists carry, does not).
   */
  inferExports(relaxed: boolean): SharedInferExports | null {
    return this.instances[relaxed ? 1 : 0] ? this.inferInstances[relaxed ? 1 : 0] : null;
  }

  /** Whether the build of `relaxed` can run threaded here. */
  has(relaxed: boolean): boolean {
    return this.instances[relaxed ? 1 : 0] !== null;
  }

  ctl(): Int32Array {
    return new Int32Array(this.memory.buffer, 0, CTL_WORDS);
  }

  /** The calling thread's instance of the shared build of `relaxed` (null where it does not compile). */
  callerExports(relaxed: boolean): SharedExports | null {
    return this.instances[relaxed ? 1 : 0];
  }

  /** Views of the whole memory as it is now (fresh after a grow; old views keep the old length). */
  views(): { i32: Int32Array; f32: Float32Array } {
    const buf = this.heap.buffer();
    if (!this.cachedViews || this.cachedViews.buf !== buf) this.cachedViews = { buf, i32: new Int32Array(buf), f32: new Float32Array(buf) };
    return this.cachedViews;
  }

  /**
   * Byte offset of `a` in this memory when it is a view of it (a blob allocated by the 'wasm'
   * host allocator), else -1: the kernels then copy it in (and out) as before.
   */
  offsetOf(a: Float32Array | Int32Array | null | undefined): number {
    return a && this.heap.owns(a.buffer) ? a.byteOffset : -1;
  }

  /**
   * The jobs' scratch block, at least `bytes` long: its byte offset and views of the memory. The
   * block is kept for the next job and replaced by a larger one when a job needs more. Throws
   * MathError naming `what` when the memory cannot grow.
   */
  scratch(bytes: number, what: string): { base: number; i32: Int32Array; f32: Float32Array } {
    if (bytes > this.scratchBytes) {
      if (this.scratchAt >= 0) this.heap.free(this.scratchAt, this.scratchBytes);
      this.scratchAt = -1;
      this.scratchBytes = 0;
      // A quarter more, so slowly growing jobs do not replace it every time.
      const want = Math.max(bytes, Math.ceil(bytes * 1.25 / 64) * 64);
      let size = want;
      let at = this.heap.alloc(size);
      if (at < 0 && want > bytes) at = this.heap.alloc((size = bytes));
      if (at < 0) {
        const st = this.heap.stats();
        throw new MathError(
          `${what}: cannot grow the shared WebAssembly memory for ${bytes} bytes of scratch ` +
            `(memory ${st.memoryBytes} of at most ${st.maxBytes} bytes; ${st.bytesInUse} in use)`,
        );
      }
      this.scratchAt = at;
      this.scratchBytes = size;
    }
    return { base: this.scratchAt, ...this.views() };
  }

  /** Empty command lists for threads 0 … T − 1 (0 is the caller) using the build of `relaxed`. */
  lists(T: number, relaxed: boolean): CommandList[] {
    const { i32, f32 } = this.views();
    const out: CommandList[] = [];
    for (let t = 0; t < T; t++) out.push(new CommandList(i32, f32, (REGION_BASE + t * REGION_BYTES) >> 2, relaxed ? 1 : 0));
    return out;
  }

  /**
   * Runs the lists: workers 1 … T − 1 get theirs, the caller runs list 0, then waits for all.
   * Throws MathError when any thread failed (after every thread has finished).
   * hooks.beforeOwn runs on the caller once the workers have been started (work their lists do
   * not read: staging the caller's own operands); hooks.afterOwn once the caller's own lists are
   * done, before waiting for the workers (copying the caller's own results out).
   */
  run(lists: CommandList[], what: string, hooks?: { beforeOwn?(): void; afterOwn?(): void }): void {
    const { i32 } = this.views();
    const ctl = this.ctl();
    const seq = (this.seq = (this.seq + 1) & 0x3fffffff) || (this.seq = 1);
    // Lists of workers that are not ready (still starting) run on the caller after its own.
    const ready = Math.min(lists.length, activeThreads());
    let workers = 0;
    for (let t = 1; t < lists.length; t++) {
      const l = lists[t]!;
      i32[l.base + 1] = l.n;
      if (t < ready && l.n > 0) {
        Atomics.store(i32, l.base, seq);
        workers++;
      } else {
        Atomics.store(i32, l.base, 0);
      }
    }
    Atomics.store(ctl, ERRORS, 0);
    Atomics.store(ctl, PENDING, workers);
    if (workers > 0) {
      Atomics.store(ctl, SEQ, seq);
      Atomics.notify(ctl, SEQ);
    }
    let failure: unknown = null;
    try {
      hooks?.beforeOwn?.();
      const l = lists[0]!;
      i32[l.base + 1] = l.n;
      this.runList(l.base, i32);
      for (let t = ready; t < lists.length; t++) if (lists[t]!.n > 0) this.runList(lists[t]!.base, i32);
      // A worker that has not picked its list up by now (asleep, or its core busy with another
      // process) would only make the caller wait: take the list back and run it here. Workers
      // claim a list with the same compare-exchange, so exactly one thread runs it.
      for (let t = 1; t < ready; t++) {
        const w = lists[t]!;
        if (w.n > 0 && Atomics.compareExchange(i32, w.base, seq, 0) === seq) {
          try {
            this.runList(w.base, i32);
          } finally {
            Atomics.sub(ctl, PENDING, 1);
          }
        }
      }
      hooks?.afterOwn?.();
    } catch (err) {
      failure = err;
      // Workers waiting on the caller inside a cooperative kernel give up on seeing this.
      Atomics.add(ctl, ERRORS, 1);
    }
    this.join(ctl);
    if (failure) throw failure;
    if (Atomics.load(ctl, ERRORS) > 0) {
      throw new MathError(`${what}: a kernel worker thread failed${this.lastError ? ` (${this.lastError})` : ''}`);
    }
  }

  private join(ctl: Int32Array): void {
    let spins = 0;
    for (;;) {
      const p = Atomics.load(ctl, PENDING);
      if (p === 0) return;
      if (++spins < 200000 || !this.canBlock) continue;
      try {
        Atomics.wait(ctl, PENDING, p, 50);
      } catch {
        // A browser's main thread may not block: keep spinning.
        this.canBlock = false;
      }
    }
  }

  private runList(base: number, i: Int32Array): void {
    const f = new Float32Array(i.buffer);
    const n = i[base + 1]!;
    for (let c = 0; c < n; c++) {
      const o = base + HEAD + c * CMD, op = i[o]!, a = o + 1;
      const v = op >> 8;
      if (v >= 4) {
        const tx = this.trainInstances[v - 4]!;
        if ((op & 255) === Op.SconvStage) tx.sconv_stage(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!);
        else if ((op & 255) === Op.SconvWgrad) {
          tx.sconv_wgrad(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!);
        } else if ((op & 255) === Op.SconvBsum) tx.sconv_bsum(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!);
        else if ((op & 255) === Op.SgdStepAt) tx.sgd_step_at(i[a]!);
        else throw new MathError(`kernel threads: unknown command ${op}`);
        continue;
      }
      if (v >= 2) {
        const ix = this.inferInstances[v - 2]!;
        if ((op & 255) === Op.Pconv) {
          ix.pconv(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!,
            i[a + 11]!, i[a + 12]!, i[a + 13]!, i[a + 14]!, i[a + 15]!, i[a + 16]!, i[a + 17]!, f[a + 18]!, i[a + 19]!, i[a + 20]!, i[a + 21]!, i[a + 22]!);
        } else if ((op & 255) === Op.Wgemm) {
          ix.wgemm(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, f[a + 9]!, i[a + 10]!);
        } else if ((op & 255) === Op.Rowdot) {
          ix.rowdot(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!);
        } else if ((op & 255) === Op.Depthwise) {
          ix.depthwise(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!,
            i[a + 11]!, i[a + 12]!, i[a + 13]!, i[a + 14]!, i[a + 15]!, i[a + 16]!, i[a + 17]!, i[a + 18]!);
        } else if ((op & 255) === Op.Relu) {
          ix.relu(i[a]!, i[a + 1]!, i[a + 2]!, f[a + 3]!);
        } else if ((op & 255) === Op.WinoIn || (op & 255) === Op.Wino4In || (op & 255) === Op.Wino25In) {
          ((op & 255) === Op.WinoIn ? ix.wino_in : (op & 255) === Op.Wino4In ? ix.wino4_in : ix.wino25_in)(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!);
        } else if ((op & 255) === Op.PadImg) {
          ix.padimg(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!);
        } else if ((op & 255) === Op.PadImg2) {
          ix.padimg2(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!);
        } else if ((op & 255) === Op.MaxpoolDirect) {
          ix.maxpool_direct(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!);
        } else if ((op & 255) === Op.Lrn) {
          ix.lrn(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, f[a + 7]!, f[a + 8]!, i[a + 9]!, i[a + 10]!, i[a + 11]!);
        } else if ((op & 255) === Op.Maxpool) {
          ix.maxpool(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!,
            i[a + 11]!, i[a + 12]!, i[a + 13]!, i[a + 14]!, i[a + 15]!);
        } else if ((op & 255) === Op.WinoOut || (op & 255) === Op.Wino4Out || (op & 255) === Op.Wino25Out) {
          ((op & 255) === Op.WinoOut ? ix.wino_out : (op & 255) === Op.Wino4Out ? ix.wino4_out : ix.wino25_out)(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!,
            f[a + 11]!, i[a + 12]!, i[a + 13]!);
        } else {
          throw new MathError(`kernel threads: unknown command ${op}`);
        }
        continue;
      }
      const ex = this.instances[v]!;
      switch (op & 255) {
        case Op.Gemm:
          ex.gemm(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, f[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!,
            f[a + 10]!, i[a + 11]!, i[a + 12]!, i[a + 13]!, i[a + 14]!, i[a + 15]!);
          break;
        case Op.GemmMt:
          ex.gemm_mt(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, f[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!,
            f[a + 10]!, i[a + 11]!, i[a + 12]!, i[a + 13]!, i[a + 14]!, i[a + 15]!, i[a + 16]!, i[a + 17]!, i[a + 18]!,
            i[a + 19]!, i[a + 20]!, i[a + 21]!, i[a + 22]!);
          break;
        case Op.Im2col:
          ex.im2col(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!, i[a + 11]!, i[a + 12]!);
          break;
        case Op.Col2im:
          ex.col2im(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!, i[a + 8]!, i[a + 9]!, i[a + 10]!, i[a + 11]!, i[a + 12]!);
          break;
        case Op.Gather:
          ex.gather(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!);
          break;
        case Op.Scatter:
          ex.scatter(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!);
          break;
        case Op.Rowsum:
          ex.rowsum(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!);
          break;
        case Op.Zero:
          ex.zero(i[a]!, i[a + 1]!);
          break;
        case Op.Maxpool2x2:
          ex.maxpool2x2(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!, i[a + 6]!, i[a + 7]!);
          break;
        case Op.Maxunpool:
          ex.maxunpool(i[a]!, i[a + 1]!, i[a + 2]!, i[a + 3]!, i[a + 4]!, i[a + 5]!);
          break;
        default:
          throw new MathError(`kernel threads: unknown command ${op}`);
      }
    }
  }
}
