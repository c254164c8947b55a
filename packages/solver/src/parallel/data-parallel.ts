/*
 * Data-parallel training across worker threads, as Caffe's multi-GPU training (`-gpu 0,1`,
 * P2PSync/NCCL) does across devices: N replicas of the train net, rank 0 on the calling thread
 * (it also owns the solver, the test nets and snapshots), ranks 1..N-1 in worker threads.
 *
 * Memory: every learnable param's data lives in one shared arena that all replicas view, so the
 * solver's single update is at once the parameters of every replica. Each rank's param diffs live
 * in its own shared arena; after each iteration the ranks sum the arenas into rank 0's and scale by
 * 1/N (Caffe divides by the solver count), each over its share of the elements, then the solver
 * normalizes by iter_size, regularizes, clips and updates, its per-param loop divided among the
 * ranks (update.ts). With plain SGD each rank reduces and updates its share in one pass and one
 * command; the arenas (and the solver's history) then sit in one shared WebAssembly.Memory where
 * SIMD kernels do that pass in place (update-wasm.ts). The next step is posted to the workers
 * right after the update (postEarly). Params with lr_mult 0 (BatchNorm statistics, which layers
 * write during forward) stay private to each replica and are broadcast from rank 0 before every
 * iteration.
 *
 * Modes:
 * - 'replicate' (Caffe's semantics): each replica reads batch_size records from its shard of the
 *   data, so one iteration sees N × batch_size records. N replicas × batch B follow the
 *   trajectory of one replica with iter_size N and batch B (up to summation order).
 * - 'split': one iteration sees the records one replica would have read: the trajectory of the
 *   single-threaded run (up to summation order), computed on N cores. By default in chunks
 *   (chunks.ts): rank 0 reads each whole batch with the train net's data layers into shared
 *   memory and the replicas take its chunks from a shared counter, so a rank that starts late or
 *   is descheduled computes fewer chunks instead of holding up the step; with `chunks: 0` (or a
 *   net whose data layers do not lead it) each replica reads batch_size / N records from its
 *   shard and computes them (the static split).
 * The divided update goes through SGDSolver's public hook (updateApplier).
 */
import { globalRng, logger, type Blob, type DType, type FloatArray } from '@caffe-ts/blob';
import { layerIncluded, Net, type NetStateLike } from '@caffe-ts/net';
import { decodeBinary, encodeBinary, DataParameter_DB, type Phase, type NetParameter } from '@caffe-ts/proto';
import type { GradientComputer, NetBuildOptions, Solver } from '../solver.js';
import { SGDSolver } from '../sgd-solver.js';
import { ParallelConfigError, ParallelError, WorkerPool, availableCores } from './pool.js';
import { CMD, CTRL, SCALAR, STAT, STAT_WORDS, alignElements, scalarBytes, type ArenaRef, type ChunkInit, type ParamSlot } from './protocol.js';
import { arenaReducer, arenaShare, divisibleUpdate, paramShare, ShareUpdater } from './update.js';
import { allocArenaInKernelMemory, allocArenaMemory, createUpdateKernels, type ArenaMemory, type UpdateKernels } from './update-wasm.js';
import { loadReplicaSetup, type ReplicaSetup, type ReplicaSetupModule } from './replica-setup.js';
import { applyKernelThreads, arenaView, defaultSpinMs, LayerFailure, leadingSourceLayers, runLayers, runTimes, threadCpuMs } from './replica.js';
import { chunkInputs, chunkNetParameter, chunkPlan, loadChunk, loadRows, lossTops, nextCut, scaleLossWeights, stagingLayout, stagingViews, type ChunkPlan } from './chunks.js';

export type ParallelMode = 'replicate' | 'split';

export interface DataParallelOptions {
  /** Replicas, the calling thread included (N of Caffe's `-gpu` list). */
  workers: number;
  /** 'replicate' (default, Caffe: N × batch_size per iteration) or 'split' (batch_size divided among replicas). */
  mode?: ParallelMode;
  /**
   * Modules each worker imports before building its net, so that it knows the same layer types
   * as this process (e.g. '@caffe-ts/io-leveldb/register', or a file URL). Bare specifiers
   * resolve from @caffe-ts/solver's own location: pass `import.meta.resolve(spec)` where that
   * differs (pnpm's strict node_modules).
   */
  register?: readonly string[];
  /**
   * What every replica runs around building its train net, for what the net definition cannot
   * say: `module` (resolved as `register`'s entries) may export `beforeBuild(data, replica)`,
   * run on each thread before its net is built (e.g. registering layers configured at run time),
   * and `afterBuild(net, data, replica)`, run on each net that reads the data (e.g. handing a
   * Python data layer its share of the records: replica.rank of replica.count). Rank 0 runs them
   * too, with count 1 when it trains alone or reads every batch itself (chunked split). `data`
   * reaches the workers by structured clone. See ReplicaSetupModule.
   */
  replicaSetup?: ReplicaSetup;
  /**
   * Intra-op kernel threads per replica (default: max(1, floor(cores / workers)), so replicas ×
   * kernel threads never exceed the cores). Applied where @caffe-ts/blob offers setNumThreads.
   */
  kernelThreads?: number;
  /** Caffe-style log lines (default true). */
  log?: boolean;
  /** Also measure each thread's CPU time per step (see DataParallel.stats; Linux only). */
  profile?: boolean;
  /**
   * The reduction and the plain-SGD update in WebAssembly SIMD on a shared WebAssembly.Memory
   * (default true where available; false, or CAFFE_TS_PARALLEL_WASM=off: JavaScript loops on a
   * SharedArrayBuffer, the same values).
   */
  wasmUpdate?: boolean;
  /**
   * Post each next step to the workers right after the update (default true; false, or
   * CAFFE_TS_PARALLEL_EARLY=off: when rank 0 starts its own).
   */
  earlyStep?: boolean;
  /**
   * Split mode: chunks per batch that the replicas take dynamically (chunks.ts): rank 0 reads each
   * whole batch, and a rank that starts late or is descheduled computes fewer chunks instead of
   * holding up the step. Default: 2 × workers where every data layer's batch divides into chunks
   * of 32 rows or more (chunks.ts MIN_AUTO_ROWS), else workers; 0 (or
   * CAFFE_TS_PARALLEL_CHUNKS=off): each replica reads and computes its fixed share from its shard
   * of the data (the static split). A net that does not fit (a data layer that does not lead the
   * net, a layer without bottoms elsewhere, MemoryData) takes the static split.
   */
  chunks?: number;
  /**
   * Chunked split on 2 replicas with one chunk each: balanced shares (default false, or
   * CAFFE_TS_PARALLEL_BALANCE=on). Rank 0 moves the cut between the two ranks' rows of each batch
   * from step to step so that they finish together, and each rank weights its gradient by its
   * rows. Needs every data top to have the batch's rows and scalar loss tops. It follows a
   * systematic imbalance (a replica slower per row), but on the shared 2-core machine, where the
   * imbalance is the OS descheduling threads at random, it measured no faster than equal halves
   * on LeNet (it chases the noise), hence off by default.
   */
  balance?: boolean;
  /**
   * Ms each barrier wait spins before it blocks (default 0, or CAFFE_TS_PARALLEL_SPIN_MS: block
   * at once). A thread that blocks gives its core away and, on a loaded machine, gets it back only
   * at its next time slice after the notify; spinning keeps it, but measured no faster on the
   * shared 2-core machine (LeNet split ×2), hence off by default.
   */
  spinMs?: number;
  /**
   * When the train net cannot be divided (a batch that does not split, a data layer that does not
   * shard, a single replica), train on the calling thread alone instead of failing: `active` is
   * then false and `inactiveReason` says why (the default mix of `caffe train`).
   */
  optional?: boolean;
}

