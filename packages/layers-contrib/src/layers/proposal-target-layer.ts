import type { Blob, Rng } from '@caffe-ts/blob';
import type { PythonLayerFactory, PythonLayerImpl, PythonLayerSelf } from '@caffe-ts/layers';
import { choiceWithoutReplacement, fasterRcnnConfig, readParamStr, type FasterRcnnConfigOverrides, type FasterRcnnTrainConfig } from '../faster-rcnn-config.js';
import { bboxOverlaps, bboxTransform, roundHalfEven } from '../proposals.js';

/** py-faster-rcnn's `rpn.proposal_target_layer.ProposalTargetLayer`, as `python_param { module layer }` names it. */
export const PY_FASTER_RCNN_PROPOSAL_TARGET = { module: 'rpn.proposal_target_layer', layer: 'ProposalTargetLayer' } as const;

/** The sampled RoIs of one image and what the detection heads learn from them. */
export interface SampledRois {
  /** R × 5 rows [0, x1, y1, x2, y2]: the foreground RoIs first, then the background ones. */
  rois: Float64Array;
  /** R class labels (0 for the background RoIs). */
  labels: Float64Array;
  /** R × 4·numClasses: a foreground RoI's (normalised) targets in its class's 4 columns, zeros elsewhere. */
  targets: Float64Array;
  insideWeights: Float64Array;
  /** 1 where the inside weight is positive, as the Python derives it. */
  outsideWeights: Float64Array;
  /** How many of the R are foreground. */
  numFg: number;
}

export type ProposalTargetConfig = Pick<
  FasterRcnnTrainConfig,
  | 'BATCH_SIZE'
  | 'FG_FRACTION'
  | 'FG_THRESH'
  | 'BG_THRESH_HI'
  | 'BG_THRESH_LO'
  | 'BBOX_NORMALIZE_TARGETS_PRECOMPUTED'
  | 'BBOX_NORMALIZE_MEANS'
  | 'BBOX_NORMALIZE_STDS'
  | 'BBOX_INSIDE_WEIGHTS'
>;

/**
 * py-faster-rcnn's ProposalTargetLayer for one image:
 * 1. the candidates are the proposals (`rois`, rows [0, x1, y1, x2, y2]) followed by the
 *    ground-truth boxes themselves (`gtBoxes`, rows [x1, y1, x2, y2, class]);
 * 2. each candidate takes the box it overlaps most (+1 areas; the first on ties) and its class;
 * 3. foreground: best overlap ≥ FG_THRESH, at most round(FG_FRACTION · BATCH_SIZE) of them (halves
 *    to even, as numpy rounds) drawn at random; background: best overlap in [BG_THRESH_LO,
 *    BG_THRESH_HI), as many as BATCH_SIZE less the foreground allows, drawn at random. The Python
 *    hard-codes one image per batch, so BATCH_SIZE is per image whatever IMS_PER_BATCH says;
 * 4. targets are bbox_transform from the RoI to its box, minus BBOX_NORMALIZE_MEANS and divided by
 *    BBOX_NORMALIZE_STDS when BBOX_NORMALIZE_TARGETS_PRECOMPUTED, written in the label's 4 columns
 *    of 4 · numClasses with inside weights BBOX_INSIDE_WEIGHTS (background RoIs: all zeros).
 */
export function sampleRois(
  rois: ArrayLike<number>,
  gtBoxes: ArrayLike<number>,
  numClasses: number,
  train: ProposalTargetConfig,
  rng: Pick<Rng, 'int'>,
): SampledRois {
  const R = Math.floor(rois.length / 5), G = Math.floor(gtBoxes.length / 5), N = R + G;
  const candidates = new Float64Array(4 * N);
  for (let r = 0; r < R; r++) for (let j = 0; j < 4; j++) candidates[4 * r + j] = rois[5 * r + 1 + j]!;
  const gt = new Float64Array(4 * G);
  for (let g = 0; g < G; g++) {
    for (let j = 0; j < 4; j++) gt[4 * g + j] = candidates[4 * (R + g) + j] = gtBoxes[5 * g + j]!;
  }
  const overlaps = bboxOverlaps(candidates, gt);
  const assignment = new Int32Array(N);
  const maxOverlap = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    for (let g = 0; g < G; g++) {
      const o = overlaps[i * G + g]!;
      if (g === 0 || o > maxOverlap[i]!) {
        maxOverlap[i] = o;
        assignment[i] = g;
      }
    }
  }
  const perImage = train.BATCH_SIZE;
  const fgPerImage = roundHalfEven(train.FG_FRACTION * perImage);
  const fgCandidates: number[] = [], bgCandidates: number[] = [];
  for (let i = 0; i < N; i++) {
    if (maxOverlap[i]! >= train.FG_THRESH) fgCandidates.push(i);
    if (maxOverlap[i]! < train.BG_THRESH_HI && maxOverlap[i]! >= train.BG_THRESH_LO) bgCandidates.push(i);
  }
  const fg = choiceWithoutReplacement(fgCandidates, Math.min(fgPerImage, fgCandidates.length), rng);
  const bg = choiceWithoutReplacement(bgCandidates, Math.min(perImage - fg.length, bgCandidates.length), rng);
  const keep = [...fg, ...bg];
  const K = 4 * numClasses;
  const out: SampledRois = {
    rois: new Float64Array(5 * keep.length),
    labels: new Float64Array(keep.length),
    targets: new Float64Array(K * keep.length),
    insideWeights: new Float64Array(K * keep.length),
    outsideWeights: new Float64Array(K * keep.length),
    numFg: fg.length,
  };
  const [means, stds] = train.BBOX_NORMALIZE_TARGETS_PRECOMPUTED ? [train.BBOX_NORMALIZE_MEANS, train.BBOX_NORMALIZE_STDS] : [[0, 0, 0, 0], [1, 1, 1, 1]];
  keep.forEach((i, r) => {
    const box = candidates.subarray(4 * i, 4 * i + 4);
    out.rois.set([0, ...box], 5 * r);
    if (r >= fg.length || G === 0) return; // background: label 0, no targets
    const g = assignment[i]!;
    const cls = gtBoxes[5 * g + 4]!;
    out.labels[r] = cls;
    if (!(cls > 0)) return;
    if (!Number.isInteger(cls) || cls >= numClasses) throw new RangeError(`ground-truth class ${cls} is not one of the ${numClasses} classes ('num_classes')`);
    const t = bboxTransform(box, gt.subarray(4 * g, 4 * g + 4));
    for (let j = 0; j < 4; j++) {
      const at = r * K + 4 * cls + j;
      out.targets[at] = (t[j]! - means[j]!) / stds[j]!;
      out.insideWeights[at] = train.BBOX_INSIDE_WEIGHTS[j]!;
      out.outsideWeights[at] = train.BBOX_INSIDE_WEIGHTS[j]! > 0 ? 1 : 0;
    }
  });
  return out;
}

