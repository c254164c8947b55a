/**
 * NetSpec: write a net definition in code, the way pycaffe's `caffe.net_spec` does.
 *
 * ```ts
 * const n = new NetSpec();
 * n.data = L.Input({ shape: [{ dim: [1, 1, 28, 28] }] });
 * n.conv1 = L.Convolution(n.data, { kernel_size: 5, num_output: 20, weight_filler: { type: 'xavier' } });
 * n.relu1 = L.ReLU(n.conv1, { in_place: true });
 * const param = n.toProto(); // a NetParameter; printText('NetParameter', param) gives prototxt
 * ```
 *
 * Semantics follow pycaffe: a top is named by the NetSpec property it is assigned to, unnamed
 * tops get `<Type><k>` (Convolution1, …), a layer takes the name of its first top, `in_place`
 * makes the tops equal the bottoms, `ntop` sets the number of tops (0 gives a layer with none).
 * Keyword values go into the layer's `<type>_param` message when that message has the field
 * (the mapping is read from caffe.proto, so InnerProduct → inner_product_param, LRN →
 * lrn_param, ReLU → relu_param), into the LayerParameter otherwise; keys ending in `param`
 * always go to the LayerParameter. A single value given for a repeated field is wrapped.
 */
import {
  createMessage,
  lookupType,
  type AccuracyParameter,
  type BatchNormParameter,
  type ConcatParameter,
  type ConvolutionParameter,
  type DataParameter,
  type DropoutParameter,
  type EltwiseParameter,
  type FlattenParameter,
  type InnerProductParameter,
  type InputParameter,
  type LayerParameter,
  type LossParameter,
  type LRNParameter,
  type NetParameter,
  type PoolingParameter,
  type ReLUParameter,
  type ReshapeParameter,
  type ScaleParameter,
  type SliceParameter,
  type SoftmaxParameter,
} from '@caffe-ts/proto';
import { NetError } from './errors.js';

/** The plain-object form of a proto message: every field optional, enums by number or name. */
export type ProtoInit<T> = {
  [K in keyof T]?: T[K] extends readonly (infer U)[] ? InitValue<U> | InitValue<U>[] : InitValue<NonNullable<T[K]>>;
};
type InitValue<V> = V extends number ? number | string : V extends Uint8Array ? Uint8Array : V extends object ? ProtoInit<V> : V;

/** Arguments every layer function takes, besides its own `<type>_param` fields. */
export interface LayerArgs extends ProtoInit<Omit<LayerParameter, 'name' | 'type' | 'bottom' | 'top'>> {
  /** Number of tops (default 1). 0 returns the layer itself, more returns an array of tops. */
  ntop?: number;
  /** Write the result into the bottoms (ReLU, Dropout, …): the tops are the bottoms. */
  in_place?: boolean;
  /** Layer name; by default the name of its first top. */
  name?: string;
}

/** One output of a layer function. Assign it to a NetSpec property to name it. */
export class Top {
  constructor(
    readonly fn: LayerFunction,
    readonly index: number,
  ) {}

  /** A NetParameter holding this top's layer and everything it depends on. */
  toProto(): NetParameter {
    return topsToProto([this]);
  }
}

/** A layer call: its type, inputs and keyword arguments (pycaffe's `Function`). */
export class LayerFunction {
  readonly ntop: number;
  readonly inPlace: boolean;
  readonly tops: readonly Top[];
  readonly params: Readonly<Record<string, unknown>>;

  constructor(
    readonly type: string,
    readonly inputs: readonly Top[],
    args: Readonly<Record<string, unknown>> = {},
  ) {
    const { ntop, in_place, ...rest } = args;
    this.ntop = ntop === undefined ? 1 : (ntop as number);
    if (!Number.isInteger(this.ntop) || this.ntop < 0) throw new NetError(`${type}: ntop must be a non-negative integer, got ${String(ntop)}`);
    this.inPlace = in_place === true;
    this.params = rest;
    this.tops = Array.from({ length: this.ntop }, (_, i) => new Top(this, i));
    for (const [i, b] of inputs.entries()) {
      if (!(b instanceof Top)) throw new NetError(`${type}: bottom ${i} is not a Top (got ${typeof b}); pass the tops first, then one options object`);
    }
  }
}

