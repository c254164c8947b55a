/**
 * @caffe-ts/layers-contrib: layers of widely used Caffe forks (SSD, Fast/Faster R-CNN, R-FCN, SegNet,
 * DeepLab/PSPNet, the MobileNet and ShuffleNet forks, DenseNet's ceil_mode), registered through the custom-layer
 * API. Pure exports; `./register` registers everything into the default registry, and
 * `./detect` holds the detection pipeline (image in, boxes and an annotated PNG out).
 */
import { defaultLayerRegistry, defaultPythonLayerRegistry, type LayerDef, type LayerRegistry, type PythonLayerFactory, type PythonLayerRegistry } from '@caffe-ts/layers';
import { bnLayerDef } from './layers/bn-layer.js';
import { convolutionDepthwiseLayerDef, depthwiseConvolutionLayerDef } from './layers/depthwise-convolution-layer.js';
import { detectionEvaluateLayerDef } from './layers/detection-evaluate-layer.js';
import { detectionOutputLayerDef } from './layers/detection-output-layer.js';
import { interpLayerDef } from './layers/interp-layer.js';
import { multiBoxLossLayerDef } from './layers/multibox-loss-layer.js';
import { normalizeLayerDef } from './layers/normalize-layer.js';
import { permuteLayerDef } from './layers/permute-layer.js';
import { poolingCeilModeLayerDef } from './layers/pooling-ceil-mode.js';
import { priorBoxLayerDef } from './layers/prior-box-layer.js';
import { createProposalLayer, proposalLayerDef, PY_FASTER_RCNN_PROPOSAL, pyFasterRcnnProposalLayer } from './layers/proposal-layer.js';
import { createAnchorTargetLayer, PY_FASTER_RCNN_ANCHOR_TARGET, pyFasterRcnnAnchorTargetLayer } from './layers/anchor-target-layer.js';
import { createProposalTargetLayer, PY_FASTER_RCNN_PROPOSAL_TARGET, pyFasterRcnnProposalTargetLayer } from './layers/proposal-target-layer.js';
import { createRoIDataLayer, PY_FASTER_RCNN_ROI_DATA, pyFasterRcnnRoIDataLayer } from './layers/roi-data-layer.js';
import { psroiPoolingLayerDef } from './layers/psroi-pooling-layer.js';
import { relu6LayerDef } from './layers/relu6-layer.js';
import { roiPoolingLayerDef } from './layers/roi-pooling-layer.js';
import { shuffleChannelLayerDef } from './layers/shuffle-channel-layer.js';
import { smoothL1LossLayerDef } from './layers/smooth-l1-loss-layer.js';
import { unsupportedForkLayerDefs } from './layers/unsupported-layers.js';
import { upsampleLayerDef } from './layers/upsample-layer.js';
import type { FasterRcnnConfigOverrides } from './faster-rcnn-config.js';
import { registerContribSchema } from './schema.js';

