import { CaffeError } from '@caffe-ts/proto';
import type { Blob } from '../blob.js';
import { globalRng, type Rng } from '../rng.js';
import { bilinearFillerDef } from './bilinear-filler.js';
import { constantFillerDef } from './constant-filler.js';
import { resolveFillerParams, type FillerDef, type FillerSpec } from './filler.js';
import { gaussianFillerDef } from './gaussian-filler.js';
import { msraFillerDef } from './msra-filler.js';
import { positiveUnitballFillerDef } from './positive-unitball-filler.js';
import { uniformFillerDef } from './uniform-filler.js';
import { xavierFillerDef } from './xavier-filler.js';

export class UnknownFillerTypeError extends CaffeError {
  override readonly name: string = 'UnknownFillerTypeError';
}

/** Registering a type twice without `override`, or unregistering one that is not there. */
export class FillerRegistryError extends CaffeError {
  override readonly name: string = 'FillerRegistryError';
}

/** Caffe's seven fillers, in filler.hpp order. */
export const builtinFillerDefs: readonly FillerDef[] = [
  constantFillerDef,
  gaussianFillerDef,
  positiveUnitballFillerDef,
  uniformFillerDef,
  xavierFillerDef,
  msraFillerDef,
  bilinearFillerDef,
];

/**
 * Filler types by name: Caffe's GetFiller if/else chain made pluggable. `new FillerRegistry()`
 * starts with the built-ins; pass `{ builtins: false }` for an empty one.
 */
export class FillerRegistry {
  private readonly defs = new Map<string, FillerDef>();

  constructor({ builtins = true }: { builtins?: boolean } = {}) {
    if (builtins) for (const def of builtinFillerDefs) this.register(def);
  }

  register(def: FillerDef, { override = false }: { override?: boolean } = {}): void {
    if (this.defs.has(def.type) && !override) throw new FillerRegistryError(`Filler type ${def.type} already registered.`);
    this.defs.set(def.type, def);
  }

  unregister(type: string): void {
    if (!this.defs.delete(type)) throw new FillerRegistryError(`Filler type ${type} is not registered.`);
  }

  has(type: string): boolean {
    return this.defs.has(type);
  }

  get(type: string): FillerDef {
    const def = this.defs.get(type);
    if (!def) throw new UnknownFillerTypeError(`Unknown filler type: ${type} (known types: ${this.types().join(', ')})`);
    return def;
  }

  types(): string[] {
    return [...this.defs.keys()];
  }

  /** Fill blob's data as `spec` says; a null spec means constant 0 (an absent weight_filler). */
  fill(blob: Blob, spec: FillerSpec | null | undefined, rng: Rng = globalRng()): void {
    const param = resolveFillerParams(spec);
    this.get(param.type).fill(blob, param, rng);
  }
}

const DEFAULT_KEY = Symbol.for('caffe-ts.fillerRegistry');

/** The process-wide registry, shared through globalThis by every copy of this package. */
export function defaultFillerRegistry(): FillerRegistry {
  const g = globalThis as Record<symbol, unknown>;
  let r = g[DEFAULT_KEY] as FillerRegistry | undefined;
  if (!r) {
    r = new FillerRegistry();
    g[DEFAULT_KEY] = r;
  }
  return r;
}

/**
 * Fill blob's data from a FillerParameter (Caffe's GetFiller(param)->Fill(blob)). A null param
 * means constant 0, what an absent weight_filler gives in Caffe.
 */
export function fillBlob(
  blob: Blob,
  param: FillerSpec | null | undefined,
  rng: Rng = globalRng(),
  registry: FillerRegistry = defaultFillerRegistry(),
): void {
  registry.fill(blob, param, rng);
}
