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
export {
  DataTransformer,
  type DataTransformerOptions,
  type TransformInfo,
  type TransformDraws,
  type TransformSpec,
} from './data-transformer.js';
export { setDecodeWorkers, decodeWorkerCount, decodePoolStats, type DecodePoolStats } from './decode-pool.js';
export { layerShard, type Shard } from './shard.js';
export {
  primeDataSource,
  primeDataSources,
  primeDataLayer,
  primedDataSources,
  ShardedRecordReader,
  type RecordType,
  primedDataSourceInfo,
  closeDataSources,
  resolveDataPath,
  dataPathCandidates,
  type PrimeOptions,
  type PrimedSourceInfo,
} from './data-sources.js';
export { DataLayer, dataLayerDef, registerDataLayers, prepareDataLayers, type PreparableLayer } from './data-layer.js';
export { BasePrefetchingDataLayer, type Batch } from './prefetching-layer.js';
export { AnnotatedDataLayer, annotatedDataLayerDef, BBOX_LABEL_WIDTH } from './annotated-data-layer.js';
export {
  ANNOTATION_BBOX,
  annotationGroups,
  decodeAnnotatedRecord,
  encodeAnnotatedDatum,
  hasAnnotationType,
  writeAnnotatedDatumDb,
  type AnnotatedBoxInit,
  type AnnotatedDatum,
  type AnnotatedDatumInit,
} from './annotated-datum.js';
export {
  AnnotatedTransformer,
  objectBoxes,
  planarToImage,
  ssdTransformSpec,
  transformAnnotation,
  type AnnotatedImage,
  type AnnotatedTransformerOptions,
  type AnnotationStep,
  type SsdTransformSpec,
} from './annotated-transformer.js';
export {
  boxCoverage,
  boxSize,
  clipBox,
  EMIT_CENTER,
  EMIT_MIN_OVERLAP,
  extrapolateBox,
  inferNewSize,
  intersectBox,
  jaccardOverlap,
  locateBox,
  makeBox,
  meetsEmitConstraint,
  projectBox,
  RESIZE_FIT_LARGE_SIZE_AND_PAD,
  RESIZE_FIT_SMALL_SIZE,
  RESIZE_WARP,
  unitBox,
  updateBoxByResizePolicy,
  type BoxAnnotation,
  type BoxGroup,
  type EmitSpec,
  type NormBox,
  type ResizePolicy,
} from './ssd-bbox.js';
export {
  batchSamplerSpecs,
  generateBatchSamples,
  generateSamples,
  sampleBox,
  samplerProblem,
  satisfiesSampleConstraint,
  type BatchSamplerSpec,
  type SampleConstraintSpec,
  type SamplerSpec,
} from './ssd-sampler.js';
export {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  applyDistort,
  applyNoise,
  applyResize,
  bgrToHsv,
  cropToBox,
  expandImage,
  hsvToBgr,
  padImage,
  resizeWith,
  INTERP_AREA,
  INTERP_CUBIC,
  INTERP_LANCZOS4,
  INTERP_LINEAR,
  INTERP_NEAREST,
  PAD_CONSTANT,
  PAD_MIRRORED,
  PAD_REPEAT_NEAREST,
  type DistortSpec,
  type NoiseSpec,
  type ResizeSpec,
} from './ssd-im-transforms.js';
export { ImageDataLayer, imageDataLayerDef, primeImageDataLayer } from './image-data-layer.js';
export { WindowDataLayer, windowDataLayerDef, parseWindowFile, placeWindow, type Window, type WindowFile, type WindowImage, type WindowPlacement } from './window-data-layer.js';
export { HDF5DataLayer, hdf5DataLayerDef } from './hdf5-data-layer.js';
export { HDF5OutputLayer, hdf5OutputLayerDef } from './hdf5-output-layer.js';
export {
  hdf5Ready,
  isHdf5Ready,
  isHdf5File,
  readHdf5Datasets,
  readHdf5DatasetsSync,
  writeHdf5Datasets,
  writeHdf5DatasetsSync,
  hdf5DatasetShapesSync,
  type Hdf5Array,
  type Hdf5Dataset,
  type Hdf5DatasetInput,
  type WriteHdf5Options,
} from './hdf5.js';
export {
  decodeImage,
  readImage,
  resizeImage,
  encodeImage,
  flipImage,
  cropImage,
  imageToDatum,
  imageFileToDatum,
  decodeDatumImage,
  datumDecodeMode,
  parseImageEncoding,
  rgbToGray,
  type PixelImage,
  type ImreadMode,
  type ImageEncoding,
  type ImageDatumOptions,
} from './image-io.js';
export { parseImageList, resolveImagePath, type ImageListEntry } from './image-list.js';
export { writeDbAtomically, type WriteDbOptions } from './db-write.js';
export { convertImageset, type ConvertImagesetOptions, type ConvertImagesetResult } from './convert-imageset.js';
export {
  convertAnnoset,
  annosetResize,
  type AnnoType,
  type AnnoLabelType,
  type ConvertAnnosetOptions,
  type ConvertAnnosetResult,
} from './convert-annoset.js';
export {
  readLabelMap,
  parseLabelMap,
  mapNameToLabel,
  parseXmlAnnotation,
  parseJsonAnnotation,
  parseTxtAnnotation,
  parseVocRoidbAnnotation,
  readVocRoidb,
  VOC_CLASSES,
  type VocRoidbEntry,
  type LabelMap,
  type LabelMapItem,
  type AnnotationBox,
  type AnnotationInit,
  type AnnotationGroupInit,
  type AnnotationContext,
} from './annotation-files.js';
export { parseCocoRoidb, readCocoRoidb, type CocoRoidb, type CocoRoidbEntry } from './coco-roidb.js';
export { getImageSizes, pathStem, type GetImageSizesOptions, type ImageSizeEntry } from './image-sizes.js';
export { parseListPairs, type ListPair } from './dataset-tool.js';
export { computeImageMean, type ComputeImageMeanOptions, type ImageMean } from './compute-image-mean.js';
export { extractFeatures, type ExtractFeaturesOptions, type ExtractFeaturesResult, type FeatureNet } from './extract-features.js';
export { convertCifar, cifarDatumBytes, CIFAR_SIZE, CIFAR_IMAGE_BYTES, CIFAR_BATCH_SIZE, type ConvertCifarOptions, type ConvertCifarResult } from './convert-cifar.js';
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
