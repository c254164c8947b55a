/*
 * Rank 0's side of the worker threads: start them, wait for them through the control words,
 * collect their rare messages (ready, errors, inference results) and stop them.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SolverError } from '../errors.js';
import { defaultSpinMs, spinWhileEqual, waitWhileEqual } from './replica.js';
import { CMD, CTRL, CTRL_WORDS, STAT, STAT_WORDS, type SerializedError, type WorkerInit, type WorkerMessage } from './protocol.js';

/** Base of the data-parallel errors. */
export class ParallelError extends SolverError {
  override readonly name: string = 'ParallelError';
}

/** Options that cannot work together (a batch that does not split, an unsharded data layer in split mode, …). */
export class ParallelConfigError extends ParallelError {
  override readonly name: string = 'ParallelConfigError';
}

/** A replica failed: names its rank and, when it failed inside the net, the layer. */
export class ParallelWorkerError extends ParallelError {
  override readonly name: string = 'ParallelWorkerError';
  /** The replica's rank (0 is the calling thread, workers are 1..N-1). */
  readonly rank: number;
  /** The layer that threw, if the failure was inside the net. */
  readonly layer: string | undefined;
  readonly layerType: string | undefined;
  /** The name of the original error class (LayerError, DataError, …). */
  readonly causeName: string;
  /** What the replica was doing: 'setup', 'step' or 'test'. */
  readonly during: string;

  constructor(rank: number, info: SerializedError, options?: ErrorOptions) {
    const where = info.layer ? ` in layer '${info.layer}' (${info.layerType})` : '';
    super(`data-parallel worker rank ${rank} failed during ${info.during}${where}: ${info.name}: ${info.message}`, options);
    this.rank = rank;
    this.layer = info.layer;
    this.layerType = info.layerType;
    this.causeName = info.name;
    this.during = info.during;
    if (info.stack) this.stack = `${this.name}: ${this.message}\n  worker stack: ${info.stack}`;
  }
}

/** Cores this process may use (os.availableParallelism). */
export function availableCores(): number {
  return typeof availableParallelism === 'function' ? availableParallelism() : cpus().length;
}

interface DevBundle {
  devBundle(): Promise<{ dir: string; url(name: string): string }>;
  entryFor(specifier: string): string | null;
  workspaceSpecifier(spec: string): string | null;
}

interface WorkerEntry {
  url: URL;
  data: Record<string, unknown>;
  /** The layer plugins to import, as the worker must name them. */
  register: string[];
}

/**
 * The worker entry: the built worker next to this module; or, running from TypeScript sources
 * (vitest), the worker of a cached esbuild bundle of the workspace (dev/bundle.mjs), whose
 * entries also stand in for workspace plugins. Plugins from elsewhere (which may import
 * `@caffe-ts/layers`) need loader hooks that map workspace packages to that bundle.
 */
async function workerEntry(register: readonly string[]): Promise<WorkerEntry> {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // A computed specifier: the build of this package must leave the dev helper out.
    const devSpec = new URL('./dev/bundle.mjs', here).href;
    const dev = (await import(/* @vite-ignore */ devSpec)) as DevBundle;
    const bundle = await dev.devBundle();
    let hooks = false;
    const mapped = register.map((spec) => {
      const ws = dev.workspaceSpecifier(spec);
      const entry = ws ? dev.entryFor(ws) : null;
      if (entry) return bundle.url(entry);
      hooks = true;
      return spec;
    });
    const worker = bundle.url('parallel/worker');
    if (!hooks) return { url: new URL(worker), data: {}, register: mapped };
    return { url: new URL('./dev/ts-worker.mjs', here), data: { __entry: worker, __bundleDir: bundle.dir }, register: mapped };
  }
  // Built: dist/parallel/index.js sits beside worker.js; a shared chunk sits one level up.
  for (const candidate of ['./worker.js', './parallel/worker.js']) {
    const url = new URL(candidate, here);
    if (existsSync(url)) return { url, data: {}, register: [...register] };
  }
  throw new ParallelError(`cannot find the data-parallel worker script next to ${here} (expected worker.js or parallel/worker.js)`);
}

/**
 * N - 1 worker threads (ranks 1..N-1) around one control block. Rank 0 is the calling thread,
 * which computes its own share between `start` and `wait`.
 */