export { PriorBoxLayer, priorBoxLayerDef } from './layers/prior-box-layer.js';
export { DetectionOutputLayer, detectionOutputLayerDef, createDetectionOutputLayerDef, type DetectionOutputOptions, type ResultFileSystem } from './layers/detection-output-layer.js';
export { DetectionEvaluateLayer, detectionEvaluateLayerDef, createDetectionEvaluateLayerDef, type DetectionEvaluateOptions } from './layers/detection-evaluate-layer.js';
export { PermuteLayer, permuteLayerDef } from './layers/permute-layer.js';
export { NormalizeLayer, normalizeLayerDef } from './layers/normalize-layer.js';
export { ReLU6Layer, relu6LayerDef } from './layers/relu6-layer.js';
export { DepthwiseConvolutionLayer, depthwiseConvolutionLayerDef, convolutionDepthwiseLayerDef } from './layers/depthwise-convolution-layer.js';
export { ShuffleChannelLayer, shuffleChannelLayerDef } from './layers/shuffle-channel-layer.js';
export { UpsampleLayer, upsampleLayerDef } from './layers/upsample-layer.js';
export { InterpLayer, interpLayerDef } from './layers/interp-layer.js';
export { BNLayer, bnLayerDef, BN_VAR_EPS } from './layers/bn-layer.js';
export { ROIPoolingLayer, roiPoolingLayerDef } from './layers/roi-pooling-layer.js';
export { SmoothL1LossLayer, smoothL1LossLayerDef } from './layers/smooth-l1-loss-layer.js';
export { MultiBoxLossLayer, multiBoxLossLayerDef } from './layers/multibox-loss-layer.js';
export { PSROIPoolingLayer, psroiPoolingLayerDef } from './layers/psroi-pooling-layer.js';
export { ProposalLayer, proposalLayerDef, createProposalLayer, pyFasterRcnnProposalLayer, PY_FASTER_RCNN_PROPOSAL, parseProposalParamStr } from './layers/proposal-layer.js';
export {
  applyBoxDeltas,
  bboxOverlaps,
  bboxTransform,
  computeProposals,
  generateAnchors,
  nmsPixelBoxes,
  roundHalfEven,
  DEFAULT_PROPOSAL_OPTIONS,
  type ProposalOptions,
  type Proposals,
} from './proposals.js';
export {
  FASTER_RCNN_CONFIG,
  FASTER_RCNN_TRAIN_CONFIG,
  FASTER_RCNN_TEST_CONFIG,
  fasterRcnnConfig,
  PY_FASTER_RCNN_DEFAULTS,
  type FasterRcnnConfig,
  type FasterRcnnConfigOverrides,
  type FasterRcnnTrainConfig,
  type FasterRcnnTestConfig,
} from './faster-rcnn-config.js';
export { parseFasterRcnnCfg, applyFasterRcnnCfgList, FasterRcnnConfigError, type FasterRcnnCfgFile, type FasterRcnnCfgList } from './faster-rcnn-cfg-file.js';
export { bboxPredSnapshotWeights, type BboxPredSnapshotWeights } from './bbox-pred-snapshot.js';
export { testNetImage, type TestNetOptions } from './faster-rcnn-test.js';
export { vocAp, vocEvalClass, vocResultLine, parseVocResults, formatFixed, type VocDetection, type VocGroundTruth, type VocClassResult } from './voc-eval.js';
export {
  PyAnchorTargetLayer,
  anchorTargets,
  createAnchorTargetLayer,
  pyFasterRcnnAnchorTargetLayer,
  PY_FASTER_RCNN_ANCHOR_TARGET,
  type AnchorTargets,
  type AnchorTargetOptions,
} from './layers/anchor-target-layer.js';
export {
  PyProposalTargetLayer,
  sampleRois,
  createProposalTargetLayer,
  pyFasterRcnnProposalTargetLayer,
  PY_FASTER_RCNN_PROPOSAL_TARGET,
  type SampledRois,
  type ProposalTargetConfig,
} from './layers/proposal-target-layer.js';
export {
  PyRoIDataLayer,
  createRoIDataLayer,
  pyFasterRcnnRoIDataLayer,
  getTrainingRoidb,
  prepareTrainingImage,
  readRoidbImage,
  roiDataLayerOf,
  setRoidb,
  roidbShare,
  type RoidbReplicaData,
  trainingImageScale,
  PY_FASTER_RCNN_ROI_DATA,
  type RoidbEntry,
  type RoidbImage,
  type RoiMinibatch,
} from './layers/roi-data-layer.js';
export { poolingCeilModeLayerDef } from './layers/pooling-ceil-mode.js';
export { unsupportedForkLayerDefs, UNSUPPORTED_FORK_LAYER_TYPES } from './layers/unsupported-layers.js';
export { decodeBox, encodeBox, jaccardOverlap, boxArea, nms, maxScoreIndices, type Box } from './bbox.js';
export {
  matchBoxes,
  findMatches,
  mineExamples,
  greedyNms,
  floatBox,
  floatOverlap,
  type BoxMatches,
  type ImageMatches,
  type GroundTruthBox,
  type SizedBox,
  type MatchingOptions,
  type MiningOptions,
} from './multibox.js';
export {
  registerContribSchema,
  CONTRIB_LAYER_FIELDS,
  POOLING_CEIL_MODE_FIELD,
  DROPOUT_SCALE_TRAIN_FIELD,
  TEXT_COMPAT_FIELDS,
  BN_PROTO,
  UPSAMPLE_PROTO,
  INTERP_PROTO,
  SHUFFLE_CHANNEL_PROTO,
  ROI_POOLING_PROTO,
  SMOOTH_L1_LOSS_PROTO,
  PROPOSAL_PROTO,
  PSROI_POOLING_PROTO,
} from './schema.js';
export { CodeType, BNMode, LocLossType, ConfLossType, MatchType, MiningType, ResizeMode, forkParam } from './fork-types.js';
export type {
  PriorBoxParameter,
  DetectionOutputParameter,
  NonMaximumSuppressionParameter,
  PermuteParameter,
  NormalizeParameter,
  BNParameter,
  UpsampleParameter,
  InterpParameter,
  ShuffleChannelParameter,
  ROIPoolingParameter,
  SmoothL1LossParameter,
  ProposalParameter,
  PSROIPoolingParameter,
  MultiBoxLossParameter,
  DetectionEvaluateParameter,
  SaveOutputParameter,
  ResizeParameter,
} from './fork-types.js';

