export { Layer, LossLayerBase, type LayerContext, type LayerKernel, type BlobCounts } from './layer.js';
export { LayerRegistry, defaultLayerRegistry, type LayerDef } from './registry.js';
export { LayerError, UnknownLayerTypeError } from './errors.js';
