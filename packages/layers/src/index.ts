// Pure exports only: importing this module registers nothing (see ./register).
export { Layer, LossLayerBase, type LayerContext, type LayerKernel, type BlobCounts } from './layer.js';
export { LayerRegistry, defaultLayerRegistry, type LayerDef } from './registry.js';
export { LayerError, UnknownLayerTypeError } from './errors.js';
export { registerBuiltinLayers, builtinLayerDefs } from './register-all-layers.js';

// Family bases and helpers.
export { NeuronLayer } from './layers/neuron-layer.js';
export { LossLayer, lossNormalization, lossNormalizer, NormalizationMode } from './layers/loss-layer.js';
export { softmaxForward, softmaxDims } from './layers/softmax-layer.js';

// Built-in layers: class and registry definition.
export { AccuracyLayer, accuracyLayerDef } from './layers/accuracy-layer.js';
export { ConcatLayer, concatLayerDef } from './layers/concat-layer.js';
export { EltwiseLayer, eltwiseLayerDef, EltwiseOp } from './layers/eltwise-layer.js';
export { FlattenLayer, flattenLayerDef } from './layers/flatten-layer.js';
export { InputLayer, inputLayerDef } from './layers/input-layer.js';
export { ReLULayer, reluLayerDef } from './layers/relu-layer.js';
export { SigmoidLayer, sigmoidLayerDef } from './layers/sigmoid-layer.js';
export { SoftmaxLayer, softmaxLayerDef } from './layers/softmax-layer.js';
export { SoftmaxWithLossLayer, softmaxWithLossLayerDef } from './layers/softmax-with-loss-layer.js';
export { SplitLayer, splitLayerDef } from './layers/split-layer.js';
export { TanHLayer, tanhLayerDef } from './layers/tanh-layer.js';
export { BaseConvolutionLayer } from './layers/base-conv-layer.js';
export { ConvolutionLayer, convolutionLayerDef } from './layers/convolution-layer.js';
export { DropoutLayer, dropoutLayerDef } from './layers/dropout-layer.js';
export { InnerProductLayer, innerProductLayerDef } from './layers/inner-product-layer.js';
export { LRNLayer, lrnLayerDef } from './layers/lrn-layer.js';
export { PoolingLayer, poolingLayerDef } from './layers/pooling-layer.js';
