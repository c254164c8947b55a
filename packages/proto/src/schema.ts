/**
 * The caffe.proto reflection root and the per-type facts the text parser, printer and
 * createMessage need, computed once per type and cached.
 *
 * Messages are protobufjs reflection instances (`new type.ctor()`): their prototype carries the
 * schema defaults, so `msg.bias_term` reads `true` until set. We patch those prototype defaults
 * so they follow our value conventions everywhere: 64-bit ints are numbers (never Long), bytes
 * are Uint8Array, and float fields hold float32-rounded values as C++ Caffe would.
 */
import protobuf from 'protobufjs';
import { ProtoSchemaError } from './errors.js';
import { CAFFE_PROTO_TEXT } from './generated/caffe-proto.js';

/** A message instance: fields by snake_case name. */
export type Message = Record<string, unknown>;

export type ScalarKind =
  | 'double'
  | 'float'
  | 'int32'
  | 'uint32'
  | 'sint32'
  | 'fixed32'
  | 'sfixed32'
  | 'int64'
  | 'uint64'
  | 'sint64'
  | 'fixed64'
  | 'sfixed64'
  | 'bool'
  | 'string'
  | 'bytes';

export type FieldKind = ScalarKind | 'enum' | 'message';

export interface EnumInfo {
  /** e.g. `caffe.PoolingParameter.PoolMethod` */
  readonly fullName: string;
  readonly byName: ReadonlyMap<string, number>;
  readonly nameOf: ReadonlyMap<number, string>;
  /** Value names in declaration order. */
  readonly names: readonly string[];
}

export interface FieldInfo {
  readonly name: string;
  readonly id: number;
  readonly kind: FieldKind;
  readonly repeated: boolean;
  readonly required: boolean;
  readonly field: protobuf.Field;
  readonly enumInfo: EnumInfo | null;
  readonly messageType: protobuf.Type | null;
}

export interface TypeInfo {
  readonly type: protobuf.Type;
  /** e.g. `caffe.NetParameter` */
  readonly fullName: string;
  readonly ctor: new () => Message;
  readonly fields: ReadonlyMap<string, FieldInfo>;
  readonly byDeclaration: readonly FieldInfo[];
  readonly byNumber: readonly FieldInfo[];
  readonly required: readonly FieldInfo[];
}

const SCALARS: ReadonlySet<string> = new Set([
  'double', 'float', 'int32', 'uint32', 'sint32', 'fixed32', 'sfixed32',
  'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64', 'bool', 'string', 'bytes',
]);

export const LONG_KINDS: ReadonlySet<string> = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

let root: protobuf.Root | null = null;
let infoCache = new WeakMap<protobuf.Type, TypeInfo>();
const enumCache = new WeakMap<protobuf.Enum, EnumInfo>();
const lookupCache = new Map<string, protobuf.Type>();

/** Normalise a protobufjs Long (or LongBits-like) value to a JS number. */
export function longToNumber(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && typeof (v as { toNumber?: unknown }).toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  if (typeof v === 'bigint') return Number(v);
  return v;
}

function trimName(fullName: string): string {
  return fullName.startsWith('.') ? fullName.slice(1) : fullName;
}

/** Sets each field's default on the type's prototype, following our value conventions. */
export function installDefaults(type: protobuf.Type): void {
  const proto = (type.ctor as unknown as { prototype: Record<string, unknown> }).prototype;
  for (const f of type.fieldsArray) {
    f.resolve();
    let v: unknown = f.defaultValue;
    if (!f.repeated && !f.map) {
      if (LONG_KINDS.has(f.type)) v = longToNumber(v);
      else if (f.type === 'bytes') {
        v = v instanceof Uint8Array && v.length > 0 ? new Uint8Array(v) : Object.freeze(new Uint8Array(0));
      } else if (f.type === 'float' && typeof v === 'number') v = Math.fround(v);
    }
    proto[f.name] = v;
  }
  // protobufjs's toJSON turns 64-bit ints into strings; keep them numbers, like the fields.
  Object.defineProperty(proto, 'toJSON', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function toJSON(this: Message) {
      return type.toObject(this as unknown as protobuf.Message, { longs: Number, bytes: String, json: true });
    },
  });
}

function prepareAll(ns: protobuf.NamespaceBase): void {
  for (const obj of ns.nestedArray) {
    if (obj instanceof protobuf.Type) installDefaults(obj);
    if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) prepareAll(obj);
  }
}

/** The reflection root holding caffe.proto (plus any registered extensions). Built on first use. */
export function caffeRoot(): protobuf.Root {
  if (root) return root;
  const r = protobuf.parse(CAFFE_PROTO_TEXT, new protobuf.Root(), { keepCase: true }).root;
  r.resolveAll();
  prepareAll(r);
  root = r;
  return r;
}

