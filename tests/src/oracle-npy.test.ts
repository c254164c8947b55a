import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNpy } from '@caffe-ts/zoo';
import { oracleDir } from './oracle-fixtures.js';

// The oracle fixtures are .npy files NumPy wrote; the oracle tests read them with the zoo's reader
// (its format cases are in packages/zoo/src/npy.test.ts).
describe('oracle fixtures through the zoo npy reader', () => {
  it('reads the files NumPy wrote for the oracle fixtures', () => {
    const x = readNpy(join(oracleDir, 'lenet_nn_ex1', 'input.data.npy'));
    expect(x.shape).toEqual([2, 1, 28, 28]);
    expect(x.data).toBeInstanceOf(Float32Array);
    expect(x.data).toHaveLength(2 * 28 * 28);
    // uniform [0, 1) from RandomState(1): numpy's first draw is 0.417022004702574
    expect(x.data[0]).toBeCloseTo(0.417022, 6);
    expect(x.data.every((v) => v >= 0 && v < 1)).toBe(true);
  });
});
