import type { Blob, DType, Rng } from '@caffe-ts/blob';
import type { LayerParameter, Phase } from '@caffe-ts/proto';
import { LayerError } from '../errors.js';
import { Layer, type LayerContext } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * A Python layer's methods (pycaffe's `caffe.Layer` subclass), implemented in TypeScript on
 * Blobs. Caffe calls `setup` once, then `reshape` before every forward; `forward` writes the
 * tops; `backward` writes the bottom diffs where `propagateDown` asks (and may accumulate into
 * `self.blobs` diffs). The loss comes from the prototxt's `loss_weight`, as in Caffe.
 */
export interface PythonLayerImpl {
  setup?(bottom: Blob[], top: Blob[]): void;
  reshape(bottom: Blob[], top: Blob[]): void;
  forward(bottom: Blob[], top: Blob[]): void;
  /** Omit for a layer that never backpropagates (a data layer); asking it to then fails. */
  backward?(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void;
  /**
   * Asynchronous work before the next forward (a data layer reading its next batch): the net's
   * and the solver's `prepare` await it, as they await Caffe-ts's own data layers.
   */
  prepare?(): Promise<void>;
}

/** pycaffe's `self` attributes, handed to the factory alongside `param_str`. */
export interface PythonLayerSelf {
  /** The layer's name in the net. */
  readonly name: string;
  /** `self.param_str`: python_param.param_str, verbatim. */
  readonly paramStr: string;
  /** `self.phase`. */
  readonly phase: Phase;
  readonly dtype: DType;
  readonly rng: Rng;
  /** `self.blobs`: the learnable parameters the net saves, shares and updates. */
  readonly blobs: Blob[];
  /** `self.blobs.add_blob(*shape)`: a new learnable parameter blob (zeros), appended to `blobs`. */
  addBlob(shape: readonly number[]): Blob;
  /** A scratch blob with the layer's dtype (not a parameter). */
  newBlob(shape?: readonly number[]): Blob;
  /** Throw a LayerError naming the layer and its module.layer. */
  fail(message: string): never;
}

/** Builds an implementation for one layer of a net (pycaffe constructs one object per layer). */
export type PythonLayerFactory = (paramStr: string, self: PythonLayerSelf) => PythonLayerImpl;

const key = (module: string, layer: string) => `${module}.${layer}`;

/** Implementations of Python layers by `python_param { module layer }`. */
export class PythonLayerRegistry {
  private readonly factories = new Map<string, PythonLayerFactory>();

  register(module: string, layer: string, factory: PythonLayerFactory, { override = false }: { override?: boolean } = {}): void {
    if (!module || !layer) {
      throw new LayerError(`registerPythonLayer needs a module and a layer name (got module '${module}', layer '${layer}')`);
    }
    const k = key(module, layer);
    if (this.factories.has(k) && !override) throw new LayerError(`Python layer ${k} already registered.`);
    this.factories.set(k, factory);
  }

  unregister(module: string, layer: string): boolean {
    return this.factories.delete(key(module, layer));
  }

  has(module: string, layer: string): boolean {
    return this.factories.has(key(module, layer));
  }

  get(module: string, layer: string): PythonLayerFactory | undefined {
    return this.factories.get(key(module, layer));
  }

  /** Registered `module.layer` names, sorted. */
  names(): string[] {
    return [...this.factories.keys()].sort();
  }
}

const DEFAULT_PYTHON_REGISTRY = Symbol.for('caffe-ts.pythonLayerRegistry');

/** The process-wide Python layer registry, shared by every copy of this package. */
export function defaultPythonLayerRegistry(): PythonLayerRegistry {
  const g = globalThis as Record<symbol, unknown>;
  let reg = g[DEFAULT_PYTHON_REGISTRY] as PythonLayerRegistry | undefined;
  if (!reg) {
    reg = new PythonLayerRegistry();
    g[DEFAULT_PYTHON_REGISTRY] = reg;
  }
  return reg;
}

/**
 * Register the TypeScript implementation of the Python layer a prototxt names with
 * `python_param { module: "<module>" layer: "<layer>" }`, in the process-wide registry.
 * Registering the same pair again throws unless `override` is set.
 */
export function registerPythonLayer(
  module: string,
  layer: string,
  factory: PythonLayerFactory,
  options: { override?: boolean } = {},
): void {
  defaultPythonLayerRegistry().register(module, layer, factory, options);
}

export function unregisterPythonLayer(module: string, layer: string): boolean {
  return defaultPythonLayerRegistry().unregister(module, layer);
}

/**
 * Caffe's PythonLayer (type "Python"): runs the implementation registered for its
 * `python_param { module layer }`. caffe-ts never runs Python code, so every Python layer a
 * prototxt uses needs a TypeScript port registered with registerPythonLayer.
 */
export class PythonLayer extends Layer {
  readonly type = 'Python';
  /** `module.layer`, as the prototxt names it. */
  readonly pythonName: string;
  private readonly impl: PythonLayerImpl;

