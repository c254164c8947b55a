/*
 * The worker-thread side of data parallelism: one replica of the net, rank ≥ 1. It registers the
 * same layer plugins as the calling process, builds its replica (its own shard of the data),
 * points its learnable params' data at the shared arena (so every replica sees rank 0's update
 * the moment it is applied) and its diffs at its own shared diff arena (which rank 0 reduces),
 * then waits on the control word for commands. Nothing is posted per iteration.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { allocArray, allocKernelShared, getBackend, setLogEnabled, setRandomSeed, threadPoolInfo, type FloatArray } from '@caffe-ts/blob';
import { defaultLayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { decodeBinary, type NetParameter, type SolverParameter } from '@caffe-ts/proto';
import { CMD, CTRL, SCALAR, STAT, STAT_WORDS, type ForwardBlob, type ForwardJob, type SerializedError, type WorkerInit, type WorkerMessage } from './protocol.js';
import { arenaReducer, arenaShare, paramShare, ShareUpdater } from './update.js';
import { createUpdateKernels } from './update-wasm.js';
import { runForwardRows } from './forward.js';
import { chunkInputs, loadChunk, loadRows, lossTops, scaleLossWeights, stagingViews } from './chunks.js';
import { defaultSpinMs, spinWhileEqual } from './replica.js';
import { loadReplicaSetup } from './replica-setup.js';
import { applyKernelThreads, arenaView, runLayers, runTimes, leadingSourceLayers, LayerFailure, threadCpuMs, waitWhileEqual } from './replica.js';

const init = workerData as WorkerInit;
const port = parentPort!;
// A pending Atomics.waitAsync does not keep a thread alive; a listening port does (the calling
// thread unrefs this worker between commands, so this never holds the process open).
port.on('message', () => {});
// Rank 0 logs what every replica would (data layers opening their sources, …).
setLogEnabled(false);
const ctrl = new Int32Array(init.control);
const spinMs = init.spinMs ?? defaultSpinMs();
const losses = new Float64Array(init.losses);
const stats = new Float64Array(init.stats, init.rank * STAT_WORDS * 8, STAT_WORDS);
/** Rank 0's block of the stats (STAT.POSTED_AT). */
const posted = new Float64Array(init.stats, 0, STAT_WORDS);
let during = 'setup';
/**
 * How long a worker waits blocking for the reduction after a step (and for the update after the
 * reduction) before it waits through its event loop again (rank 0 may be slower, or stopped).
 */
const BLOCK_MS = 2000;

function post(message: WorkerMessage): void {
  port.postMessage(message);
}

function serialize(e: unknown): SerializedError {
  const err = e instanceof LayerFailure ? e.cause : e;
  const base: SerializedError =
    err instanceof Error
      ? { name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}), during }
      : { name: 'Error', message: String(err), during };
  if (e instanceof LayerFailure) {
    base.layer = e.layer;
    base.layerType = e.layerType;
  }
  return base;
}

function fail(e: unknown): void {
  post({ type: 'error', rank: init.rank, error: serialize(e) });
  // The message goes first, then the flag that wakes rank 0 (which then waits for the message).
  Atomics.compareExchange(ctrl, CTRL.ERROR, 0, init.rank + 1);
  Atomics.notify(ctrl, CTRL.ERROR);
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
  Atomics.add(ctrl, CTRL.READY, 1);
  Atomics.notify(ctrl, CTRL.READY);
}

async function build(): Promise<Net> {
  const registry = defaultLayerRegistry();
  registerBuiltinLayers(registry);
  // Plugins register their layers (and schema extensions) into the default registry on import.
  for (const spec of init.register) await import(spec);
  const replica = { rank: init.rank, count: init.count };
  const setup = init.setup ? await loadReplicaSetup(init.setup) : null;
  await setup?.beforeBuild?.(init.setup!.data, replica);
  await applyKernelThreads(init.kernelThreads);
  if (init.seed >= 0) setRandomSeed(init.seed);
  const param = decodeBinary('NetParameter', init.netBinary) as NetParameter;
  const net = await Net.create(param, {
    phase: init.phase,
    level: init.level,
    stages: init.stages,
    registry,
    backend: await getBackend(init.backend),
    dtype: init.dtype,
    log: false,
    ...(init.netFile !== undefined ? { name: init.netFile } : {}),
    ...(init.shard ? { shard: { index: init.rank, count: init.count } } : {}),
  });
  // Chunked split: this replica's net has Input layers where the data layers were (rank 0 reads).
  if (!init.chunked) await setup?.afterBuild?.(net, init.setup!.data, replica);
  return net;
}

