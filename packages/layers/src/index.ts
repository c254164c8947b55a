// Pure exports only: importing this module registers nothing (see ./register).
export { Layer, LossLayerBase, type LayerContext, type LayerKernel, type BlobCounts } from './layer.js';
export { LayerRegistry, defaultLayerRegistry, type LayerDef } from './registry.js';
export { LayerError, UnknownLayerTypeError } from './errors.js';
export { blobRecordKeys, labelOutOfRangeMessage, setBlobRecordKeys } from './label-error.js';
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
export { PReLULayer, preluLayerDef } from './layers/prelu-layer.js';
export { ELULayer, eluLayerDef } from './layers/elu-layer.js';
export { SwishLayer, swishLayerDef } from './layers/swish-layer.js';
export { AbsValLayer, absValLayerDef } from './layers/absval-layer.js';
export { PowerLayer, powerLayerDef } from './layers/power-layer.js';
export { ExpLayer, expLayerDef } from './layers/exp-layer.js';
export { LogLayer, logLayerDef } from './layers/log-layer.js';
export { BNLLLayer, bnllLayerDef, BNLL_THRESHOLD } from './layers/bnll-layer.js';
export { ThresholdLayer, thresholdLayerDef } from './layers/threshold-layer.js';
export { ClipLayer, clipLayerDef } from './layers/clip-layer.js';
export { BiasLayer, biasLayerDef } from './layers/bias-layer.js';
export { ScaleLayer, scaleLayerDef } from './layers/scale-layer.js';
export { BatchNormLayer, batchNormLayerDef } from './layers/batch-norm-layer.js';
export { MVNLayer, mvnLayerDef } from './layers/mvn-layer.js';
export { DeconvolutionLayer, deconvolutionLayerDef } from './layers/deconvolution-layer.js';
export { SPPLayer, sppLayerDef, sppLevelGeometry, type SPPLevelGeometry } from './layers/spp-layer.js';
export { CropLayer, cropLayerDef } from './layers/crop-layer.js';
export { Im2colLayer, im2colLayerDef } from './layers/im2col-layer.js';
export { EmbedLayer, embedLayerDef } from './layers/embed-layer.js';
export { ReshapeLayer, reshapeLayerDef } from './layers/reshape-layer.js';
export { BatchReindexLayer, batchReindexLayerDef } from './layers/batch-reindex-layer.js';
export { SliceLayer, sliceLayerDef } from './layers/slice-layer.js';
export { FilterLayer, filterLayerDef } from './layers/filter-layer.js';
export { ParameterLayer, parameterLayerDef } from './layers/parameter-layer.js';
export { ReductionLayer, reductionLayerDef } from './layers/reduction-layer.js';
export { SilenceLayer, silenceLayerDef } from './layers/silence-layer.js';
export { ArgMaxLayer, argMaxLayerDef } from './layers/argmax-layer.js';
export { TileLayer, tileLayerDef } from './layers/tile-layer.js';
export { SigmoidCrossEntropyLossLayer, sigmoidCrossEntropyLossLayerDef } from './layers/sigmoid-cross-entropy-loss-layer.js';
export { EuclideanLossLayer, euclideanLossLayerDef } from './layers/euclidean-loss-layer.js';
export { HingeLossLayer, hingeLossLayerDef } from './layers/hinge-loss-layer.js';
export { InfogainLossLayer, infogainLossLayerDef, createInfogainLossLayerDef, type InfogainLossOptions } from './layers/infogain-loss-layer.js';
export { readLayerFile, type BinaryFileReader } from './layer-files.js';
export { MultinomialLogisticLossLayer, multinomialLogisticLossLayerDef } from './layers/multinomial-logistic-loss-layer.js';
export { ContrastiveLossLayer, contrastiveLossLayerDef } from './layers/contrastive-loss-layer.js';
export { LSTMUnitLayer, lstmUnitLayerDef, lstmUnitForward, lstmUnitBackward } from './layers/lstm-unit-layer.js';
export { RNNLayer, rnnLayerDef } from './layers/rnn-layer.js';
export { LSTMLayer, lstmLayerDef } from './layers/lstm-layer.js';
export { RecurrentLayer } from './layers/recurrent-layer.js';
export {
  PythonLayer,
  pythonLayerDef,
  pythonLayerDefFor,
  registerPythonLayer,
  unregisterPythonLayer,
  PythonLayerRegistry,
  defaultPythonLayerRegistry,
  type PythonLayerImpl,
  type PythonLayerSelf,
  type PythonLayerFactory,
} from './layers/python-layer.js';
export { DummyDataLayer, dummyDataLayerDef } from './layers/dummy-data-layer.js';
export { MemoryDataLayer, memoryDataLayerDef, type DatumTransformer } from './layers/memory-data-layer.js';