/** Where one rank's time went since attach (DataParallel.stats). */
export interface RankStats {
  rank: number;
  /** Training steps done. */
  steps: number;
  /** Wall ms computing this rank's share (forward/backward, iter_size times). */
  computeMs: number;
  /**
   * Wall ms waiting. Rank 0: for the workers after its own share. Workers: between steps (rank 0's
   * reduction, the solver's update and whatever the caller does between iterations).
   */
  waitMs: number;
  /** Thread CPU ms while computing (profile: true; NaN otherwise). Under load, computeMs − cpuMs is time the OS gave to others. */
  cpuMs: number;
  /** The thread's whole CPU ms so far (profile: true; rank 0: now, workers: as of their last step). */
  threadCpuMs: number;
  /** Rank 0 only: ms summing the diff arenas and copying frozen params. */
  reduceMs?: number;
  /**
   * Rank 0 only: ms between steps (the solver's update, display, tests, snapshots, clearing the
   * diffs, the data layers' loading of the next batch on this thread's event loop).
   */
  betweenMs?: number;
  /** Wall ms of the steps in the data layers' prepare() (waiting for the batch, the loading that runs meanwhile). */
  prepareMs: number;
  /** Workers: wall ms from rank 0 posting a step to the worker starting it (wake-up, pending event-loop work). */
  lagMs?: number;
  /** Chunked split: chunks this rank computed. */
  chunks: number;
  /** Rank 0, chunked split: wall ms reading batches into the staging buffers (inside computeMs). */
  stageMs?: number;
  /**
   * Chunked split: wall ms in the forward/backward passes of this rank's chunks (inside computeMs;
   * the rest is rank 0's staging and the workers' copies of params in and diffs out).
   */
  shareMs: number;
  /**
   * Rank 0 only: ms of betweenMs in the update divided among the ranks (from the update command to
   * the last rank done, rank 0's share included); 0 when the update is not divided.
   */
  updateMs?: number;
}

/**
 * How long rank 0 blocks for the workers at the end of a step before it waits through its event
 * loop instead (where a worker's exit is noticed). A step longer than this gains nothing from
 * blocking anyway.
 */
const BARRIER_BLOCK_MS = 2000;

/** Batch-size fields of the data layers (the ones 'split' divides). */
const BATCH_FIELDS: Record<string, string> = {
  Data: 'data_param',
  ImageData: 'image_data_param',
  WindowData: 'window_data_param',
  HDF5Data: 'hdf5_data_param',
  MemoryData: 'memory_data_param',
};

function cloneNetParameter(param: NetParameter): NetParameter {
  return decodeBinary<NetParameter>('NetParameter', encodeBinary('NetParameter', param));
}

/**
 * A copy of `param` whose data layers read batch_size / n records each ('split' mode). Every
 * data layer's batch must divide by n; with `state`, only the layers a net in that state keeps
 * (a TEST-only data layer's batch does not matter to the train net).
 */
export function splitBatchNetParameter(param: NetParameter, n: number, state?: NetStateLike): NetParameter {
  if (param.layers.length > 0) {
    throw new ParallelConfigError(`split mode needs a net in the current format ('layer'), not the V1 'layers' of net '${param.name}'`);
  }
  const out = cloneNetParameter(param);
  for (const lp of out.layer) {
    if (state && !layerIncluded(lp, state, { log: false })) continue;
    const field = BATCH_FIELDS[lp.type];
    const sub = field ? ((lp as unknown as Record<string, { batch_size: number } | null>)[field] ?? null) : null;
    if (!sub) continue;
    if (sub.batch_size % n !== 0) {
      throw new ParallelConfigError(
        `split mode: ${lp.type} layer '${lp.name}' has batch_size ${sub.batch_size}, which does not divide among ${n} replicas ` +
          `(use a multiple of ${n}, or --workers in replicate mode)`,
      );
    }
    sub.batch_size = sub.batch_size / n;
  }
  return out;
}

/** Whether a built layer honours LayerContext.shard (io-leveldb's Data and ImageData do). */
function takesShard(layer: object): boolean {
  return 'shard' in layer;
}

/**
 * Data-parallel training. Build the solver with `netFactoryAsync` (it builds rank 0's train net
 * with its shard and, in split mode, its part of the batch), then `attach(solver)` to start the
 * workers; `solver.close()` stops them. See loadParallelSolverFromFile for the one-call form.
 */
