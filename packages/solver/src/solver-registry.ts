import { logger } from '@caffe-ts/blob';
import { hasField, SolverParameter_SolverType, type SolverParameter } from '@caffe-ts/proto';
import { AdaDeltaSolver } from './adadelta-solver.js';
import { AdaGradSolver } from './adagrad-solver.js';
import { AdamSolver } from './adam-solver.js';
import { SolverConfigError, SolverError, UnknownSolverTypeError } from './errors.js';
import { NesterovSolver } from './nesterov-solver.js';
import { RMSPropSolver } from './rmsprop-solver.js';
import { SGDSolver } from './sgd-solver.js';
import { buildSolverNets, type Solver, type SolverOptions } from './solver.js';

/** A solver type: the exact Caffe `type` string and how to build one. */
export interface SolverDef {
  type: string;
  create(param: SolverParameter, options: SolverOptions): Solver;
}

/** Maps Caffe solver type strings to definitions (Caffe's SolverRegistry, as an object). */
export class SolverRegistry {
  private readonly defs = new Map<string, SolverDef>();

  register(def: SolverDef, { override = false }: { override?: boolean } = {}): void {
    if (this.defs.has(def.type) && !override) throw new SolverError(`Solver type ${def.type} already registered.`);
    this.defs.set(def.type, def);
  }

  unregister(type: string): boolean {
    return this.defs.delete(type);
  }

  has(type: string): boolean {
    return this.defs.has(type);
  }

  get(type: string): SolverDef | undefined {
    return this.defs.get(type);
  }

  /** Registered type strings, sorted. */
  types(): string[] {
    return [...this.defs.keys()].sort();
  }

  /** The definition of `type`; UnknownSolverTypeError (listing the known types) if none. */
  require(type: string): SolverDef {
    const def = this.defs.get(type);
    if (!def) throw new UnknownSolverTypeError(`Unknown solver type: ${type} (known types: ${this.types().join(', ')})`);
    return def;
  }

  /** Build the solver that `param` asks for (see solverTypeOf). */
  create(param: SolverParameter, options: SolverOptions = {}): Solver {
    return this.require(solverTypeOf(param)).create(param, options);
  }
}

export const sgdSolverDef: SolverDef = { type: 'SGD', create: (p, o) => new SGDSolver(p, o) };
export const nesterovSolverDef: SolverDef = { type: 'Nesterov', create: (p, o) => new NesterovSolver(p, o) };
export const adaGradSolverDef: SolverDef = { type: 'AdaGrad', create: (p, o) => new AdaGradSolver(p, o) };
export const rmsPropSolverDef: SolverDef = { type: 'RMSProp', create: (p, o) => new RMSPropSolver(p, o) };
export const adaDeltaSolverDef: SolverDef = { type: 'AdaDelta', create: (p, o) => new AdaDeltaSolver(p, o) };
export const adamSolverDef: SolverDef = { type: 'Adam', create: (p, o) => new AdamSolver(p, o) };

/** Caffe's six solvers. */
export function registerBuiltinSolvers(registry: SolverRegistry): SolverRegistry {
  for (const def of [sgdSolverDef, nesterovSolverDef, adaGradSolverDef, rmsPropSolverDef, adaDeltaSolverDef, adamSolverDef]) {
    if (!registry.has(def.type)) registry.register(def);
  }
  return registry;
}

const DEFAULT_REGISTRY = Symbol.for('caffe-ts.solverRegistry');

/** The process-wide registry (shared by every copy of this package), with the built-ins in it. */
export function defaultSolverRegistry(): SolverRegistry {
  const g = globalThis as Record<symbol, unknown>;
  let reg = g[DEFAULT_REGISTRY] as SolverRegistry | undefined;
  if (!reg) {
    reg = registerBuiltinSolvers(new SolverRegistry());
    g[DEFAULT_REGISTRY] = reg;
  }
  return reg;
}

const LEGACY_TYPES: Record<number, string> = {
  [SolverParameter_SolverType.SGD]: 'SGD',
  [SolverParameter_SolverType.NESTEROV]: 'Nesterov',
  [SolverParameter_SolverType.ADAGRAD]: 'AdaGrad',
  [SolverParameter_SolverType.RMSPROP]: 'RMSProp',
  [SolverParameter_SolverType.ADADELTA]: 'AdaDelta',
  [SolverParameter_SolverType.ADAM]: 'Adam',
};

/**
 * The solver type `param` asks for: `type` (default "SGD"), or the deprecated `solver_type` enum
 * upgraded as Caffe's UpgradeSolverType does. Giving both is an error, as in Caffe.
 */
export function solverTypeOf(param: SolverParameter): string {
  const hasEnum = hasField(param, 'solver_type');
  if (hasEnum && hasField(param, 'type')) {
    throw new SolverConfigError(
      'Failed to upgrade solver: old solver_type field (enum) and new type field (string) cannot be both specified in solver proto text.',
    );
  }
  if (hasEnum) {
    const t = LEGACY_TYPES[param.solver_type];
    if (!t) throw new SolverConfigError(`Unknown SolverParameter solver_type: ${param.solver_type} (known: 0..5, SGD to ADAM)`);
    return t;
  }
  return param.type;
}

/** Build a solver from `param`, choosing the class by its type, in `options.solverRegistry` or the default. */
export function createSolver(param: SolverParameter, options: SolverOptions & { solverRegistry?: SolverRegistry } = {}): Solver {
  const { solverRegistry, ...rest } = options;
  return (solverRegistry ?? defaultSolverRegistry()).create(param, rest);
}

/**
 * As createSolver, but builds the nets with `Net.create`, awaiting data layers' async set-up
 * (use this for nets with Data/ImageData layers).
 */
export async function createSolverAsync(
  param: SolverParameter,
  options: SolverOptions & { solverRegistry?: SolverRegistry } = {},
): Promise<Solver> {
  const { solverRegistry, ...rest } = options;
  const registry = solverRegistry ?? defaultSolverRegistry();
  // Fail on an unknown type before building any net.
  registry.require(solverTypeOf(param));
  const prebuiltNets = rest.prebuiltNets ?? (await buildSolverNets(param, rest));
  return registry.create(param, { ...rest, prebuiltNets });
}

/**
 * Caffe's UpgradeSolverAsNeeded: move the deprecated `solver_type` enum into `type`, in place.
 * Returns whether anything changed.
 */
export function upgradeSolverAsNeeded(param: SolverParameter, file = '<SolverParameter>', { log = true } = {}): boolean {
  if (!hasField(param, 'solver_type')) return false;
  const l = log ? logger('upgrade_proto.cpp') : null;
  l?.info(`Attempting to upgrade input file specified using deprecated 'solver_type' field (enum)': ${file}`);
  const type = solverTypeOf(param);
  param.type = type;
  delete (param as { solver_type?: unknown }).solver_type;
  l?.info("Successfully upgraded file specified using deprecated 'solver_type' field (enum) to 'type' field (string).");
  l?.warn("Note that future Caffe releases will only support 'type' field (string) for a solver's type.");
  return true;
}
