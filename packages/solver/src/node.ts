/**
 * `@caffe-ts/solver/node`: solvers backed by files. Loads a solver prototxt (resolving its net
 * paths as C++ Caffe does), writes snapshots atomically and resumes from .solverstate files.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CaffeError, hasField, lookupType, type SolverParameter } from '@caffe-ts/proto';
import { readTextProto } from '@caffe-ts/proto/node';
import { SolverConfigError, SolverError } from './errors.js';
import { learningRate } from './lr-policy.js';
import { createSolverAsync, defaultSolverRegistry, solverTypeOf, upgradeSolverAsNeeded, type SolverRegistry } from './solver-registry.js';
import type { Solver, SolverIO, SolverOptions } from './solver.js';
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
  const read = await readSolverFile(path, options);
  return buildSolverFromFile(read, options);
}

/** A solver prototxt read, checked and fixed up by readSolverFile, ready to build from. */
export interface SolverFile {
  /** The parameters, upgraded, snapshot_prefix resolved. */
  param: SolverParameter;
  /** The solver file's absolute path. */
  file: string;
  rootDir: string;
  /** File access resolving `net:` paths as loadSolverFromFile does. */
  io: SolverIO;
}

/**
 * The reading half of loadSolverFromFile: everything it checks before any net is built, so that
 * a caller can build more than one solver from the same file (buildSolverFromFile), e.g. the
 * short-lived ones `caffe train` times its parallel mixes with.
 */
export async function readSolverFile(path: string, options: NodeSolverOptions = {}): Promise<SolverFile> {
  const rootDir = options.rootDir ?? process.cwd();
  const file = resolve(rootDir, path);
  const param = await readTextProto<SolverParameter>('SolverParameter', file);
  // The solver type and lr_policy are checked before any net is built (Caffe finds a bad
  // lr_policy only at the first iteration), so that the error can name the line that set them.
  try {
    (options.solverRegistry ?? defaultSolverRegistry()).require(solverTypeOf(param));
  } catch (e) {
    throw atSolverField(e, file, hasField(param, 'solver_type') ? 'solver_type' : 'type');
  }
  try {
    // The policy and the fields it needs (gamma, stepsize), as the first iteration would check them.
    learningRate(param, { iter: 0, currentStep: 0 });
  } catch (e) {
    throw atSolverField(e, file);
  }
  upgradeSolverAsNeeded(param, path, { log: options.log });
  param.snapshot_prefix = resolveSnapshotPrefix(param, path, { rootDir, log: options.log });
  if (param.snapshot > 0) checkSnapshotPrefixWritable(param.snapshot_prefix, rootDir);
  const io = options.io ?? nodeSolverIO({ rootDir, solverFile: file, log: options.log });
  return { param, file, rootDir, io };
}

/** Builds a solver from readSolverFile's result (`param` as given: pass a copy to change it). */
export async function buildSolverFromFile(read: SolverFile, options: NodeSolverOptions = {}, param: SolverParameter = read.param): Promise<Solver> {
  try {
    return await createSolverAsync(param, { ...options, rootDir: read.rootDir, io: read.io });
  } catch (e) {
    // The solver's own checks (test_iter per test net, momentum with AdaGrad, …) name the file
    // and the field's line; errors from the nets name their own files.
    throw SolverConfigError.isInstance(e) ? atSolverField(e, read.file) : e;
  }
}

/**
 * `e` (a SolverError about the solver prototxt `file`) with the message prefixed by
 * `file:line:column: ` of the value of `field` (default: the SolverConfigError's own field; the
 * last setting wins, as in the text format), or by `file: ` when the field is not written there
 * (a default) or the error names none.
 */
function atSolverField(e: unknown, file: string, field?: string): unknown {
  if (!SolverError.isInstance(e)) return e;
  field ??= SolverConfigError.isInstance(e) ? (e as SolverConfigError).field : undefined;
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // The file was read a moment ago; without it, name the file alone.
  }
  // A repeated field (test_iter, test_state) is pointed at where its list starts.
  const repeated = field !== undefined && Boolean(lookupType('SolverParameter').fields[field]?.repeated);
  const at = field === undefined ? undefined : locateTopLevelValue(text, field, repeated ? 'first' : 'last');
  const where = at ? `${file}:${at.line}:${at.column}` : file;
  const Ctor = e.constructor as new (message: string, options?: { cause?: unknown; field?: string }) => CaffeError;
  return new Ctor(`${where}: ${(e as Error).message}`, { cause: e, field });
}

/**
 * Line and column (1-based) of the value of the last (or first) top-level `name: value` in prototxt `text`,
 * skipping comments, strings and nested blocks (a `type:` inside net_param's layers is not the
 * solver's `type`).
 */
export function locateTopLevelValue(
  text: string,
  name: string,
  which: 'first' | 'last' = 'last',
): { line: number; column: number } | undefined {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  let prev = ''; // the previous significant token at depth 0: ':' makes the next identifier a value
  let pending = false; // the last token was `name` at depth 0, a ':' and its value may follow
  let found: { line: number; column: number } | undefined;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      lineStart = ++i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    const start = i;
    const column = start - lineStart + 1;
    if (c === '"' || c === "'") {
      i++;
      while (i < n && text[i] !== c && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (/[A-Za-z0-9_.+-]/.test(c)) {
      while (i < n && /[A-Za-z0-9_.+-]/.test(text[i]!)) i++;
    } else {
      i++;
    }
    const token = text.slice(start, i);
    if (depth === 0) {
      if (pending && token !== ':') {
        found = { line, column };
        if (which === 'first') return found;
      }
      const isName = prev !== ':' && /^[A-Za-z_]\w*$/.test(token);
      pending = (pending && token === ':') || (isName && token === name);
      prev = token;
    }
    if (token === '{' || token === '<' || token === '[') depth++;
    else if ((token === '}' || token === '>' || token === ']') && depth > 0) depth--;
  }
  return found;
}
