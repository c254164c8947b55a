/**
 * Binary protobuf I/O through protobufjs's generated codecs, with our value conventions.
 *
 * protobufjs decides Long-vs-number for 64-bit ints globally (whether the `long` package is
 * loadable), so instead of changing its global config we decode through a Reader subclass
 * whose 64-bit readers return numbers. Other protobufjs users in the process are unaffected.
 */
import { ProtoBinaryError } from './errors.js';
import { lookupType, longToNumber, protobuf, type Message } from './schema.js';

export interface DecodeOptions {
  /** Named in error messages. */
  file?: string;
}

type ReaderMethod = (this: protobuf.Reader) => unknown;
const readerProto = protobuf.Reader.prototype as unknown as Record<string, ReaderMethod>;

/** A protobufjs Reader that yields numbers for 64-bit ints and owned, plain Uint8Arrays for bytes. */
class CaffeReader extends protobuf.Reader {}
{
  const p = CaffeReader.prototype as unknown as Record<string, ReaderMethod>;
  for (const m of ['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']) {
    // Looked up at call time so a later protobuf.configure() is honoured.
    p[m] = function (this: protobuf.Reader) {
      return longToNumber(readerProto[m]!.call(this));
    };
  }
  p['bytes'] = function (this: protobuf.Reader) {
    const start0 = this.pos;
    const length = this.uint32();
    const start = this.pos;
    const end = start + length;
    if (end > this.len) {
      this.pos = start0;
      throw new RangeError(`index out of range: ${start} + ${length} > ${this.len}`);
    }
    this.pos = end;
    // A copy: the caller's buffer (e.g. a DB page) may be reused after decoding.
    return this.buf.slice(start, end);
  };
}

/** A plain Uint8Array view (Node's Buffer.slice would not copy, and Buffers compare oddly). */
function plainBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (Object.getPrototypeOf(bytes) === Uint8Array.prototype) return bytes;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const m = /^missing required '([^']*)'/.exec(err.message);
    if (m) return `missing required field '${m[1]}'`;
    if (err instanceof RangeError && /index out of range/.test(err.message)) {
      return `truncated or corrupt data (${err.message})`;
    }
    return err.message;
  }
  return String(err);
}

/** Decodes `bytes` as the named message type (e.g. 'NetParameter' for a .caffemodel). */
export function decodeBinary<T = Message>(typeName: string, bytes: Uint8Array | ArrayBuffer, opts: DecodeOptions = {}): T {
  const type = lookupType(typeName);
  const buf = plainBytes(bytes);
  const reader = new CaffeReader(buf);
  try {
    return type.decode(reader) as unknown as T;
  } catch (err) {
    throw new ProtoBinaryError(describe(err), {
      ...(opts.file === undefined ? {} : { file: opts.file }),
      offset: Math.min(reader.pos, buf.length),
      typeName: type.fullName.replace(/^\./, ''),
      cause: err,
    });
  }
}

/**
 * Encodes a message the way C++ Caffe does: fields in number order, `[packed = true]` fields
 * (BlobProto.data/diff/double_*, BlobShape.dim) packed, other repeated scalars unpacked.
 * Only present fields are written.
 */
export function encodeBinary(typeName: string, msg: object): Uint8Array {
  const type = lookupType(typeName);
  // A plain Writer (not Node's BufferWriter) so the result is a plain Uint8Array everywhere.
  const out = type.encode(msg as Message, new protobuf.Writer()).finish();
  // Small results are views into protobufjs's shared slab; hand out memory of our own.
  return out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : out.slice();
}
