import { readFileSync } from 'node:fs';
import { CaffeError } from '@caffe-ts/proto';

/** A .npy file this reader cannot use: not .npy, an unsupported kind, or a size that does not add up. */
export class NpyError extends CaffeError {
  override readonly name: string = 'NpyError';
}

/** An array read from a .npy file. */
export interface NpyArray {
  shape: number[];
  data: Float32Array | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/**
 * Parse a NumPy .npy file (format 1.0–3.0) holding a little-endian float32 (`<f4`) or float64
 * (`<f8`) array in C order, the only kinds the oracle fixtures use; anything else is an error
 * naming what was found.
 */
export function parseNpy(bytes: Uint8Array, file = '<npy>'): NpyArray {
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new NpyError(`${file}: not a .npy file (no \\x93NUMPY magic)`);
  }
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
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError(`${file}: malformed .npy header: ${header.trim()}`);
  }
  if (fortran !== 'False') throw new NpyError(`${file}: Fortran-order arrays are not supported (expected C order)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number.parseInt(s, 10));
  const count = shape.reduce((a, b) => a * b, 1);
  const start = offset + headerLen;
  const width = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (width === 0) throw new NpyError(`${file}: dtype '${descr}' is not supported (expected '<f4' or '<f8')`);
  if (bytes.length - start !== count * width) {
    throw new NpyError(
      `${file}: shape (${shape.join(', ')}) of '${descr}' needs ${count * width} data bytes, found ${bytes.length - start}`,
    );
  }
  // Copy into an aligned buffer (the data offset need not be a multiple of 8).
  const raw = bytes.slice(start, start + count * width);
  const data = width === 4 ? new Float32Array(raw.buffer, 0, count) : new Float64Array(raw.buffer, 0, count);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new NpyError(`${file}: this reader assumes a little-endian host`);
  }
  return { shape, data };
}

export function readNpy(path: string): NpyArray {
  const buf = readFileSync(path);
  return parseNpy(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}
