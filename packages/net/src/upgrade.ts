import { logger } from '@caffe-ts/blob';
import {
  createMessage,
  hasField,
  type BlobShape,
  type LayerParameter,
  type NetParameter,
  type TransformationParameter,
} from '@caffe-ts/proto';
import { NetError, NetUpgradeError } from './errors.js';
import { shallowClone } from './message-util.js';

export interface UpgradeOptions {
  /** File the definition came from, named in log lines and errors. */
  file?: string;
  /** Log what was upgraded, as Caffe does (default true). */
  log?: boolean;
}

const log = logger('upgrade_proto.cpp');

/** V1LayerParameter.LayerType values of the layers whose params had transform fields. */
const V1_DATA = 5;
const V1_IMAGE_DATA = 12;
const V1_WINDOW_DATA = 24;

/** The legacy transform fields that moved into `transform_param`. */
const TRANSFORM_FIELDS = ['scale', 'mean_file', 'crop_size', 'mirror'] as const;

type TransformHolder = Record<(typeof TRANSFORM_FIELDS)[number], unknown>;

const DATA_PARAM_KEY: Record<string, string> = {
  Data: 'data_param',
  ImageData: 'image_data_param',
  WindowData: 'window_data_param',
};
const V1_DATA_PARAM_KEY: Record<number, string> = {
  [V1_DATA]: 'data_param',
  [V1_IMAGE_DATA]: 'image_data_param',
  [V1_WINDOW_DATA]: 'window_data_param',
};

/** Whether `param` uses V0 or V1 (`layers`) layer definitions. */
export function netNeedsV1Upgrade(param: NetParameter): boolean {
  return param.layers.length > 0;
}

/** Whether `param` declares its inputs with the legacy `input`/`input_dim`/`input_shape` fields. */
export function netNeedsInputUpgrade(param: NetParameter): boolean {
  return param.input.length > 0;
}

