import type { LayerParameter } from '@caffe-ts/proto';
import { LayerError, UnknownLayerTypeError } from './errors.js';
import type { Layer, LayerContext } from './layer.js';

/** Everything the registry needs to know about a layer type; plain data, one per layer file. */
export interface LayerDef<L extends Layer = Layer> {
  /** The exact Caffe prototxt type string, e.g. 'InnerProduct'. */
  type: string;
  create(param: LayerParameter, context: LayerContext): L;
  /**
   * Asynchronous preparation before a layer of this type can be set up synchronously, e.g. a
   * data layer opening its database to learn the datum shape. `Net.create` awaits it.
   */
  prime?(param: LayerParameter, context: LayerContext): Promise<void>;
}

/** Maps Caffe type strings to layer definitions (Caffe's LayerRegistry, as an object). */
export class LayerRegistry {
  private readonly defs = new Map<string, LayerDef>();

  register(def: LayerDef, { override = false }: { override?: boolean } = {}): void {
    if (this.defs.has(def.type) && !override) throw new LayerError(`Layer type ${def.type} already registered.`);
    this.defs.set(def.type, def);
  }

  unregister(type: string): boolean {
    return this.defs.delete(type);
  }

  has(type: string): boolean {
    return this.defs.has(type);
  }

  get(type: string): LayerDef | undefined {
    return this.defs.get(type);
  }

  /** Registered type strings, sorted. */
  types(): string[] {
    return [...this.defs.keys()].sort();
  }

  create(param: LayerParameter, context: LayerContext = {}): Layer {
    const def = this.defs.get(param.type);
    if (!def) {
      throw new UnknownLayerTypeError(
        `Unknown layer type: ${param.type} (known types: ${this.types().join(', ')})` +
          (param.name ? ` in layer '${param.name}'` : ''),
      );
    }
    return def.create(param, context);
  }
}

const DEFAULT_REGISTRY = Symbol.for('caffe-ts.layerRegistry');

/** The process-wide registry, shared by every copy of this package. */
export function defaultLayerRegistry(): LayerRegistry {
  const g = globalThis as Record<symbol, unknown>;
  let reg = g[DEFAULT_REGISTRY] as LayerRegistry | undefined;
  if (!reg) {
    reg = new LayerRegistry();
    g[DEFAULT_REGISTRY] = reg;
  }
  return reg;
}
