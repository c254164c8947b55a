import { checkNotEmpty, checkNotSparse, type FillerDef } from './filler.js';

/** Every element = value (default 0). */
export const constantFillerDef: FillerDef = {
  type: 'constant',
  fill(blob, param) {
    checkNotEmpty(param, blob);
    checkNotSparse(param, blob);
    blob.mutableCpuData().fill(param.value);
  },
};