/**
 * A training replica's params and diffs in this thread's own kernel memory (the 'wasm' host
 * allocator's heap), where its GEMM and convolution kernels use them in place; the shared arenas
 * (in rank 0's memory) are then copied once per step: the params in before it, the diffs out
 * after it. Viewing the arenas directly, every kernel call staged them in and out of this
 * thread's memory instead (a conv layer's weight gradient once per image: LeNet split x2 about
 * 1 ms of this thread's CPU per step, CIFAR-10 quick about 10). Null: the replica views the arenas.
 */
interface PrivateParams {
  /** This replica's params and diffs, whole arena sections (padding included), in its kernel memory. */
  data: Float32Array;
  diff: Float32Array;
  /** The shared arenas' params and this rank's diff section. */
  sharedData: Float32Array;
  sharedDiff: Float32Array;
  /** The update kernels on this thread's kernel memory (memory.fill of the private diffs). */
  zero: () => void;
}
let priv: PrivateParams | null = null;

function privateParams(): PrivateParams | null {
  const sh = init.share;
  if (init.kind !== 'train' || !sh || init.dtype !== 'float32' || !init.diff || init.data instanceof SharedArrayBuffer || init.diff instanceof SharedArrayBuffer) return null;
  if (process.env.CAFFE_TS_PARALLEL_ARENA?.trim().toLowerCase() === 'own') return null;
  const total = sh.total;
  const block = allocKernelShared(2 * total);
  if (!block) return null;
  const kernels = createUpdateKernels(block.memory);
  if (!kernels) return null;
  const data = block.array.subarray(0, total);
  const diff = block.array.subarray(total, 2 * total);
  block.track(data);
  block.track(diff);
  const at = diff.byteOffset;
  return {
    data,
    diff,
    sharedData: arenaView(init.data, 'float32', 0, total) as Float32Array,
    sharedDiff: arenaView(init.diff, 'float32', 0, total) as Float32Array,
    zero: () => kernels.zero(at, 4 * total),
  };
}

/** Point the replica's params at the shared arenas (or private copies, see PrivateParams); frozen ones get private copies. */
function bind(net: Net): { frozen: { mine: FloatArray; shared: FloatArray }[] } {
  const params = net.learnableParams;
  const counts = params.map((p) => p.count());
  if (counts.length !== init.slots.length || counts.some((c, i) => c !== init.slots[i]!.count)) {
    throw new Error(
      `replica ${init.rank} built learnable params of sizes [${counts.join(', ')}] but rank 0 has ` +
        `[${init.slots.map((s) => s.count).join(', ')}] (do the plugins and the net definition match?)`,
    );
  }
  const frozen: { mine: FloatArray; shared: FloatArray }[] = [];
  priv = privateParams();
  if (priv) priv.data.set(priv.sharedData);
  params.forEach((blob, i) => {
    const slot = init.slots[i]!;
    if (slot.frozen && init.frozen) {
      const mine = allocArray(init.dtype, slot.count);
      blob.data.setCpuData(mine);
      frozen.push({ mine, shared: arenaView(init.frozen, init.dtype, slot.offset, slot.count) });
    } else if (priv) {
      blob.data.setCpuData(priv.data.subarray(slot.offset, slot.offset + slot.count));
    } else {
      blob.data.setCpuData(arenaView(init.data, init.dtype, slot.offset, slot.count));
    }
    if (priv) blob.diff.setCpuData(priv.diff.subarray(slot.offset, slot.offset + slot.count));
    else if (init.diff) blob.diff.setCpuData(arenaView(init.diff, init.dtype, slot.offset, slot.count));
  });
  return { frozen };
}

/** Chunked split (protocol ChunkInit): the staged batches' views by buffer and this net's Input tops. */
let chunkIo: {
  views: FloatArray[][][];
  inputs: ReturnType<typeof chunkInputs>;
  cuts: Int32Array | null;
  loss: ReturnType<typeof lossTops>;
} | null = null;

