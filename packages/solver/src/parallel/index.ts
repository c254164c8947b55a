/**
 * `@caffe-ts/solver/parallel` (Node): data-parallel training and inference across worker
 * threads, with parameters and gradients in SharedArrayBuffers. See DataParallel.
 */
export { buildParallelSolverFromFile, createParallelSolver, loadParallelSolverFromFile } from './build.js';

export {
  DataParallel,
  parallelTest,
  splitBatchNetParameter,
  type DataParallelOptions,
  type ParallelMode,
  type ParallelTestOptions,
  type BatchResult,
} from './data-parallel.js';
export { ParallelError, ParallelConfigError, ParallelWorkerError, availableCores } from './pool.js';
export { applyKernelThreads, threadTimes } from './replica.js';
export { chooseParallelism, type ParallelPlan } from './plan.js';
export { parallelForward, type ParallelForwardOptions, type ForwardArray } from './forward.js';
export { type RankStats } from './data-parallel.js';
export { type ReplicaSetup, type ReplicaSetupModule, type ReplicaInfo } from './replica-setup.js';
export {
  describePlan,
  parallelCandidates,
  probeMode,
  probeParallelism,
  probeWanted,
  PROBE_MAX_BYTES,
  PROBE_MIN_ITERATIONS,
  type ParallelProbeOptions,
  type ParallelProbeResult,
  type ParallelTiming,
} from './probe.js';
