import { checkNotEmpty, checkNotSparse, fillUniform, type FillerDef } from './filler.js';

/** Uniform in [min, max) (defaults 0 and 1). */
export const uniformFillerDef: FillerDef = {
  type: 'uniform',
  fill(blob, param, rng) {
    checkNotEmpty(param, blob);
    checkNotSparse(param, blob);
    fillUniform(blob.mutableCpuData(), param.min, param.max, rng, `uniform filler for blob ${blob.shapeString()}`);
  },
};