  constructor(param: LayerParameter, context: LayerContext = {}, registry: PythonLayerRegistry = defaultPythonLayerRegistry()) {
    super(param, context);
    const pp = param.python_param;
    if (!pp || !pp.module || !pp.layer) {
      this.fail(
        `needs python_param { module: "..." layer: "..." } naming the implementation ` +
          `(got ${pp ? `module '${pp.module}', layer '${pp.layer}'` : 'no python_param'})`,
      );
    }
    this.pythonName = key(pp.module, pp.layer);
    const factory = registry.get(pp.module, pp.layer);
    if (!factory) {
      const known = registry.names();
      this.fail(
        `no TypeScript implementation is registered for python_param { module: "${pp.module}" layer: "${pp.layer}" }. ` +
          `caffe-ts never runs Python code: ` +
          `port the layer to TypeScript and register it before building the net, with ` +
          `registerPythonLayer('${pp.module}', '${pp.layer}', (paramStr, self) => ({ setup, reshape, forward, backward })) ` +
          `from @caffe-ts/layers (registered Python layers: ${known.length > 0 ? known.join(', ') : 'none'})`,
      );
    }
    const self = this.makeSelf(pp.param_str);
    this.impl = this.guard('construction', () => factory(pp.param_str, self));
    if (!this.impl || typeof this.impl.reshape !== 'function' || typeof this.impl.forward !== 'function') {
      this.fail('its factory must return an object with reshape(bottom, top) and forward(bottom, top)');
    }
    const prepare = this.impl.prepare;
    if (typeof prepare === 'function') {
      // Only layers with asynchronous work are preparable, as Layer.prepare's absence says.
      this.prepare = async () => {
        try {
          await prepare.call(this.impl);
        } catch (e) {
          this.rethrow('prepare', e);
        }
      };
    }
  }

  /** The object the registered factory built (pycaffe's Python layer object, e.g. for set_roidb). */
  get implementation(): PythonLayerImpl {
    return this.impl;
  }

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    const setup = this.impl.setup;
    if (setup) this.guard('setup', () => setup.call(this.impl, bottom, top));
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    this.guard('reshape', () => this.impl.reshape(bottom, top));
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    this.guard('forward', () => this.impl.forward(bottom, top));
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const backward = this.impl.backward;
    if (!backward) {
      super.backwardCpu(top, propagateDown, bottom);
      return;
    }
    this.guard('backward', () => backward.call(this.impl, top, propagateDown, bottom));
  }

  protected override fail(message: string): never {
    const who = this.pythonName ? ` (${this.pythonName})` : '';
    throw new LayerError(`${this.type} layer '${this.name}'${who}: ${message}`);
  }

  private makeSelf(paramStr: string): PythonLayerSelf {
    const layer = this; // the getters below must see later changes to layer.blobs
    return {
      name: layer.name,
      paramStr,
      phase: layer.phase,
      dtype: layer.dtype,
      rng: layer.rng,
      get blobs() {
        return layer.blobs;
      },
      addBlob(shape) {
        const b = layer.newBlob(shape);
        layer.blobs.push(b);
        return b;
      },
      newBlob: (shape = []) => layer.newBlob(shape),
      fail: (message) => layer.fail(message),
    };
  }

  /** Errors from the implementation name the layer and its module.layer (Caffe prints the Python traceback). */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      this.rethrow(what, e);
    }
  }

  private rethrow(what: string, e: unknown): never {
    if (e instanceof LayerError) throw e;
    const message = e instanceof Error ? e.message : String(e);
    throw new LayerError(`${this.type} layer '${this.name}' (${this.pythonName}): ${what} failed: ${message}`, { cause: e });
  }
}

/** The "Python" type, resolving implementations from the process-wide registry. */
export const pythonLayerDef: LayerDef<PythonLayer> = { type: 'Python', create: (p, ctx) => new PythonLayer(p, ctx) };

/** A "Python" layer def bound to a registry of its own (tests, or apps keeping plugins apart). */
export function pythonLayerDefFor(registry: PythonLayerRegistry): LayerDef<PythonLayer> {
  return { type: 'Python', create: (p, ctx) => new PythonLayer(p, ctx, registry) };
}