export class DataParallel implements GradientComputer {
  readonly workers: number;
  readonly mode: ParallelMode;
  readonly kernelThreads: number;
  private readonly register: string[];
  private readonly setup: ReplicaSetup | undefined;
  private setupModule: ReplicaSetupModule | undefined;
  private readonly log;
  private trainPlan: { binary: Uint8Array; options: NetBuildOptions } | undefined;
  private trainNet: Net | undefined;
  private pool: WorkerPool | undefined;
  /** Rank 0's share of the reduction: reduceRange over every rank's diff arena (update.ts). */
  private reduceRange: (from: number, to: number) => void = () => {};
  /** The update kernels on the arenas' memory (null: the JavaScript loops). */
  private kernels: UpdateKernels | null = null;
  /** The kernel-heap block holding the arenas, when they sit there (kept while attached). */
  private arenaOwner: Float32Array | null = null;
  private frozen: { from: FloatArray; to: FloatArray }[] = [];
  private dtype: DType = 'float32';
  private readonly profile: boolean;
  private readonly optional: boolean;
  private readonly wasmUpdate: boolean;
  private readonly earlyStep: boolean;
  private off: string | null = null;
  private replicaKernels: { requested: number; started: number }[] = [];
  /** The calling thread's kernel-thread count before attach (restored by close). */
  private kernelsBefore: number | undefined;
  /** Rank 0's share of the reduction ([from, to) of the arena) and of the update. */
  private share: { from: number; to: number; updater: ShareUpdater | null; scalars: Float64Array } | undefined;
  private divided = false;
  /** Takes the divided update off the solver again (close). */
  private detachApplier: () => void = () => {};
  /**
   * Set when this iteration's reduction is left to the update (plain SGD: every rank reduces and
   * updates its share of the params in one pass, one command and one barrier fewer).
   */
  private reducePending = false;
  /** The params' data versions when the next step was posted early (postEarly), else null. */
  private early: number[] | null = null;
  private readonly earlyCounts = { used: 0, redone: 0 };
  private lastFused = false;
  /** Requested chunks per batch (undefined: automatic, 0: static split). */
  private readonly chunksRequested: number | undefined;
  /** Chunked split mode (null: static split or replicate). */
  private chunk: {
    plan: ChunkPlan;
    dataNet: Net;
    layout?: ReturnType<typeof stagingLayout>;
    /** [buffer][batch][top] */
    views?: FloatArray[][][];
    inputs?: ReturnType<typeof chunkInputs>;
    staged: [boolean, boolean];
    /** The buffer the next step reads. */
    buf: number;
    /** Balanced shares (see DataParallelOptions.balance): the cuts, their float target, the batch, rank 0's loss tops. */
    balance?: { cuts: Int32Array; target: number; batch: number; loss: { blob: Blob; weight: number }[] };
  } | null = null;
  private readonly balanceWanted: boolean;
  private readonly spinMs: number;
  /** Balanced shares: when rank 0 finished its share of this step (ms, timeOrigin-based) and its ms per row. */
  private pendingBalance: { end: number; msPerRow: number } | null = null;
  private readonly own = { steps: 0, chunks: 0, stageMs: 0, shareMs: 0, computeMs: 0, waitMs: 0, cpuMs: 0, reduceMs: 0, betweenMs: 0, updateMs: 0, lastEnd: NaN, prepare0: runTimes.prepareMs };

  constructor(options: DataParallelOptions) {
    const n = options.workers;
    if (!Number.isInteger(n) || n < 1) throw new ParallelConfigError(`workers must be an integer >= 1 (got ${n})`);
    this.workers = n;
    this.mode = options.mode ?? 'replicate';
    if (this.mode !== 'replicate' && this.mode !== 'split') {
      throw new ParallelConfigError(`mode must be 'replicate' or 'split' (got '${String(this.mode)}')`);
    }
    this.kernelThreads = options.kernelThreads ?? Math.max(1, Math.floor(availableCores() / n));
    this.register = [...(options.register ?? [])];
    this.setup = options.replicaSetup;
    this.log = options.log === false ? { info: () => {}, warn: () => {}, error: () => {} } : logger('parallel.cpp');
    this.profile = options.profile ?? false;
    this.optional = options.optional ?? false;
    this.wasmUpdate = options.wasmUpdate ?? true;
    this.earlyStep = options.earlyStep ?? true;
    this.balanceWanted = options.balance ?? process.env.CAFFE_TS_PARALLEL_BALANCE?.trim().toLowerCase() === 'on';
    this.spinMs = options.spinMs ?? defaultSpinMs();
    if (!(this.spinMs >= 0)) throw new ParallelConfigError(`spinMs must be >= 0 (got ${this.spinMs})`);
    const env = process.env.CAFFE_TS_PARALLEL_CHUNKS?.trim().toLowerCase();
    this.chunksRequested = options.chunks ?? (env === 'off' ? 0 : env && Number(env) > 0 ? Number(env) : undefined);
    if (this.chunksRequested !== undefined && !(Number.isInteger(this.chunksRequested) && this.chunksRequested >= 0)) {
      throw new ParallelConfigError(`chunks must be an integer >= 0 (got ${this.chunksRequested})`);
    }
    if (n === 1) this.off = 'one replica';
  }

  /** Whether the workers run (false when `optional` and the net could not be divided, or workers is 1). */
  get active(): boolean {
    return this.off === null;
  }

  /** Why the run stays on the calling thread (null when active). */
  get inactiveReason(): string | null {
    return this.off;
  }

  /**
   * The solver's `netFactoryAsync`: its first call builds the train net (rank 0's replica), the
   * others the test nets, which stay whole on this thread.
   */
  readonly netFactoryAsync = async (param: NetParameter, options: NetBuildOptions): Promise<Net> => {
    if (this.trainPlan) return Net.create(param, options);
    if (this.setup) {
      this.setupModule = await loadReplicaSetup(this.setup);
      await this.setupModule.beforeBuild?.(this.setup.data, { rank: 0, count: this.workers });
    }
    if (this.off !== null) return this.buildAlone(param, options);
    if (this.mode === 'split' && this.chunksRequested !== 0) {
      const net = await this.buildChunked(param, options);
      if (net) return net;
    }
    let mine = param;
    try {
      if (this.mode === 'split') mine = splitBatchNetParameter(param, this.workers, options);
    } catch (e) {
      if (!this.optional || !(e instanceof ParallelConfigError)) throw e;
      this.off = e.message;
      return this.buildAlone(param, options);
    }
    this.trainPlan = { binary: encodeBinary('NetParameter', mine), options };
    // Building draws the fillers' values from the RNG: a fallback rebuilds from the same state, so
    // that the seed gives the weights (and the rest of the stream) of a run without workers.
    const rng = options.rng ?? globalRng();
    const before = rng.getState();
    const net = await Net.create(mine, { ...options, shard: { index: 0, count: this.workers } });
    this.trainNet = net;
    try {
      this.checkShards(net);
      await this.afterBuild(net, this.workers);
    } catch (e) {
      await net.close();
      if (!this.optional || !(e instanceof ParallelConfigError)) throw e;
      this.off = e.message;
      this.trainPlan = undefined;
      rng.setState(before);
      return this.buildAlone(param, options);
    }
    return net;
  };

