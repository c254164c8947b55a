import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNpy, readNpy } from './npy.js';
import { oracleDir } from './oracle-fixtures.js';

/** A .npy file as NumPy writes it: magic, version, header padded with spaces to a multiple of 64. */
function npy(descr: string, shape: string, data: ArrayBufferView, version = 1, fortran = 'False'): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
  const pre = version === 1 ? 10 : 12;
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const header = dict.padEnd(total - pre - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), pre);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

describe('npy reader', () => {
  it('reads <f4 and <f8 arrays in C order, any rank', () => {
    const a = parseNpy(npy('<f4', '(2, 3)', new Float32Array([1, 2, 3, 4, 5, 6.5])));
    expect(a.shape).toEqual([2, 3]);
    expect(a.data).toBeInstanceOf(Float32Array);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6.5]);
    const b = parseNpy(npy('<f8', '(3,)', new Float64Array([0.1, -2, 1e300]), 2));
    expect(b.shape).toEqual([3]);
    expect(b.data).toBeInstanceOf(Float64Array);
    expect(Array.from(b.data)).toEqual([0.1, -2, 1e300]);
    const s = parseNpy(npy('<f4', '()', new Float32Array([7])));
    expect(s.shape).toEqual([]);
    expect(Array.from(s.data)).toEqual([7]);
  });

  it('rejects other dtypes, Fortran order, short data and non-npy bytes, naming the file', () => {
    expect(() => parseNpy(npy('<i4', '(1,)', new Int32Array([1])), 'x.npy')).toThrow(
      "x.npy: dtype '<i4' is not supported (expected '<f4' or '<f8')",
    );
    expect(() => parseNpy(npy('>f4', '(1,)', new Float32Array([1])), 'x.npy')).toThrow("dtype '>f4'");
    expect(() => parseNpy(npy('<f4', '(1,)', new Float32Array([1]), 1, 'True'), 'x.npy')).toThrow('Fortran-order');
    expect(() => parseNpy(npy('<f4', '(2, 2)', new Float32Array([1, 2, 3])), 'x.npy')).toThrow(
      "x.npy: shape (2, 2) of '<f4' needs 16 data bytes, found 12",
    );
    expect(() => parseNpy(new TextEncoder().encode('not numpy at all'), 'x.npy')).toThrow('x.npy: not a .npy file');
  });

  it('reads the files NumPy wrote for the oracle fixtures', () => {
    const x = readNpy(join(oracleDir, 'lenet_nn_ex1', 'input.data.npy'));
    expect(x.shape).toEqual([2, 1, 28, 28]);
    expect(x.data).toHaveLength(2 * 28 * 28);
    // uniform [0, 1) from RandomState(1): numpy's first draw is 0.417022004702574
    expect(x.data[0]).toBeCloseTo(0.417022, 6);
    expect(x.data.every((v) => v >= 0 && v < 1)).toBe(true);
  });
});