type ParamFor<T> = ProtoInit<T> & LayerArgs;

/** The typed layer functions for common types; any other type name works as an untyped call. */
export interface KnownLayers {
  Input(args: ParamFor<InputParameter>): Top;
  Data(args: ParamFor<DataParameter>): Top[];
  Convolution(bottom: Top, args: ParamFor<ConvolutionParameter>): Top;
  Deconvolution(bottom: Top, args: LayerArgs): Top;
  InnerProduct(bottom: Top, args: ParamFor<InnerProductParameter>): Top;
  Pooling(bottom: Top, args: ParamFor<PoolingParameter>): Top;
  ReLU(bottom: Top, args?: ParamFor<ReLUParameter>): Top;
  Dropout(bottom: Top, args?: ParamFor<DropoutParameter>): Top;
  LRN(bottom: Top, args?: ParamFor<LRNParameter>): Top;
  BatchNorm(bottom: Top, args?: ParamFor<BatchNormParameter>): Top;
  Scale(bottom: Top, args?: ParamFor<ScaleParameter>): Top;
  Softmax(bottom: Top, args?: ParamFor<SoftmaxParameter>): Top;
  Flatten(bottom: Top, args?: ParamFor<FlattenParameter>): Top;
  Reshape(bottom: Top, args: ParamFor<ReshapeParameter>): Top;
  Concat(...args: [...Top[], ParamFor<ConcatParameter>] | Top[]): Top;
  Eltwise(...args: [...Top[], ParamFor<EltwiseParameter>] | Top[]): Top;
  Slice(bottom: Top, args: ParamFor<SliceParameter>): Top[];
  SoftmaxWithLoss(...args: [...Top[], ParamFor<LossParameter>] | Top[]): Top;
  Accuracy(...args: [...Top[], ParamFor<AccuracyParameter>] | Top[]): Top;
}

/** A layer function: tops first, then at most one options object. */
export type LayerFn = (...args: (Top | LayerArgs | Record<string, unknown>)[]) => Top | Top[] | LayerFunction;

/**
 * Layer functions by Caffe type name (pycaffe's `L`): `L.Convolution(bottom, {...})`.
 * One top gives a Top, `ntop: k > 1` an array, `ntop: 0` the LayerFunction itself.
 */
export const L: KnownLayers & Record<string, LayerFn> = new Proxy({} as KnownLayers & Record<string, LayerFn>, {
  get(_target, prop) {
    if (typeof prop !== 'string') return undefined;
    return (...args: unknown[]) => {
      const last = args[args.length - 1];
      const hasOpts = args.length > 0 && !(last instanceof Top) && typeof last === 'object' && last !== null && !Array.isArray(last);
      const inputs = (hasOpts ? args.slice(0, -1) : args) as Top[];
      const fn = new LayerFunction(prop, inputs, hasOpts ? (last as Record<string, unknown>) : {});
      if (fn.ntop === 0) return fn;
      return fn.ntop === 1 ? fn.tops[0] : [...fn.tops];
    };
  },
});

/**
 * Enum values by parameter message and name (pycaffe's `P`): `P.Pooling.MAX` is
 * PoolingParameter.PoolMethod.MAX, `P.Eltwise.SUM`, `P.Phase.TRAIN` (top-level enums too).
 */
export const P: Record<string, Record<string, number>> = new Proxy({} as Record<string, Record<string, number>>, {
  get(_target, prop) {
    if (typeof prop !== 'string') return undefined;
    return enumValues(prop);
  },
});

interface ReflectEnum {
  values: Record<string, number>;
}
interface ReflectField {
  name: string;
  repeated: boolean;
  resolvedType: unknown;
}
interface ReflectType {
  name: string;
  fields: Record<string, ReflectField>;
  nestedArray: unknown[];
  parent: { nestedArray?: unknown[]; lookupEnum?: (n: string) => ReflectEnum } | null;
}

function isEnum(x: unknown): x is ReflectEnum {
  return typeof x === 'object' && x !== null && 'values' in x && !('fields' in x);
}

const enumCache = new Map<string, Record<string, number>>();

