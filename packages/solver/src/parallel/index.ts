/**
 * `@caffe-ts/solver/parallel` (Node): data-parallel training and inference across worker
 * threads, with parameters and gradients in SharedArrayBuffers. See DataParallel.
 */
import type { NodeSolverOptions } from '../node.js';
import { buildSolverFromFile, loadSolverFromFile, createNodeSolver, type SolverFile } from '../node.js';
import type { SolverParameter } from '@caffe-ts/proto';
import type { Solver } from '../solver.js';
import { DataParallel, type DataParallelOptions } from './data-parallel.js';

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
export { applyKernelThreads } from './replica.js';
export { chooseParallelism, type ParallelPlan } from './plan.js';
export { parallelForward, type ParallelForwardOptions, type ForwardArray } from './forward.js';
export { type RankStats } from './data-parallel.js';

async function withParallel(
  parallel: DataParallelOptions,
  options: NodeSolverOptions,
  create: (o: NodeSolverOptions) => Promise<Solver>,
): Promise<Solver> {
  const dp = new DataParallel({ log: options.log, ...parallel });
  const solver = await create({ ...options, netFactoryAsync: dp.netFactoryAsync });
  try {
    await dp.attach(solver);
  } catch (e) {
    await solver.close();
    throw e;
  }
  return solver;
}

/** loadSolverFromFile with `parallel.workers` replicas (solver.close() stops the workers). */
export function loadParallelSolverFromFile(path: string, parallel: DataParallelOptions, options: NodeSolverOptions = {}): Promise<Solver> {
  return withParallel(parallel, options, (o) => loadSolverFromFile(path, o));
}

/** buildSolverFromFile (a solver file read by readSolverFile) with `parallel.workers` replicas (solver.close() stops the workers). */
export function buildParallelSolverFromFile(read: SolverFile, parallel: DataParallelOptions, options: NodeSolverOptions = {}): Promise<Solver> {
  return withParallel(parallel, options, (o) => buildSolverFromFile(read, o));
}

/** createNodeSolver with `parallel.workers` replicas (solver.close() stops the workers). */
export function createParallelSolver(param: SolverParameter, parallel: DataParallelOptions, options: NodeSolverOptions = {}): Promise<Solver> {
  return withParallel(parallel, options, (o) => createNodeSolver(param, o));
}
export {
  describePlan,
  parallelCandidates,
  probeParallelism,
  probeWanted,
  PROBE_MAX_BYTES,
  PROBE_MIN_ITERATIONS,
  type ParallelProbeOptions,
  type ParallelProbeResult,
  type ParallelTiming,
} from './probe.js';
