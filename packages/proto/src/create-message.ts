/**
 * createMessage: build a message instance from a plain object, checked against the schema.
 *
 * Like protobufjs's fromObject, but values follow our conventions (float fields float32-rounded
 * like the parser does, 64-bit ints as numbers, bytes as Uint8Array) and a bad key or value
 * throws ProtoSchemaError naming the field path instead of being silently coerced.
 */
import { ProtoSchemaError } from './errors.js';
import { didYouMean, longToNumber, typeInfo, typeInfoByName, type FieldInfo, type Message, type TypeInfo } from './schema.js';

const INT32: Record<string, [number, number]> = {
  int32: [-0x80000000, 0x7fffffff],
  sint32: [-0x80000000, 0x7fffffff],
  sfixed32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
  fixed32: [0, 0xffffffff],
};

function bad(path: string, what: string): never {
  throw new ProtoSchemaError(`${path}: ${what}`);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

function coerceScalar(f: FieldInfo, v: unknown, path: string): unknown {
  switch (f.kind) {
    case 'float':
    case 'double': {
      if (typeof v !== 'number') bad(path, `expected a number (${f.kind}), got ${show(v)}`);
      return f.kind === 'float' ? Math.fround(v) : v;
    }
    case 'bool':
      if (typeof v !== 'boolean') bad(path, `expected a boolean, got ${show(v)}`);
      return v;
    case 'string':
      if (typeof v !== 'string') bad(path, `expected a string, got ${show(v)}`);
      return v;
    case 'bytes':
      if (v instanceof Uint8Array) {
        return Object.getPrototypeOf(v) === Uint8Array.prototype ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      }
      if (v instanceof ArrayBuffer) return new Uint8Array(v);
      if (Array.isArray(v) && v.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return Uint8Array.from(v as number[]);
      return bad(path, `expected a Uint8Array (bytes), got ${show(v)}`);
    case 'enum': {
      const e = f.enumInfo!;
      if (typeof v === 'string') {
        const n = e.byName.get(v);
        if (n === undefined) bad(path, `bad value '${v}' for enum ${e.fullName} (expected one of ${e.names.join(', ')})`);
        return n;
      }
      if (typeof v === 'number' && e.nameOf.has(v)) return v;
      return bad(path, `bad value ${show(v)} for enum ${e.fullName} (expected one of ${e.names.join(', ')})`);
    }
    default: {
      // Integer kinds. 64-bit values may arrive as bigint, Long or decimal strings (JSON).
      let n = v;
      if (typeof n === 'bigint' || (typeof n === 'object' && n !== null)) n = longToNumber(n);
      else if (typeof n === 'string' && /^-?\d+$/.test(n) && !(f.kind in INT32)) n = Number(n);
      if (typeof n !== 'number' || !Number.isInteger(n)) bad(path, `expected an integer (${f.kind}), got ${show(v)}`);
      const r = INT32[f.kind];
      if (r ? n < r[0] || n > r[1] : !Number.isSafeInteger(n) || (f.kind.startsWith('u') || f.kind === 'fixed64' ? n < 0 : false)) {
        bad(path, `value ${n} is out of range for ${f.kind}`);
      }
      return n;
    }
  }
}

function coerceMessage(info: TypeInfo, v: unknown, path: string): Message {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(path, `expected an object for ${info.fullName}, got ${show(v)}`);
  // An instance of the right type is taken as is.
  if ((v as { $type?: unknown }).$type === info.type) return v as Message;
  return fillMessage(info, v as Record<string, unknown>, path);
}

function coerce(f: FieldInfo, v: unknown, path: string): unknown {
  if (f.repeated) {
    if (typeof v === 'string' || typeof (v as ArrayLike<unknown> | null)?.length !== 'number') {
      bad(path, `expected an array (repeated ${f.kind}), got ${show(v)}`);
    }
    const src = v as ArrayLike<unknown>;
    // A packed float/double field (BlobProto data) keeps a typed array of its kind, copied once;
    // the binary codec writes it as bytes.
    if (f.field.packed && ((f.kind === 'float' && src instanceof Float32Array) || (f.kind === 'double' && src instanceof Float64Array))) {
      return src.slice();
    }
    const out = new Array<unknown>(src.length);
    if (f.kind === 'float' && src instanceof Float32Array) {
      for (let i = 0; i < src.length; i++) out[i] = src[i];
      return out;
    }
    if (f.kind === 'message') {
      const sub = typeInfo(f.messageType!);
      for (let i = 0; i < src.length; i++) out[i] = coerceMessage(sub, src[i], `${path}[${i}]`);
    } else {
      for (let i = 0; i < src.length; i++) out[i] = coerceScalar(f, src[i], `${path}[${i}]`);
    }
    return out;
  }
  if (f.kind === 'message') return coerceMessage(typeInfo(f.messageType!), v, path);
  return coerceScalar(f, v, path);
}

function fillMessage(info: TypeInfo, props: Readonly<Record<string, unknown>>, path: string): Message {
  const msg = new info.ctor();
  for (const key of Object.keys(props)) {
    const v = props[key];
    if (v === undefined || v === null) continue;
    const f = info.fields.get(key);
    if (!f) {
      throw new ProtoSchemaError(
        `${path === '' ? '' : `${path}: `}unknown field '${key}' in ${info.fullName}${didYouMean(key, info.fields.keys())}`,
      );
    }
    msg[key] = coerce(f, v, path === '' ? key : `${path}.${key}`);
  }
  return msg;
}

/**
 * Creates a message of `typeName` from plain values: nested objects become messages, enums
 * may be given by name or number, unset fields read their defaults. Throws ProtoSchemaError
 * for unknown fields and ill-typed values.
 */
export function createMessage<T = Message>(typeName: string, props: Readonly<Record<string, unknown>> = {}): T {
  return fillMessage(typeInfoByName(typeName), props, '') as T;
}
