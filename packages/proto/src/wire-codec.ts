/**
 * Protobuf wire-format codec driven by the reflection schema.
 *
 * Why not protobufjs's generated codecs: they trust the schema's wire types, so a field whose
 * number a Caffe fork reused with another type (libfacedetection writes varints where BVLC has
 * messages 145-148) derails decoding, where C++ Caffe skips the field as unknown. This decoder
 * checks every tag's wire type and skips mismatches and unknown numbers the way C++ does. It
 * also yields numbers for 64-bit ints without touching protobufjs's global Long setting, copies
 * bytes out of the input, and encodes packed floats in one pass over a preallocated buffer
 * instead of one heap object per value (a 500 MB caffemodel must not need 10 GB to save).
 * Repeated float/double fields declared `[packed = true]` (BlobProto data, diff, double_data,
 * double_diff) decode to a Float32Array/Float64Array holding a copy of the wire bytes, and encode
 * from one the same way; elsewhere repeated fields are JS arrays.
 *
 * Unknown fields are dropped, not preserved.
 */
import { ProtoBinaryError, ProtoSchemaError } from './errors.js';
import { longToNumber, typeInfo, type FieldInfo, type Message, type TypeInfo } from './schema.js';

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_SGROUP = 3;
const WT_EGROUP = 4;
const WT_I32 = 5;

const MAX_DEPTH = 100;
const TWO_32 = 4294967296;
/** Float32Array/Float64Array share the wire's byte order: packed floats are copied as bytes. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A repeated float/double field declared `[packed = true]` (BlobProto.data and friends). */
function isPackedReal(cf: CodecField): boolean {
  return cf.packed && (cf.f.kind === 'float' || cf.f.kind === 'double');
}

type RealArray = Float32Array | Float64Array;

function isRealArray(v: unknown): v is RealArray {
  return v instanceof Float32Array || v instanceof Float64Array;
}

/** `values` appended to the repeated field `name` of `msg`; typed arrays stay typed (of `kind`). */
function appendRepeated(msg: Message, name: string, values: ArrayLike<unknown>, kind: string): void {
  const cur = msg[name] as ArrayLike<unknown>;
  if (values.length === 0) return;
  if (cur.length === 0) {
    msg[name] = isRealArray(values) ? values : Array.from(values);
    return;
  }
  if (isRealArray(cur) || isRealArray(values)) {
    const Ctor = kind === 'double' ? Float64Array : Float32Array;
    const out = new Ctor(cur.length + values.length);
    out.set(cur as ArrayLike<number>);
    out.set(values as ArrayLike<number>, cur.length);
    msg[name] = out;
    return;
  }
  // push in chunks: spreading millions of values would overflow the stack.
  const arr = cur as unknown[];
  for (let i = 0; i < values.length; i += 65536) arr.push(...Array.prototype.slice.call(values, i, i + 65536));
}

/** Wire type of one element of a field, by kind. */
function wireTypeOf(f: FieldInfo): number {
  switch (f.kind) {
    case 'double':
    case 'fixed64':
    case 'sfixed64':
      return WT_I64;
    case 'float':
    case 'fixed32':
    case 'sfixed32':
      return WT_I32;
    case 'string':
    case 'bytes':
    case 'message':
      return WT_LEN;
    default:
      return WT_VARINT;
  }
}

interface CodecField {
  readonly f: FieldInfo;
  readonly wire: number;
  /** Repeated scalar of a non-length wire type: may arrive packed. */
  readonly packable: boolean;
  /** Write packed (caffe.proto's `[packed = true]`). */
  readonly packed: boolean;
  readonly tag: number;
  readonly tagSize: number;
  readonly sub: CodecInfo | null;
}

interface CodecInfo {
  readonly info: TypeInfo;
  readonly byId: ReadonlyMap<number, CodecField>;
  readonly ordered: readonly CodecField[];
  readonly required: readonly FieldInfo[];
  sub(cf: CodecField): CodecInfo;
}

