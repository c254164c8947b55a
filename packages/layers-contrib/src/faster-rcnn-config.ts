/*
 * py-faster-rcnn's configuration (lib/fast_rcnn/config.py's `cfg`) as the ported training layers
 * read it. The key names are py-faster-rcnn's own, so a yml file's overrides carry over verbatim.
 * The defaults are config.py's with experiments/cfgs/faster_rcnn_end2end.yml applied (HAS_RPN,
 * IMS_PER_BATCH 1, BBOX_NORMALIZE_TARGETS_PRECOMPUTED, BG_THRESH_LO 0): the settings its
 * faster_rcnn_end2end train.prototxt files are trained with.
 */
import { LayerError, type PythonLayerSelf } from '@caffe-ts/layers';
import { parseProposalParamStr } from './layers/proposal-layer.js';

/** cfg.TRAIN: what the training layers (RoIDataLayer, AnchorTargetLayer, ProposalTargetLayer) read. */
export interface FasterRcnnTrainConfig {
  /** Shorter side of a training image after scaling, in pixels; one is drawn per image (600). */
  SCALES: readonly number[];
  /** Longer side after scaling at most this (1000). */
  MAX_SIZE: number;
  /** Images per minibatch: 1 with an RPN (end2end). */
  IMS_PER_BATCH: number;
  /** RoIs sampled per image by ProposalTargetLayer (128). */
  BATCH_SIZE: number;
  /** Share of those RoIs that are foreground, at most (0.25). */
  FG_FRACTION: number;
  /** A RoI overlapping a ground-truth box by at least this is foreground (0.5). */
  FG_THRESH: number;
  /** A RoI is background when its best overlap is in [BG_THRESH_LO, BG_THRESH_HI) (0.5, 0 for end2end). */
  BG_THRESH_HI: number;
  BG_THRESH_LO: number;
  /** Add horizontally flipped copies of the images (getTrainingRoidb). */
  USE_FLIPPED: boolean;
  /** Shuffle landscape and portrait images in pairs of the same orientation (RoIDataLayer). */
  ASPECT_GROUPING: boolean;
  /** The data layer feeds an RPN (tops data, im_info, gt_boxes); false is Fast R-CNN with precomputed proposals. */
  HAS_RPN: boolean;
  /** Train the bounding-box regressors (train.py then unnormalizes bbox_pred in its snapshots). */
  BBOX_REG: boolean;
  /** Train on normalized regression targets (with an RPN: by the precomputed means and stds). */
  BBOX_NORMALIZE_TARGETS: boolean;
  /** Divide ProposalTargetLayer's targets by BBOX_NORMALIZE_STDS after subtracting BBOX_NORMALIZE_MEANS. */
  BBOX_NORMALIZE_TARGETS_PRECOMPUTED: boolean;
  BBOX_NORMALIZE_MEANS: readonly [number, number, number, number];
  BBOX_NORMALIZE_STDS: readonly [number, number, number, number];
  /** Inside weights of a foreground RoI's 4 targets (for its class). */
  BBOX_INSIDE_WEIGHTS: readonly [number, number, number, number];
  /** An anchor overlapping some ground truth by at least this is positive (0.7). */
  RPN_POSITIVE_OVERLAP: number;
  /** An anchor whose best overlap is under this is negative (0.3). */
  RPN_NEGATIVE_OVERLAP: number;
  /** Negatives are labelled after positives, so that a negative overrides (false: positives override). */
  RPN_CLOBBER_POSITIVES: boolean;
  /** Share of RPN_BATCHSIZE that may be positive (0.5). */
  RPN_FG_FRACTION: number;
  /** Anchors labelled per image (256). */
  RPN_BATCHSIZE: number;
  /** Inside weights of a positive anchor's 4 targets. */
  RPN_BBOX_INSIDE_WEIGHTS: readonly [number, number, number, number];
  /** −1: every labelled anchor weighs 1 / (labelled anchors); p in (0, 1): positives share p, negatives 1 − p. */
  RPN_POSITIVE_WEIGHT: number;
  /** The proposal layer's TRAIN settings (the port of rpn.proposal_layer reads them, as TEST's at test time). */
  RPN_NMS_THRESH: number;
  RPN_PRE_NMS_TOP_N: number;
  RPN_POST_NMS_TOP_N: number;
  RPN_MIN_SIZE: number;
  /** train.py's snapshot interval, in iterations (used when the solver file's `snapshot` is 0, as py-faster-rcnn's are). */
  SNAPSHOT_ITERS: number;
  /** Put into snapshot names after the solver's snapshot_prefix, after an underscore ('' : nothing). */
  SNAPSHOT_INFIX: string;
}

/** cfg.TEST: what test-time code reads (detectFasterRcnn's defaults and the proposal layer's TEST settings). */
export interface FasterRcnnTestConfig {
  SCALES: readonly number[];
  MAX_SIZE: number;
  /** Per-class NMS threshold of the detections. */
  NMS: number;
  HAS_RPN: boolean;
  RPN_NMS_THRESH: number;
  RPN_PRE_NMS_TOP_N: number;
  RPN_POST_NMS_TOP_N: number;
  RPN_MIN_SIZE: number;
}