/**
 * Chunks of the current step taken from the shared counter until none is left, or with balanced
 * shares this rank's rows of every batch (its gradient weighted by its rows); returns the summed loss.
 */
async function takeChunks(net: Net): Promise<number> {
  const c = init.chunked!;
  chunkIo ??= {
    views: c.staging.map((b) => stagingViews(b, c, init.dtype)),
    inputs: chunkInputs(net, leadingSourceLayers(net)),
    cuts: c.cuts ? new Int32Array(c.cuts) : null,
    loss: lossTops(net),
  };
  const views = chunkIo.views[Atomics.load(ctrl, CTRL.BUF)]!;
  let loss = 0;
  const cuts = chunkIo.cuts;
  if (cuts) {
    const start = cuts[init.rank]!;
    const rows = cuts[init.rank + 1]! - start;
    const batch = c.tops[0]!.rows;
    scaleLossWeights(chunkIo.loss ?? [], (rows * init.count) / batch);
    const t0 = performance.now();
    for (const b of views) {
      loadRows(b, c, chunkIo.inputs, start, rows);
      loss += await runLayers(net, true);
      stats[STAT.CHUNKS]! += 1;
    }
    stats[STAT.SHARE_MS] = performance.now() - t0;
    stats[STAT.SHARE_SUM_MS]! += performance.now() - t0;
    return loss;
  }
  const t0 = performance.now();
  for (;;) {
    const k = Atomics.add(ctrl, CTRL.NEXT, 1);
    if (k >= c.total) break;
    loadChunk(views, c, chunkIo.inputs, k);
    loss += await runLayers(net, true);
    stats[STAT.CHUNKS]! += 1;
  }
  stats[STAT.SHARE_MS] = performance.now() - t0;
  stats[STAT.SHARE_SUM_MS]! += performance.now() - t0;
  return loss;
}

/** Whether this replica's diffs are all zero (fresh arena, or just reduced: the reduction zeroes them). */
let diffsClear = true;

/** `again`: compute the last step again on the same batch (its data layers' tops), with the current params. */
async function step(net: Net, frozen: { mine: FloatArray; shared: FloatArray }[], again: boolean): Promise<void> {
  for (const f of frozen) f.mine.set(f.shared);
  // The params as updated (private copies: the arena's values copied in).
  if (priv) priv.data.set(priv.sharedData);
  // Other ranks (and the update) wrote the params since the last step, through their own views:
  // mark them written, so that caches keyed on a blob's data version see the new values.
  for (const blob of net.learnableParams) blob.mutableCpuData();
  // Private diffs are zeroed right after they are copied out.
  if (!diffsClear && !priv) net.clearParamDiffs();
  diffsClear = false;
  let loss = 0;
  // Chunked: a step computed again takes its chunks of the same staged batches.
  if (init.chunked) loss = await takeChunks(net);
  else if (again) loss = await runLayers(net, true, leadingSourceLayers(net));
  else for (let i = 0; i < init.iterSize; i++) loss += await runLayers(net, true);
  if (priv) {
    // This rank's gradients into its diff arena (replacing what a step computed again had left
    // there), then the private ones zeroed for the next step.
    priv.sharedDiff.set(priv.diff);
    priv.zero();
    for (const blob of net.learnableParams) blob.mutableCpuDiff();
  }
  losses[init.rank] = loss;
  // Balanced shares: rank 0 moves the cut by when each rank finished (before it counts DONE).
  stats[STAT.END_AT] = performance.timeOrigin + performance.now();
}

async function test(net: Net, iterations: number): Promise<void> {
  const sources = leadingSourceLayers(net);
  const batches: { index: number; loss: number; outputs: number[] }[] = [];
  for (let b = 0; b < iterations; b++) {
    if (b % init.count === init.rank) {
      const loss = await runLayers(net, false);
      const outputs: number[] = [];
      for (const blob of net.outputBlobs) outputs.push(...blob.cpuData());
      batches.push({ index: b, loss, outputs });
    } else if (sources > 0) {
      // Another replica's batch: advance the data layers past it without running the net.
      await net.prepare();
      net.forwardFromTo(0, sources - 1);
    }
  }
  post({ type: 'test-result', rank: init.rank, batches });
}