export class WorkerPool {
  readonly count: number;
  readonly control: SharedArrayBuffer;
  readonly ctrl: Int32Array;
  readonly losses: SharedArrayBuffer;
  readonly lossValues: Float64Array;
  /** Per-rank timers (STAT words each; rank 0's are DataParallel's own). */
  readonly stats: SharedArrayBuffer;
  readonly statValues: Float64Array;
  private readonly workers: Worker[] = [];
  private readonly errors = new Map<number, SerializedError>();
  private readonly errorWaiters = new Map<number, () => void>();
  private readonly exited = new Set<number>();
  /** Result messages (test-result, params, …) by type, then by rank. */
  private readonly results = new Map<string, Map<number, unknown>>();
  private closed = false;
  /** Blocking waits spin this long first (spinWhileEqual). */
  readonly spinMs: number;

  constructor(count: number, spinMs = defaultSpinMs()) {
    this.count = count;
    this.spinMs = spinMs;
    this.control = new SharedArrayBuffer(CTRL_WORDS * 4);
    this.ctrl = new Int32Array(this.control);
    this.losses = new SharedArrayBuffer(8 * Math.max(1, count));
    this.lossValues = new Float64Array(this.losses);
    this.stats = new SharedArrayBuffer(8 * STAT_WORDS * Math.max(1, count));
    this.statValues = new Float64Array(this.stats);
  }

