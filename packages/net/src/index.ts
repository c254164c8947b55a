export { Net, protoShapeMatches, type NetOptions } from './net.js';
export { filterNet, stateMeetsRule, layerIncluded, type NetStateLike, type FilterOptions } from './filter-net.js';
export { insertSplits, splitLayerName, splitBlobName } from './insert-splits.js';
export {
  upgradeNetAsNeeded,
  upgradeNetInput,
  upgradeNetDataTransformation,
  upgradeNetBatchNorm,
  netNeedsInputUpgrade,
  netNeedsDataUpgrade,
  netNeedsV1Upgrade,
  netNeedsBatchNormUpgrade,
  type UpgradeOptions,
} from './upgrade.js';
export { summarizeNet, formatNetSummary, estimateFlops, type NetSummary, type LayerSummary } from './summary.js';
export { formatG } from './format.js';
export { NetError, NetUpgradeError } from './errors.js';
