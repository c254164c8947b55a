import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeNpy, parseNpy, readNpy, writeNpy } from './npy.js';

/** A .npy file as NumPy writes it: format 1.0 (16-bit header length) or 2.0 (32-bit). */
function npyBytes(descr: string, shape: string, payload: Uint8Array, fortran = false, version = 1): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shape}, }`;
  header += ' '.repeat((64 - ((pre + 1 + header.length) % 64)) % 64) + '\n';
  const out = new Uint8Array(pre + header.length + payload.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0], 0);
  if (version === 1) new DataView(out.buffer).setUint16(8, header.length, true);
  else new DataView(out.buffer).setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  out.set(payload, pre + header.length);
  return out;
}

describe('npy', () => {
  it('round-trips float32 and float64 through a file, header 64-byte aligned', () => {
    const dir = mkdtempSync(join(tmpdir(), 'npy-'));
    try {
      const a = { shape: [2, 3], data: Float32Array.from([1, 2.5, -3, 4, 5, 6]) };
      writeNpy(join(dir, 'a.npy'), a);
      expect(readNpy(join(dir, 'a.npy'))).toEqual(a);
      const b = { shape: [3], data: Float64Array.from([0.1, 0.2, 1e300]) };
      const bytes = encodeNpy(b);
      expect((bytes.length - 3 * 8) % 64).toBe(0);
      expect(parseNpy(bytes)).toEqual(b);
      expect(new TextDecoder().decode(bytes.subarray(10, 80))).toContain("'shape': (3,)");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads uint8, big-endian int32 and Fortran-order arrays', () => {
    expect(parseNpy(npyBytes('|u1', '(2, 2)', Uint8Array.from([0, 255, 7, 9])))).toEqual({ shape: [2, 2], data: Float32Array.from([0, 255, 7, 9]) });
    const be = new Uint8Array(8);
    new DataView(be.buffer).setInt32(0, -5, false);
    new DataView(be.buffer).setInt32(4, 70000, false);
    expect(parseNpy(npyBytes('>i4', '(2,)', be)).data).toEqual(Float64Array.from([-5, 70000]));
    // Fortran 2×3: columns stored one after the other.
    const f = new Float32Array([1, 4, 2, 5, 3, 6]);
    expect(parseNpy(npyBytes('<f4', '(2, 3)', new Uint8Array(f.buffer), true)).data).toEqual(Float32Array.from([1, 2, 3, 4, 5, 6]));
  });

  it('reads a 0-d array and a format 2.0 header', () => {
    expect(parseNpy(npyBytes('<f4', '()', new Uint8Array(Float32Array.of(7).buffer)))).toEqual({ shape: [], data: Float32Array.of(7) });
    const v2 = parseNpy(npyBytes('<f8', '(3,)', new Uint8Array(Float64Array.of(0.1, -2, 1e300).buffer), false, 2));
    expect(v2).toEqual({ shape: [3], data: Float64Array.of(0.1, -2, 1e300) });
  });

  it('names what is wrong with a bad file', () => {
    expect(() => parseNpy(new Uint8Array(20), 'x.npy')).toThrow(/x.npy: not a .npy file/);
    expect(() => parseNpy(npyBytes('<c8', '(1,)', new Uint8Array(8)), 'c.npy')).toThrow(/dtype '<c8' is not supported/);
    expect(() => parseNpy(npyBytes('<f4', '(4,)', new Uint8Array(8)), 's.npy')).toThrow(/needs 16 data bytes, found 8/);
  });
});