const codecCache = new WeakMap<TypeInfo, CodecInfo>();

function varintSize(v: number): number {
  // v is a non-negative integer below 2^53 or a 32-bit unsigned value.
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  let x = Math.floor(v / 0x10000000);
  while (x > 0) {
    n++;
    x = Math.floor(x / 128);
  }
  return n;
}

function codecInfo(info: TypeInfo): CodecInfo {
  let c = codecCache.get(info);
  if (c) return c;
  const byId = new Map<number, CodecField>();
  const subs = new Map<CodecField, CodecInfo>();
  const ordered: CodecField[] = [];
  for (const f of info.byNumber) {
    const wire = wireTypeOf(f);
    const packable = f.repeated && wire !== WT_LEN;
    const packed = packable && f.field.packed;
    const tag = f.id * 8 + (packed ? WT_LEN : wire);
    const cf: CodecField = { f, wire, packable, packed, tag, tagSize: varintSize(tag), sub: null };
    byId.set(f.id, cf);
    ordered.push(cf);
  }
  c = {
    info,
    byId,
    ordered,
    required: info.required,
    sub(cf: CodecField): CodecInfo {
      let s = subs.get(cf);
      if (!s) {
        s = codecInfo(typeInfo(cf.f.messageType!));
        subs.set(cf, s);
      }
      return s;
    },
  };
  codecCache.set(info, c);
  return c;
}

// ---- decoding ---------------------------------------------------------------------------------

const utf8Decoder = new TextDecoder('utf-8');

class DecodeFailure extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

class Decoder {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos = 0;
  /** Field path of the messages being decoded, for error messages. */
  readonly path: string[] = [];
  readonly types: string[] = [];

  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(message: string, at = this.pos): never {
    throw new DecodeFailure(message, at);
  }

  need(n: number, end: number, what: string): void {
    if (this.pos + n > end) {
      this.fail(`unexpected end of data: ${what} needs ${n} byte(s), ${Math.max(0, end - this.pos)} left`);
    }
  }

