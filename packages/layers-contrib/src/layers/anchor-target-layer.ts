import type { Blob, Rng } from '@caffe-ts/blob';
import type { PythonLayerFactory, PythonLayerImpl, PythonLayerSelf } from '@caffe-ts/layers';
import { choiceWithoutReplacement, fasterRcnnConfig, readParamStr, type FasterRcnnConfigOverrides, type FasterRcnnTrainConfig } from '../faster-rcnn-config.js';
import { bboxOverlaps, bboxTransform, DEFAULT_PROPOSAL_OPTIONS, generateAnchors } from '../proposals.js';

/** py-faster-rcnn's `rpn.anchor_target_layer.AnchorTargetLayer`, as `python_param { module layer }` names it. */
export const PY_FASTER_RCNN_ANCHOR_TARGET = { module: 'rpn.anchor_target_layer', layer: 'AnchorTargetLayer' } as const;

/** One image's RPN training labels and targets, per anchor in (y, x, a) order (anchor a at cell (y, x) is row (y·W + x)·A + a). */
export interface AnchorTargets {
  /** 1 positive, 0 negative, −1 ignored (outside the image, between the thresholds, or not sampled). */
  labels: Float64Array;
  /** bbox_transform from the anchor to its best ground-truth box, 4 per anchor (0 outside the image). */
  targets: Float64Array;
  insideWeights: Float64Array;
  outsideWeights: Float64Array;
}

/** What anchorTargets needs beyond the boxes: the anchors' layout and cfg.TRAIN's RPN settings. */
export interface AnchorTargetOptions {
  /** generateAnchors' rows (A anchors at the origin cell). */
  anchors: Float64Array;
  featStride: number;
  /** How far (pixels) an anchor may reach past the image and still count (py-faster-rcnn: 0). */
  allowedBorder: number;
  train: Pick<
    FasterRcnnTrainConfig,
    | 'RPN_POSITIVE_OVERLAP'
    | 'RPN_NEGATIVE_OVERLAP'
    | 'RPN_CLOBBER_POSITIVES'
    | 'RPN_FG_FRACTION'
    | 'RPN_BATCHSIZE'
    | 'RPN_BBOX_INSIDE_WEIGHTS'
    | 'RPN_POSITIVE_WEIGHT'
  >;
}

/**
 * The anchor-target computation of py-faster-rcnn's AnchorTargetLayer for one image:
 * 1. every anchor shifted to every cell of the H × W map (featStride pixels apart); only those lying
 *    inside the image (x1, y1 ≥ −border, x2 < width + border, y2 < height + border) take part;
 * 2. their overlaps with the ground-truth boxes (`gtBoxes`: rows of `gtStride` values starting
 *    [x1, y1, x2, y2]), with +1 areas;
 * 3. labels: below RPN_NEGATIVE_OVERLAP best overlap → 0; each ground-truth box's best anchors (all
 *    that tie for its maximum, as numpy's `overlaps == max` finds them) → 1; best overlap ≥
 *    RPN_POSITIVE_OVERLAP → 1. The negative rule is applied first (positives win), or last with
 *    RPN_CLOBBER_POSITIVES. As in the Python, a box overlapping no inside anchor has maximum 0, so
 *    every anchor that misses it ties and becomes positive;
 * 4. at most ⌊RPN_FG_FRACTION · RPN_BATCHSIZE⌋ positives are kept, and at most RPN_BATCHSIZE −
 *    (positives) negatives: the excess, drawn at random from `rng`, turn −1;
 * 5. targets from each inside anchor to its best box (the first on ties); inside weights
 *    RPN_BBOX_INSIDE_WEIGHTS for positives; outside weights 1 / (labelled anchors) for every
 *    labelled anchor when RPN_POSITIVE_WEIGHT < 0, else p / (positives) and (1 − p) / (negatives).
 */
