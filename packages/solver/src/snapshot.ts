/**
 * Snapshots on disk (Node): `<prefix>_iter_N.caffemodel` and `<prefix>_iter_N.solverstate`, in
 * Caffe's binary formats, or `.caffemodel.h5` and `.solverstate.h5` in its HDF5 layout, each
 * written atomically (temp file, rename) so an interrupted snapshot never replaces a good file
 * with half of one.
 */
import { constants, accessSync, existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { logger } from '@caffe-ts/blob';
import { upgradeNetAsNeeded } from '@caffe-ts/net';
import { setHdf5WeightsLoader } from '@caffe-ts/net/node';
import { CaffeError, CaffeFileError, hasField, parseText, type NetParameter, type SolverParameter, type SolverState } from '@caffe-ts/proto';
import { readBinaryProto, writeBinaryProto } from '@caffe-ts/proto/node';
import type { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromHdf5, isHdf5Path, loadH5wasm, readSolverStateHdf5, writeNetHdf5, writeSolverStateHdf5 } from './hdf5.js';
import type { SnapshotData, SolverIO } from './solver.js';

const QUIET = { info: () => {}, warn: () => {}, error: () => {} };

function cwd(): string {
  return process.cwd();
}

/**
 * Find a file named inside another file (a solver's `net`, a state's `learned_net`): relative to
 * `rootDir` first (as C++ Caffe, which uses its working directory), then to the referring file's
 * folder, then its base name in that folder (C++ Caffe often stored paths relative to its own
 * checkout). The error lists every place tried.
 */
export function resolveReferencedPath(path: string, referrer: string, what: string, rootDir = cwd()): string {
  const ref = resolve(rootDir, referrer);
  const candidates = isAbsolute(path)
    ? [path, join(dirname(ref), basename(path))]
    : [resolve(rootDir, path), resolve(dirname(ref), path), join(dirname(ref), basename(path))];
  const tried: string[] = [];
  for (const c of candidates) {
    if (tried.includes(c)) continue;
    tried.push(c);
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  throw new CaffeFileError(`${what} '${path}' (named in ${ref}) not found; tried ${tried.join(', ')}`, { path, code: 'ENOENT' });
}

/**
 * Caffe's UpgradeSnapshotPrefixProperty: an unset snapshot_prefix becomes the solver file's path
 * without its extension; a prefix that is a directory gets the solver file's base name (without
 * extension) appended. Returns the prefix to use (the parameter is not modified).
 */
export function resolveSnapshotPrefix(
  param: SolverParameter,
  solverFile: string,
  { rootDir = cwd(), log = true }: { rootDir?: string; log?: boolean } = {},
): string {
  const l = log ? logger('upgrade_proto.cpp') : QUIET;
  const stem = basename(solverFile, extname(solverFile));
  if (!hasField(param, 'snapshot_prefix')) {
    const prefix = join(dirname(solverFile), stem);
    l.info(`snapshot_prefix was not specified and is set to ${prefix}`);
    return prefix;
  }
  const prefix = param.snapshot_prefix;
  let isDir = false;
  try {
    isDir = statSync(resolve(rootDir, prefix)).isDirectory();
  } catch {
    isDir = false;
  }
  if (isDir) {
    const replaced = join(prefix, stem);
    l.info(`snapshot_prefix was a directory and is replaced to ${replaced}`);
    return replaced;
  }
  return prefix;
}

/**
 * Caffe's CheckSnapshotWritePermissions: fail before training when the snapshot folder is
 * missing or read-only, rather than after hours of it.
 */
export function checkSnapshotPrefixWritable(prefix: string, rootDir = cwd()): void {
  const dir = dirname(resolve(rootDir, `${prefix}_iter_0.tempfile`));
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new CaffeFileError(
      `Cannot write to snapshot prefix '${prefix}'.  Make sure that the directory exists and is writeable. (folder ${dir})`,
      { path: dir, code: (err as { code?: string }).code, cause: err },
    );
  }
}

/**
 * Write a snapshot's two files under `rootDir`, logging Caffe's lines. The state's learned_net
 * keeps the model path as named (relative to the prefix), as Caffe writes it.
 */
export async function writeSnapshotFiles(data: SnapshotData, { rootDir = cwd(), log = true }: { rootDir?: string; log?: boolean } = {}): Promise<void> {
  const solverLog = log ? logger('solver.cpp') : QUIET;
  const sgdLog = log ? logger('sgd_solver.cpp') : QUIET;
  if (data.format === 'HDF5') {
    await loadH5wasm();
    solverLog.info(`Snapshotting to HDF5 file ${data.modelFile}`);
    writeNetHdf5(data.trainNet, resolve(rootDir, data.modelFile), data.writeDiff);
    sgdLog.info(`Snapshotting solver state to HDF5 file ${data.stateFile}`);
    writeSolverStateHdf5(resolve(rootDir, data.stateFile), data.state);
    return;
  }
  solverLog.info(`Snapshotting to binary proto file ${data.modelFile}`);
  await writeBinaryProto('NetParameter', resolve(rootDir, data.modelFile), data.net);
  sgdLog.info(`Snapshotting solver state to binary proto file ${data.stateFile}`);
  await writeBinaryProto('SolverState', resolve(rootDir, data.stateFile), data.state);
}

/** Read a solver state: HDF5 when the name ends in `.h5` (as Caffe decides), else a binary SolverState. */
export async function readSolverStateFile(path: string, rootDir = cwd()): Promise<SolverState> {
  const file = resolve(rootDir, path);
  if (isHdf5Path(file)) {
    await loadH5wasm();
    return readSolverStateHdf5(file);
  }
  return readBinaryProto<SolverState>('SolverState', file);
}

/**
 * Load h5wasm and let `copyTrainedLayersFromFile` (@caffe-ts/net/node) read `.caffemodel.h5`
 * weights. Idempotent; about half a second the first time.
 */
export async function enableHdf5(): Promise<void> {
  await loadH5wasm();
  setHdf5WeightsLoader((net, path) => copyTrainedLayersFromHdf5(net, path));
}

/** Read a prototxt net (synchronously: nets are built in constructors) and upgrade legacy fields. */
export function readNetPrototxt(path: string, { log = true }: { log?: boolean } = {}): NetParameter {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new CaffeFileError(`cannot read net definition '${path}': ${code === 'ENOENT' ? 'no such file' : String(err)}`, {
      path,
      code,
      cause: err,
    });
  }
  return upgradeNetAsNeeded(parseText<NetParameter>('NetParameter', text, { file: path }), { file: path, log });
}