function enumValues(name: string): Record<string, number> {
  const hit = enumCache.get(name);
  if (hit) return hit;
  const out: Record<string, number> = {};
  let type: ReflectType | null = null;
  try {
    type = lookupType(`${name}Parameter`) as unknown as ReflectType;
  } catch {
    type = null;
  }
  if (type) {
    for (const n of type.nestedArray) if (isEnum(n)) Object.assign(out, n.values);
  } else {
    // Top-level enums such as Phase live beside the messages.
    const root = lookupType('NetParameter') as unknown as ReflectType;
    const e = root.parent?.nestedArray?.find((n) => isEnum(n) && (n as { name?: string }).name === name);
    if (!e || !isEnum(e)) throw new NetError(`P.${name}: no ${name}Parameter message nor top-level enum ${name} in caffe.proto`);
    Object.assign(out, e.values);
  }
  const frozen = Object.freeze(out);
  enumCache.set(name, frozen);
  return frozen;
}

let paramNames: Map<string, string> | null = null;

/**
 * Layer type → `<x>_param` field, read from LayerParameter as pycaffe's param_name_dict does:
 * a field `foo_param` of type `BarParameter` maps type Bar to foo (InnerProduct → inner_product,
 * ReLU → relu, LRN → lrn). Deconvolution has no message of its own and shares Convolution's.
 */
export function layerParamField(type: string): string | undefined {
  if (!paramNames) {
    paramNames = new Map();
    const layer = lookupType('LayerParameter') as unknown as ReflectType;
    for (const f of Object.values(layer.fields)) {
      const t = f.resolvedType as { name?: string; fields?: unknown } | null;
      if (f.name.endsWith('_param') && t?.fields && t.name?.endsWith('Parameter')) {
        paramNames.set(t.name.slice(0, -'Parameter'.length), f.name);
      }
    }
    paramNames.set('Deconvolution', 'convolution_param');
  }
  return paramNames.get(type);
}

function fieldOf(typeName: string, name: string): ReflectField | undefined {
  const t = lookupType(typeName) as unknown as ReflectType;
  return Object.prototype.hasOwnProperty.call(t.fields, name) ? t.fields[name] : undefined;
}

/** Put `value` into `obj[key]`, wrapping single values for repeated fields (assign_proto). */
function assign(target: Record<string, unknown>, typeName: string, key: string, value: unknown): void {
  const f = fieldOf(typeName, key);
  target[key] = f?.repeated && !Array.isArray(value) && !ArrayBuffer.isView(value) ? [value] : value;
}

/** Wraps single values for repeated fields all the way down, so nested dicts follow assign_proto too. */
function normalize(typeName: string, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const f = fieldOf(typeName, k);
    const sub = f?.resolvedType as { fields?: unknown; fullName?: string } | null | undefined;
    const norm = (x: unknown): unknown =>
      sub?.fields && sub.fullName && typeof x === 'object' && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x)
        ? normalize(sub.fullName.replace(/^\./, ''), x as Record<string, unknown>)
        : x;
    if (f?.repeated) out[k] = Array.isArray(v) ? v.map(norm) : ArrayBuffer.isView(v) ? v : [norm(v)];
    else out[k] = norm(v);
  }
  return out;
}