/** This rank's share of the reduction and of the update (null for inference). */
function shareOf(): { reduce: () => void; updater: ShareUpdater | null } | null {
  const sh = init.share;
  if (!sh) return null;
  const kernels = createUpdateKernels(init.memory);
  const reduceRange = arenaReducer(sh.diffs, init.dtype, kernels, sh.scale);
  const [from, to] = arenaShare(sh.total, init.rank, init.count);
  let updater: ShareUpdater | null = null;
  try {
    const param = decodeBinary('SolverParameter', sh.solver) as SolverParameter;
    updater = new ShareUpdater(param, paramShare(init.slots, init.rank, init.count), sh.lrMult, sh.decayMult, {
      dtype: init.dtype,
      slots: init.slots,
      data: init.data,
      diff: sh.diffs[0]!,
      history: sh.history,
      total: sh.total,
      reduce: { diffs: sh.diffs, kernels, scale: sh.scale },
    });
  } catch {
    // A solver type this thread does not know (a plugin's): rank 0 then updates alone.
  }
  return { reduce: () => reduceRange(from, to), updater };
}

function forward(net: Net, job: ForwardJob): void {
  const blobs: ForwardBlob[] = runForwardRows(net, job);
  // The result arrays are fresh copies: transferred, not cloned.
  port.postMessage({ type: 'forward-result', rank: init.rank, blobs } satisfies WorkerMessage, blobs.map((b) => b.data.buffer as ArrayBuffer));
}