  /** Start ranks 1..N-1 with `initFor(rank)` and wait until every one has built its replica. */
  async start(initFor: (rank: number) => Omit<WorkerInit, 'control' | 'losses' | 'stats'>): Promise<void> {
    let entry: WorkerEntry | undefined;
    for (let rank = 1; rank < this.count; rank++) {
      const base = initFor(rank);
      // The replica setup's module is imported like a plugin (the dev bundle maps it the same way).
      const n = base.register.length;
      entry ??= await workerEntry(base.setup ? [...base.register, base.setup.module] : base.register);
      const init: WorkerInit = {
        ...base,
        register: entry.register.slice(0, n),
        ...(base.setup ? { setup: { ...base.setup, module: entry.register[n]! } } : {}),
        control: this.control,
        losses: this.losses,
        stats: this.stats,
      };
      // A replica decodes its own records on its own thread: no decode pool of its own (io-leveldb
      // starts up to min(cores − 1, 4) decode workers per thread otherwise), unless the user set a count.
      const env = { ...process.env, CAFFE_TS_DECODE_WORKERS: process.env.CAFFE_TS_DECODE_WORKERS ?? '0' };
      const worker = new Worker(entry.url, { workerData: { ...init, ...entry.data }, env });
      worker.on('message', (m: WorkerMessage) => this.onMessage(m));
      worker.on('error', (e) => {
        this.recordError(rank, { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}), during: 'run (uncaught)' });
        this.wake();
      });
      worker.on('exit', (code) => {
        this.exited.add(rank);
        if (!this.closed && !this.errors.has(rank)) {
          this.recordError(rank, { name: 'WorkerExit', message: `the worker thread exited (code ${code}) before it was asked to`, during: 'run' });
        }
        this.wake();
      });
      this.workers.push(worker);
    }
    await this.waitFor(CTRL.READY, this.count - 1);
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type === 'error') {
      this.recordError(m.rank, m.error);
    } else {
      let byRank = this.results.get(m.type);
      if (!byRank) this.results.set(m.type, (byRank = new Map()));
      byRank.set(m.rank, m.type === 'test-result' ? m.batches : m.type === 'params' ? m.params : m.type === 'forward-result' ? m.blobs : m);
    }
  }

  private recordError(rank: number, error: SerializedError): void {
    if (!this.errors.has(rank)) this.errors.set(rank, error);
    Atomics.compareExchange(this.ctrl, CTRL.ERROR, 0, rank + 1);
    this.errorWaiters.get(rank)?.();
  }

  /** Wake whatever waits on the control words (a worker died without saying so). */
  private wake(): void {
    Atomics.notify(this.ctrl, CTRL.DONE);
    Atomics.notify(this.ctrl, CTRL.READY);
  }

  /** Post a command to every worker (they wake on SEQ). */
  command(cmd: number, arg = 0): void {
    this.statValues[STAT.POSTED_AT] = performance.timeOrigin + performance.now();
    Atomics.store(this.ctrl, CTRL.DONE, 0);
    Atomics.store(this.ctrl, CTRL.CMD, cmd);
    Atomics.store(this.ctrl, CTRL.ARG, arg);
    Atomics.add(this.ctrl, CTRL.SEQ, 1);
    Atomics.notify(this.ctrl, CTRL.SEQ);
    // While a command runs the workers keep the process alive; between commands they do not, so
    // a program that forgets close() still exits.
    for (const w of this.workers) w.ref();
  }

  /** Wait (without blocking this thread's event loop) until all workers are DONE; throws a worker's failure. */
  async waitDone(): Promise<void> {
    try {
      await this.waitFor(CTRL.DONE, this.count - 1);
    } finally {
      for (const w of this.workers) w.unref();
    }
  }

  private async waitFor(word: number, target: number): Promise<void> {
    for (;;) {
      if (Atomics.load(this.ctrl, CTRL.ERROR) !== 0) await this.throwFailure();
      const v = Atomics.load(this.ctrl, word);
      if (v >= target) return;
      await waitWhileEqual(this.ctrl, word, v);
    }
  }

  /** The first failure as a ParallelWorkerError, after its message (posted before the flag) arrives. */
  private async throwFailure(): Promise<never> {
    const rank = Atomics.load(this.ctrl, CTRL.ERROR) - 1;
    if (!this.errors.has(rank) && !this.exited.has(rank)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        this.errorWaiters.set(rank, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const info = this.errors.get(rank) ?? { name: 'Error', message: 'the worker reported a failure but no details arrived', during: 'run' };
    throw new ParallelWorkerError(rank, info);
  }

  /**
   * Block this thread until every worker is DONE (for short commands inside synchronous code: the
   * solver's update). A worker that failed sets the error word itself; one that died without a
   * word is given up on after `timeoutMs`.
   */
  waitDoneSync(timeoutMs = 120_000): void {
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        const failed = Atomics.load(this.ctrl, CTRL.ERROR);
        if (failed !== 0) {
          const info = this.errors.get(failed - 1) ?? { name: 'Error', message: 'the worker reported a failure (its message had not arrived yet)', during: 'update' };
          throw new ParallelWorkerError(failed - 1, info);
        }
        const v = Atomics.load(this.ctrl, CTRL.DONE);
        if (v >= this.count - 1) return;
        if (Date.now() > deadline) throw new ParallelError(`data-parallel: the workers did not finish within ${timeoutMs} ms`);
        if (spinWhileEqual(this.ctrl, CTRL.DONE, v, this.spinMs)) continue;
        Atomics.wait(this.ctrl, CTRL.DONE, v, 50);
      }
    } finally {
      for (const w of this.workers) w.unref();
    }
  }

  /**
   * Block this thread until every worker is DONE with the current command and return true; or
   * return false when a worker has failed or `limitMs` passed first (the caller then awaits
   * waitDone(), which runs this thread's event loop: a failure's message and a worker's exit
   * arrive only through it). For the barrier after a training step: rank 0 then starts the
   * reduction the moment the last worker is done, instead of after whatever its event loop runs
   * first (the data layers' loading).
   */
  waitDoneBlocking(limitMs: number): boolean {
    const deadline = performance.now() + limitMs;
    for (;;) {
      if (Atomics.load(this.ctrl, CTRL.ERROR) !== 0) return false;
      const v = Atomics.load(this.ctrl, CTRL.DONE);
      if (v >= this.count - 1) {
        for (const w of this.workers) w.unref();
        return true;
      }
      const left = deadline - performance.now();
      if (left <= 0) return false;
      if (spinWhileEqual(this.ctrl, CTRL.DONE, v, Math.min(left, this.spinMs))) continue;
      Atomics.wait(this.ctrl, CTRL.DONE, v, left);
    }
  }

  /** What the workers posted as messages of `type` for the last command (by rank), after waitDone. */
  async takeResults<T>(type: string): Promise<Map<number, T>> {
    // DONE is counted after the result is posted; the message may still be in flight.
    const deadline = Date.now() + 10_000;
    const got = () => this.results.get(type)?.size ?? 0;
    while (got() < this.count - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    if (got() < this.count - 1) throw new ParallelError(`data-parallel: a worker finished but its ${type} message never arrived`);
    const out = new Map(this.results.get(type) as Map<number, T>);
    this.results.delete(type);
    return out;
  }

  /** Ask every worker to close its net and leave; terminate any that has not left after `graceMs`. */
  async close(graceMs = 5000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctrl, CTRL.CMD, CMD.EXIT);
    Atomics.add(this.ctrl, CTRL.SEQ, 1);
    Atomics.notify(this.ctrl, CTRL.SEQ);
    await Promise.all(
      this.workers.map(async (w, i) => {
        if (this.exited.has(i + 1)) return;
        w.ref();
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
        if ((await Promise.race([exited, timeout])) === 'timeout') await w.terminate();
        clearTimeout(timer);
      }),
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