function buildLayers(entries: [string | null, Top][]): LayerParameter[] {
  const names = new Map<Top | LayerFunction, string>();
  for (const [name, top] of entries) if (name !== null && !names.has(top)) names.set(top, name);
  const autonames = new Map<string, number>();
  const layers = new Map<LayerFunction, LayerParameter>();

  const autoname = (type: string): string => {
    const k = (autonames.get(type) ?? 0) + 1;
    autonames.set(type, k);
    return `${type}${k}`;
  };
  const topName = (top: Top): string => {
    let n = names.get(top);
    if (n === undefined) {
      n = autoname(top.fn.type);
      names.set(top, n);
    }
    return n;
  };
  const fnName = (fn: LayerFunction): string => {
    let n = names.get(fn);
    if (n === undefined) {
      n = fn.ntop > 0 ? topName(fn.tops[0]!) : autoname(fn.type);
      names.set(fn, n);
    }
    return n;
  };

  const visit = (fn: LayerFunction): void => {
    if (layers.has(fn)) return;
    const bottoms: string[] = [];
    for (const input of fn.inputs) {
      visit(input.fn);
      bottoms.push(layers.get(input.fn)!.top[input.index]!);
    }
    const tops = fn.inPlace ? [...bottoms] : fn.tops.map(topName);
    const { name: explicitName, ...params } = fn.params;
    const props: Record<string, unknown> = {
      name: typeof explicitName === 'string' ? explicitName : fnName(fn),
      type: fn.type,
      bottom: bottoms,
      top: tops,
    };
    const paramField = layerParamField(fn.type);
    const typeParams: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined) continue;
      if (!k.endsWith('param') && paramField && fieldOf(lookupParamType(paramField), k)) {
        assign(typeParams, lookupParamType(paramField), k, v);
      } else if (fieldOf('LayerParameter', k)) {
        assign(props, 'LayerParameter', k, v);
      } else {
        const where = paramField ? `${paramField} nor LayerParameter` : 'LayerParameter';
        throw new NetError(`layer '${String(props.name)}' (${fn.type}): unknown argument '${k}' (not a field of ${where})`);
      }
    }
    if (paramField && Object.keys(typeParams).length > 0) {
      const prior = (props[paramField] ?? {}) as Record<string, unknown>;
      props[paramField] = { ...prior, ...typeParams };
    }
    try {
      layers.set(fn, createMessage<LayerParameter>('LayerParameter', normalize('LayerParameter', props)));
    } catch (e) {
      throw new NetError(`layer '${String(props.name)}' (${fn.type}): ${(e as Error).message}`, { cause: e });
    }
  };

  for (const [, top] of entries) visit(top.fn);
  return [...layers.values()];
}

function lookupParamType(field: string): string {
  const f = fieldOf('LayerParameter', field)!;
  return (f.resolvedType as { fullName: string }).fullName.replace(/^\./, '');
}

function topsToProto(tops: Top[]): NetParameter {
  return createMessage<NetParameter>('NetParameter', { layer: buildLayers(tops.map((t) => [null, t])) });
}

/** Build a NetParameter from tops that need not be assigned to a NetSpec (pycaffe's `to_proto`). */
export function toProto(...tops: Top[]): NetParameter {
  return topsToProto(tops);
}

/**
 * A net under construction: assign tops to properties (`n.conv1 = L.Convolution(...)`) and call
 * `toProto()`. Properties keep their assignment order, which is the layers' order.
 */
export class NetSpecCore {
  /** The named tops, in assignment order. */
  readonly tops = new Map<string, Top>();

  constructor() {
    // A Proxy so that `n.name = top` records the top (pycaffe's __setattr__).
    return new Proxy(this, {
      set(target, prop, value) {
        if (typeof prop === 'string' && value instanceof Top) {
          target.tops.set(prop, value);
          return true;
        }
        if (typeof prop === 'string' && Array.isArray(value) && value.length > 0 && value.every((v) => v instanceof Top)) {
          throw new NetError(`NetSpec.${prop}: a layer with ntop=${value.length} returns several tops; assign them one by one (n.a = tops[0]; n.b = tops[1])`);
        }
        return Reflect.set(target, prop, value);
      },
      get(target, prop, receiver) {
        if (typeof prop === 'string' && target.tops.has(prop)) return target.tops.get(prop);
        return Reflect.get(target, prop, receiver);
      },
      has(target, prop) {
        return (typeof prop === 'string' && target.tops.has(prop)) || Reflect.has(target, prop);
      },
    });
  }

  /** Look up a named top (typed access for `n.conv1`). */
  top(name: string): Top {
    const t = this.tops.get(name);
    if (!t) throw new NetError(`NetSpec has no top '${name}' (has: ${[...this.tops.keys()].join(', ') || 'none'})`);
    return t;
  }

  /** The NetParameter: one LayerParameter per layer function reached from the named tops. */
  toProto(name?: string): NetParameter {
    const layers = buildLayers([...this.tops.entries()]);
    return createMessage<NetParameter>('NetParameter', name === undefined ? { layer: layers } : { name, layer: layers });
  }
}

/** A NetSpec: its methods plus one Top property per assigned name. */
export type NetSpec = NetSpecCore & { [name: string]: Top };
/** `new NetSpec()`: see NetSpecCore for the methods. */
export const NetSpec = NetSpecCore as new () => NetSpec;