/**
 * The TypeScript port of py-faster-rcnn's ProposalTargetLayer (the detection heads' training
 * RoIs and targets).
 * - Bottoms: the proposals (R × 5 rows [0, x1, y1, x2, y2], ProposalLayer's rois) and gt_boxes
 *   (G × 5 rows [x1, y1, x2, y2, class]).
 * - Tops: rois (N × 5), labels (N, one axis, as the Python reshapes it), bbox_targets,
 *   bbox_inside_weights and bbox_outside_weights (N × 4·num_classes). N changes from forward to
 *   forward (at most BATCH_SIZE).
 * - param_str: `'num_classes'` (background included). BATCH_SIZE, FG_FRACTION, FG_THRESH,
 *   BG_THRESH_HI/LO, the normalisation and BBOX_INSIDE_WEIGHTS come from the configuration.
 * No gradient flows back, as in the Python.
 */
export class PyProposalTargetLayer implements PythonLayerImpl {
  readonly numClasses: number;
  readonly train: ProposalTargetConfig;

  constructor(
    private readonly self: PythonLayerSelf,
    config: FasterRcnnConfigOverrides = {},
  ) {
    this.numClasses = readParamStr(self).num('num_classes');
    if (!(Number.isInteger(this.numClasses) && this.numClasses >= 1)) self.fail(`num_classes must be a positive integer (got ${this.numClasses})`);
    this.train = fasterRcnnConfig(config).TRAIN;
  }

  setup(bottom: Blob[], top: Blob[]): void {
    if (bottom.length !== 2) this.self.fail(`needs 2 bottoms (the proposals' rois, gt_boxes), got ${bottom.length}`);
    if (top.length !== 5) this.self.fail(`has 5 tops (rois, labels, bbox_targets, bbox_inside_weights, bbox_outside_weights), got ${top.length}`);
    top[0]!.reshape([1, 5]);
    top[1]!.reshape([1, 1]);
    for (let t = 2; t < 5; t++) top[t]!.reshape([1, 4 * this.numClasses]);
  }

  reshape(): void {}

  forward(bottom: Blob[], top: Blob[]): void {
    const self = this.self;
    const rois = bottom[0]!, gt = bottom[1]!;
    if (rois.numAxes !== 2 || rois.shape[1] !== 5) self.fail(`bottom 0 (the proposals) must be R × 5, rows [batch, x1, y1, x2, y2] (got ${rois.shapeString()})`);
    if (gt.numAxes !== 2 || gt.shape[1] !== 5) self.fail(`bottom 1 (gt_boxes) must be G × 5, rows [x1, y1, x2, y2, class] (got ${gt.shapeString()})`);
    const r = rois.cpuData();
    for (let i = 0; i < rois.shape[0]!; i++) if (r[5 * i] !== 0) self.fail(`only single-item batches are supported (proposal ${i} is of image ${r[5 * i]})`);
    let s: SampledRois;
    try {
      s = sampleRois(r, gt.cpuData(), this.numClasses, this.train, self.rng);
    } catch (e) {
      return self.fail(e instanceof Error ? e.message : String(e));
    }
    const N = s.labels.length, K = 4 * this.numClasses;
    top[0]!.reshape([N, 5]);
    top[0]!.mutableCpuData().set(s.rois);
    top[1]!.reshape([N]);
    top[1]!.mutableCpuData().set(s.labels);
    const fields = [s.targets, s.insideWeights, s.outsideWeights];
    for (let t = 0; t < 3; t++) {
      top[2 + t]!.reshape([N, K]);
      top[2 + t]!.mutableCpuData().set(fields[t]!);
    }
  }

  /** No gradient (the Python's backward passes). */
  backward(): void {}
}

/** A factory for registerPythonLayer, with the configuration's overrides (BATCH_SIZE, FG_FRACTION, …). */
export function createProposalTargetLayer(config: FasterRcnnConfigOverrides = {}): PythonLayerFactory {
  fasterRcnnConfig(config);
  return (_paramStr, self) => new PyProposalTargetLayer(self, config);
}

/** The port with py-faster-rcnn's end2end configuration (FASTER_RCNN_TRAIN_CONFIG). */
export const pyFasterRcnnProposalTargetLayer: PythonLayerFactory = createProposalTargetLayer();