  /**
   * Chunked split (chunks.ts): the data layers whole in a net of their own (rank 0 reads every
   * batch), the train net with Input layers of one chunk's shape in their place. Null when the
   * net does not fit (then the static split), unless chunks were asked for explicitly.
   */
  private async buildChunked(param: NetParameter, options: NetBuildOptions): Promise<Net | null> {
    const state = { phase: options.phase, level: options.level, stage: options.stages };
    const plan = chunkPlan(param, this.workers, state, this.chunksRequested ?? 0);
    if (typeof plan === 'string') {
      if (this.chunksRequested !== undefined) throw new ParallelConfigError(`split mode in ${this.chunksRequested} chunks: ${plan}`);
      return null;
    }
    // The data layers come first in the train net: built first, as a single-threaded run builds
    // them. Quietly: the log sets up one train net, as a single-threaded run's does (the one
    // below, the data layers' own lines included).
    const dataNet = await Net.create(plan.dataParam, { ...options, log: false });
    let mine: NetParameter;
    try {
      await this.afterBuild(dataNet, 1);
      mine = chunkNetParameter(param, state, dataNet, plan);
    } catch (e) {
      await dataNet.close();
      throw e;
    }
    this.trainPlan = { binary: encodeBinary('NetParameter', mine), options };
    const net = await Net.create(mine, options);
    this.trainNet = net;
    this.chunk = { plan, dataNet, staged: [false, false], buf: 0 };
    return net;
  }

  /** Chunks per batch in chunked split mode (0: not chunked). */
  get chunksPerBatch(): number {
    return this.chunk?.plan.chunks ?? 0;
  }

  /** Balanced shares (see DataParallelOptions.balance): the rows of each batch by rank as the next step cuts them; null when off. */
  get shareRows(): number[] | null {
    const b = this.chunk?.balance;
    if (!b) return null;
    return Array.from({ length: this.workers }, (_, r) => b.cuts[r + 1]! - b.cuts[r]!);
  }

  /**
   * Read the next iteration's batches (iter_size of them, or the first `batches`) with the data
   * net into staging buffer `buf`. Rank 0 does it for the following step at the end of its chunks,
   * while the workers finish theirs.
   */
  private async stage(buf: number, batches = Infinity): Promise<void> {
    const c = this.chunk!;
    const views = c.views![buf]!;
    try {
      for (const batch of views.slice(0, batches)) {
        await runLayers(c.dataNet, false);
        let t = 0;
        for (let l = 0; l < c.plan.sources; l++) for (const b of c.dataNet.topVecs[l]!) batch[t++]!.set(b.cpuData());
      }
    } catch (e) {
      throw e instanceof LayerFailure ? e.cause : e;
    }
    c.staged[buf] = true;
  }

  /** Post a step over the staged buffer c.buf (the chunk counter reset first). */
  private postChunkedStep(pool: WorkerPool, again = 0): void {
    Atomics.store(pool.ctrl, CTRL.BUF, this.chunk!.buf);
    Atomics.store(pool.ctrl, CTRL.NEXT, 0);
    pool.command(CMD.STEP, again);
  }

  /** The whole train net on this thread (no workers). */
  private async buildAlone(param: NetParameter, options: NetBuildOptions): Promise<Net> {
    const net = await Net.create(param, options);
    this.trainPlan = { binary: new Uint8Array(0), options };
    this.trainNet = net;
    try {
      await this.afterBuild(net, 1);
    } catch (e) {
      await net.close();
      throw e;
    }
    return net;
  }

  /** The replica setup's afterBuild on rank 0's net that reads the data (`count` 1: it reads every batch). */
  private async afterBuild(net: Net, count: number): Promise<void> {
    if (this.setup) await this.setupModule?.afterBuild?.(net, this.setup.data, { rank: 0, count });
  }

  private checkShards(net: Net): void {
    if (this.workers === 1) return;
    net.layers.forEach((layer, i) => {
      // A LevelDB can be open only once per process (its LOCK is held by the process, not the
      // thread), so replicas in worker threads cannot each open it; LMDB allows many readers.
      if (layer.type === 'Data' && layer.param.data_param?.backend === DataParameter_DB.LEVELDB) {
        throw new ParallelConfigError(
          `Data layer '${net.layerNames[i]}' reads a LevelDB (source '${layer.param.data_param.source}'), which only one ` +
            'thread of a process can open: convert it to LMDB (caffe convert_imageset/convert_mnist --backend lmdb) to train on several workers',
        );
      }
      if (net.bottomVecs[i]!.length > 0 || !(layer.type in BATCH_FIELDS) || takesShard(layer)) return;
      const what = `${layer.type} layer '${net.layerNames[i]}' does not shard its records`;
      if (this.mode === 'split') {
        throw new ParallelConfigError(`split mode: ${what}, so every replica would read the same batch (use Data or ImageData)`);
      }
      this.log.warn(`${what}: every replica reads the same records`);
    });
  }

