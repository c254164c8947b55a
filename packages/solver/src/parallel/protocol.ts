/*
 * What the calling thread (rank 0) and its worker threads share. Control words live in an
 * Int32Array over a SharedArrayBuffer and are read and written with Atomics; gradients and
 * parameters live in typed arrays over SharedArrayBuffers, so an iteration exchanges no messages.
 */
import type { DType } from '@caffe-ts/blob';

/** Indices into the control Int32Array. */
export const CTRL = {
  /** Bumped by rank 0 for each command; workers wait on it. */
  SEQ: 0,
  /** The command of the current SEQ (one of CMD). */
  CMD: 1,
  /** Workers that finished the current command. */
  DONE: 2,
  /** 0, or 1 + the rank of the first worker that failed. */
  ERROR: 3,
  /** Workers that finished setting up. */
  READY: 4,
  /** The command's argument (TEST: the number of batches; REDUCE: 1 when an UPDATE follows; STEP, UPDATE: see CMD). */
  ARG: 5,
  /**
   * Chunked split (ChunkInit): the next chunk of the step's batches to take. Every rank takes
   * chunks with Atomics.add until the count runs out, so a rank that starts late or is
   * descheduled computes fewer of them and nobody waits for it.
   */
  NEXT: 6,
  /** Chunked split: which of the two staging buffers the current step's batches are in. */
  BUF: 7,
} as const;
export const CTRL_WORDS = 8;

export const CMD = {
  /**
   * Clear diffs, iter_size × forward/backward on this replica's batches, write the loss, count
   * DONE. ARG 1: the same again on the batch of the last step (its params changed after it was
   * posted early).
   */
  STEP: 1,
  /** Close the net and leave. */
  EXIT: 2,
  /** Inference: forward this replica's share of `iterations` batches (see TestJob). */
  TEST: 3,
  /** Post a copy of this replica's learnable params (a check that replicas agree). */
  PARAMS: 4,
  /**
   * Sum every rank's diff arena over this rank's share of the elements (see update.ts). ARG 1:
   * an UPDATE follows (the workers wait for it blocking).
   */
  REDUCE: 5,
  /**
   * Apply the solver's update over this rank's share (rate and iter in the scalars). ARG 1: reduce
   * the diffs of the share's params first, in the same pass (plain SGD; no REDUCE came before).
   */
  UPDATE: 6,
  /** Inference on this rank's rows of the inputs (WorkerInit.forward); posts 'forward-result'. */
  FORWARD: 7,
} as const;

/** One learnable param (Net.learnableParams order) in the flat arenas. */
export interface ParamSlot {
  offset: number;
  count: number;
  /**
   * lr_mult 0 (BatchNorm statistics, frozen layers): each replica keeps its own data, which
   * rank 0 broadcasts before every step (layers may write them in forward, so sharing the memory
   * would race).
   */
  frozen: boolean;
}

/**
 * One arena inside a larger shared buffer: `length` elements from element `base`. Training keeps
 * all its arenas (params, each rank's diffs, the solver's history) in one shared memory, a
 * WebAssembly.Memory where the update kernels run (update-wasm.ts), so that they work in place.
 */
export interface ArenaRef {
  buffer: SharedArrayBuffer;
  base: number;
  length: number;
}

/** A whole SharedArrayBuffer or an arena inside one. */
export type Arena = SharedArrayBuffer | ArenaRef;

/** The data a worker is started with (structured-cloned once, at start-up). */
export interface WorkerInit {
  kind: 'train' | 'test' | 'forward';
  rank: number;
  count: number;
  /** The train (or test) NetParameter, binary-encoded after the plugins are registered. */
  netBinary: Uint8Array;
  phase: number;
  level: number;
  stages: string[];
  netFile?: string;
  dtype: DType;
  backend: string;
  /** Module specifiers or URLs imported before the net is built (layer plugins). */
  register: string[];
  /** DataParallelOptions.replicaSetup (train replicas only). */
  setup?: { module: string; data?: unknown };
  /** Intra-op kernel threads for this replica (blob's setNumThreads, before the net is built). */
  kernelThreads: number;
  /** Global seed (random_seed) or -1. */
  seed: number;
  iterSize: number;
  /** Whether the net's data layers take a shard (train: true; test uses batch skipping). */
  shard: boolean;
  control: SharedArrayBuffer;
  losses: SharedArrayBuffer;
  /** Per-rank timers (STATS words each, see STAT), written by each rank after each command. */
  stats: SharedArrayBuffer;
  /** Whether to read the thread's CPU time around each step (STAT.CPU_MS). */
  profile: boolean;
  data: Arena;
  diff: Arena | null;
  frozen: SharedArrayBuffer | null;
  /** Training: the shared WebAssembly.Memory holding data, diffs and history (null: a plain SharedArrayBuffer). */
  memory?: WebAssembly.Memory | null;
  slots: ParamSlot[];
  /** Training: what the worker needs to reduce and update its share (update.ts); null for inference. */
  share: ShareInit | null;
  /** `caffe forward`: the inputs and this rank's rows of them. */
  forward?: ForwardJob;
  /** The working directory of the calling process (paths in nets resolve against it). */
  cwd: string;
  /** Ms a blocking wait spins first (replica.ts spinWhileEqual). */
  spinMs?: number;
  /** Training in chunked split mode (see ChunkInit); absent otherwise. */
  chunked?: ChunkInit;
}