export function anchorTargets(
  [H, W]: readonly [number, number],
  gtBoxes: ArrayLike<number>,
  gtStride: number,
  [imHeight, imWidth]: readonly [number, number],
  options: AnchorTargetOptions,
  rng: Pick<Rng, 'int'>,
): AnchorTargets {
  const { anchors, featStride, allowedBorder: border, train } = options;
  const A = anchors.length / 4, total = H * W * A;
  const G = Math.floor(gtBoxes.length / gtStride);
  // 1. Shifted anchors, and which of them lie inside the image.
  const all = new Float64Array(4 * total);
  const inside: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let a = 0; a < A; a++) {
        const k = (y * W + x) * A + a;
        const box = [anchors[4 * a]! + x * featStride, anchors[4 * a + 1]! + y * featStride, anchors[4 * a + 2]! + x * featStride, anchors[4 * a + 3]! + y * featStride];
        all.set(box, 4 * k);
        if (box[0]! >= -border && box[1]! >= -border && box[2]! < imWidth + border && box[3]! < imHeight + border) inside.push(k);
      }
    }
  }
  const N = inside.length;
  const insideBoxes = new Float64Array(4 * N);
  inside.forEach((k, i) => insideBoxes.set(all.subarray(4 * k, 4 * k + 4), 4 * i));
  const gt = new Float64Array(4 * G);
  for (let g = 0; g < G; g++) for (let j = 0; j < 4; j++) gt[4 * g + j] = gtBoxes[g * gtStride + j]!;

  // 2. Overlaps; each anchor's best box (first on ties) and each box's best overlap.
  const overlaps = bboxOverlaps(insideBoxes, gt);
  const argmax = new Int32Array(N);
  const maxOverlap = new Float64Array(N);
  const gtMax = new Float64Array(G).fill(-Infinity);
  for (let i = 0; i < N; i++) {
    for (let g = 0; g < G; g++) {
      const o = overlaps[i * G + g]!;
      if (g === 0 || o > maxOverlap[i]!) {
        maxOverlap[i] = o;
        argmax[i] = g;
      }
      if (o > gtMax[g]!) gtMax[g] = o;
    }
  }

  // 3. Labels.
  const labels = new Float64Array(N).fill(-1);
  const negatives = () => {
    for (let i = 0; i < N; i++) if (maxOverlap[i]! < train.RPN_NEGATIVE_OVERLAP) labels[i] = 0;
  };
  if (!train.RPN_CLOBBER_POSITIVES) negatives();
  for (let i = 0; i < N; i++) {
    for (let g = 0; g < G; g++) {
      if (overlaps[i * G + g] === gtMax[g]) {
        labels[i] = 1;
        break;
      }
    }
  }
  for (let i = 0; i < N; i++) if (maxOverlap[i]! >= train.RPN_POSITIVE_OVERLAP) labels[i] = 1;
  if (train.RPN_CLOBBER_POSITIVES) negatives();

  // 4. Subsampling.
  const withLabel = (l: number) => {
    const out: number[] = [];
    for (let i = 0; i < N; i++) if (labels[i] === l) out.push(i);
    return out;
  };
  const maxFg = Math.trunc(train.RPN_FG_FRACTION * train.RPN_BATCHSIZE);
  const fg = withLabel(1);
  if (fg.length > maxFg) for (const i of choiceWithoutReplacement(fg, fg.length - maxFg, rng)) labels[i] = -1;
  const maxBg = train.RPN_BATCHSIZE - withLabel(1).length;
  const bg = withLabel(0);
  if (bg.length > maxBg) for (const i of choiceWithoutReplacement(bg, bg.length - maxBg, rng)) labels[i] = -1;

  // 5. Targets and weights, mapped back onto every anchor (outside ones: label −1, zeros).
  let numPos = 0, numNeg = 0;
  for (let i = 0; i < N; i++) {
    if (labels[i] === 1) numPos++;
    else if (labels[i] === 0) numNeg++;
  }
  let posWeight: number, negWeight: number;
  if (train.RPN_POSITIVE_WEIGHT < 0) {
    posWeight = negWeight = 1 / (numPos + numNeg);
  } else {
    posWeight = train.RPN_POSITIVE_WEIGHT / numPos;
    negWeight = (1 - train.RPN_POSITIVE_WEIGHT) / numNeg;
  }
  const out: AnchorTargets = {
    labels: new Float64Array(total).fill(-1),
    targets: new Float64Array(4 * total),
    insideWeights: new Float64Array(4 * total),
    outsideWeights: new Float64Array(4 * total),
  };
  inside.forEach((k, i) => {
    out.labels[k] = labels[i]!;
    if (G > 0) out.targets.set(bboxTransform(insideBoxes.subarray(4 * i, 4 * i + 4), gt.subarray(4 * argmax[i]!, 4 * argmax[i]! + 4)), 4 * k);
    if (labels[i] === 1) {
      out.insideWeights.set(train.RPN_BBOX_INSIDE_WEIGHTS, 4 * k);
      out.outsideWeights.fill(posWeight, 4 * k, 4 * k + 4);
    } else if (labels[i] === 0) {
      out.outsideWeights.fill(negWeight, 4 * k, 4 * k + 4);
    }
  });
  return out;
}

/**
 * The TypeScript port of py-faster-rcnn's AnchorTargetLayer (its RPN's training targets).
 * - Bottoms: the RPN's class scores (1 × 2A × H × W; only H and W are read), gt_boxes (G × 5 rows
 *   [x1, y1, x2, y2, class] in input pixels), im_info ([height, width, scale]) and, as the Python
 *   takes it, the data (unused).
 * - Tops, in py-faster-rcnn's layouts: labels 1 × 1 × A·H × W (anchor a's map at rows a·H …),
 *   bbox_targets, bbox_inside_weights and bbox_outside_weights 1 × 4A × H × W (channel 4a + j).
 * - param_str: `'feat_stride'` (required), `'scales'` (8, 16, 32) and `'allowed_border'` (0);
 *   also `'ratios'` and `'base_size'`, as the proposal layer's port reads them.
 *   The RPN_* settings come from the configuration (FASTER_RCNN_TRAIN_CONFIG, or `config`).
 * No gradient flows back, as in the Python.
 */