  /** Start the workers and make `solver` compute its gradients through them. */
  async attach(solver: Solver): Promise<void> {
    if (!this.trainPlan || solver.net !== this.trainNet) {
      throw new ParallelConfigError('DataParallel.attach: build the solver with this DataParallel\'s netFactoryAsync (its train net is rank 0\'s replica)');
    }
    if (this.pool) throw new ParallelError('DataParallel.attach: already attached');
    if (this.off !== null) {
      // Kernel threads keep their default (every core) for the single replica.
      if (this.optional && this.workers > 1) this.log.info(`Data-parallel training off (${this.off}): training on this thread`);
      return;
    }
    this.kernelsBefore = await applyKernelThreads(this.kernelThreads);
    const net = solver.net;
    const dtype = net.dtype;
    this.dtype = dtype;
    const slots: ParamSlot[] = [];
    let total = 0;
    net.learnableParams.forEach((blob, i) => {
      const count = blob.count();
      slots.push({ offset: total, count, frozen: net.paramsLr[i] === 0 });
      total += alignElements(count, dtype);
    });
    const bytes = (n: number) => Math.max(1, n) * (dtype === 'float64' ? 8 : 4);
    // The solver's history moves into shared memory too, so that every rank can update a share.
    const divisible = this.workers > 1 && divisibleUpdate(solver);
    const solverHistory = divisible ? (solver as unknown as { history: Blob[] }).history : [];
    const perParam = slots.length > 0 ? solverHistory.length / slots.length : 0;
    // One shared memory holds the arenas, `total` elements each: the params, each rank's diffs,
    // then the history sections (a WebAssembly.Memory where the update kernels run in place).
    const sections = 1 + this.workers + Math.max(1, perParam);
    const region: ArenaMemory =
      dtype === 'float32' && this.wasmUpdate
        ? process.env.CAFFE_TS_PARALLEL_ARENA?.trim().toLowerCase() === 'own'
          ? allocArenaMemory(bytes(total * sections))
          : allocArenaInKernelMemory(bytes(total * sections))
        : { buffer: new SharedArrayBuffer(bytes(total * sections)), memory: null };
    const { buffer, memory } = region;
    this.arenaOwner = region.owner ?? null;
    const track = region.track ?? (() => {});
    const at = (region.byteOffset ?? 0) / 4;
    const section = (k: number): ArenaRef => ({ buffer, base: at + k * total, length: total });
    const data = section(0);
    const diffArenas = Array.from({ length: this.workers }, (_, r) => section(1 + r));
    const history = { buffer, base: at + (1 + this.workers) * total, length: total * Math.max(1, perParam) };
    const kernels = createUpdateKernels(memory);
    this.kernels = kernels;
    const anyFrozen = slots.some((s) => s.frozen);
    const frozen = anyFrozen && this.workers > 1 ? new SharedArrayBuffer(bytes(total)) : null;
    // Rank 0's params move into the arenas (values kept); shared params follow their owners.
    net.learnableParams.forEach((blob, i) => {
      const slot = slots[i]!;
      const view = arenaView(data, dtype, slot.offset, slot.count);
      view.set(blob.cpuData());
      blob.data.setCpuData(view);
      const diff = arenaView(diffArenas[0]!, dtype, slot.offset, slot.count);
      diff.set(blob.cpuDiff());
      blob.diff.setCpuData(diff);
      // The net keeps these views after the run: they hold the block (kernel heap) as long.
      track(view);
      track(diff);
      if (slot.frozen && frozen) this.frozen.push({ from: view, to: arenaView(frozen, dtype, slot.offset, slot.count) });
    });
    // The batch's gradient: the ranks' diffs summed, / N (each rank's the mean over its share) or
    // / chunks (each rank's diffs hold the sum of its chunks' means).
    const chunk = this.chunk;
    const scale = 1 / (chunk ? chunk.plan.chunks : this.workers);
    let chunked: ChunkInit | undefined;
    if (chunk) {
      const layout = stagingLayout(chunk.dataNet, chunk.plan, solver.param.iter_size);
      const staging = [0, 1].map(() => new SharedArrayBuffer(bytes(layout.batchElements * solver.param.iter_size)));
      chunk.layout = layout;
      chunk.views = staging.map((b) => stagingViews(b, layout, dtype));
      chunk.inputs = chunkInputs(net, chunk.plan.sources);
      chunked = { staging, ...layout };
      const batch = layout.tops[0]!.rows;
      const loss = lossTops(net);
      if (this.balanceWanted && this.workers === 2 && chunk.plan.chunks === 2 && loss && layout.tops.every((t) => t.rows === batch)) {
        const buffer = new SharedArrayBuffer(4 * (this.workers + 1));
        const cuts = new Int32Array(buffer);
        cuts.set([0, batch / 2, batch]);
        chunk.balance = { cuts, target: batch / 2, batch, loss };
        chunked.cuts = buffer;
      }
    }
    this.reduceRange = arenaReducer(diffArenas, dtype, kernels, scale);
    if (kernels && this.workers > 1 && !net.backend.solverOps) this.clearDiffsInPlace(net, kernels, diffArenas[0]!);
    for (let k = 0; k < perParam; k++) {
      slots.forEach((slot, i) => {
        const h = solverHistory[k * slots.length + i]!;
        const view = arenaView(history, dtype, k * total + slot.offset, slot.count);
        view.set(h.cpuData());
        h.data.setCpuData(view);
        track(view);
      });
    }
    const scalars = new SharedArrayBuffer(scalarBytes(this.workers));
    const lrMult = [...net.paramsLr];
    const decayMult = [...net.paramsWeightDecay];
    const solverBinary = encodeBinary('SolverParameter', solver.param);
    const [from, to] = arenaShare(total, 0, this.workers);
    let updater: ShareUpdater | null = null;
    if (divisible) {
      updater = new ShareUpdater(solver.param, paramShare(slots, 0, this.workers), lrMult, decayMult, {
        dtype,
        slots,
        data,
        diff: diffArenas[0]!,
        history,
        total,
        reduce: { diffs: diffArenas, kernels, scale },
      });
    }
    this.share = { from, to, updater, scalars: new Float64Array(scalars) };
    const pool = new WorkerPool(this.workers, this.spinMs);
    this.pool = pool;
    const plan = this.trainPlan;
    const o = plan.options as NetBuildOptions & { name?: string };
    try {
      await pool.start((rank) => ({
        kind: 'train',
        rank,
        count: this.workers,
        netBinary: plan.binary,
        phase: o.phase,
        level: o.level,
        stages: [...o.stages],
        ...(o.name !== undefined ? { netFile: o.name } : {}),
        dtype,
        backend: o.backend?.name ?? 'cpu',
        register: this.register,
        ...(this.setup ? { setup: this.setup } : {}),
        kernelThreads: this.kernelThreads,
        seed: solver.param.random_seed,
        iterSize: solver.param.iter_size,
        shard: !chunk,
        profile: this.profile,
        data,
        diff: diffArenas[rank]!,
        frozen,
        memory,
        slots,
        share: { solver: solverBinary, diffs: diffArenas, history, scalars, lrMult, decayMult, total, scale },
        cwd: process.cwd(),
        spinMs: this.spinMs,
        ...(chunked ? { chunked } : {}),
      }));
      const ready = await pool.takeResults<{ canUpdate: boolean; kernelThreads: { requested: number; started: number } }>('ready');
      this.replicaKernels = [...ready.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r.kernelThreads);
      if (updater && [...ready.values()].every((r) => r.canUpdate)) this.divideUpdate(solver);
    } catch (e) {
      await pool.close();
      throw e;
    }
    solver.gradientComputer = this;
    const batch = this.mode === 'split' ? 'each batch split among them' : `effective batch ${this.workers} × batch_size`;
    this.log.info(
      `Data-parallel training: ${this.workers} replicas (${batch}), ${this.kernelThreads} kernel thread(s) each, ` +
        `${slots.length} learnable params (${total} values) in shared memory` +
        (chunk ? `; each batch read on this thread in ${chunk.plan.chunks} chunks that the replicas take as they go` : ''),
    );
  }

  /**
   * Rank 0's clearParamDiffs (the solver's, before each iteration) as one memory.fill over its diff
   * arena: a TypedArray's fill on shared memory stores element by element (LeNet's 431k diffs:
   * 0.28 ms a step on rank 0, before it starts its share, against 0.03). The arena holds every
   * learnable param's diff (and the alignment padding between them, zero anyway).
   */
  private clearDiffsInPlace(net: Net, kernels: UpdateKernels, arena: ArenaRef): void {
    const params = net.learnableParams;
    const at = arena.base * 4;
    const bytes = arena.length * 4;
    net.clearParamDiffs = () => {
      kernels.zero(at, bytes);
      // Written through the kernel's memory: mark them written, as fill through mutableCpuDiff would.
      for (const p of params) p.mutableCpuDiff();
    };
  }