  /** Unsigned varint of up to 32 significant bits (more bits are dropped, as C++ does for int32). */
  varint32(end: number): number {
    const buf = this.buf;
    let pos = this.pos;
    let result = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (pos >= end) this.fail('unexpected end of data inside a varint');
      const b = buf[pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return result >>> 0;
      }
    }
    return this.fail('malformed varint (more than 10 bytes)');
  }

  /** A 64-bit varint as [low, high] unsigned 32-bit halves. */
  varint64(end: number): [number, number] {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) this.fail('unexpected end of data inside a varint');
      const b = buf[pos++]!;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (7 * i - 32);
      if (b < 0x80) {
        this.pos = pos;
        return [lo >>> 0, hi >>> 0];
      }
    }
    return this.fail('malformed varint (more than 10 bytes)');
  }

  skip(wire: number, fieldNo: number, end: number, depth: number): void {
    switch (wire) {
      case WT_VARINT:
        this.varint64(end);
        return;
      case WT_I64:
        this.need(8, end, `field ${fieldNo}`);
        this.pos += 8;
        return;
      case WT_I32:
        this.need(4, end, `field ${fieldNo}`);
        this.pos += 4;
        return;
      case WT_LEN: {
        const len = this.varint32(end);
        this.need(len, end, `field ${fieldNo}`);
        this.pos += len;
        return;
      }
      case WT_SGROUP: {
        if (depth >= MAX_DEPTH) this.fail(`groups nested deeper than ${MAX_DEPTH} levels`);
        for (;;) {
          if (this.pos >= end) this.fail(`unexpected end of data inside group ${fieldNo}`);
          const at = this.pos;
          const tag = this.varint32(end);
          const w = tag & 7;
          const n = tag >>> 3;
          if (w === WT_EGROUP) {
            if (n !== fieldNo) this.fail(`group ${fieldNo} closed by end-group tag of field ${n}`, at);
            return;
          }
          if (n === 0) this.fail('invalid field number 0', at);
          this.skip(w, n, end, depth + 1);
        }
      }
      default:
        this.fail(wire === WT_EGROUP ? `unmatched end-group tag for field ${fieldNo}` : `invalid wire type ${wire} (field ${fieldNo})`, this.pos);
    }
  }

  int64(end: number, signed: boolean): number {
    const [lo, hi] = this.varint64(end);
    return join64(lo, hi, signed);
  }

  scalar(cf: CodecField, end: number): unknown {
    const f = cf.f;
    switch (f.kind) {
      case 'float': {
        this.need(4, end, `field '${f.name}'`);
        const v = this.view.getFloat32(this.pos, true);
        this.pos += 4;
        return v;
      }
      case 'double': {
        this.need(8, end, `field '${f.name}'`);
        const v = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
      }
      case 'fixed32': {
        this.need(4, end, `field '${f.name}'`);
        const v = this.view.getUint32(this.pos, true);
        this.pos += 4;
        return v;
      }
      case 'sfixed32': {
        this.need(4, end, `field '${f.name}'`);
        const v = this.view.getInt32(this.pos, true);
        this.pos += 4;
        return v;
      }
      case 'fixed64':
      case 'sfixed64': {
        this.need(8, end, `field '${f.name}'`);
        const lo = this.view.getUint32(this.pos, true);
        const hi = this.view.getUint32(this.pos + 4, true);
        this.pos += 8;
        return join64(lo, hi, f.kind === 'sfixed64');
      }
      case 'int32':
        return this.varint32(end) | 0;
      case 'uint32':
        return this.varint32(end);
      case 'sint32': {
        const n = this.varint32(end);
        return (n >>> 1) ^ -(n & 1);
      }
      case 'int64':
        return this.int64(end, true);
      case 'uint64':
        return this.int64(end, false);
      case 'sint64': {
        const [lo, hi] = this.varint64(end);
        // Zigzag: (n >>> 1) ^ -(n & 1) on 64 bits.
        const neg = lo & 1;
        let l = ((lo >>> 1) | (hi << 31)) >>> 0;
        let h = hi >>> 1;
        if (neg) {
          l = ~l >>> 0;
          h = ~h >>> 0;
        }
        return join64(l, h, true);
      }
      case 'bool': {
        const [lo, hi] = this.varint64(end);
        return lo !== 0 || hi !== 0;
      }
      case 'enum':
        return this.varint32(end) | 0;
      case 'string': {
        const len = this.varint32(end);
        this.need(len, end, `field '${f.name}'`);
        const s = decodeUtf8(this.buf, this.pos, this.pos + len);
        this.pos += len;
        return s;
      }
      case 'bytes': {
        const len = this.varint32(end);
        this.need(len, end, `field '${f.name}'`);
        // A copy: the input (a file buffer, a DB page) may be reused after decoding.
        const b = this.buf.slice(this.pos, this.pos + len);
        this.pos += len;
        return b;
      }
      default:
        throw new Error(`unreachable: ${f.kind}`);
    }
  }

  message(c: CodecInfo, end: number, depth: number): Message {
    const msg = new c.info.ctor();
    const buf = this.buf;
    while (this.pos < end) {
      const tagAt = this.pos;
      // Fast path for one-byte tags.
      let tag = buf[this.pos]!;
      if (tag < 0x80) this.pos++;
      else tag = this.varint32(end);
      const fieldNo = tag >>> 3;
      const wire = tag & 7;
      if (fieldNo === 0) this.fail('invalid field number 0', tagAt);
      const cf = c.byId.get(fieldNo);
      if (cf === undefined) {
        this.skip(wire, fieldNo, end, depth);
        continue;
      }
      const f = cf.f;
      if (wire === cf.wire) {
        if (f.kind === 'message') {
          const sub = c.sub(cf);
          const arr = f.repeated ? (msg[f.name] as Message[]) : null;
          // On the path before reading the length, so a truncated field is named with its index.
          this.path.push(arr ? `${f.name}[${arr.length}]` : f.name);
          this.types.push(sub.info.fullName);
          const len = this.varint32(end);
          this.need(len, end, `field '${f.name}'`);
          if (depth + 1 > MAX_DEPTH) this.fail(`messages nested deeper than ${MAX_DEPTH} levels`);
          const child = this.message(sub, this.pos + len, depth + 1);
          this.path.pop();
          this.types.pop();
          if (arr) arr.push(child);
          else if (Object.prototype.hasOwnProperty.call(msg, f.name) && msg[f.name] != null) {
            // A repeated occurrence of a singular message merges into the first, as in C++.
            mergeInto(msg[f.name] as Message, child, sub);
          } else msg[f.name] = child;
          continue;
        }
        const v = this.scalar(cf, end);
        if (f.kind === 'enum' && !f.enumInfo!.nameOf.has(v as number)) continue; // unknown value: dropped, as C++ proto2 does
        if (f.repeated) {
          // An unpacked value after packed ones (legal, never written by Caffe): back to an array.
          if (isRealArray(msg[f.name])) msg[f.name] = Array.from(msg[f.name] as RealArray);
          (msg[f.name] as unknown[]).push(v);
        } else msg[f.name] = v;
        continue;
      }
      if (wire === WT_LEN && cf.packable) {
        const len = this.varint32(end);
        this.need(len, end, `field '${f.name}'`);
        if (isPackedReal(cf)) appendRepeated(msg, f.name, this.packedReal(cf, this.pos + len), f.kind);
        else {
          if (isRealArray(msg[f.name])) msg[f.name] = Array.from(msg[f.name] as RealArray);
          this.packed(cf, msg[f.name] as unknown[], this.pos + len);
        }
        continue;
      }
      // Wire type does not match the schema: an unknown field to us, as to C++.
      this.skip(wire, fieldNo, end, depth);
    }
    if (this.pos !== end) this.fail('a field runs past the end of its message');
    for (const r of c.required) {
      if (!Object.prototype.hasOwnProperty.call(msg, r.name)) {
        this.fail(`missing required field '${r.name}' in ${c.info.fullName}`);
      }
    }
    return msg;
  }

  /**
   * A packed float (double) field declared packed, as a Float32Array (Float64Array) of its own:
   * one copy of the bytes instead of a JS number per value (a 250 MB caffemodel decodes in a
   * fraction of the time and memory).
   */
  packedReal(cf: CodecField, end: number): RealArray {
    const f = cf.f;
    const size = f.kind === 'float' ? 4 : 8;
    const bytes = end - this.pos;
    if (bytes % size !== 0) this.fail(`packed field '${f.name}' has ${bytes} bytes, not a multiple of ${size}`);
    const n = bytes / size;
    let out: RealArray;
    if (LITTLE_ENDIAN) {
      // slice: an aligned copy of its own (the input may be reused, and may be unaligned).
      const copy = this.buf.slice(this.pos, end).buffer;
      out = size === 4 ? new Float32Array(copy, 0, n) : new Float64Array(copy, 0, n);
    } else {
      const view = this.view;
      out = size === 4 ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0, p = this.pos; i < n; i++, p += size) out[i] = size === 4 ? view.getFloat32(p, true) : view.getFloat64(p, true);
    }
    this.pos = end;
    return out;
  }

  packed(cf: CodecField, out: unknown[], end: number): void {
    const f = cf.f;
    if (f.kind === 'float' || f.kind === 'double') {
      const size = f.kind === 'float' ? 4 : 8;
      const bytes = end - this.pos;
      if (bytes % size !== 0) this.fail(`packed field '${f.name}' has ${bytes} bytes, not a multiple of ${size}`);
      const view = this.view;
      // push keeps the array packed; presizing a huge array can make V8 switch it to dictionary mode.
      if (size === 4) for (let p = this.pos; p < end; p += 4) out.push(view.getFloat32(p, true));
      else for (let p = this.pos; p < end; p += 8) out.push(view.getFloat64(p, true));
      this.pos = end;
      return;
    }
    while (this.pos < end) {
      const v = this.scalar(cf, end);
      if (f.kind === 'enum' && !f.enumInfo!.nameOf.has(v as number)) continue;
      out.push(v);
    }
    if (this.pos !== end) this.fail(`packed field '${f.name}' runs past its length`);
  }
}

