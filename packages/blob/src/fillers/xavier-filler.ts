import { checkNotEmpty, checkNotSparse, fillUniform, varianceNormN, type FillerDef } from './filler.js';

/**
 * Glorot & Bengio (2010): uniform in ±√(3/n), so the variance is 1/n, with n the fan-in
 * (count / shape[0]), fan-out (count / shape[1]) or their average per variance_norm.
 */
export const xavierFillerDef: FillerDef = {
  type: 'xavier',
  fill(blob, param, rng) {
    checkNotEmpty(param, blob);
    checkNotSparse(param, blob);
    const scale = Math.sqrt(3 / varianceNormN(param, blob));
    fillUniform(blob.mutableCpuData(), -scale, scale, rng, `xavier filler for blob ${blob.shapeString()}`);
  },
};