export interface FasterRcnnConfig {
  TRAIN: FasterRcnnTrainConfig;
  TEST: FasterRcnnTestConfig;
  /** BGR means subtracted from the pixels. */
  PIXEL_MEANS: readonly [number, number, number];
  /** train_net.py's seed (numpy's and Caffe's) unless --rand. */
  RNG_SEED: number;
}

/** Overrides of some of the settings, as a py-faster-rcnn yml file gives them. */
export interface FasterRcnnConfigOverrides {
  TRAIN?: Partial<FasterRcnnTrainConfig>;
  TEST?: Partial<FasterRcnnTestConfig>;
  PIXEL_MEANS?: readonly [number, number, number];
  RNG_SEED?: number;
}

const freeze4 = (a: number, b: number, c: number, d: number) => Object.freeze([a, b, c, d] as const);

/** config.py's TRAIN defaults with faster_rcnn_end2end.yml applied. */
export const FASTER_RCNN_TRAIN_CONFIG: Readonly<FasterRcnnTrainConfig> = Object.freeze({
  SCALES: Object.freeze([600]),
  MAX_SIZE: 1000,
  IMS_PER_BATCH: 1,
  BATCH_SIZE: 128,
  FG_FRACTION: 0.25,
  FG_THRESH: 0.5,
  BG_THRESH_HI: 0.5,
  BG_THRESH_LO: 0.0,
  USE_FLIPPED: true,
  ASPECT_GROUPING: true,
  HAS_RPN: true,
  BBOX_REG: true,
  BBOX_NORMALIZE_TARGETS: true,
  BBOX_NORMALIZE_TARGETS_PRECOMPUTED: true,
  BBOX_NORMALIZE_MEANS: freeze4(0, 0, 0, 0),
  BBOX_NORMALIZE_STDS: freeze4(0.1, 0.1, 0.2, 0.2),
  BBOX_INSIDE_WEIGHTS: freeze4(1, 1, 1, 1),
  RPN_POSITIVE_OVERLAP: 0.7,
  RPN_NEGATIVE_OVERLAP: 0.3,
  RPN_CLOBBER_POSITIVES: false,
  RPN_FG_FRACTION: 0.5,
  RPN_BATCHSIZE: 256,
  RPN_BBOX_INSIDE_WEIGHTS: freeze4(1, 1, 1, 1),
  RPN_POSITIVE_WEIGHT: -1,
  RPN_NMS_THRESH: 0.7,
  RPN_PRE_NMS_TOP_N: 12000,
  RPN_POST_NMS_TOP_N: 2000,
  RPN_MIN_SIZE: 16,
  SNAPSHOT_ITERS: 10000,
  SNAPSHOT_INFIX: '',
});

/** config.py's TEST defaults with faster_rcnn_end2end.yml applied. */
export const FASTER_RCNN_TEST_CONFIG: Readonly<FasterRcnnTestConfig> = Object.freeze({
  SCALES: Object.freeze([600]),
  MAX_SIZE: 1000,
  NMS: 0.3,
  HAS_RPN: true,
  RPN_NMS_THRESH: 0.7,
  RPN_PRE_NMS_TOP_N: 6000,
  RPN_POST_NMS_TOP_N: 300,
  RPN_MIN_SIZE: 16,
});

/** The whole configuration: TRAIN, TEST and PIXEL_MEANS. */
export const FASTER_RCNN_CONFIG: Readonly<FasterRcnnConfig> = Object.freeze({
  TRAIN: FASTER_RCNN_TRAIN_CONFIG,
  TEST: FASTER_RCNN_TEST_CONFIG,
  // The same numbers as the detect entry's FASTER_RCNN_PIXEL_MEANS (kept apart so that this entry
  // does not load the detection pipeline).
  PIXEL_MEANS: Object.freeze([102.9801, 115.9465, 122.7717] as const),
  RNG_SEED: 3,
});

/**
 * What faster_rcnn_end2end.yml changes in config.py's defaults: a yml file given to `caffe train
 * --cfg` applies to config.py's own defaults (these undone), as cfg_from_file does.
 */
export const PY_FASTER_RCNN_DEFAULTS: Readonly<FasterRcnnConfigOverrides> = Object.freeze({
  TRAIN: Object.freeze({ IMS_PER_BATCH: 2, BG_THRESH_LO: 0.1, HAS_RPN: false, BBOX_NORMALIZE_TARGETS_PRECOMPUTED: false }),
  TEST: Object.freeze({ HAS_RPN: false }),
});

/**
 * The defaults with `overrides` applied (what cfg_from_file does with a yml file), checked: the
 * fractions and thresholds in [0, 1], the sizes positive, 4 values per weight, mean and std.
 * Throws a LayerError naming the offending key.
 */
