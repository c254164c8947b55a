import { CaffeError } from '@caffe-ts/proto';
import type { Blob } from './blob.js';
import { newTransferStats, type DeviceAllocator, type TransferStats } from './device.js';

/**
 * The contract a compute backend fulfils (specification v1). Layers always have a host path
 * (`forwardCpu`/`backwardCpu` over the CPU math in this package); a backend with a device
 * supplies device memory and may supply whole-layer kernels keyed by Caffe type, which the
 * Layer base class prefers over the host path. A layer without a kernel on a device backend
 * is an error unless the caller opted into CPU fallback, which is counted.
 */
export interface Backend {
  readonly specificationVersion: 'v1';
  readonly name: string;
  /** Device memory for blobs; null for host-only backends such as 'cpu'. */
  readonly device: DeviceAllocator | null;
  /** A device implementation of a whole layer type, if this backend has one. */
  layerKernel?(type: string): unknown;
  /** Whether layers without a kernel may run on the host (opt-in, counted, warned once). */
  readonly allowCpuFallback?: boolean;
  /** How a user turns that fallback on, for the error a layer without a kernel gives (e.g. an environment variable). */
  readonly cpuFallbackHint?: string;
  /** Solver math on the device, so a training step needs no parameter round trip (optional). */
  readonly solverOps?: DeviceSolverOps;
  /**
   * Frees what the backend keeps for one layer outside the layer's own fields (device scratch,
   * per-layer kernel state); Layer.dispose calls it (optional).
   */
  releaseLayer?(layer: object): void;
  stats(): BackendStats;
}

/** One SGD step's settings for a param (Caffe's SGDSolver: normalize → regularize → update). */
export interface SgdStepSettings {
  /** rate · lr_mult. */
  localRate: number;
  momentum: number;
  /** weight_decay · decay_mult (0: no regularization). */
  localDecay: number;
  regularization: 'L1' | 'L2';
  /** 1 / iter_size: undoes the accumulation of iter_size backward passes. */
  diffScale: number;
}

/**
 * Solver steps a device backend runs where the params live. Solvers and nets use them when the
 * net's backend has them and fall back to host math (with transfers) otherwise.
 */
export interface DeviceSolverOps {
  /** diff ← 0 without reading the diff back (Net.clearParamDiffs). */
  clearDiff(param: Blob): void;
  /**
   * g ← diffScale·g + localDecay·(w for L2 | sign(w) for L1); h ← localRate·g + momentum·h;
   * diff ← h; data ← data − h. `history` is a blob of the same count on the same device.
   */
  sgdStep(param: Blob, history: Blob, step: SgdStepSettings): void;
}

export interface BackendStats extends TransferStats {
  /** Layer runs that fell back to the host path, by layer type. */
  cpuFallbacks: Record<string, number>;
}

export class BackendError extends CaffeError {
  override readonly name: string = 'BackendError';
}

/** The default backend: host memory, kernels in this package's CPU math. */
export function createCpuBackend(): Backend {
  const stats = newTransferStats();
  return {
    specificationVersion: 'v1',
    name: 'cpu',
    device: null,
    stats: () => ({ ...stats, cpuFallbacks: {} }),
  };
}

type BackendFactory = () => Backend | Promise<Backend>;
interface BackendEntry {
  factory: BackendFactory;
  priority: number;
  instance?: Backend;
}

const REGISTRY_KEY = Symbol.for('caffe-ts.backendRegistry');

function registry(): Map<string, BackendEntry> {
  const g = globalThis as Record<symbol, unknown>;
  let reg = g[REGISTRY_KEY] as Map<string, BackendEntry> | undefined;
  if (!reg) {
    reg = new Map([['cpu', { factory: createCpuBackend, priority: 0 }]]);
    g[REGISTRY_KEY] = reg;
  }
  return reg;
}

/** Register a backend factory (lazy, possibly async). Higher priority wins as the default. */
export function registerBackend(name: string, factory: BackendFactory, priority = 1, { override = false } = {}): void {
  const reg = registry();
  if (reg.has(name) && !override) throw new BackendError(`Backend '${name}' is already registered.`);
  reg.set(name, { factory, priority });
}

export function registeredBackends(): string[] {
  return [...registry().keys()];
}

/** The backend called `name` (instantiated once), or the CPU backend. */
export async function getBackend(name = 'cpu'): Promise<Backend> {
  const entry = registry().get(name);
  if (!entry) {
    throw new BackendError(`Backend '${name}' not found in registry (known backends: ${registeredBackends().join(', ')})`);
  }
  entry.instance ??= await entry.factory();
  return entry.instance;
}

let cpuSingleton: Backend | null = null;
/** The CPU backend, synchronously (it needs no initialisation). */
export function cpuBackend(): Backend {
  cpuSingleton ??= createCpuBackend();
  return cpuSingleton;
}
