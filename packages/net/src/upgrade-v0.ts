/**
 * V0 → V1 upgrade (Caffe's UpgradeV0Net): the 2013 format, `layers { layer { type: "conv" ... } }`
 * with every setting flat in V0LayerParameter, lowercase type names and separate "padding"
 * layers, becomes V1 `layers { type: CONVOLUTION convolution_param { ... } }`. The V1 → current
 * step (upgrade-v1.ts) follows.
 */
import {
  createMessage,
  hasField,
  PoolingParameter_PoolMethod,
  V0LayerParameter_PoolMethod,
  V1LayerParameter_LayerType as V1,
  type NetParameter,
  type V0LayerParameter,
  type V1LayerParameter,
} from '@caffe-ts/proto';
import { NetUpgradeError } from './errors.js';
import { cloneMessage, type UpgradeStepResult } from './upgrade-v1.js';

/** Caffe's NetNeedsV0ToV1Upgrade: some `layers` entry still nests a V0 `layer`. */
export function netNeedsV0ToV1Upgrade(param: NetParameter): boolean {
  return param.layers.some((l) => hasField(l, 'layer'));
}

/** The V1 enum of each V0 type name (Caffe's UpgradeV0LayerType). */
export const V0_LAYER_TYPES: Readonly<Record<string, V1>> = Object.freeze({
  accuracy: V1.ACCURACY,
  bnll: V1.BNLL,
  concat: V1.CONCAT,
  conv: V1.CONVOLUTION,
  data: V1.DATA,
  dropout: V1.DROPOUT,
  euclidean_loss: V1.EUCLIDEAN_LOSS,
  flatten: V1.FLATTEN,
  hdf5_data: V1.HDF5_DATA,
  hdf5_output: V1.HDF5_OUTPUT,
  im2col: V1.IM2COL,
  images: V1.IMAGE_DATA,
  infogain_loss: V1.INFOGAIN_LOSS,
  innerproduct: V1.INNER_PRODUCT,
  lrn: V1.LRN,
  multinomial_logistic_loss: V1.MULTINOMIAL_LOGISTIC_LOSS,
  pool: V1.POOLING,
  relu: V1.RELU,
  sigmoid: V1.SIGMOID,
  softmax: V1.SOFTMAX,
  softmax_loss: V1.SOFTMAX_LOSS,
  split: V1.SPLIT,
  tanh: V1.TANH,
  window_data: V1.WINDOW_DATA,
});

/** The V1 enum of a V0 type name; an unknown name throws NetUpgradeError. */
export function upgradeV0LayerType(type: string): V1 {
  const v = Object.prototype.hasOwnProperty.call(V0_LAYER_TYPES, type) ? V0_LAYER_TYPES[type] : undefined;
  if (v === undefined) {
    throw new NetUpgradeError(`Unknown layer name: ${type} (V0 layer types: ${Object.keys(V0_LAYER_TYPES).join(', ')})`);
  }
  return v;
}

/**
 * Fold V0 "padding" layers into the conv or pool layer that reads them (Caffe's
 * UpgradeV0PaddingLayers): the padding layer disappears, its `pad` moves to the consumer and the
 * consumer reads the padding layer's input. Idempotent. The result is still V0.
 */
export function upgradeV0PaddingLayers(param: NetParameter, file = '<NetParameter>'): NetParameter {
  const out = cloneMessage(param, ['layers']);
  out.layers = [];
  // Blob name → index of the layer that last wrote it (-1: a net input).
  const lastTop = new Map<string, number>();
  for (const name of param.input) lastTop.set(name, -1);
  param.layers.forEach((connection, i) => {
    const v0 = connection.layer;
    const type = v0?.type ?? '';
    let added: V1LayerParameter | undefined;
    if (type !== 'padding') {
      added = cloneMessage(connection);
      out.layers.push(added);
    }
    connection.bottom.forEach((blob, j) => {
      const from = lastTop.get(blob);
      if (from === undefined) {
        throw new NetUpgradeError(
          `${file}: Unknown blob input ${blob} to layer ${i} ('${v0?.name ?? connection.name}', bottom ${j}) while upgrading V0 padding layers`,
        );
      }
      if (from === -1) return;
      const source = param.layers[from]!;
      if (source.layer?.type !== 'padding') return;
      // Caffe defines padding only in front of a single-input conv or pool layer.
      const where = `${file}: padding layer '${source.layer.name}' feeding layer '${v0?.name ?? ''}'`;
      if (type !== 'conv' && type !== 'pool') {
        throw new NetUpgradeError(`${where}: Padding layer input to non-convolutional / non-pooling layer type ${type}`);
      }
      if (connection.bottom.length !== 1) {
        throw new NetUpgradeError(`${where}: Conv Layer takes a single blob as input (it has ${connection.bottom.length}).`);
      }
      if (source.bottom.length !== 1) {
        throw new NetUpgradeError(`${where}: Padding Layer takes a single blob as input (it has ${source.bottom.length}).`);
      }
      if (source.top.length !== 1) {
        throw new NetUpgradeError(`${where}: Padding Layer produces a single blob as output (it has ${source.top.length}).`);
      }
      added!.layer!.pad = source.layer.pad;
      added!.bottom[j] = source.bottom[0]!;
    });
    for (const blob of connection.top) lastTop.set(blob, i);
  });
  return out;
}