export function fasterRcnnConfig(overrides: FasterRcnnConfigOverrides = {}): FasterRcnnConfig {
  const TRAIN = { ...FASTER_RCNN_TRAIN_CONFIG, ...overrides.TRAIN };
  const TEST = { ...FASTER_RCNN_TEST_CONFIG, ...overrides.TEST };
  const PIXEL_MEANS = overrides.PIXEL_MEANS ?? FASTER_RCNN_CONFIG.PIXEL_MEANS;
  const RNG_SEED = overrides.RNG_SEED ?? FASTER_RCNN_CONFIG.RNG_SEED;
  const bad = (key: string, rule: string, got: unknown): never => {
    throw new LayerError(`Faster R-CNN config: ${key} ${rule} (got ${JSON.stringify(got)})`);
  };
  for (const key of ['FG_FRACTION', 'FG_THRESH', 'BG_THRESH_HI', 'BG_THRESH_LO', 'RPN_POSITIVE_OVERLAP', 'RPN_NEGATIVE_OVERLAP', 'RPN_FG_FRACTION'] as const) {
    const v = TRAIN[key];
    if (!(v >= 0 && v <= 1)) bad(`TRAIN.${key}`, 'must be in [0, 1]', v);
  }
  for (const key of ['MAX_SIZE', 'IMS_PER_BATCH', 'BATCH_SIZE', 'RPN_BATCHSIZE', 'SNAPSHOT_ITERS'] as const) {
    const v = TRAIN[key];
    if (!(Number.isInteger(v) && v > 0)) bad(`TRAIN.${key}`, 'must be a positive integer', v);
  }
  if (TRAIN.SCALES.length === 0 || TRAIN.SCALES.some((s) => !(s > 0))) bad('TRAIN.SCALES', 'must list positive sizes', TRAIN.SCALES);
  if (TRAIN.RPN_POSITIVE_WEIGHT >= 0 && !(TRAIN.RPN_POSITIVE_WEIGHT > 0 && TRAIN.RPN_POSITIVE_WEIGHT < 1)) {
    bad('TRAIN.RPN_POSITIVE_WEIGHT', 'must be negative (uniform weights) or in (0, 1)', TRAIN.RPN_POSITIVE_WEIGHT);
  }
  for (const key of ['BBOX_NORMALIZE_MEANS', 'BBOX_NORMALIZE_STDS', 'BBOX_INSIDE_WEIGHTS', 'RPN_BBOX_INSIDE_WEIGHTS'] as const) {
    const v = TRAIN[key];
    if (v.length !== 4 || v.some((x) => !Number.isFinite(x))) bad(`TRAIN.${key}`, 'must hold 4 finite numbers', v);
  }
  if (TRAIN.BBOX_NORMALIZE_STDS.some((s) => s === 0)) bad('TRAIN.BBOX_NORMALIZE_STDS', 'must not hold 0', TRAIN.BBOX_NORMALIZE_STDS);
  if (PIXEL_MEANS.length !== 3 || PIXEL_MEANS.some((x) => !Number.isFinite(x))) bad('PIXEL_MEANS', 'must hold 3 numbers (B, G, R)', PIXEL_MEANS);
  if (!Number.isInteger(RNG_SEED)) bad('RNG_SEED', 'must be an integer', RNG_SEED);
  if (TRAIN.HAS_RPN && TRAIN.BBOX_REG && TRAIN.BBOX_NORMALIZE_TARGETS && !TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED) {
    // train.py's assertion: an RPN's targets have no statistics to compute beforehand.
    bad('TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED', 'must be true with TRAIN.HAS_RPN, BBOX_REG and BBOX_NORMALIZE_TARGETS', false);
  }
  return { TRAIN, TEST, PIXEL_MEANS, RNG_SEED };
}

/** Draws `size` distinct items of `from` in random order (numpy's choice(replace=False)). */
export function choiceWithoutReplacement(from: readonly number[], size: number, rng: { int(n: number): number }): number[] {
  const pool = from.slice();
  const n = Math.min(size, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + rng.int(pool.length - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}

/** A random permutation of `items` (numpy's permutation). */
export function permutation(items: readonly number[], rng: { int(n: number): number }): number[] {
  return choiceWithoutReplacement(items, items.length, rng);
}

/**
 * A Python layer's param_str read as py-faster-rcnn reads it (a YAML mapping of numbers and lists
 * of numbers), with typed getters that fail naming the layer.
 */
export function readParamStr(self: PythonLayerSelf): {
  has(key: string): boolean;
  num(key: string, fallback?: number): number;
  list(key: string, fallback: readonly number[]): number[];
} {
  let params: Record<string, number | number[]>;
  try {
    params = parseProposalParamStr(self.paramStr);
  } catch (e) {
    self.fail(e instanceof Error ? e.message : String(e));
  }
  return {
    has: (key) => params[key] !== undefined,
    num(key, fallback) {
      const v = params[key] ?? fallback;
      if (v === undefined) return self.fail(`param_str must give '${key}' (got ${JSON.stringify(self.paramStr)})`);
      return typeof v === 'number' ? v : self.fail(`param_str's '${key}' must be a number (got [${v.join(', ')}])`);
    },
    list(key, fallback) {
      const v = params[key] ?? fallback;
      return typeof v === 'number' ? [v] : [...v];
    },
  };
}
