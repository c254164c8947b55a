/**
 * `@caffe-ts/solver/node`: solvers backed by files. Loads a solver prototxt (resolving its net
 * paths as C++ Caffe does), writes snapshots atomically and resumes from .solverstate files.
 */
import { resolve } from 'node:path';
import type { SolverParameter } from '@caffe-ts/proto';
import { readTextProto } from '@caffe-ts/proto/node';
import { createSolverAsync, upgradeSolverAsNeeded, type SolverRegistry } from './solver-registry.js';
import type { Solver, SolverOptions } from './solver.js';
import { checkSnapshotPrefixWritable, nodeSolverIO, resolveSnapshotPrefix } from './snapshot.js';

export {
  copyTrainedLayersFromHdf5,
  isHdf5Path,
  loadH5wasm,
  readSolverStateHdf5,
  writeNetHdf5,
  writeSolverStateHdf5,
} from './hdf5.js';
export {
  enableHdf5,
  checkSnapshotPrefixWritable,
  loadWeightsFile,
  nodeSolverIO,
  readNetPrototxt,
  readSolverStateFile,
  resolveReferencedPath,
  resolveSnapshotPrefix,
  writeSnapshotFiles,
  type NodeSolverIOOptions,
} from './snapshot.js';

export type NodeSolverOptions = SolverOptions & { solverRegistry?: SolverRegistry };

/**
 * Build a solver from an in-memory SolverParameter with file access: `net:`/`test_net:` paths
 * resolve against `rootDir` (default process.cwd()), snapshots are written under it.
 */
export async function createNodeSolver(param: SolverParameter, options: NodeSolverOptions = {}): Promise<Solver> {
  const rootDir = options.rootDir ?? process.cwd();
  if (param.snapshot > 0 && param.snapshot_prefix) checkSnapshotPrefixWritable(param.snapshot_prefix, rootDir);
  const io = options.io ?? nodeSolverIO({ rootDir, log: options.log });
  return createSolverAsync(param, { ...options, rootDir, io });
}

/**
 * Caffe's `caffe train --solver`: read the solver prototxt, upgrade a legacy `solver_type`, fix
 * up snapshot_prefix (unset → the solver file's name; a directory → that directory plus the
 * solver file's name), check the snapshot folder is writable, and build the solver and its nets.
 * Relative `net:` paths are tried against `rootDir` (the user's directory), then the solver
 * file's folder.
 */
export async function loadSolverFromFile(path: string, options: NodeSolverOptions = {}): Promise<Solver> {
  const rootDir = options.rootDir ?? process.cwd();
  const file = resolve(rootDir, path);
  const param = await readTextProto<SolverParameter>('SolverParameter', file);
  upgradeSolverAsNeeded(param, path, { log: options.log });
  param.snapshot_prefix = resolveSnapshotPrefix(param, path, { rootDir, log: options.log });
  if (param.snapshot > 0) checkSnapshotPrefixWritable(param.snapshot_prefix, rootDir);
  const io = options.io ?? nodeSolverIO({ rootDir, solverFile: file, log: options.log });
  return createSolverAsync(param, { ...options, rootDir, io });
}
