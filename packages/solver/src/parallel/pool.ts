/*
 * Rank 0's side of the worker threads: start them, wait for them through the control words,
 * collect their rare messages (ready, errors, inference results) and stop them.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SolverError } from '../errors.js';
import { waitWhileEqual } from './replica.js';
import { CMD, CTRL, CTRL_WORDS, type SerializedError, type WorkerInit, type WorkerMessage } from './protocol.js';

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

/** The worker entry: the built worker next to this module, or the TypeScript source through dev hooks. */
function workerEntry(): { url: URL; data: Record<string, unknown> } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Running from sources (vitest): the worker compiles the workspace's TypeScript on the fly.
    return { url: new URL('./dev/ts-worker.mjs', here), data: { __entry: new URL('./worker.ts', here).href } };
  }
  // Built: dist/parallel/index.js sits beside worker.js; a shared chunk sits one level up.
  for (const candidate of ['./worker.js', './parallel/worker.js']) {
    const url = new URL(candidate, here);
    if (existsSync(url)) return { url, data: {} };
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
  private readonly workers: Worker[] = [];
  private readonly errors = new Map<number, SerializedError>();
  private readonly errorWaiters = new Map<number, () => void>();
  private readonly exited = new Set<number>();
  private readonly testResults = new Map<number, { index: number; loss: number; outputs: number[] }[]>();
  private closed = false;

  constructor(count: number) {
    this.count = count;
    this.control = new SharedArrayBuffer(CTRL_WORDS * 4);
    this.ctrl = new Int32Array(this.control);
    this.losses = new SharedArrayBuffer(8 * Math.max(1, count));
    this.lossValues = new Float64Array(this.losses);
  }

  /** Start ranks 1..N-1 with `initFor(rank)` and wait until every one has built its replica. */
  async start(initFor: (rank: number) => Omit<WorkerInit, 'control' | 'losses'>): Promise<void> {
    const entry = workerEntry();
    for (let rank = 1; rank < this.count; rank++) {
      const init: WorkerInit = { ...initFor(rank), control: this.control, losses: this.losses };
      const worker = new Worker(entry.url, { workerData: { ...init, ...entry.data } });
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
    } else if (m.type === 'test-result') {
      this.testResults.set(m.rank, m.batches);
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

  /** Results a TEST command's workers posted (by rank), available after waitDone. */
  async takeTestResults(): Promise<Map<number, { index: number; loss: number; outputs: number[] }[]>> {
    // DONE is counted after the result is posted; the message may still be in flight.
    const deadline = Date.now() + 10_000;
    while (this.testResults.size < this.count - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    if (this.testResults.size < this.count - 1) throw new ParallelError('data-parallel inference: a worker finished but its results never arrived');
    const out = new Map(this.testResults);
    this.testResults.clear();
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
