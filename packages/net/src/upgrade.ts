import { logger } from '@caffe-ts/blob';
import {
  createMessage,
  hasField,
  type BlobShape,
  type LayerParameter,
  type NetParameter,
  type TransformationParameter,
} from '@caffe-ts/proto';
import { NetError } from './errors.js';
import { shallowClone } from './message-util.js';
import { netNeedsV0ToV1Upgrade, upgradeV0Net } from './upgrade-v0.js';
import { upgradeV1Net } from './upgrade-v1.js';

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

/** Whether `param` uses V0 or V1 (`layers`) layer definitions (Caffe's NetNeedsV1ToV2Upgrade). */
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

/** Whether anything in `param` needs upgrading (Caffe's NetNeedsUpgrade). */
export function netNeedsUpgrade(param: NetParameter): boolean {
  return (
    netNeedsV0ToV1Upgrade(param) ||
    netNeedsV1Upgrade(param) ||
    netNeedsDataUpgrade(param) ||
    netNeedsInputUpgrade(param) ||
    netNeedsBatchNormUpgrade(param)
  );
}

export interface NetUpgradeResult {
  /** The upgraded definition (`param` itself when nothing needed upgrading). */
  net: NetParameter;
  /** Whether any upgrade step ran. */
  upgraded: boolean;
  /**
   * False when a V0 or V1 field could not be carried over (Caffe's "had one or more problems
   * upgrading ... continuing anyway"); `problems` lists them.
   */
  success: boolean;
  problems: string[];
}

/**
 * Bring a net definition to the current format, as Caffe's UpgradeNetAsNeeded does and in its
 * order: V0 `layers { layer { ... } }` to V1 (padding layers folded into conv/pool), data layers'
 * legacy transform fields into `transform_param`, V1 `layers` to `layer` (type strings,
 * ParamSpecs from blobs_lr/weight_decay/param/blob_share_mode, blobs kept so V1 caffemodels'
 * weights stay attached), legacy net inputs to an Input layer named "input" at the front, and
 * BatchNorm's three old ParamSpecs to lr_mult and decay_mult 0. Logs Caffe's lines.
 *
 * Never modifies `param`. Fields that had no home in the new format are reported in
 * `problems` and logged as errors; the upgrade goes on, as Caffe's does. Structural problems
 * Caffe treats as fatal (a net with both `layer` and `layers`, an unknown V0/V1 type) throw
 * NetUpgradeError.
 */
export function upgradeNet(param: NetParameter, options: UpgradeOptions = {}): NetUpgradeResult {
  const file = options.file ?? '<NetParameter>';
  const quiet = options.log === false;
  const info = quiet ? () => {} : (m: string) => log.info(m);
  const warn = quiet ? () => {} : (m: string) => log.warn(m);
  const error = quiet ? () => {} : (m: string) => log.error(m);
  let net = param;
  let upgraded = false;
  const problems: string[] = [];
  const report = (step: { success: boolean; problems: string[] }) => {
    for (const p of step.problems) error(p);
    problems.push(...step.problems);
    return step.success;
  };
  if (netNeedsV0ToV1Upgrade(net)) {
    upgraded = true;
    info(`Attempting to upgrade input file specified using deprecated V0LayerParameter: ${file}`);
    const step = upgradeV0Net(net, file);
    net = step.result;
    if (!report(step)) {
      error('Warning: had one or more problems upgrading V0NetParameter to NetParameter (see above); continuing anyway.');
    } else {
      info('Successfully upgraded file specified using deprecated V0LayerParameter');
    }
    warn(
      'Note that future Caffe releases will not support V0NetParameter; use `caffe upgrade_net_proto_text` for ' +
        'prototxt and `caffe upgrade_net_proto_binary` for model weights to upgrade this and any other net protos to the new format.',
    );
  }
  if (netNeedsDataUpgrade(net)) {
    upgraded = true;
    info(`Attempting to upgrade input file specified using deprecated transformation parameters: ${file}`);
    net = upgradeNetDataTransformation(net);
    info('Successfully upgraded file specified using deprecated data transformation parameters.');
    warn('Note that future Caffe releases will only support transform_param messages for transformation fields.');
  }
  if (netNeedsV1Upgrade(net)) {
    upgraded = true;
    info(`Attempting to upgrade input file specified using deprecated V1LayerParameter: ${file}`);
    const step = upgradeV1Net(net, file);
    net = step.result;
    if (!report(step)) {
      error('Warning: had one or more problems upgrading V1LayerParameter (see above); continuing anyway.');
    } else {
      info('Successfully upgraded file specified using deprecated V1LayerParameter');
    }
  }
  if (netNeedsInputUpgrade(net)) {
    upgraded = true;
    info(`Attempting to upgrade input file specified using deprecated input fields: ${file}`);
    net = upgradeNetInput(net, file);
    info('Successfully upgraded file specified using deprecated input fields.');
    warn('Note that future Caffe releases will only support input layers and not input fields.');
  }
  if (netNeedsBatchNormUpgrade(net)) {
    upgraded = true;
    info(`Attempting to upgrade batch norm layers using deprecated params: ${file}`);
    net = upgradeNetBatchNorm(net);
    info('Successfully upgraded batch norm layers using deprecated params.');
  }
  return { net, upgraded, success: problems.length === 0, problems };
}

/**
 * `upgradeNet(param, options).net`: the definition in the current format (see upgradeNet).
 * Returns `param` itself when nothing needs upgrading, else an upgraded copy.
 */
export function upgradeNetAsNeeded(param: NetParameter, options: UpgradeOptions = {}): NetParameter {
  return upgradeNet(param, options).net;
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