  /** One iteration's gradients: every replica's iter_size batches, summed and scaled by 1/N into rank 0's diffs. */
  async computeGradients(solver: Solver): Promise<number> {
    const pool = this.pool;
    if (!pool || pool.isClosed) throw new ParallelError('DataParallel: the workers are not running (attach first; closed already?)');
    const n = this.workers;
    const own = this.own;
    const t0 = performance.now();
    if (own.steps > 0) own.betweenMs += t0 - own.lastEnd;
    const early = this.early;
    this.early = null;
    const c = this.chunk;
    if (c && !early && !c.staged[c.buf]) {
      // This step's batches were not read ahead (the first step of a step() call): read them now.
      const s0 = performance.now();
      await this.stage(c.buf);
      own.stageMs += performance.now() - s0;
    }
    if (early && sameVersions(early, solver.net)) {
      // The workers started this step right after the last update (postEarly): nothing has
      // written the params since, so they computed with the weights rank 0 has now.
      this.earlyCounts.used++;
    } else if (early) {
      this.earlyCounts.redone++;
      // Something wrote the params after the early step was posted (a callback, a restore): the
      // workers compute it again on the same batch with the current weights.
      if (!pool.waitDoneBlocking(BARRIER_BLOCK_MS)) await pool.waitDone();
      for (const f of this.frozen) f.to.set(f.from);
      if (c) this.postChunkedStep(pool, 1);
      else pool.command(CMD.STEP, 1);
    } else {
      for (const f of this.frozen) f.to.set(f.from);
      if (c) this.postChunkedStep(pool);
      else pool.command(CMD.STEP);
    }
    const cpu0 = this.profile ? threadCpuMs() : 0;
    let loss0 = 0;
    let failure: unknown;
    try {
      if (c) {
        // Take chunks until none is left; then read the next step's batches into the other buffer
        // (when one follows in this step() call) while the workers finish theirs.
        const views = c.views![c.buf]!;
        const total = c.layout!.total;
        const bal = c.balance;
        let ownMs = 0;
        let ownRows = 0;
        if (bal) {
          // Balanced shares: rows [cut 0, cut 1) of every batch, the gradient weighted by its rows.
          const start = bal.cuts[0]!;
          const rows = bal.cuts[1]! - start;
          scaleLossWeights(bal.loss, (rows * this.workers) / bal.batch);
          const c0 = performance.now();
          for (const batch of views) {
            loadRows(batch, c.layout!, c.inputs!, start, rows);
            loss0 += await runLayers(solver.net, true);
            own.chunks++;
          }
          ownMs = performance.now() - c0;
          ownRows = rows * views.length;
        } else {
          const c0 = performance.now();
          for (;;) {
            const k = Atomics.add(pool.ctrl, CTRL.NEXT, 1);
            if (k >= total) break;
            loadChunk(views, c.layout!, c.inputs!, k);
            loss0 += await runLayers(solver.net, true);
            own.chunks++;
          }
          ownMs = performance.now() - c0;
        }
        own.shareMs += ownMs;
        c.staged[c.buf] = false;
        c.buf ^= 1;
        const stop = solver.stepStopIter;
        if (stop >= 0 && solver.iter + 1 < stop) {
          const s0 = performance.now();
          await this.stage(c.buf);
          own.stageMs += performance.now() - s0;
        }
        if (bal) this.pendingBalance = { end: performance.timeOrigin + performance.now(), msPerRow: ownMs / ownRows };
      } else {
        for (let i = 0; i < solver.param.iter_size; i++) loss0 += await runLayers(solver.net, true);
      }
    } catch (e) {
      // Rank 0 fails as a single-threaded solver would: with the layer's own error.
      failure = e instanceof LayerFailure ? e.cause : e;
    }
    const t1 = performance.now();
    if (this.profile) own.cpuMs += threadCpuMs() - cpu0;
    // Always wait: the workers must be idle before anyone touches the arenas again. Blocking (up
    // to a bound), not through the event loop: the workers wait for the reduction blocking too,
    // and this thread's loading of its next batch belongs after the update (as on the workers).
    if (!pool.waitDoneBlocking(BARRIER_BLOCK_MS)) await pool.waitDone();
    if (failure !== undefined) throw failure;
    const t2 = performance.now();
    const pb = this.pendingBalance;
    this.pendingBalance = null;
    if (pb && c?.balance) {
      // The workers are idle: move the cut for the next step by how much later the worker finished.
      const b = c.balance;
      const late = pool.statValues[STAT_WORDS + STAT.END_AT]! - pb.end;
      const workerRows = (b.batch - b.cuts[1]!) * solver.param.iter_size;
      const workerMsPerRow = pool.statValues[STAT_WORDS + STAT.SHARE_MS]! / workerRows;
      b.target = nextCut(b.target, b.batch, late, pb.msPerRow + workerMsPerRow);
      b.cuts[1] = Math.round(b.target);
    }
    let loss = loss0;
    for (let r = 1; r < n; r++) loss += pool.lossValues[r]!;
    this.reducePending = false;
    if (n > 1 && this.fusesReduction(solver)) {
      // Nothing reads the diffs before the update: the ranks reduce them there (clipGradients).
      this.reducePending = true;
    } else if (n > 1) {
      // Every rank sums its share of the arenas (the workers are idle and wait for this).
      // The argument tells the workers whether an update command follows (they wait for it blocking).
      pool.command(CMD.REDUCE, this.divided ? 1 : 0);
      this.reduceRange(this.share!.from, this.share!.to);
      pool.waitDoneSync();
      // The workers wrote into rank 0's diffs through their own views: mark them written.
      for (const blob of solver.net.learnableParams) blob.mutableCpuDiff();
    }
    const t3 = performance.now();
    own.steps++;
    own.computeMs += t1 - t0;
    own.waitMs += t2 - t1;
    own.reduceMs += t3 - t2;
    own.lastEnd = t3;
    return loss / ((c ? c.plan.chunks : n) * solver.param.iter_size);
  }

  /**
   * solve()'s last display line (GradientComputer.forwardLoss). Chunked split: the next batch,
   * read as a single-threaded run would read it, forward through every chunk on this thread, the
   * chunks' losses averaged, as the step's loss is. Otherwise undefined: rank 0's net reads its
   * own next batch, as Caffe's root solver does after multi-GPU training.
   */
  async forwardLoss(solver: Solver): Promise<number | undefined> {
    const c = this.chunk;
    if (!c) return undefined;
    await this.settle();
    if (!c.staged[c.buf]) await this.stage(c.buf, 1);
    // Balanced shares weight each rank's loss by its rows; the chunks here are equal.
    if (c.balance) scaleLossWeights(c.balance.loss, 1);
    const views = c.views![c.buf]!;
    let loss = 0;
    try {
      for (let k = 0; k < c.plan.chunks; k++) {
        loadChunk(views, c.layout!, c.inputs!, k);
        loss += await runLayers(solver.net, false);
      }
    } catch (e) {
      throw e instanceof LayerFailure ? e.cause : e;
    } finally {
      // That batch is used up, as the single-threaded forward uses up its own.
      c.staged[c.buf] = false;
    }
    return loss / c.plan.chunks;
  }

