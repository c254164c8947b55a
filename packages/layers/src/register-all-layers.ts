import type { Layer } from './layer.js';
import { defaultLayerRegistry, type LayerDef, type LayerRegistry } from './registry.js';
import { accuracyLayerDef } from './layers/accuracy-layer.js';
import { concatLayerDef } from './layers/concat-layer.js';
import { convolutionLayerDef } from './layers/convolution-layer.js';
import { dropoutLayerDef } from './layers/dropout-layer.js';
import { eltwiseLayerDef } from './layers/eltwise-layer.js';
import { flattenLayerDef } from './layers/flatten-layer.js';
import { innerProductLayerDef } from './layers/inner-product-layer.js';
import { inputLayerDef } from './layers/input-layer.js';
import { lrnLayerDef } from './layers/lrn-layer.js';
import { poolingLayerDef } from './layers/pooling-layer.js';
import { reluLayerDef } from './layers/relu-layer.js';
import { sigmoidLayerDef } from './layers/sigmoid-layer.js';
import { softmaxLayerDef } from './layers/softmax-layer.js';
import { softmaxWithLossLayerDef } from './layers/softmax-with-loss-layer.js';
import { splitLayerDef } from './layers/split-layer.js';
import { tanhLayerDef } from './layers/tanh-layer.js';
import { preluLayerDef } from './layers/prelu-layer.js';
import { eluLayerDef } from './layers/elu-layer.js';
import { swishLayerDef } from './layers/swish-layer.js';
import { absValLayerDef } from './layers/absval-layer.js';
import { powerLayerDef } from './layers/power-layer.js';
import { expLayerDef } from './layers/exp-layer.js';
import { logLayerDef } from './layers/log-layer.js';
import { bnllLayerDef } from './layers/bnll-layer.js';
import { thresholdLayerDef } from './layers/threshold-layer.js';
import { clipLayerDef } from './layers/clip-layer.js';
import { biasLayerDef } from './layers/bias-layer.js';
import { scaleLayerDef } from './layers/scale-layer.js';
import { batchNormLayerDef } from './layers/batch-norm-layer.js';
import { mvnLayerDef } from './layers/mvn-layer.js';
import { deconvolutionLayerDef } from './layers/deconvolution-layer.js';
import { sppLayerDef } from './layers/spp-layer.js';
import { cropLayerDef } from './layers/crop-layer.js';
import { im2colLayerDef } from './layers/im2col-layer.js';
import { embedLayerDef } from './layers/embed-layer.js';
import { reshapeLayerDef } from './layers/reshape-layer.js';
import { batchReindexLayerDef } from './layers/batch-reindex-layer.js';
import { sliceLayerDef } from './layers/slice-layer.js';
import { filterLayerDef } from './layers/filter-layer.js';
import { parameterLayerDef } from './layers/parameter-layer.js';
import { reductionLayerDef } from './layers/reduction-layer.js';
import { silenceLayerDef } from './layers/silence-layer.js';
import { argMaxLayerDef } from './layers/argmax-layer.js';
import { tileLayerDef } from './layers/tile-layer.js';
import { sigmoidCrossEntropyLossLayerDef } from './layers/sigmoid-cross-entropy-loss-layer.js';
import { euclideanLossLayerDef } from './layers/euclidean-loss-layer.js';
import { hingeLossLayerDef } from './layers/hinge-loss-layer.js';
import { infogainLossLayerDef } from './layers/infogain-loss-layer.js';
import { multinomialLogisticLossLayerDef } from './layers/multinomial-logistic-loss-layer.js';
import { contrastiveLossLayerDef } from './layers/contrastive-loss-layer.js';
import { lstmUnitLayerDef } from './layers/lstm-unit-layer.js';
import { rnnLayerDef } from './layers/rnn-layer.js';
import { lstmLayerDef } from './layers/lstm-layer.js';
import { pythonLayerDef } from './layers/python-layer.js';
import { dummyDataLayerDef } from './layers/dummy-data-layer.js';
import { memoryDataLayerDef } from './layers/memory-data-layer.js';

/**
 * Every built-in layer definition. Listed explicitly, never discovered, so that a bundler
 * cannot tree-shake a layer away (Caffe's "Unknown layer type: X (known types: )" trap).
 */
export const builtinLayerDefs: readonly LayerDef<Layer>[] = [
  accuracyLayerDef,
  concatLayerDef,
  convolutionLayerDef,
  dropoutLayerDef,
  eltwiseLayerDef,
  flattenLayerDef,
  innerProductLayerDef,
  inputLayerDef,
  lrnLayerDef,
  poolingLayerDef,
  reluLayerDef,
  sigmoidLayerDef,
  softmaxLayerDef,
  softmaxWithLossLayerDef,
  splitLayerDef,
  tanhLayerDef,
  preluLayerDef,
  eluLayerDef,
  swishLayerDef,
  absValLayerDef,
  powerLayerDef,
  expLayerDef,
  logLayerDef,
  bnllLayerDef,
  thresholdLayerDef,
  clipLayerDef,
  biasLayerDef,
  scaleLayerDef,
  batchNormLayerDef,
  mvnLayerDef,
  deconvolutionLayerDef,
  sppLayerDef,
  cropLayerDef,
  im2colLayerDef,
  embedLayerDef,
  reshapeLayerDef,
  batchReindexLayerDef,
  sliceLayerDef,
  filterLayerDef,
  parameterLayerDef,
  reductionLayerDef,
  silenceLayerDef,
  argMaxLayerDef,
  tileLayerDef,
  sigmoidCrossEntropyLossLayerDef,
  euclideanLossLayerDef,
  hingeLossLayerDef,
  infogainLossLayerDef,
  multinomialLogisticLossLayerDef,
  contrastiveLossLayerDef,
  lstmUnitLayerDef,
  rnnLayerDef,
  lstmLayerDef,
  pythonLayerDef,
  dummyDataLayerDef,
  memoryDataLayerDef,
];

/**
 * Register the built-in layers into `registry` (the process-wide default if omitted) and
 * return it. Idempotent: a type that is already registered keeps its definition, whether
 * it is this very def (a second call, or a second copy of this package sharing the default
 * registry) or a user's override registered before. To replace a built-in, register your
 * def with `{ override: true }` after this call.
 */
export function registerBuiltinLayers(registry: LayerRegistry = defaultLayerRegistry()): LayerRegistry {
  for (const def of builtinLayerDefs) {
    if (!registry.has(def.type)) registry.register(def as LayerDef);
  }
  return registry;
}