export class PyAnchorTargetLayer implements PythonLayerImpl {
  readonly options: AnchorTargetOptions;

  constructor(
    private readonly self: PythonLayerSelf,
    config: FasterRcnnConfigOverrides = {},
  ) {
    const params = readParamStr(self);
    const featStride = params.num('feat_stride');
    const scales = params.list('scales', DEFAULT_PROPOSAL_OPTIONS.scales);
    // 'ratios' and 'base_size' are not py-faster-rcnn's (its anchors are fixed at 16 pixels and
    // ratios 0.5, 1, 2) but forks add them; the proposal layer's port reads them too.
    const ratios = params.list('ratios', DEFAULT_PROPOSAL_OPTIONS.ratios);
    const baseSize = params.num('base_size', 16);
    if (!(featStride > 0)) self.fail(`feat_stride must be positive (got ${featStride})`);
    if (!(baseSize > 0)) self.fail(`base_size must be positive (got ${baseSize})`);
    for (const [name, list] of [['scale', scales], ['ratio', ratios]] as const) {
      if (list.length === 0 || list.some((s) => !(s > 0))) self.fail(`every ${name} must be positive (got [${list.join(', ')}])`);
    }
    this.options = {
      anchors: generateAnchors(baseSize, ratios, scales),
      featStride,
      allowedBorder: params.num('allowed_border', 0),
      train: fasterRcnnConfig(config).TRAIN,
    };
  }

  get numAnchors(): number {
    return this.options.anchors.length / 4;
  }

  setup(bottom: Blob[], top: Blob[]): void {
    if (bottom.length < 3 || bottom.length > 4) this.self.fail(`needs 3 or 4 bottoms (RPN scores, gt_boxes, im_info, data), got ${bottom.length}`);
    if (top.length !== 4) this.self.fail(`has 4 tops (labels, bbox_targets, bbox_inside_weights, bbox_outside_weights), got ${top.length}`);
    this.shapeTops(bottom[0]!, top);
  }

  reshape(): void {}

  forward(bottom: Blob[], top: Blob[]): void {
    const self = this.self;
    const scores = bottom[0]!, gt = bottom[1]!, info = bottom[2]!;
    if (scores.numAxes !== 4 || scores.shape[0] !== 1) self.fail(`bottom 0 (the RPN scores) must be 1 × 2A × H × W: only single-item batches are supported (got ${scores.shapeString()})`);
    if (gt.numAxes !== 2 || gt.shape[1] !== 5) self.fail(`bottom 1 (gt_boxes) must be G × 5, rows [x1, y1, x2, y2, class] (got ${gt.shapeString()})`);
    if (info.count() < 3) self.fail(`bottom 2 (im_info) must hold [height, width, scale] (got ${info.shapeString()})`);
    const [H, W] = this.shapeTops(scores, top);
    const i = info.cpuData();
    const t = anchorTargets([H, W], gt.cpuData(), 5, [i[0]!, i[1]!], this.options, self.rng);
    // (y, x, a) rows → py-faster-rcnn's (a, y, x) planes.
    const A = this.numAnchors, plane = H * W;
    const labels = top[0]!.mutableCpuData();
    const [targets, inW, outW] = [top[1]!.mutableCpuData(), top[2]!.mutableCpuData(), top[3]!.mutableCpuData()];
    for (let cell = 0; cell < plane; cell++) {
      for (let a = 0; a < A; a++) {
        const k = cell * A + a;
        labels[a * plane + cell] = t.labels[k]!;
        for (let j = 0; j < 4; j++) {
          const to = (4 * a + j) * plane + cell;
          targets[to] = t.targets[4 * k + j]!;
          inW[to] = t.insideWeights[4 * k + j]!;
          outW[to] = t.outsideWeights[4 * k + j]!;
        }
      }
    }
  }

  /** No gradient (the Python's backward passes). */
  backward(): void {}

  private shapeTops(scores: Blob, top: Blob[]): [number, number] {
    const [H, W] = scores.shape.slice(-2) as [number, number];
    const A = this.numAnchors;
    top[0]!.reshape([1, 1, A * H, W]);
    for (let t = 1; t < 4; t++) top[t]!.reshape([1, 4 * A, H, W]);
    return [H, W];
  }
}

/** A factory for registerPythonLayer, with the configuration's overrides (cfg.TRAIN's RPN_* keys). */
export function createAnchorTargetLayer(config: FasterRcnnConfigOverrides = {}): PythonLayerFactory {
  fasterRcnnConfig(config); // fail at registration, not at the first net
  return (_paramStr, self) => new PyAnchorTargetLayer(self, config);
}

/** The port with py-faster-rcnn's end2end configuration (FASTER_RCNN_TRAIN_CONFIG). */
export const pyFasterRcnnAnchorTargetLayer: PythonLayerFactory = createAnchorTargetLayer();