  /**
   * Whether this iteration's reduction can wait for the divided update and run in its pass: plain
   * SGD on float32 (ShareUpdater.canReduceAndApply), no gradient clipping (it needs the whole
   * reduced norm first) and no callback that looks at the gradients before the update.
   */
  private fusesReduction(solver: Solver): boolean {
    return (
      this.divided &&
      this.share!.updater!.canReduceAndApply &&
      solver.param.clip_gradients < 0 &&
      !solver.net.debugInfo &&
      !solver.callbacks.some((cb) => cb.onGradientsReady)
    );
  }

  /**
   * Divide SGDSolver.applyUpdate's per-param loop and net.update() among the ranks, through the
   * solver's public hook (SGDSolver.updateApplier): after the solver has set the rate and clipped
   * the gradients (which needs them all), every rank applies the update to its share, and the
   * solver skips its own loop. Only for the built-in template (divisibleUpdate), so the arithmetic
   * is the same.
   */
  private divideUpdate(solver: Solver): void {
    if (!(solver instanceof SGDSolver)) throw new ParallelError('DataParallel: the divided update needs an SGDSolver');
    const applier = { applyUpdate: (s: SGDSolver, rate: number) => ({ finite: this.applyDivided(s, rate) }) };
    solver.updateApplier = applier;
    this.detachApplier = () => {
      if (solver.updateApplier === applier) solver.updateApplier = undefined;
    };
    this.divided = true;
  }

  /** Every rank updates its share of the params (see divideUpdate); returns whether all are finite. */
  private applyDivided(solver: SGDSolver, rate: number): boolean {
    const pool = this.pool;
    if (!pool || pool.isClosed) throw new ParallelError('DataParallel: the workers are not running (closed already?)');
    const share = this.share!;
    const t0 = performance.now();
    share.scalars[SCALAR.RATE] = rate;
    share.scalars[SCALAR.ITER] = solver.iter;
    const reduce = this.reducePending;
    this.reducePending = false;
    this.lastFused = reduce;
    pool.command(CMD.UPDATE, reduce ? 1 : 0);
    let finite = reduce ? share.updater!.reduceAndApply(rate) : share.updater!.apply(rate, solver.iter);
    pool.waitDoneSync();
    // The ranks wrote rank 0's diffs (the update values) through views of their own.
    if (reduce) for (const blob of solver.net.learnableParams) blob.mutableCpuDiff();
    // Each rank checked its share while updating it: the solver's whole scan runs only when one
    // found a NaN/Inf (it then finds and reports the first).
    for (let r = 1; r < this.workers; r++) if (share.scalars[SCALAR.FINITE + r] !== 1) finite = false;
    // The ranks wrote the new values into the shared arena through views of their own: mark the
    // params written, as Blob.update would, so that whatever keys caches on their version (the
    // test nets' packed weights, which share these blobs) sees the new values.
    for (const blob of solver.net.learnableParams) blob.mutableCpuData();
    this.own.updateMs += performance.now() - t0;
    this.postEarly(solver);
    return finite;
  }

  /**
   * Post the next iteration's step to the workers right after the update, when the running
   * step() call goes on to that iteration: they start it while this thread does the solver's
   * bookkeeping between iterations and loads its own next batch, instead of after (measured on
   * LeNet split ×2: ~1 ms of each ~25 ms step). The params' data versions are kept: if anything
   * writes the params before computeGradients (a callback, a restore), the workers compute the
   * step again on the same batch (CMD.STEP, ARG 1). Not with iter_size > 1 (a redo would need
   * every batch of the iteration).
   */
  private postEarly(solver: Solver): void {
    const pool = this.pool;
    const c = this.chunk;
    const stop = solver.stepStopIter;
    if (!pool || pool.isClosed || this.early || stop < 0 || solver.iter + 1 >= stop) return;
    // A redo needs the batches again: the chunked split has them staged (all iter_size of them).
    if (c ? !c.staged[c.buf] : solver.param.iter_size !== 1) return;
    if (!this.earlyStep || process.env.CAFFE_TS_PARALLEL_EARLY?.trim().toLowerCase() === 'off') return;
    for (const f of this.frozen) f.to.set(f.from);
    this.early = solver.net.learnableParams.map((b) => b.dataVersion);
    if (c) this.postChunkedStep(pool);
    else pool.command(CMD.STEP);
  }

  /** Wait for an early step nobody took (a run that stopped early) before another command. */
  private async settle(): Promise<void> {
    if (!this.early) return;
    this.early = null;
    await this.pool?.waitDone();
  }

  /**
   * Whether the last iteration's reduction ran inside the divided update (plain SGD on float32, no
   * clipping, no onGradientsReady callback: one pass and one barrier fewer per iteration).
   */
  get reductionFused(): boolean {
    return this.lastFused;
  }

  /** What runs the reduction and the fused SGD update: WebAssembly SIMD on the arenas' memory, or JavaScript loops. */
  get updateKernels(): 'wasm-simd' | 'js' {
    return this.kernels ? 'wasm-simd' : 'js';
  }

  /**
   * Steps the workers started early, right after the previous update (see postEarly): `used` as
   * posted, `redone` on the same batch because the params were written in between.
   */
  get earlySteps(): { used: number; redone: number } {
    return { ...this.earlyCounts };
  }

  /**
   * Whether the arenas sit in this thread's blob kernel memory (float32 with the 'wasm' host
   * allocator; CAFFE_TS_PARALLEL_ARENA=own keeps them in a memory of their own), so that rank 0's
   * kernels use its params and diffs in place.
   */
  get arenaInKernelMemory(): boolean {
    return this.arenaOwner !== null;
  }

  /** Whether the solver's update is divided among the ranks (built-in solver types on the CPU). */
  get updateDivided(): boolean {
    return this.divided;
  }