/** Call after changing the schema: drops our caches (protobufjs clears its own on add). */
export function invalidateCaches(): void {
  infoCache = new WeakMap();
  lookupCache.clear();
}

/** Looks up a message type: `'NetParameter'`, `'caffe.NetParameter'` or `'.caffe.NetParameter'`. */
export function lookupType(name: string): protobuf.Type {
  const hit = lookupCache.get(name);
  if (hit) return hit;
  const r = caffeRoot();
  const bare = name.startsWith('.') ? name.slice(1) : name;
  const candidates = bare.includes('.') ? [bare, `caffe.${bare}`] : [`caffe.${bare}`, bare];
  for (const c of candidates) {
    const found = r.lookup(c.split('.'), [protobuf.Type]);
    if (found instanceof protobuf.Type) {
      lookupCache.set(name, found);
      return found;
    }
  }
  throw new ProtoSchemaError(`unknown message type '${name}' (not in caffe.proto or any registered extension)`);
}

export function enumInfo(e: protobuf.Enum): EnumInfo {
  let info = enumCache.get(e);
  if (!info) {
    const byName = new Map<string, number>();
    const nameOf = new Map<number, string>();
    for (const [k, v] of Object.entries(e.values)) {
      byName.set(k, v);
      if (!nameOf.has(v)) nameOf.set(v, k);
    }
    info = { fullName: trimName(e.fullName), byName, nameOf, names: [...byName.keys()] };
    enumCache.set(e, info);
  }
  return info;
}

export function typeInfo(type: protobuf.Type): TypeInfo {
  let info = infoCache.get(type);
  if (info) return info;
  const fields = new Map<string, FieldInfo>();
  const byDeclaration: FieldInfo[] = [];
  for (const f of type.fieldsArray) {
    f.resolve();
    const r = f.resolvedType;
    let kind: FieldKind;
    if (r instanceof protobuf.Type) kind = 'message';
    else if (r instanceof protobuf.Enum) kind = 'enum';
    else if (SCALARS.has(f.type)) kind = f.type as ScalarKind;
    else throw new ProtoSchemaError(`field ${trimName(f.fullName)} has unsupported type ${f.type}`);
    if (f.map) throw new ProtoSchemaError(`map field ${trimName(f.fullName)} is not supported`);
    const fi: FieldInfo = {
      name: f.name,
      id: f.id,
      kind,
      repeated: f.repeated,
      required: f.required,
      field: f,
      enumInfo: r instanceof protobuf.Enum ? enumInfo(r) : null,
      messageType: r instanceof protobuf.Type ? r : null,
    };
    fields.set(f.name, fi);
    byDeclaration.push(fi);
  }
  info = {
    type,
    fullName: trimName(type.fullName),
    ctor: type.ctor as unknown as new () => Message,
    fields,
    byDeclaration,
    byNumber: [...byDeclaration].sort((a, b) => a.id - b.id),
    required: byDeclaration.filter((f) => f.required),
  };
  infoCache.set(type, info);
  return info;
}

export function typeInfoByName(name: string): TypeInfo {
  return typeInfo(lookupType(name));
}

/**
 * Whether a field is present: an own property that is not null/undefined and, for repeated
 * fields, not empty. (Unset fields read their default through the prototype.)
 */
export function hasField(msg: object, name: string): boolean {
  if (!Object.prototype.hasOwnProperty.call(msg, name)) return false;
  const v = (msg as Record<string, unknown>)[name];
  if (v === undefined || v === null) return false;
  const type = (msg as { $type?: unknown }).$type;
  if (type instanceof protobuf.Type) {
    const f = type.fields[name];
    if (f && Object.prototype.hasOwnProperty.call(type.fields, name) && f.repeated) return (v as ArrayLike<unknown>).length > 0;
    return true;
  }
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** Edit distance counting an adjacent swap as one edit, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const m = a.length;
  const n = b.length;
  // Rows i-2, i-1 and i of the optimal-string-alignment table.
  let prev2 = new Array<number>(n + 1).fill(0);
  let prev = new Array<number>(n + 1);
  let cur = new Array<number>(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= m; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a.charCodeAt(i - 1) === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === b.charCodeAt(j - 1)) {
        d = Math.min(d, prev2[j - 2]! + 1);
      }
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[n]!;
}

/** The closest candidate to `name`, if close enough to be a plausible typo. */
export function suggest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const lower = name.toLowerCase();
  for (const c of candidates) {
    if (c.toLowerCase() === lower) return c;
    const d = editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  return bestD <= limit ? best : undefined;
}

/** Appends a "; did you mean 'x'?" hint when one fits. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const s = suggest(name, candidates);
  return s === undefined ? '' : `; did you mean '${s}'?`;
}

export { protobuf };
