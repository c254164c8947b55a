/*
 * How to use the cores without changing what is computed: 'split' replicas (each takes a slice
 * of every batch) times intra-op kernel threads, never more threads than cores.
 */
import { availableCores } from './pool.js';

export interface ParallelPlan {
  /** Replicas (worker threads + the calling thread). */
  workers: number;
  /** Kernel threads per replica. */
  kernelThreads: number;
  mode: 'split';
}

/**
 * The default mix for `cores` cores: as many split replicas as cores (whole-network parallelism
 * synchronises once per iteration, kernel threads once per layer; measured in bench/src/parallel.mjs),
 * falling back to fewer replicas when the batch does not divide among them, and giving the
 * leftover cores to each replica's kernels.
 */
export function chooseParallelism(options: { cores?: number; batchSizes?: readonly number[] } = {}): ParallelPlan {
  const cores = Math.max(1, Math.floor(options.cores ?? availableCores()));
  const batches = options.batchSizes ?? [];
  let workers = cores;
  while (workers > 1 && batches.some((b) => b % workers !== 0 || b / workers < 1)) workers--;
  return { workers, kernelThreads: Math.max(1, Math.floor(cores / workers)), mode: 'split' };
}