type Msg = Record<string, unknown>;

/** Where a V0 field goes for each V0 layer type: [parameter message field, field name, repeated]. */
type Targets = Readonly<Record<string, readonly [string, string, boolean?]>>;

const CONV = 'convolution_param';
const IP = 'inner_product_param';
const POOL = 'pooling_param';
const LRN = 'lrn_param';
const WINDOW = 'window_data_param';
const IMAGES = 'image_data_param';

/** V0 fields in Caffe's order of handling, with their homes by layer type. */
const V0_FIELDS: readonly (readonly [string, Targets])[] = [
  ['num_output', { conv: [CONV, 'num_output'], innerproduct: [IP, 'num_output'] }],
  ['biasterm', { conv: [CONV, 'bias_term'], innerproduct: [IP, 'bias_term'] }],
  ['weight_filler', { conv: [CONV, 'weight_filler'], innerproduct: [IP, 'weight_filler'] }],
  ['bias_filler', { conv: [CONV, 'bias_filler'], innerproduct: [IP, 'bias_filler'] }],
  ['pad', { conv: [CONV, 'pad', true], pool: [POOL, 'pad'] }],
  ['kernelsize', { conv: [CONV, 'kernel_size', true], pool: [POOL, 'kernel_size'] }],
  ['group', { conv: [CONV, 'group'] }],
  ['stride', { conv: [CONV, 'stride', true], pool: [POOL, 'stride'] }],
  ['pool', { pool: [POOL, 'pool'] }],
  ['dropout_ratio', { dropout: ['dropout_param', 'dropout_ratio'] }],
  ['local_size', { lrn: [LRN, 'local_size'] }],
  ['alpha', { lrn: [LRN, 'alpha'] }],
  ['beta', { lrn: [LRN, 'beta'] }],
  ['k', { lrn: [LRN, 'k'] }],
  [
    'source',
    {
      data: ['data_param', 'source'],
      hdf5_data: ['hdf5_data_param', 'source'],
      images: [IMAGES, 'source'],
      window_data: [WINDOW, 'source'],
      infogain_loss: ['infogain_loss_param', 'source'],
    },
  ],
  ['scale', {}],
  ['meanfile', {}],
  [
    'batchsize',
    {
      data: ['data_param', 'batch_size'],
      hdf5_data: ['hdf5_data_param', 'batch_size'],
      images: [IMAGES, 'batch_size'],
      window_data: [WINDOW, 'batch_size'],
    },
  ],
  ['cropsize', {}],
  ['mirror', {}],
  ['rand_skip', { data: ['data_param', 'rand_skip'], images: [IMAGES, 'rand_skip'] }],
  ['shuffle_images', { images: [IMAGES, 'shuffle'] }],
  ['new_height', { images: [IMAGES, 'new_height'] }],
  ['new_width', { images: [IMAGES, 'new_width'] }],
  ['concat_dim', { concat: ['concat_param', 'concat_dim'] }],
  ['det_fg_threshold', { window_data: [WINDOW, 'fg_threshold'] }],
  ['det_bg_threshold', { window_data: [WINDOW, 'bg_threshold'] }],
  ['det_fg_fraction', { window_data: [WINDOW, 'fg_fraction'] }],
  ['det_context_pad', { window_data: [WINDOW, 'context_pad'] }],
  ['det_crop_mode', { window_data: [WINDOW, 'crop_mode'] }],
];

/** The data-transformation fields, which go to transform_param whatever the layer type. */
const V0_TRANSFORM_FIELDS: Readonly<Record<string, string>> = {
  scale: 'scale',
  meanfile: 'mean_file',
  cropsize: 'crop_size',
  mirror: 'mirror',
};

const PARAM_TYPE_NAMES: Readonly<Record<string, string>> = {
  convolution_param: 'ConvolutionParameter',
  inner_product_param: 'InnerProductParameter',
  pooling_param: 'PoolingParameter',
  lrn_param: 'LRNParameter',
  dropout_param: 'DropoutParameter',
  data_param: 'DataParameter',
  hdf5_data_param: 'HDF5DataParameter',
  image_data_param: 'ImageDataParameter',
  window_data_param: 'WindowDataParameter',
  infogain_loss_param: 'InfogainLossParameter',
  concat_param: 'ConcatParameter',
  transform_param: 'TransformationParameter',
};