function join64(lo: number, hi: number, signed: boolean): number {
  if (signed && hi & 0x80000000) {
    // Two's complement negative: -(~value + 1).
    const nlo = ~lo >>> 0;
    const nhi = ~hi >>> 0;
    return -(nhi * TWO_32 + nlo + 1);
  }
  return hi * TWO_32 + lo;
}

function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  // Short ASCII strings (layer names, types) skip TextDecoder's call overhead.
  if (end - start < 64) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return utf8Decoder.decode(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8Decoder.decode(buf.subarray(start, end));
}

/** Merges `src` into `dst` (both of `c`'s type): scalars overwrite, repeated append, messages merge. */
function mergeInto(dst: Message, src: Message, c: CodecInfo): void {
  for (const cf of c.ordered) {
    const name = cf.f.name;
    if (!Object.prototype.hasOwnProperty.call(src, name)) continue;
    const v = src[name];
    if (cf.f.repeated) appendRepeated(dst, name, v as ArrayLike<unknown>, cf.f.kind);
    else if (cf.f.kind === 'message' && Object.prototype.hasOwnProperty.call(dst, name) && dst[name] != null) {
      mergeInto(dst[name] as Message, v as Message, c.sub(cf));
    } else dst[name] = v;
  }
}

export interface DecodeWireOptions {
  file?: string;
}