  /** Where each rank's time went since attach (rank 0 first). */
  stats(): RankStats[] {
    const o = this.own;
    const out: RankStats[] = [
      {
        rank: 0,
        steps: o.steps,
        computeMs: o.computeMs,
        waitMs: o.waitMs,
        cpuMs: this.profile ? o.cpuMs : NaN,
        threadCpuMs: this.profile ? threadCpuMs() : NaN,
        prepareMs: runTimes.prepareMs - o.prepare0,
        reduceMs: o.reduceMs,
        betweenMs: o.betweenMs,
        updateMs: o.updateMs,
        chunks: o.chunks,
        stageMs: o.stageMs,
        shareMs: o.shareMs,
      },
    ];
    const v = this.pool?.statValues;
    for (let r = 1; r < this.workers && v; r++) {
      const b = r * STAT_WORDS;
      out.push({
        rank: r,
        steps: v[b + STAT.STEPS]!,
        computeMs: v[b + STAT.COMPUTE_MS]!,
        waitMs: v[b + STAT.IDLE_MS]!,
        cpuMs: this.profile ? v[b + STAT.CPU_MS]! : NaN,
        threadCpuMs: this.profile ? v[b + STAT.THREAD_CPU_MS]! : NaN,
        prepareMs: v[b + STAT.PREPARE_MS]!,
        lagMs: v[b + STAT.LAG_MS]!,
        chunks: v[b + STAT.CHUNKS]!,
        shareMs: v[b + STAT.SHARE_SUM_MS]!,
      });
    }
    return out;
  }

  /**
   * A copy of every replica's learnable params, by rank (rank 0: the solver's net). Replicas view
   * one shared arena, so these agree exactly after any step, except params with lr_mult 0
   * (BatchNorm statistics), which each replica keeps until rank 0 broadcasts its own at the next
   * step; a check for tests and debugging.
   */
  async replicaParams(): Promise<FloatArray[][]> {
    const pool = this.pool;
    if (!pool || pool.isClosed || !this.trainNet) throw new ParallelError('DataParallel.replicaParams: the workers are not running');
    await this.settle();
    const mine = this.trainNet.learnableParams.map((b) => b.cpuData().slice());
    pool.command(CMD.PARAMS);
    await pool.waitDone();
    const theirs = await pool.takeResults<FloatArray[]>('params');
    return [mine, ...Array.from({ length: this.workers - 1 }, (_, i) => theirs.get(i + 1)!)];
  }

  /** Each worker replica's kernel threads as it reported them after building its net (ranks 1..N-1). */
  get workerKernelThreads(): readonly { requested: number; started: number }[] {
    return this.replicaKernels;
  }

  async close(): Promise<void> {
    await this.settle().catch(() => {});
    await this.pool?.close();
    this.detachApplier();
    const dataNet = this.chunk?.dataNet;
    this.chunk = null;
    await dataNet?.close();
    if (this.kernelsBefore !== undefined) {
      await applyKernelThreads(this.kernelsBefore);
      this.kernelsBefore = undefined;
    }
  }
}

/** Whether `net`'s learnable params still have the data versions `versions`. */
function sameVersions(versions: readonly number[], net: Net): boolean {
  const params = net.learnableParams;
  if (params.length !== versions.length) return false;
  for (let i = 0; i < params.length; i++) if (params[i]!.dataVersion !== versions[i]) return false;
  return true;
}

/** One batch of data-parallel inference: its index in the sequence, loss and flattened outputs. */
export interface BatchResult {
  index: number;
  loss: number;
  outputs: number[];
}

export interface ParallelTestOptions {
  /** Rank 0's net, built by the caller (weights loaded); its params move into shared memory. */
  net: Net;
  /** The definition `net` was built from and its state, for the workers' replicas. */
  param: NetParameter;
  phase?: Phase;
  level?: number;
  stages?: readonly string[];
  /** The file the definition came from (paths inside resolve against it). */
  netFile?: string;
  iterations: number;
  workers: number;
  register?: readonly string[];
  kernelThreads?: number;
  /** Global seed for the replicas (default -1: none). */
  seed?: number;
}

/**
 * Data-parallel inference (`caffe test --workers N`): batch b of `iterations` runs on replica
 * b % N; the others step their data layers over it without running the net, so every replica
 * scores exactly the batches a single net would, and results come back in batch order.
 */
export async function parallelTest(options: ParallelTestOptions): Promise<BatchResult[]> {
  const { net, iterations } = options;
  const n = options.workers;
  if (!Number.isInteger(n) || n < 1) throw new ParallelConfigError(`workers must be an integer >= 1 (got ${n})`);
  const kernelThreads = options.kernelThreads ?? Math.max(1, Math.floor(availableCores() / n));
  const kernelsBefore = await applyKernelThreads(kernelThreads);
  const dtype = net.dtype;
  const slots: ParamSlot[] = [];
  let total = 0;
  for (const blob of net.learnableParams) {
    slots.push({ offset: total, count: blob.count(), frozen: false });
    total += alignElements(blob.count(), dtype);
  }
  const data = new SharedArrayBuffer(Math.max(1, total) * (dtype === 'float64' ? 8 : 4));
  net.learnableParams.forEach((blob, i) => {
    const view = arenaView(data, dtype, slots[i]!.offset, slots[i]!.count);
    view.set(blob.cpuData());
    blob.data.setCpuData(view);
  });
  const pool = new WorkerPool(n);
  try {
    await pool.start((rank) => ({
      kind: 'test',
      rank,
      count: n,
      netBinary: encodeBinary('NetParameter', options.param),
      phase: options.phase ?? net.phase,
      level: options.level ?? 0,
      stages: [...(options.stages ?? [])],
      ...(options.netFile !== undefined ? { netFile: options.netFile } : {}),
      dtype,
      backend: net.backend.name,
      register: [...(options.register ?? [])],
      kernelThreads,
      seed: options.seed ?? -1,
      iterSize: 1,
      shard: false,
      profile: false,
      share: null,
      data,
      diff: null,
      frozen: null,
      slots,
      cwd: process.cwd(),
    }));
    pool.command(CMD.TEST, iterations);
    const mine: BatchResult[] = [];
    const sources = leadingSourceLayers(net);
    let failure: unknown;
    try {
      for (let b = 0; b < iterations; b++) {
        if (b % n === 0) {
          const loss = await runLayers(net, false);
          const outputs: number[] = [];
          for (const blob of net.outputBlobs) outputs.push(...blob.cpuData());
          mine.push({ index: b, loss, outputs });
        } else if (sources > 0) {
          await net.prepare();
          net.forwardFromTo(0, sources - 1);
        }
      }
    } catch (e) {
      failure = e instanceof LayerFailure ? e.cause : e;
    }
    await pool.waitDone();
    if (failure !== undefined) throw failure;
    const all = [...mine];
    for (const batches of (await pool.takeResults<BatchResult[]>('test-result')).values()) all.push(...batches);
    return all.sort((a, b) => a.index - b.index);
  } finally {
    await pool.close();
    await applyKernelThreads(kernelsBefore);
  }
}

