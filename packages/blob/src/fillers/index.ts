export {
  FillerError,
  VarianceNorm,
  resolveFillerParams,
  varianceNormN,
  type FillerDef,
  type FillerParams,
  type FillerSpec,
} from './filler.js';
export {
  FillerRegistry,
  FillerRegistryError,
  UnknownFillerTypeError,
  builtinFillerDefs,
  defaultFillerRegistry,
  fillBlob,
} from './registry.js';
export { constantFillerDef } from './constant-filler.js';
export { gaussianFillerDef } from './gaussian-filler.js';
export { uniformFillerDef } from './uniform-filler.js';
export { xavierFillerDef } from './xavier-filler.js';
export { msraFillerDef } from './msra-filler.js';
export { positiveUnitballFillerDef } from './positive-unitball-filler.js';
export { bilinearFillerDef } from './bilinear-filler.js';
