import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '@caffe-ts/net/node';
import { CaffeError } from '@caffe-ts/proto';

/** A malformed or unsupported .npy file. */
export class NpyError extends CaffeError {
  override readonly name = 'NpyError';
}

/** An n-d array as NumPy's .npy holds it, C order. */
export interface NpyArray {
  shape: number[];
  data: Float32Array | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** Element readers by dtype (little- or big-endian, or byte-sized). Everything becomes float. */
const READERS: Record<string, { width: number; get: (v: DataView, o: number, le: boolean) => number; double?: boolean }> = {
  f4: { width: 4, get: (v, o, le) => v.getFloat32(o, le) },
  f8: { width: 8, get: (v, o, le) => v.getFloat64(o, le), double: true },
  f2: { width: 2, get: (v, o, le) => halfToFloat(v.getUint16(o, le)) },
  u1: { width: 1, get: (v, o) => v.getUint8(o) },
  i1: { width: 1, get: (v, o) => v.getInt8(o) },
  b1: { width: 1, get: (v, o) => v.getUint8(o) },
  u2: { width: 2, get: (v, o, le) => v.getUint16(o, le) },
  i2: { width: 2, get: (v, o, le) => v.getInt16(o, le) },
  u4: { width: 4, get: (v, o, le) => v.getUint32(o, le), double: true },
  i4: { width: 4, get: (v, o, le) => v.getInt32(o, le), double: true },
  u8: { width: 8, get: (v, o, le) => Number(v.getBigUint64(o, le)), double: true },
  i8: { width: 8, get: (v, o, le) => Number(v.getBigInt64(o, le)), double: true },
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/**
 * Parse a NumPy .npy file (format 1.0–3.0), C or Fortran order, of any float, integer or bool
 * dtype. float32 stays float32; float64 and 32/64-bit integers come back as Float64Array (exact),
 * smaller integers and float16 as Float32Array.
 */
export function parseNpy(bytes: Uint8Array, file = '<npy>'): NpyArray {
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) throw new NpyError(`${file}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    offset = 12;
  } else {
    throw new NpyError(`${file}: .npy format version ${major} is not supported (expected 1, 2 or 3)`);
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(offset, offset + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new NpyError(`${file}: malformed .npy header: ${header.trim()}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => Number.parseInt(s, 10));
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new NpyError(`${file}: bad shape (${shapeText}) in the .npy header`);
  const m = /^([<>|=])([a-z]\d+)$/.exec(descr);
  const reader = m ? READERS[m[2]!] : undefined;
  if (!m || !reader) throw new NpyError(`${file}: dtype '${descr}' is not supported (expected a float, integer or bool dtype)`);
  const little = m[1] !== '>';
  const count = shape.reduce((a, b) => a * b, 1);
  const start = offset + headerLen;
  if (bytes.length - start < count * reader.width) {
    throw new NpyError(`${file}: shape (${shape.join(', ')}) of '${descr}' needs ${count * reader.width} data bytes, found ${bytes.length - start}`);
  }
  const data = reader.double ? new Float64Array(count) : new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = reader.get(view, start + i * reader.width, little);
  return { shape, data: fortran === 'True' ? fortranToC(data, shape) : data };
}

/** Reorder a column-major array into row-major. */
function fortranToC<T extends Float32Array | Float64Array>(src: T, shape: number[]): T {
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const n = shape.length;
  const idx = new Array<number>(n).fill(0);
  const fStride = new Array<number>(n);
  let s = 1;
  for (let a = 0; a < n; a++) {
    fStride[a] = s;
    s *= shape[a]!;
  }
  for (let i = 0; i < src.length; i++) {
    let f = 0;
    for (let a = 0; a < n; a++) f += idx[a]! * fStride[a]!;
    out[i] = src[f]!;
    for (let a = n - 1; a >= 0; a--) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** Read a .npy file. */
export function readNpy(path: string): NpyArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new NpyError(`Cannot read .npy file ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseNpy(bytes, path);
}

/** A .npy (format 1.0) holding `data` as little-endian float32 or float64 in C order. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const count = array.shape.reduce((a, b) => a * b, 1);
  if (count !== array.data.length) throw new NpyError(`encodeNpy: shape (${array.shape.join(', ')}) holds ${count} elements, data has ${array.data.length}`);
  const f64 = array.data instanceof Float64Array;
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let header = `{'descr': '${f64 ? '<f8' : '<f4'}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Pad with spaces so the data starts on a 64-byte boundary; the header ends in '\n'.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const width = f64 ? 8 : 4;
  const out = new Uint8Array(10 + header.length + count * width);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const start = 10 + header.length;
  for (let i = 0; i < count; i++) {
    if (f64) view.setFloat64(start + i * 8, array.data[i]!, true);
    else view.setFloat32(start + i * 4, array.data[i]!, true);
  }
  return out;
}

/** Write a .npy file atomically. */
export function writeNpy(path: string, array: NpyArray): void {
  writeFileAtomicSync(path, encodeNpy(array));
}