async function main(): Promise<void> {
  let net: Net;
  let frozen: { mine: FloatArray; shared: FloatArray }[];
  let share: ReturnType<typeof shareOf>;
  try {
    net = await build();
    ({ frozen } = bind(net));
    share = shareOf();
  } catch (e) {
    fail(e);
    leave();
    return;
  }
  const scalars = init.share ? new Float64Array(init.share.scalars) : null;
  // Read the sequence number before saying ready: rank 0 sends its first command as soon as
  // every worker is ready, and that command must not be mistaken for the current state.
  let seen = Atomics.load(ctrl, CTRL.SEQ);
  let idleSince = performance.now();
  const pool = threadPoolInfo();
  post({
    type: 'ready',
    rank: init.rank,
    paramCounts: net.learnableParams.map((p) => p.count()),
    canUpdate: share?.updater != null,
    kernelThreads: { requested: pool.requested, started: pool.started },
  });
  Atomics.add(ctrl, CTRL.READY, 1);
  Atomics.notify(ctrl, CTRL.READY);
  // Until then, the next command is awaited blocking (see below).
  let blockUntil = 0;
  /** Set after an update: the next step comes right after rank 0's own bookkeeping. */
  let stepNext = false;
  for (;;) {
    if (stepNext) {
      stepNext = false;
      // One turn of the event loop first: the data layers load the next batch now (rank 0 loads its
      // own meanwhile), then the step is awaited blocking, so that it starts the moment it is
      // posted instead of after the event loop notices (measured: ms under load). A chunked
      // replica has no data layers: it waits for the step at once.
      if (!init.chunked) await new Promise<void>((resolve) => setImmediate(resolve));
      blockUntil = performance.now() + BLOCK_MS;
    }
    if (blockUntil > 0) {
      // Right after a step the reduction comes, and with a divided update the update after it:
      // wait for them blocking. Through the event loop they would wait behind the data layers'
      // loading of the next batch (synchronous LMDB reads and transforms, ms), and every rank
      // with them; that loading runs after the update instead, while rank 0 does its own.
      for (;;) {
        if (Atomics.load(ctrl, CTRL.SEQ) !== seen) break;
        const left = blockUntil - performance.now();
        if (left <= 0) break;
        if (spinWhileEqual(ctrl, CTRL.SEQ, seen, Math.min(left, spinMs))) break;
        Atomics.wait(ctrl, CTRL.SEQ, seen, left);
      }
      blockUntil = 0;
    }
    // Waiting asynchronously keeps this thread's event loop running (data-layer prefetch I/O).
    while (Atomics.load(ctrl, CTRL.SEQ) === seen) {
      await waitWhileEqual(ctrl, CTRL.SEQ, seen);
    }
    seen = Atomics.load(ctrl, CTRL.SEQ);
    const cmd = Atomics.load(ctrl, CTRL.CMD);
    if (cmd === CMD.EXIT) break;
    // The reduction and update are short and come right after a step: no timers around them.
    if (cmd === CMD.REDUCE || cmd === CMD.UPDATE) {
      try {
        during = cmd === CMD.REDUCE ? 'reduce' : 'update';
        if (!share) throw new Error('no share of the reduction and update on an inference replica');
        if (cmd === CMD.REDUCE) {
          share.reduce();
          diffsClear = true;
        } else if (Atomics.load(ctrl, CTRL.ARG) === 1) {
          // The reduction of this share's params, then their update, in one pass.
          scalars![SCALAR.FINITE + init.rank] = share.updater!.reduceAndApply(scalars![SCALAR.RATE]!) ? 1 : 0;
          diffsClear = true;
        } else {
          scalars![SCALAR.FINITE + init.rank] = share.updater!.apply(scalars![SCALAR.RATE]!, scalars![SCALAR.ITER]!) ? 1 : 0;
        }
      } catch (e) {
        fail(e);
        break;
      }
      // REDUCE's argument: 1 when the update command follows.
      if (cmd === CMD.REDUCE && Atomics.load(ctrl, CTRL.ARG) === 1) blockUntil = performance.now() + BLOCK_MS;
      if (cmd === CMD.UPDATE) stepNext = true;
      Atomics.add(ctrl, CTRL.DONE, 1);
      Atomics.notify(ctrl, CTRL.DONE);
      continue;
    }
    const started = performance.now();
    const cpu0 = init.profile ? threadCpuMs() : 0;
    const prepare0 = runTimes.prepareMs;
    if (cmd === CMD.STEP) stats[STAT.LAG_MS]! += performance.timeOrigin + started - posted[STAT.POSTED_AT]!;
    try {
      if (cmd === CMD.STEP) {
        during = 'step';
        await step(net, frozen, Atomics.load(ctrl, CTRL.ARG) === 1);
      } else if (cmd === CMD.FORWARD) {
        during = 'forward';
        if (!init.forward) throw new Error('no forward job for this replica');
        await net.prepare();
        forward(net, init.forward);
      } else if (cmd === CMD.PARAMS) {
        during = 'params';
        // Private copies hold the params of the last step: the arena's are the current ones.
        if (priv) priv.data.set(priv.sharedData);
        const params = net.learnableParams.map((b) => b.cpuData().slice());
        post({ type: 'params', rank: init.rank, params: params as Float32Array[] | Float64Array[] });
      } else if (cmd === CMD.TEST) {
        during = 'test';
        await test(net, Atomics.load(ctrl, CTRL.ARG));
      } else {
        throw new Error(`unknown command ${cmd}`);
      }
    } catch (e) {
      fail(e);
      break;
    }
    const ended = performance.now();
    stats[STAT.STEPS]! += 1;
    stats[STAT.COMPUTE_MS]! += ended - started;
    stats[STAT.IDLE_MS]! += started - idleSince;
    stats[STAT.PREPARE_MS]! += runTimes.prepareMs - prepare0;
    if (init.profile) {
      const cpu = threadCpuMs();
      stats[STAT.CPU_MS]! += cpu - cpu0;
      stats[STAT.THREAD_CPU_MS] = cpu;
    }
    idleSince = ended;
    if (cmd === CMD.STEP) blockUntil = ended + BLOCK_MS;
    Atomics.add(ctrl, CTRL.DONE, 1);
    Atomics.notify(ctrl, CTRL.DONE);
  }
  try {
    await net.close();
  } catch {
    // Leaving anyway: the calling thread is shutting down or has already reported a failure.
  }
  leave();
}

/**
 * End this thread now. Left to drain, it would linger: a MessagePort stays active after the
 * listeners are gone, and rank 0 then waits its grace period (seconds) before terminating it.
 * Messages posted before are already queued at rank 0's end.
 */
function leave(): void {
  port.removeAllListeners('message');
  process.exit(0);
}

void main();