/** Every layer type this package adds (Pooling with ceil_mode is registered separately). */
export const CONTRIB_LAYER_DEFS: readonly LayerDef[] = [
  priorBoxLayerDef,
  detectionOutputLayerDef,
  permuteLayerDef,
  normalizeLayerDef,
  relu6LayerDef,
  depthwiseConvolutionLayerDef,
  convolutionDepthwiseLayerDef,
  shuffleChannelLayerDef,
  upsampleLayerDef,
  interpLayerDef,
  bnLayerDef,
  roiPoolingLayerDef,
  smoothL1LossLayerDef,
  proposalLayerDef,
  psroiPoolingLayerDef,
  multiBoxLossLayerDef,
  detectionEvaluateLayerDef,
  ...unsupportedForkLayerDefs,
];

/**
 * Register the TypeScript ports of py-faster-rcnn's Python layers in `python` (the process-wide
 * Python layer registry by default), each unless one is registered there already:
 * `rpn.proposal_layer.ProposalLayer`, `rpn.anchor_target_layer.AnchorTargetLayer`,
 * `rpn.proposal_target_layer.ProposalTargetLayer` and `roi_data_layer.layer.RoIDataLayer`. With
 * `config`, the training layers read those settings instead of FASTER_RCNN_TRAIN_CONFIG's, and
 * replace any registered ones.
 */
export function registerFasterRcnnPythonLayers(
  python: PythonLayerRegistry = defaultPythonLayerRegistry(),
  config?: FasterRcnnConfigOverrides,
): PythonLayerRegistry {
  const ports: [{ module: string; layer: string }, PythonLayerFactory, (c: FasterRcnnConfigOverrides) => PythonLayerFactory][] = [
    [PY_FASTER_RCNN_PROPOSAL, pyFasterRcnnProposalLayer, createProposalLayer],
    [PY_FASTER_RCNN_ANCHOR_TARGET, pyFasterRcnnAnchorTargetLayer, createAnchorTargetLayer],
    [PY_FASTER_RCNN_PROPOSAL_TARGET, pyFasterRcnnProposalTargetLayer, createProposalTargetLayer],
    [PY_FASTER_RCNN_ROI_DATA, pyFasterRcnnRoIDataLayer, createRoIDataLayer],
  ];
  for (const [{ module, layer }, standard, create] of ports) {
    if (config) python.register(module, layer, create(config), { override: true });
    else if (!python.has(module, layer)) python.register(module, layer, standard);
  }
  return python;
}

/**
 * Register the forks' schema fields and layer types (and Pooling with ceil_mode, replacing the
 * registry's 'Pooling'). Types the registry already has are left alone, except Pooling. Also
 * registers the ports of py-faster-rcnn's Python layers (proposal, anchor target, proposal target,
 * RoI data; registerFasterRcnnPythonLayers) in the process-wide Python layer registry, each unless
 * one is registered already. Safe to call more than once.
 */
export function registerContribLayers(registry: LayerRegistry = defaultLayerRegistry()): LayerRegistry {
  registerContribSchema();
  for (const def of CONTRIB_LAYER_DEFS) if (!registry.has(def.type)) registry.register(def);
  // py-faster-rcnn's nets name their proposal layer, and its training nets their data and target
  // layers, as Python layers.
  registerFasterRcnnPythonLayers();
  registry.register(poolingCeilModeLayerDef, { override: true });
  return registry;
}
