import { checkNotEmpty, checkNotSparse, fillGaussian, varianceNormN, type FillerDef } from './filler.js';

/** He et al. (2015), for ReLU nets: Normal(0, √(2/n)), with n chosen by variance_norm as for xavier. */
export const msraFillerDef: FillerDef = {
  type: 'msra',
  fill(blob, param, rng) {
    checkNotEmpty(param, blob);
    checkNotSparse(param, blob);
    const std = Math.sqrt(2 / varianceNormN(param, blob));
    fillGaussian(blob.mutableCpuData(), 0, std, rng, `msra filler for blob ${blob.shapeString()}`);
  },
};
