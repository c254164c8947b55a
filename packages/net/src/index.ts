export { Net, protoShapeMatches, type NetOptions } from './net.js';
export { filterNet, stateMeetsRule, layerIncluded, type NetStateLike, type FilterOptions } from './filter-net.js';
export { insertSplits, splitLayerName, splitBlobName } from './insert-splits.js';
export {
  upgradeNetAsNeeded,
  upgradeNet,
  netNeedsUpgrade,
  upgradeNetInput,
  upgradeNetDataTransformation,
  upgradeNetBatchNorm,
  netNeedsInputUpgrade,
  netNeedsDataUpgrade,
  netNeedsV1Upgrade,
  netNeedsBatchNormUpgrade,
  type UpgradeOptions,
  type NetUpgradeResult,
} from './upgrade.js';
export {
  upgradeV0Net,
  upgradeV0PaddingLayers,
  upgradeV0LayerParameter,
  upgradeV0LayerType,
  netNeedsV0ToV1Upgrade,
  V0_LAYER_TYPES,
} from './upgrade-v0.js';
export {
  upgradeV1Net,
  upgradeV1LayerParameter,
  upgradeV1LayerType,
  netNeedsV1ToV2Upgrade,
  V1_LAYER_TYPE_NAMES,
  V1_LAYER_PARAM_FIELDS,
  type UpgradeStepResult,
} from './upgrade-v1.js';
export { summarizeNet, formatNetSummary, estimateFlops, type NetSummary, type LayerSummary } from './summary.js';
export { formatG } from './format.js';
export { NetError, NetUpgradeError, UnknownBottomError } from './errors.js';
export { NetSpec, NetSpecCore, L, P, Top, LayerFunction, toProto, layerParamField, type ProtoInit, type LayerArgs, type KnownLayers, type LayerFn } from './net-spec.js';
export { crop, coordMapFromTo, layerCoordMap, composeCoordMaps, invertCoordMap, type CoordMap } from './coord-map.js';
export { forwardWith, forwardAll, forwardBackwardAll, backwardWith, setInputArrays, setInputs, netInputs, netOutputs, type InputArray, type BatchArray, type StackedArrays, type ForwardWithOptions, type BackwardWithOptions } from './pycaffe.js';