/** Decodes `buf` as a message of `info`; failures become ProtoBinaryError. */
export function decodeWire(info: TypeInfo, buf: Uint8Array, opts: DecodeWireOptions = {}): Message {
  const d = new Decoder(buf);
  try {
    return d.message(codecInfo(info), buf.length, 0);
  } catch (err) {
    if (!(err instanceof DecodeFailure)) throw err;
    const inner = d.types.length > 0 ? d.types[d.types.length - 1]! : info.fullName;
    const where = d.path.length > 0 ? ` (in ${inner} at ${d.path.join('.')})` : '';
    throw new ProtoBinaryError(`${err.message}${where}`, {
      ...(opts.file === undefined ? {} : { file: opts.file }),
      offset: err.offset,
      fieldPath: d.path.join('.'),
      typeName: info.fullName,
    });
  }
}

// ---- encoding ---------------------------------------------------------------------------------

const utf8Encoder = new TextEncoder();

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function present(msg: Message, f: FieldInfo): boolean {
  if (!Object.prototype.hasOwnProperty.call(msg, f.name)) return false;
  const v = msg[f.name];
  if (v === undefined || v === null) return false;
  return !f.repeated || (v as ArrayLike<unknown>).length > 0;
}

class EncodeFailure extends Error {}

function badValue(f: FieldInfo, v: unknown, what: string): never {
  throw new EncodeFailure(`field '${f.name}': expected ${what}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
}

/** An integer value of field f as a JS number (Long and bigint accepted). */
function intValue(f: FieldInfo, v: unknown): number {
  const n = typeof v === 'number' ? v : (longToNumber(v) as number);
  if (typeof n !== 'number' || !Number.isInteger(n)) badValue(f, v, `an integer (${f.kind})`);
  return n;
}

/** Varint size of an integer field value (negative int32/int64 take 10 bytes). */
function intSize(f: FieldInfo, v: unknown): number {
  if (f.kind === 'bool') return 1;
  const n = intValue(f, v);
  switch (f.kind) {
    case 'sint32':
      return varintSize(((n << 1) ^ (n >> 31)) >>> 0);
    case 'sint64':
      return varintSize(n >= 0 ? 2 * n : -2 * n - 1);
    case 'uint32':
      return varintSize(n >>> 0);
    case 'int32':
    case 'enum':
      return n < 0 ? 10 : varintSize(n);
    default:
      return n < 0 ? 10 : varintSize(n);
  }
}

function fixedSize(f: FieldInfo): number {
  switch (f.kind) {
    case 'float':
    case 'fixed32':
    case 'sfixed32':
      return 4;
    case 'double':
    case 'fixed64':
    case 'sfixed64':
      return 8;
    default:
      return 0;
  }
}

/** Sizes of every message in the tree, computed once so writing needs no second walk. */
type SizeCache = Map<object, number>;

function elementSize(cf: CodecField, v: unknown, sizes: SizeCache): number {
  const f = cf.f;
  const fixed = fixedSize(f);
  if (fixed) return fixed;
  switch (f.kind) {
    case 'string': {
      if (typeof v !== 'string') badValue(f, v, 'a string');
      const n = utf8Length(v);
      return varintSize(n) + n;
    }
    case 'bytes': {
      const len = (v as ArrayLike<number> | null)?.length;
      if (typeof len !== 'number' || typeof v === 'string') badValue(f, v, 'a Uint8Array');
      return varintSize(len) + len;
    }
    case 'message': {
      if (typeof v !== 'object' || v === null) badValue(f, v, 'a message');
      const n = messageSize(cfSub(cf), v as Message, sizes);
      return varintSize(n) + n;
    }
    default:
      return intSize(f, v);
  }
}

function cfSub(cf: CodecField): CodecInfo {
  return codecInfo(typeInfo(cf.f.messageType!));
}

function fieldSize(cf: CodecField, v: unknown, sizes: SizeCache): number {
  const f = cf.f;
  if (!f.repeated) return cf.tagSize + elementSize(cf, v, sizes);
  const items = v as ArrayLike<unknown>;
  const n = items.length;
  if (cf.packed) {
    let payload: number;
    const fixed = fixedSize(f);
    if (fixed) payload = fixed * n;
    else {
      payload = 0;
      for (let i = 0; i < n; i++) payload += intSize(f, items[i]);
    }
    sizes.set(items as unknown as object, payload);
    return cf.tagSize + varintSize(payload) + payload;
  }
  let total = cf.tagSize * n;
  for (let i = 0; i < n; i++) total += elementSize(cf, items[i], sizes);
  return total;
}

function messageSize(c: CodecInfo, msg: Message, sizes: SizeCache): number {
  let total = 0;
  for (const cf of c.ordered) {
    if (!present(msg, cf.f)) {
      if (cf.f.required) throw new EncodeFailure(`missing required field '${cf.f.name}' in ${c.info.fullName}`);
      continue;
    }
    total += fieldSize(cf, msg[cf.f.name], sizes);
  }
  sizes.set(msg, total);
  return total;
}

class Encoder {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  varint(v: number): void {
    // v: non-negative integer < 2^53.
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  /** A negative value as the 10-byte two's-complement varint. */
  negVarint(n: number): void {
    const hi = Math.floor(n / TWO_32);
    let lo = n - hi * TWO_32;
    let h = hi >>> 0;
    const buf = this.buf;
    for (let i = 0; i < 4; i++) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    buf[this.pos++] = (lo & 0x0f) | ((h & 0x07) << 4) | 0x80;
    h >>>= 3;
    for (let i = 0; i < 4; i++) {
      buf[this.pos++] = (h & 0x7f) | 0x80;
      h >>>= 7;
    }
    buf[this.pos++] = h & 0x01;
  }

  int(f: FieldInfo, v: unknown): void {
    if (f.kind === 'bool') {
      this.buf[this.pos++] = v ? 1 : 0;
      return;
    }
    const n = intValue(f, v);
    switch (f.kind) {
      case 'sint32':
        this.varint(((n << 1) ^ (n >> 31)) >>> 0);
        return;
      case 'sint64':
        this.varint(n >= 0 ? 2 * n : -2 * n - 1);
        return;
      case 'uint32':
        this.varint(n >>> 0);
        return;
      default:
        if (n < 0) this.negVarint(n);
        else this.varint(n);
    }
  }

  fixed(f: FieldInfo, v: unknown): void {
    const view = this.view;
    switch (f.kind) {
      case 'float':
        view.setFloat32(this.pos, Number(v), true);
        this.pos += 4;
        return;
      case 'double':
        view.setFloat64(this.pos, Number(v), true);
        this.pos += 8;
        return;
      case 'fixed32':
        view.setUint32(this.pos, intValue(f, v) >>> 0, true);
        this.pos += 4;
        return;
      case 'sfixed32':
        view.setInt32(this.pos, intValue(f, v) | 0, true);
        this.pos += 4;
        return;
      default: {
        const n = intValue(f, v);
        const hi = Math.floor(n / TWO_32);
        view.setUint32(this.pos, (n - hi * TWO_32) >>> 0, true);
        view.setUint32(this.pos + 4, hi >>> 0, true);
        this.pos += 8;
      }
    }
  }

  element(cf: CodecField, v: unknown, sizes: SizeCache): void {
    const f = cf.f;
    if (fixedSize(f)) return this.fixed(f, v);
    switch (f.kind) {
      case 'string': {
        const s = v as string;
        this.varint(utf8Length(s));
        const { written } = utf8Encoder.encodeInto(s, this.buf.subarray(this.pos));
        this.pos += written;
        return;
      }
      case 'bytes': {
        const b = v as ArrayLike<number>;
        this.varint(b.length);
        this.buf.set(b, this.pos);
        this.pos += b.length;
        return;
      }
      case 'message':
        this.varint(sizes.get(v as object)!);
        this.message(cfSub(cf), v as Message, sizes);
        return;
      default:
        this.int(f, v);
    }
  }

  message(c: CodecInfo, msg: Message, sizes: SizeCache): void {
    for (const cf of c.ordered) {
      const f = cf.f;
      if (!present(msg, f)) continue;
      const v = msg[f.name];
      if (!f.repeated) {
        this.varint(cf.tag);
        this.element(cf, v, sizes);
        continue;
      }
      const items = v as ArrayLike<unknown>;
      const n = items.length;
      if (cf.packed) {
        this.varint(cf.tag);
        this.varint(sizes.get(items as unknown as object)!);
        if (LITTLE_ENDIAN && ((f.kind === 'float' && items instanceof Float32Array) || (f.kind === 'double' && items instanceof Float64Array))) {
          // The values' bytes are the wire's bytes: one copy.
          const typed = items as RealArray;
          this.buf.set(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength), this.pos);
          this.pos += typed.byteLength;
        } else if (f.kind === 'float') {
          const view = this.view;
          let p = this.pos;
          for (let i = 0; i < n; i++, p += 4) view.setFloat32(p, items[i] as number, true);
          this.pos = p;
        } else if (f.kind === 'double') {
          const view = this.view;
          let p = this.pos;
          for (let i = 0; i < n; i++, p += 8) view.setFloat64(p, items[i] as number, true);
          this.pos = p;
        } else {
          for (let i = 0; i < n; i++) this.element(cf, items[i], sizes);
        }
        continue;
      }
      for (let i = 0; i < n; i++) {
        this.varint(cf.tag);
        this.element(cf, items[i], sizes);
      }
    }
  }
}

/** Encodes `msg` as `info` in C++ field order; ProtoSchemaError for values that cannot be encoded. */
export function encodeWire(info: TypeInfo, msg: Message): Uint8Array {
  const c = codecInfo(info);
  const sizes: SizeCache = new Map();
  try {
    const size = messageSize(c, msg, sizes);
    const e = new Encoder(size);
    e.message(c, msg, sizes);
    if (e.pos !== size) throw new Error(`internal: encoded ${e.pos} bytes, sized ${size}`);
    return e.buf;
  } catch (err) {
    if (err instanceof EncodeFailure) throw new ProtoSchemaError(`cannot encode ${info.fullName}: ${err.message}`);
    throw err;
  }
}
