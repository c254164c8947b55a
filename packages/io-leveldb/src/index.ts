export { DataError } from './errors.js';
export {
  DatumDb,
  DatumCursor,
  DatumWriter,
  openDatumDb,
  formatKey,
  type DbMode,
  type OpenDatumDbOptions,
  type DatumRecord,
  type DatumCursorOptions,
  type DatumWriterOptions,
} from './datum-db.js';
export { DataTransformer, type DataTransformerOptions, type TransformInfo } from './data-transformer.js';
export {
  DataLayer,
  dataLayerDef,
  registerDataLayers,
  primeDataSource,
  primeDataSources,
  primedDataSources,
  prepareDataLayers,
  closeDataSources,
  type PrimeOptions,
  type PrimedSourceInfo,
  type PreparableLayer,
} from './data-layer.js';
export {
  convertMnist,
  convertBundledMnist,
  loadBundledMnistDigits,
  splitBundledMnist,
  parseIdxImages,
  parseIdxLabels,
  readMaybeGzipped,
  mnistDatumBytes,
  type IdxImages,
  type IdxLabels,
  type ConvertMnistOptions,
  type BundledMnistOptions,
  type BundledMnistSplit,
  type ConvertResult,
  type ProgressCallback,
} from './convert-mnist.js';