/** Whether a data layer still keeps scale/mean_file/crop_size/mirror in its own params. */
export function netNeedsDataUpgrade(param: NetParameter): boolean {
  const legacy = (holder: unknown) => holder != null && TRANSFORM_FIELDS.some((f) => hasField(holder as object, f));
  for (const l of param.layers) {
    const key = V1_DATA_PARAM_KEY[l.type];
    if (key && legacy((l as unknown as Record<string, unknown>)[key])) return true;
  }
  for (const l of param.layer) {
    const key = DATA_PARAM_KEY[l.type];
    if (key && legacy((l as unknown as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/** Whether a BatchNorm layer declares the three ParamSpecs of the old definition. */
export function netNeedsBatchNormUpgrade(param: NetParameter): boolean {
  return param.layer.some((l) => l.type === 'BatchNorm' && l.param.length === 3);
}

/**
 * Bring a net definition to the current format (Caffe's UpgradeNetAsNeeded), as far as this
 * version can: data layers' legacy transform fields move into `transform_param`
 * (UpgradeNetDataTransformation), legacy net inputs become an Input layer named "input" at the
 * front (UpgradeNetInput), BatchNorm's three old ParamSpecs get lr_mult and decay_mult 0
 * (UpgradeNetBatchNorm). V0/V1 `layers` are not upgraded yet: they throw NetUpgradeError.
 *
 * Returns `param` itself when nothing needs upgrading, else an upgraded copy; `param` is never
 * modified.
 */
export function upgradeNetAsNeeded(param: NetParameter, options: UpgradeOptions = {}): NetParameter {
  const file = options.file ?? '<NetParameter>';
  const info = options.log === false ? () => {} : (m: string) => log.info(m);
  const warn = options.log === false ? () => {} : (m: string) => log.warn(m);
  let net = param;
  if (netNeedsDataUpgrade(net)) {
    info(`Attempting to upgrade input file specified using deprecated transformation parameters: ${file}`);
    net = upgradeNetDataTransformation(net);
    info('Successfully upgraded file specified using deprecated data transformation parameters.');
    warn('Note that future Caffe releases will only support transform_param messages for transformation fields.');
  }
  if (netNeedsV1Upgrade(net)) {
    throw new NetUpgradeError(
      `${file}: the net is defined with ${net.layers.some((l) => hasField(l, 'layer')) ? 'V0' : 'V1'} 'layers' fields ` +
        `(${net.layers.length} of them); upgrading V0/V1 nets is not yet supported. ` +
        `Convert it to the 'layer { type: "..." }' format (Caffe's upgrade_net_proto_text does this).`,
    );
  }
  if (netNeedsInputUpgrade(net)) {
    info(`Attempting to upgrade input file specified using deprecated input fields: ${file}`);
    net = upgradeNetInput(net, file);
    info('Successfully upgraded file specified using deprecated input fields.');
    warn('Note that future Caffe releases will only support input layers and not input fields.');
  }
  if (netNeedsBatchNormUpgrade(net)) {
    info(`Attempting to upgrade batch norm layers using deprecated params: ${file}`);
    net = upgradeNetBatchNorm(net);
    info('Successfully upgraded batch norm layers using deprecated params.');
  }
  return net;
}

/**
 * Move scale/mean_file/crop_size/mirror from a data layer's params into its transform_param
 * (Caffe's UpgradeNetDataTransformation). Caffe only does this for V1 `layers`; current-format
 * Data/ImageData/WindowData layers get it too, since their data transformer reads
 * transform_param alone and would silently drop the legacy fields otherwise.
 */
export function upgradeNetDataTransformation(param: NetParameter): NetParameter {
  const moveFields = <L extends object>(layer: L, key: string): L => {
    const rec = layer as unknown as Record<string, unknown>;
    const holder = rec[key] as TransformHolder | null | undefined;
    if (!holder || !TRANSFORM_FIELDS.some((f) => hasField(holder, f))) return layer;
    const copy = shallowClone(layer) as unknown as Record<string, unknown>;
    const params = shallowClone(holder);
    const existing = rec['transform_param'] as TransformationParameter | null | undefined;
    const transform = (existing ? shallowClone(existing) : createMessage<TransformationParameter>('TransformationParameter', {})) as unknown as TransformHolder;
    for (const f of TRANSFORM_FIELDS) {
      if (!hasField(holder, f)) continue;
      transform[f] = holder[f];
      delete (params as Partial<TransformHolder>)[f];
    }
    copy[key] = params;
    copy['transform_param'] = transform;
    return copy as unknown as L;
  };
  const out = shallowClone(param);
  out.layers = param.layers.map((l) => {
    const key = V1_DATA_PARAM_KEY[l.type];
    return key ? moveFields(l, key) : l;
  });
  out.layer = param.layer.map((l) => {
    const key = DATA_PARAM_KEY[l.type];
    return key ? moveFields(l, key) : l;
  });
  return out;
}

/**
 * Turn legacy `input` + `input_shape`/`input_dim` into an Input layer named "input", placed
 * first (Caffe's UpgradeNetInput). Inputs without any shape (old caffemodels) are just dropped.
 */
export function upgradeNetInput(param: NetParameter, file = '<NetParameter>'): NetParameter {
  const out = shallowClone(param);
  const hasShape = param.input_shape.length > 0;
  const hasDim = param.input_dim.length > 0;
  if (hasShape || hasDim) {
    const shapes: BlobShape[] = [];
    param.input.forEach((name, i) => {
      let dims: number[];
      if (hasShape) {
        const s = param.input_shape[i];
        if (!s) {
          throw new NetError(
            `${file}: input '${name}' (input ${i}) has no input_shape (${param.input.length} inputs, ` +
              `${param.input_shape.length} input_shape entries)`,
          );
        }
        dims = s.dim.map(Number);
      } else {
        dims = param.input_dim.slice(i * 4, i * 4 + 4).map(Number);
        if (dims.length !== 4) {
          throw new NetError(
            `${file}: input '${name}' (input ${i}) needs 4 input_dim values; ${param.input.length} inputs ` +
              `need ${param.input.length * 4}, found ${param.input_dim.length}`,
          );
        }
      }
      shapes.push(createMessage<BlobShape>('BlobShape', { dim: dims }));
    });
    const inputLayer = createMessage<LayerParameter>('LayerParameter', {
      name: 'input',
      type: 'Input',
      top: param.input.slice(),
      input_param: { shape: shapes },
    });
    out.layer = [inputLayer, ...param.layer];
  }
  out.input = [];
  out.input_shape = [];
  out.input_dim = [];
  return out;
}

/** Give BatchNorm's three legacy ParamSpecs lr_mult 0 and decay_mult 0 (Caffe's UpgradeNetBatchNorm). */
export function upgradeNetBatchNorm(param: NetParameter): NetParameter {
  const out = shallowClone(param);
  out.layer = param.layer.map((l) => {
    if (l.type !== 'BatchNorm' || l.param.length !== 3) return l;
    const copy = shallowClone(l);
    copy.param = l.param.map((spec) => {
      const s = shallowClone(spec);
      s.lr_mult = 0;
      s.decay_mult = 0;
      return s;
    });
    return copy;
  });
  return out;
}
