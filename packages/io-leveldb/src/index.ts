export { DataError } from './errors.js';
export {
  openDatumDb,
  formatKey,
  parseDbBackend,
  backendLabel,
  type DatumDb,
  type DatumCursor,
  type DatumWriter,
  type DbMode,
  type DbBackend,
  type OpenDatumDbOptions,
  type DatumRecord,
  type DatumCursorOptions,
  type DatumWriterOptions,
} from './datum-db.js';
export { LevelDbDatumDb, LevelDbCursor, LevelDbWriter } from './leveldb-db.js';
export { LmdbDatumDb, LmdbCursor, LmdbWriter, LMDB_MAP_SIZE } from './lmdb-db.js';
export { DataTransformer, type DataTransformerOptions, type TransformInfo } from './data-transformer.js';
export {
  primeDataSource,
  primeDataSources,
  primeDataLayer,
  primedDataSources,
  primedDataSourceInfo,
  closeDataSources,
  resolveDataPath,
  dataPathCandidates,
  type PrimeOptions,
  type PrimedSourceInfo,
} from './data-sources.js';
export { DataLayer, dataLayerDef, registerDataLayers, prepareDataLayers, type PreparableLayer } from './data-layer.js';
export {
  convertMnist,
  convertBundledMnist,
  loadBundledMnistDigits,
  splitBundledMnist,
  parseIdxImages,
  parseIdxLabels,
  readMaybeGzipped,
  mnistDatumBytes,
  parseDigitList,
  type IdxImages,
  type IdxLabels,
  type ConvertMnistOptions,
  type BundledMnistOptions,
  type BundledMnistSplit,
  type ConvertResult,
  type ProgressCallback,
} from './convert-mnist.js';
