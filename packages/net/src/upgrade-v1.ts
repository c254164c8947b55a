/**
 * V1 → current upgrade (Caffe's UpgradeV1Net): `layers { type: CONVOLUTION blobs_lr: 1 ... }`
 * becomes `layer { type: "Convolution" param { lr_mult: 1 } ... }`.
 */
import {
  createMessage,
  hasField,
  ParamSpec_DimCheckMode,
  V1LayerParameter_DimCheckMode,
  V1LayerParameter_LayerType as V1,
  type LayerParameter,
  type NetParameter,
  type ParamSpec,
  type V1LayerParameter,
} from '@caffe-ts/proto';
import { NetUpgradeError } from './errors.js';

/**
 * The type string of each V1 enum value (Caffe's UpgradeV1LayerType): the 39 layer types plus
 * NONE, which maps to the empty string.
 */
export const V1_LAYER_TYPE_NAMES: Readonly<Record<V1, string>> = Object.freeze({
  [V1.NONE]: '',
  [V1.ABSVAL]: 'AbsVal',
  [V1.ACCURACY]: 'Accuracy',
  [V1.ARGMAX]: 'ArgMax',
  [V1.BNLL]: 'BNLL',
  [V1.CONCAT]: 'Concat',
  [V1.CONTRASTIVE_LOSS]: 'ContrastiveLoss',
  [V1.CONVOLUTION]: 'Convolution',
  [V1.DECONVOLUTION]: 'Deconvolution',
  [V1.DATA]: 'Data',
  [V1.DROPOUT]: 'Dropout',
  [V1.DUMMY_DATA]: 'DummyData',
  [V1.EUCLIDEAN_LOSS]: 'EuclideanLoss',
  [V1.ELTWISE]: 'Eltwise',
  [V1.EXP]: 'Exp',
  [V1.FLATTEN]: 'Flatten',
  [V1.HDF5_DATA]: 'HDF5Data',
  [V1.HDF5_OUTPUT]: 'HDF5Output',
  [V1.HINGE_LOSS]: 'HingeLoss',
  [V1.IM2COL]: 'Im2col',
  [V1.IMAGE_DATA]: 'ImageData',
  [V1.INFOGAIN_LOSS]: 'InfogainLoss',
  [V1.INNER_PRODUCT]: 'InnerProduct',
  [V1.LRN]: 'LRN',
  [V1.MEMORY_DATA]: 'MemoryData',
  [V1.MULTINOMIAL_LOGISTIC_LOSS]: 'MultinomialLogisticLoss',
  [V1.MVN]: 'MVN',
  [V1.POOLING]: 'Pooling',
  [V1.POWER]: 'Power',
  [V1.RELU]: 'ReLU',
  [V1.SIGMOID]: 'Sigmoid',
  [V1.SIGMOID_CROSS_ENTROPY_LOSS]: 'SigmoidCrossEntropyLoss',
  [V1.SILENCE]: 'Silence',
  [V1.SOFTMAX]: 'Softmax',
  [V1.SOFTMAX_LOSS]: 'SoftmaxWithLoss',
  [V1.SPLIT]: 'Split',
  [V1.SLICE]: 'Slice',
  [V1.TANH]: 'TanH',
  [V1.WINDOW_DATA]: 'WindowData',
  [V1.THRESHOLD]: 'Threshold',
});

/** The current type string of a V1 enum value; an unknown value throws NetUpgradeError. */
export function upgradeV1LayerType(type: V1): string {
  const name = (V1_LAYER_TYPE_NAMES as Record<number, string | undefined>)[type];
  if (name === undefined) {
    throw new NetUpgradeError(
      `Unknown V1LayerParameter layer type: ${type} (known: ${Object.keys(V1_LAYER_TYPE_NAMES).join(', ')})`,
    );
  }
  return name;
}

/**
 * The per-layer parameter messages a V1 layer may hold; each has the same name and message type
 * in LayerParameter, so it is carried over as it is.
 */
export const V1_LAYER_PARAM_FIELDS = [
  'accuracy_param',
  'argmax_param',
  'concat_param',
  'contrastive_loss_param',
  'convolution_param',
  'data_param',
  'dropout_param',
  'dummy_data_param',
  'eltwise_param',
  'exp_param',
  'hdf5_data_param',
  'hdf5_output_param',
  'hinge_loss_param',
  'image_data_param',
  'infogain_loss_param',
  'inner_product_param',
  'lrn_param',
  'memory_data_param',
  'mvn_param',
  'pooling_param',
  'power_param',
  'relu_param',
  'sigmoid_param',
  'softmax_param',
  'slice_param',
  'tanh_param',
  'threshold_param',
  'window_data_param',
  'transform_param',
  'loss_param',
] as const;

/** Whether `v` is a protobufjs message instance (its prototype carries `$type`). */
function isMessage(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && '$type' in v;
}

/**
 * A deep copy of a message (Caffe's CopyFrom), so an upgraded net never shares editable
 * sub-messages with the original. BlobProto instances are shared, not copied: they hold the
 * weights (hundreds of MB for zoo models) and nothing here edits them.
 */
