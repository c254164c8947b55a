import { checkNotEmpty, checkNotSparse, type FillerDef } from './filler.js';

/**
 * Uniform [0, 1) values, then each of the shape[0] rows (count / shape[0] values) divided by
 * its sum so that it sums to 1.
 */
export const positiveUnitballFillerDef: FillerDef = {
  type: 'positive_unitball',
  fill(blob, param, rng) {
    checkNotEmpty(param, blob);
    checkNotSparse(param, blob);
    const data = blob.mutableCpuData();
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
    const rows = blob.shape[0]!;
    const dim = data.length / rows;
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let j = 0; j < dim; j++) sum += data[r * dim + j]!;
      for (let j = 0; j < dim; j++) data[r * dim + j] = data[r * dim + j]! / sum;
    }
  },
};