const POOL_METHODS: Readonly<Record<number, PoolingParameter_PoolMethod>> = {
  [V0LayerParameter_PoolMethod.MAX]: PoolingParameter_PoolMethod.MAX,
  [V0LayerParameter_PoolMethod.AVE]: PoolingParameter_PoolMethod.AVE,
  [V0LayerParameter_PoolMethod.STOCHASTIC]: PoolingParameter_PoolMethod.STOCHASTIC,
};

/**
 * Upgrade one V0 `layers { layer { ... } bottom top }` entry to a V1 layer (Caffe's
 * UpgradeV0LayerParameter). Fields that have no home for the layer's type are dropped and
 * reported in `problems`, as Caffe logs them.
 */
export function upgradeV0LayerParameter(connection: V1LayerParameter): UpgradeStepResult<V1LayerParameter> {
  const problems: string[] = [];
  const out = createMessage<V1LayerParameter>('V1LayerParameter', {});
  if (connection.bottom.length > 0) out.bottom = connection.bottom.slice();
  if (connection.top.length > 0) out.top = connection.top.slice();
  if (!hasField(connection, 'layer')) return { result: out, success: true, problems };

  const v0 = connection.layer as V0LayerParameter;
  const v0rec = v0 as unknown as Msg;
  const outRec = out as unknown as Msg;
  const type = v0.type;
  if (hasField(v0, 'name')) out.name = v0.name;
  if (hasField(v0, 'type')) out.type = upgradeV0LayerType(type);
  if (v0.blobs.length > 0) out.blobs = v0.blobs.slice();
  if (v0.blobs_lr.length > 0) out.blobs_lr = v0.blobs_lr.slice();
  if (v0.weight_decay.length > 0) out.weight_decay = v0.weight_decay.slice();

  const sub = (field: string): Msg => {
    let m = outRec[field] as Msg | null;
    if (!m) {
      m = createMessage<Msg>(PARAM_TYPE_NAMES[field]!, {});
      outRec[field] = m;
    }
    return m;
  };

  for (const [field, targets] of V0_FIELDS) {
    if (!hasField(v0, field)) continue;
    const value = v0rec[field];
    const transformField = V0_TRANSFORM_FIELDS[field];
    if (transformField) {
      sub('transform_param')[transformField] = value;
      continue;
    }
    const target = Object.prototype.hasOwnProperty.call(targets, type) ? targets[type] : undefined;
    if (!target) {
      problems.push(`Unknown parameter ${field} for layer type ${type} (layer '${v0.name}')`);
      continue;
    }
    const [param, name, repeated] = target;
    if (field === 'pool') {
      const method = POOL_METHODS[value as number];
      if (method === undefined) {
        problems.push(`Unknown pool method ${String(value)} (layer '${v0.name}')`);
        continue;
      }
      sub(param)[name] = method;
    } else if (repeated) {
      (sub(param)[name] as unknown[]).push(value);
    } else {
      sub(param)[name] = typeof value === 'object' && value !== null ? cloneMessage(value) : value;
    }
  }
  if (hasField(v0, 'hdf5_output_param')) {
    if (type === 'hdf5_output') out.hdf5_output_param = cloneMessage(v0.hdf5_output_param!);
    else problems.push(`Unknown parameter hdf5_output_param for layer type ${type} (layer '${v0.name}')`);
  }
  return { result: out, success: problems.length === 0, problems };
}

/**
 * Upgrade a V0 net to V1 `layers` (Caffe's UpgradeV0Net): fold padding layers, then upgrade each
 * layer. The result keeps the net's name, `input`, `input_dim` and `force_backward` (the other
 * net fields did not exist in V0).
 */
export function upgradeV0Net(param: NetParameter, file = '<NetParameter>'): UpgradeStepResult<NetParameter> {
  const padded = upgradeV0PaddingLayers(param, file);
  const out = createMessage<NetParameter>('NetParameter', {});
  const problems: string[] = [];
  if (hasField(padded, 'name')) out.name = padded.name;
  out.layers = padded.layers.map((l) => {
    const r = upgradeV0LayerParameter(l);
    problems.push(...r.problems);
    return r.result;
  });
  if (padded.input.length > 0) out.input = padded.input.slice();
  if (padded.input_dim.length > 0) out.input_dim = padded.input_dim.slice();
  if (hasField(padded, 'force_backward')) out.force_backward = padded.force_backward;
  return { result: out, success: problems.length === 0, problems };
}
