/**
 * Binary protobuf I/O (.caffemodel, .solverstate, .binaryproto, DB records) through our
 * schema-driven wire codec (see wire-codec.ts for why not protobufjs's generated codecs).
 */
import { ProtoBinaryError } from './errors.js';
import { typeInfoByName, type Message } from './schema.js';
import { decodeWire, encodeWire } from './wire-codec.js';

export interface DecodeOptions {
  /** Named in error messages. */
  file?: string;
}

/** A plain Uint8Array view of the input (Buffers are viewed, not copied). */
function plainBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (Object.getPrototypeOf(bytes) === Uint8Array.prototype) return bytes;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes `bytes` as the named message type (e.g. 'NetParameter' for a .caffemodel).
 * Unknown fields, and fields whose wire type does not match the schema, are skipped as C++
 * protobuf does. Throws ProtoBinaryError (file, byte offset, type) on malformed input.
 */
export function decodeBinary<T = Message>(typeName: string, bytes: Uint8Array | ArrayBuffer, opts: DecodeOptions = {}): T {
  const info = typeInfoByName(typeName);
  if (!(bytes instanceof Uint8Array) && !(bytes instanceof ArrayBuffer)) {
    throw new ProtoBinaryError('input is not a Uint8Array or ArrayBuffer', {
      ...(opts.file === undefined ? {} : { file: opts.file }),
      offset: 0,
      typeName: info.fullName,
    });
  }
  return decodeWire(info, plainBytes(bytes), opts) as T;
}

/**
 * Encodes a message the way C++ Caffe does: present fields in number order, `[packed = true]`
 * fields (BlobProto.data/diff/double_*, BlobShape.dim) packed, other repeated scalars unpacked.
 * Returns a plain Uint8Array of its own.
 */
export function encodeBinary(typeName: string, msg: object): Uint8Array {
  return encodeWire(typeInfoByName(typeName), msg as Message);
}
