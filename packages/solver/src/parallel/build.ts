/*
 * Solvers whose train net runs as DataParallel replicas: the shared set-up of
 * loadParallelSolverFromFile, createParallelSolver and the timing copies of probe.ts.
 */
import type { SolverParameter } from '@caffe-ts/proto';
import { buildSolverFromFile, createNodeSolver, loadSolverFromFile, type NodeSolverOptions, type SolverFile } from '../node.js';
import type { Solver } from '../solver.js';
import { DataParallel, type DataParallelOptions } from './data-parallel.js';

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

/**
 * buildSolverFromFile (a solver file read by readSolverFile; `param` as there) with
 * `parallel.workers` replicas (solver.close() stops the workers).
 */
export function buildParallelSolverFromFile(
  read: SolverFile, parallel: DataParallelOptions, options: NodeSolverOptions = {}, param?: SolverParameter,
): Promise<Solver> {
  return withParallel(parallel, options, (o) => buildSolverFromFile(read, o, param));
}

/** createNodeSolver with `parallel.workers` replicas (solver.close() stops the workers). */
export function createParallelSolver(param: SolverParameter, parallel: DataParallelOptions, options: NodeSolverOptions = {}): Promise<Solver> {
  return withParallel(parallel, options, (o) => createNodeSolver(param, o));
}
