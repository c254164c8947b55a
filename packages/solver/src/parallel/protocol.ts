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
  /** The command's argument (TEST: the number of batches). */
  ARG: 5,
} as const;
export const CTRL_WORDS = 8;

export const CMD = {
  /** Clear diffs, iter_size × forward/backward on this replica's batches, write the loss, count DONE. */
  STEP: 1,
  /** Close the net and leave. */
  EXIT: 2,
  /** Inference: forward this replica's share of `iterations` batches (see TestJob). */
  TEST: 3,
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

/** The data a worker is started with (structured-cloned once, at start-up). */
export interface WorkerInit {
  kind: 'train' | 'test';
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
  /** Intra-op kernel threads for this replica (blob's setNumThreads, where it exists). */
  kernelThreads: number;
  /** Global seed (random_seed) or -1. */
  seed: number;
  iterSize: number;
  /** Whether the net's data layers take a shard (train: true; test uses batch skipping). */
  shard: boolean;
  control: SharedArrayBuffer;
  losses: SharedArrayBuffer;
  data: SharedArrayBuffer;
  diff: SharedArrayBuffer | null;
  frozen: SharedArrayBuffer | null;
  slots: ParamSlot[];
  /** The working directory of the calling process (paths in nets resolve against it). */
  cwd: string;
}

/** An inference job: rank r runs the global batches b with b % count == r, of `iterations`. */
export interface TestJob {
  iterations: number;
}

/** Messages a worker posts (rare: set-up, errors, inference results; never per training step). */
export type WorkerMessage =
  | { type: 'ready'; rank: number; paramCounts: number[] }
  | { type: 'error'; rank: number; error: SerializedError }
  | { type: 'test-result'; rank: number; batches: { index: number; loss: number; outputs: number[] }[] };

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