/** Load a .caffemodel (or, named `*.h5`, HDF5 weights) into `net`; errors name the file. */
export async function loadWeightsFile(net: Net, path: string): Promise<void> {
  if (isHdf5Path(path)) {
    await enableHdf5();
    copyTrainedLayersFromHdf5(net, path);
    return;
  }
  const weights = await readBinaryProto<NetParameter>('NetParameter', path);
  try {
    net.copyTrainedLayersFrom(weights);
  } catch (e) {
    // Keep the error's class (NetError…) and add the file to its message.
    if (CaffeError.isInstance(e)) {
      const Ctor = e.constructor as new (message: string, options?: { cause?: unknown }) => Error;
      throw new Ctor(`${e.message} (weights file ${path})`, { cause: e });
    }
    throw e;
  }
}

export interface NodeSolverIOOptions {
  /** Directory relative paths resolve against first (default process.cwd()). */
  rootDir?: string;
  /** The solver prototxt, whose folder is the second place relative net paths are looked for. */
  solverFile?: string;
  log?: boolean;
}

/** The solver's file access on Node: net prototxts, atomic snapshots, resumable states. */
export function nodeSolverIO({ rootDir = cwd(), solverFile, log = true }: NodeSolverIOOptions = {}): SolverIO {
  const resolveNetPath = (path: string) =>
    solverFile ? resolveReferencedPath(path, solverFile, 'net', rootDir) : resolve(rootDir, path);
  return {
    readNetParameter: (path) => readNetPrototxt(resolveNetPath(path), { log }),
    resolveNetPath,
    writeSnapshot: (data) => writeSnapshotFiles(data, { rootDir, log }),
    readSolverState: (path) => readSolverStateFile(path, rootDir),
    loadLearnedNet: (net, learnedNet, stateFile) =>
      loadWeightsFile(net, resolveReferencedPath(learnedNet, stateFile, 'learned_net', rootDir)),
  };
}