export function cloneMessage<T extends object>(msg: T, omit: readonly string[] = []): T {
  const copy = Object.create(Object.getPrototypeOf(msg) as object) as Record<string, unknown>;
  const cloneValue = (v: unknown): unknown => (isMessage(v) && !isBlobProto(v) ? cloneMessage(v) : v);
  for (const key of Object.keys(msg)) {
    if (omit.includes(key)) continue;
    const v = (msg as Record<string, unknown>)[key];
    copy[key] = Array.isArray(v) ? v.map(cloneValue) : cloneValue(v);
  }
  return copy as T;
}

function isBlobProto(v: object): boolean {
  const type = (v as { $type?: { name?: unknown } }).$type;
  return type?.name === 'BlobProto';
}

/** Caffe's NetNeedsV1ToV2Upgrade: any `layers` at all. */
export function netNeedsV1ToV2Upgrade(param: NetParameter): boolean {
  return param.layers.length > 0;
}

/** What an upgrade step produced, and whether every field found a home (Caffe's is_fully_compatible). */
export interface UpgradeStepResult<T> {
  result: T;
  /** False when some field could not be carried over; `problems` says which. */
  success: boolean;
  /** Caffe's LOG(ERROR) lines for the fields that were dropped. */
  problems: string[];
}

/**
 * Upgrade one V1 layer (Caffe's UpgradeV1LayerParameter): bottoms, tops, name, include/exclude
 * rules, type string, blobs (so a V1 caffemodel's weights stay attached), `param` names,
 * `blob_share_mode`, `blobs_lr` and `weight_decay` into ParamSpecs, loss weights and every
 * per-layer parameter message. A nested V0 `layer` cannot be carried over and is reported.
 */
export function upgradeV1LayerParameter(v1: V1LayerParameter): UpgradeStepResult<LayerParameter> {
  const problems: string[] = [];
  const out = createMessage<LayerParameter>('LayerParameter', {});
  if (v1.bottom.length > 0) out.bottom = v1.bottom.slice();
  if (v1.top.length > 0) out.top = v1.top.slice();
  if (hasField(v1, 'name')) out.name = v1.name;
  if (v1.include.length > 0) out.include = v1.include.map((r) => cloneMessage(r));
  if (v1.exclude.length > 0) out.exclude = v1.exclude.map((r) => cloneMessage(r));
  if (hasField(v1, 'type')) out.type = upgradeV1LayerType(v1.type);
  if (v1.blobs.length > 0) out.blobs = v1.blobs.slice();

  // param names, share modes, lr and decay multipliers all land in ParamSpec i, created on demand.
  const specs: ParamSpec[] = [];
  const spec = (i: number): ParamSpec => {
    while (specs.length <= i) specs.push(createMessage<ParamSpec>('ParamSpec', {}));
    return specs[i]!;
  };
  v1.param.forEach((name, i) => {
    spec(i).name = name;
  });
  v1.blob_share_mode.forEach((mode, i) => {
    if (mode === V1LayerParameter_DimCheckMode.STRICT) spec(i).share_mode = ParamSpec_DimCheckMode.STRICT;
    else if (mode === V1LayerParameter_DimCheckMode.PERMISSIVE) spec(i).share_mode = ParamSpec_DimCheckMode.PERMISSIVE;
    else throw new NetUpgradeError(`Unknown blob_share_mode: ${mode} (layer '${v1.name}', param ${i})`);
  });
  v1.blobs_lr.forEach((lr, i) => {
    spec(i).lr_mult = lr;
  });
  v1.weight_decay.forEach((decay, i) => {
    spec(i).decay_mult = decay;
  });
  if (specs.length > 0) out.param = specs;
  if (v1.loss_weight.length > 0) out.loss_weight = v1.loss_weight.slice();

  const src = v1 as unknown as Record<string, unknown>;
  const dst = out as unknown as Record<string, unknown>;
  for (const field of V1_LAYER_PARAM_FIELDS) {
    if (hasField(v1, field)) dst[field] = cloneMessage(src[field] as object);
  }
  if (hasField(v1, 'layer')) {
    problems.push('Input NetParameter has V0 layer -- ignoring.');
  }
  return { result: out, success: problems.length === 0, problems };
}

/**
 * Upgrade a net of V1 `layers` to `layer`s (Caffe's UpgradeV1Net). Every other net field is
 * kept. A net with both `layer` and `layers` is refused, as Caffe does.
 */
export function upgradeV1Net(param: NetParameter, file = '<NetParameter>'): UpgradeStepResult<NetParameter> {
  if (param.layer.length > 0) {
    throw new NetUpgradeError(
      `${file}: Refusing to upgrade inconsistent NetParameter input; the definition includes both 'layer' ` +
        `(${param.layer.length}) and 'layers' (${param.layers.length}) fields. The current format defines 'layer' ` +
        `fields with string type like layer { type: 'Layer' ... } and not layers { type: LAYER ... }. ` +
        `Manually switch the definition to 'layer' format to continue.`,
    );
  }
  const out = cloneMessage(param, ['layers', 'layer']);
  out.layers = [];
  const problems: string[] = [];
  out.layer = param.layers.map((l, i) => {
    const r = upgradeV1LayerParameter(l);
    if (!r.success) problems.push(...r.problems, `Upgrade of input layer ${i} failed.`);
    return r.result;
  });
  return { result: out, success: problems.length === 0, problems };
}