/**
 * Chunked split mode: rank 0 alone reads each batch (the single-threaded run's data layers,
 * whole) into a shared staging buffer, and the replicas, built with Input layers of the chunk's
 * shape in place of the data layers, take its chunks from a shared counter (CTRL.NEXT).
 */
export interface ChunkInit {
  /** Two staging buffers (rank 0 fills one while the ranks read the other). */
  staging: SharedArrayBuffer[];
  /** Per source top (the data layers' tops in net order): where its rows start in a batch's staging section, rows per batch, elements per row. */
  tops: { offset: number; rows: number; rowSize: number }[];
  /** Elements of one batch in a staging buffer (iter_size batches follow each other). */
  batchElements: number;
  /** Chunks per batch. */
  chunks: number;
  /** Chunks per step: chunks × iter_size. */
  total: number;
  /**
   * Balanced shares (chunks = ranks): Int32 row cuts, ranks + 1 of them. Rank r computes rows
   * [cut[r], cut[r + 1]) of every batch of the step instead of taking chunks from CTRL.NEXT; rank
   * 0 moves the cuts between steps so that the ranks finish together, and each rank scales its
   * loss weights by its rows × ranks / batch so that the reduced gradient stays the batch's mean.
   * Absent: equal chunks from the counter.
   */
  cuts?: SharedArrayBuffer;
}

/** Inputs in shared memory (whole arrays, batch on axis 0) and the rows [from, to) one rank runs. */
export interface ForwardJob {
  inputs: { name: string; shape: number[]; data: SharedArrayBuffer }[];
  blobs: string[];
  from: number;
  to: number;
}

/** A blob of a forward result (its rows of the batch). */
export interface ForwardBlob {
  name: string;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** See WorkerInit.share. */
export interface ShareInit {
  /** The SolverParameter, binary-encoded (its type picks the update rule). */
  solver: Uint8Array;
  /** Every rank's diff arena, by rank. */
  diffs: ArenaRef[];
  /** The solver's history, one arena-sized section per history blob of a param. */
  history: ArenaRef;
  /** Float64 words: see SCALAR. */
  scalars: SharedArrayBuffer;
  /** The net's lr_mult and decay_mult per learnable param. */
  lrMult: number[];
  decayMult: number[];
  /** Aligned arena size in elements. */
  total: number;
  /** The reduction's scale: 1 / ranks, or 1 / chunks per batch in chunked split mode. */
  scale: number;
}

/**
 * Float64 words of ShareInit.scalars: the rate and iteration of an UPDATE, then one word per rank
 * (FINITE + rank): 1 when that rank's share of the params was all finite after its update.
 */
export const SCALAR = { RATE: 0, ITER: 1, FINITE: 2 } as const;

/** Bytes of ShareInit.scalars for `count` ranks. */
export function scalarBytes(count: number): number {
  return 8 * (SCALAR.FINITE + count);
}

/** Per-rank timer words in the stats Float64Array (rank r at r * STAT_WORDS). */
export const STAT = {
  /** Commands completed. */
  STEPS: 0,
  /** Wall ms inside the commands (forward/backward of this rank's share). */
  COMPUTE_MS: 1,
  /** Wall ms between commands (workers: waiting for rank 0's reduction, update and next command). */
  IDLE_MS: 2,
  /** Thread CPU ms inside the commands (profile only; replica.ts threadCpuMs). */
  CPU_MS: 3,
  /** The thread's whole CPU time so far, as of its last command (profile only). */
  THREAD_CPU_MS: 4,
  /** Wall ms from rank 0 posting a step to this rank starting it (wake-up, its event loop's pending work). */
  LAG_MS: 5,
  /** Wall ms of the steps spent in the data layers' prepare() (waiting for a batch, the loading that runs meanwhile). */
  PREPARE_MS: 6,
  /** Rank 0's block only: when the current command was posted (performance.timeOrigin + now(), ms). */
  POSTED_AT: 7,
  /** Chunked split: chunks this rank computed. */
  CHUNKS: 8,
  /** Balanced shares: when this rank finished its share of the last step (performance.timeOrigin + now(), ms). */
  END_AT: 9,
  /** Chunked split: wall ms this rank computed its chunks of the last step (its forward/backward passes). */
  SHARE_MS: 10,
  /** Chunked split: wall ms in the forward/backward passes of its chunks, summed over steps. */
  SHARE_SUM_MS: 11,
} as const;
export const STAT_WORDS = 12;

/** An inference job: rank r runs the global batches b with b % count == r, of `iterations`. */
export interface TestJob {
  iterations: number;
}

/** Messages a worker posts (rare: set-up, errors, inference results; never per training step). */
export type WorkerMessage =
  | { type: 'ready'; rank: number; paramCounts: number[]; canUpdate: boolean; kernelThreads: { requested: number; started: number } }
  | { type: 'error'; rank: number; error: SerializedError }
  | { type: 'test-result'; rank: number; batches: { index: number; loss: number; outputs: number[] }[] }
  | { type: 'params'; rank: number; params: Float32Array[] | Float64Array[] }
  | { type: 'forward-result'; rank: number; blobs: ForwardBlob[] };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** The layer that threw, when the failure happened inside the net. */
  layer?: string;
  layerType?: string;
  /** What the worker was doing: 'setup', 'step', 'test'. */
  during: string;
}

/** Pad offsets to 64 bytes so no two params share a cache line across threads. */
export function alignElements(n: number, dtype: DType): number {
  const per = 64 / (dtype === 'float64' ? 8 : 4);
  return Math.ceil(n / per) * per;
}
