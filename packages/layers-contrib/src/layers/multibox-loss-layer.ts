import type { Blob } from '@caffe-ts/blob';
import { LossLayerBase, lossNormalization, lossNormalizer, NormalizationMode, type BlobCounts, type LayerDef } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import { decodeBox, encodeBox } from '../bbox.js';
import { ConfLossType, forkParam, LocLossType, MiningType, type MultiBoxLossParameter } from '../fork-types.js';
import {
  countMatches,
  failOnRangeError,
  findMatches,
  floatBox,
  mineExamples,
  type GroundTruthBox,
  type ImageMatches,
  type MatchingOptions,
  type MiningOptions,
  type SizedBox,
} from '../multibox.js';

const FLT_MIN = 1.1754943508222875e-38;
const f32 = Math.fround;

/**
 * MultiBoxLoss (the SSD fork's training loss): matches ground-truth boxes to the priors, mines
 * hard negatives, and sums a localization loss over the matched priors and a confidence loss over
 * the matched and mined ones, both divided by the normalizer.
 * - Bottoms: location offsets (N × P·L·4, L = 1 with share_location else num_classes),
 *   confidences (N × P·num_classes), the priors (1 × 2 × P·4: boxes then variances, from
 *   PriorBox) and the labels (1 × 1 × G × 8 rows [item, label, instance, xmin, ymin, xmax, ymax,
 *   difficult], as AnnotatedData writes them; item −1 rows are padding).
 * - Localization: SMOOTH_L1 (Σ 0.5·d² below |d| = 1, |d| − 0.5 above) or L2 (Σ 0.5·d²) of the
 *   offsets minus the encoded ground truth (code_type), weighted by loc_weight.
 * - Confidence: SOFTMAX (−Σ log p[label], background for negatives) or LOGISTIC (sigmoid cross
 *   entropy over every class).
 * - Mining: MAX_NEGATIVE (neg_pos_ratio × positives, from priors overlapping all ground truth by
 *   less than neg_overlap), HARD_EXAMPLE (sample_size by loss), NONE (every prior counts).
 * - loss_param.normalization: VALID (by default) divides by the number of matches, FULL by
 *   N × P, BATCH_SIZE by N, NONE by 1; never by less than 1.
 * - A loss term counts only if its bottom's propagate_down is true (the fork's default is
 *   true, true, false, false). Backward reaches offsets and confidences only.
 *
 * The fork's quirks are kept, since they shape training: with encode_variance_in_target the
 * offsets' gradient is not divided by the variances; with LOGISTIC and no mining, each image's
 * targets start N·P elements apart although its rows are P·num_classes apart.
 */
export class MultiBoxLossLayer extends LossLayerBase {
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 4, exactNumTopBlobs: 1, autoTopBlobs: true };
  readonly type = 'MultiBoxLoss';

  private p!: MultiBoxLossParameter;
  private normalization: NormalizationMode = NormalizationMode.VALID;
  /** The layer's own propagate_down (defaulted), which decides which terms enter the loss. */
  private countsTerm: [boolean, boolean] = [true, true];
  private locClasses = 1;
  private numPriors = 0;
  private numGt = 0;

  // From the last forward, for backward.
  private numMatches = 0;
  private normalizerValue = 1;
  /** Per matched prior: the element offset of its 4 offsets in bottom 0. */
  private locOffsets = new Int32Array(0);
  /** Per matched prior × 4: f′(prediction − encoded target). */
  private locGrad = new Float64Array(0);
  /** Per confidence row: the element offset of its num_classes scores in bottom 1. */
  private confOffsets = new Int32Array(0);
  /** Per confidence row × num_classes: ∂(confidence loss)/∂score. */
  private confGrad = new Float64Array(0);

  override layerSetUp(): void {
    const p = forkParam<MultiBoxLossParameter>(this.param, 'multibox_loss_param', 'MultiBoxLossParameter');
    this.p = p;
    this.check(hasField(p, 'num_classes'), () => 'multibox_loss_param.num_classes is required.');
    this.check(p.num_classes >= 1, () => `num_classes should not be less than 1 (got ${p.num_classes}).`);
    this.locClasses = p.share_location ? 1 : p.num_classes;
    if (hasField(p, 'do_neg_mining')) {
      this.check(
        p.do_neg_mining === (p.mining_type !== MiningType.NONE),
        () => `do_neg_mining (deprecated) is ${p.do_neg_mining} but mining_type is ${MiningType[p.mining_type] ?? p.mining_type}; they must agree.`,
      );
    }
    this.check(MiningType[p.mining_type] !== undefined, () => `unknown mining_type ${p.mining_type}.`);
    this.check(p.mining_type === MiningType.NONE || p.share_location, () => 'negative mining needs share_location: true.');
    this.check(LocLossType[p.loc_loss_type] !== undefined, () => `unknown loc_loss_type ${p.loc_loss_type} (expected L2 or SMOOTH_L1).`);
    this.check(ConfLossType[p.conf_loss_type] !== undefined, () => `unknown conf_loss_type ${p.conf_loss_type} (expected SOFTMAX or LOGISTIC).`);
    if (p.conf_loss_type === ConfLossType.SOFTMAX) {
      this.check(
        p.background_label_id >= 0 && p.background_label_id < p.num_classes,
        () => `background_label_id should be within [0, num_classes) for SOFTMAX (got ${p.background_label_id}, num_classes ${p.num_classes}).`,
      );
    }
    if (p.map_object_to_agnostic) {
      const want = p.background_label_id >= 0 ? 2 : 1;
      this.check(p.num_classes === want, () => `map_object_to_agnostic needs num_classes ${want} (got ${p.num_classes}).`);
    }
    this.check(
      p.mining_type !== MiningType.HARD_EXAMPLE || p.sample_size > 0,
      () => `sample_size must be positive for HARD_EXAMPLE mining (got ${p.sample_size}).`,
    );
    this.normalization = lossNormalization(this.param.loss_param);
    const pd = this.param.propagate_down;
    this.countsTerm = pd.length > 0 ? [pd[0] ?? true, pd[1] ?? true] : [true, true];
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [loc, conf, priors, labels] = bottom as [Blob, Blob, Blob, Blob];
    const p = this.p;
    this.check(loc.numAxes >= 2 && conf.numAxes >= 2 && loc.shape[0] === conf.shape[0], () =>
      `the location (${loc.shapeString()}) and confidence (${conf.shapeString()}) predictions must share their first dimension.`,
    );
    this.check(priors.numAxes === 3 && priors.shape[1] === 2 && priors.shape[2]! % 4 === 0, () =>
      `bottom 2 (the priors) must be 1 × 2 × (4 · priors), as PriorBox writes them (got ${priors.shapeString()}).`,
    );
    this.numPriors = priors.shape[2]! / 4;
    this.check(labels.numAxes === 4 && labels.shape[3] === 8, () =>
      `bottom 3 (the labels) must be 1 × 1 × boxes × 8, as AnnotatedData writes them (got ${labels.shapeString()}).`,
    );
    this.numGt = labels.shape[2]!;
    this.check(loc.count(1) === this.numPriors * this.locClasses * 4, () =>
      `Number of priors must match number of location predictions: ${this.numPriors} priors × ${this.locClasses} location class(es) × 4 = ` +
        `${this.numPriors * this.locClasses * 4}, but bottom 0 holds ${loc.count(1)} per item (${loc.shapeString()}).`,
    );
    this.check(conf.count(1) === this.numPriors * p.num_classes, () =>
      `Number of priors must match number of confidence predictions: ${this.numPriors} priors × ${p.num_classes} classes = ` +
        `${this.numPriors * p.num_classes}, but bottom 1 holds ${conf.count(1)} per item (${conf.shapeString()}).`,
    );
    top[0]!.reshape([]);
  }

  private groundTruth(labels: Blob): Map<number, GroundTruthBox[]> {
    const p = this.p;
    const d = labels.cpuData();
    const all = new Map<number, GroundTruthBox[]>();
    for (let g = 0; g < this.numGt; g++) {
      const r = g * 8;
      const item = Math.trunc(d[r]!);
      if (item === -1) continue;
      const label = Math.trunc(d[r + 1]!);
      this.check(label !== p.background_label_id, () => `Found background label in the dataset: label row ${g} (item ${item}) has label ${label}, the background_label_id.`);
      this.check(
        p.map_object_to_agnostic || (label >= 0 && label < p.num_classes),
        () => `label row ${g} (item ${item}) has label ${label}, outside [0, ${p.num_classes}) (num_classes).`,
      );
      const difficult = d[r + 7]! !== 0;
      if (!p.use_difficult_gt && difficult) continue;
      const box = { ...floatBox(d[r + 3]!, d[r + 4]!, d[r + 5]!, d[r + 6]!), label, difficult };
      let list = all.get(item);
      if (!list) all.set(item, (list = []));
      list.push(box);
    }
    return all;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const p = this.p;
    const [locBlob, confBlob, priorBlob, labelBlob] = bottom as [Blob, Blob, Blob, Blob];
    const num = locBlob.shape[0]!;
    const P = this.numPriors;
    const C = p.num_classes;
    const L = this.locClasses;
    const locData = locBlob.cpuData();
    const confData = confBlob.cpuData();

    const gt = this.groundTruth(labelBlob);
    const pd = priorBlob.cpuData();
    const priors: SizedBox[] = [];
    const variances: Float32Array[] = [];
    for (let k = 0; k < P; k++) {
      priors.push(floatBox(pd[4 * k]!, pd[4 * k + 1]!, pd[4 * k + 2]!, pd[4 * k + 3]!));
      variances.push(Float32Array.from(pd.subarray(4 * (P + k), 4 * (P + k) + 4)));
    }
    // Offsets of image i, location class slot c, prior k start at ((i·P + k)·L + c)·4.
    const offsetsOf = (i: number, label: number): Float32Array[] => {
      const c = label === -1 ? 0 : label;
      return priors.map((_, k) => Float32Array.from(locData.subarray(((i * P + k) * L + c) * 4, ((i * P + k) * L + c) * 4 + 4)));
    };
    const matching: MatchingOptions = {
      numClasses: C,
      shareLocation: p.share_location,
      backgroundLabelId: p.background_label_id,
      matchType: p.match_type,
      overlapThreshold: p.overlap_threshold,
      usePriorForMatching: p.use_prior_for_matching,
      codeType: p.code_type,
      encodeVarianceInTarget: p.encode_variance_in_target,
      ignoreCrossBoundary: p.ignore_cross_boundary_bbox,
    };
    const images: ImageMatches[] = [];
    for (let i = 0; i < num; i++) images.push(this.wrap(() => findMatches(gt.get(i), priors, variances, (label) => offsetsOf(i, label), matching)));

    // Mining.
    const negatives: number[][] = images.map(() => []);
    if (p.mining_type !== MiningType.NONE) {
      const nmsParam = p.nms_param;
      const mining: MiningOptions = {
        miningType: p.mining_type,
        negPosRatio: p.neg_pos_ratio,
        negOverlap: p.neg_overlap,
        sampleSize: p.sample_size,
        nms: null,
      };
      for (let i = 0; i < num; i++) {
        const im = images[i]!;
        const loss = this.priorConfLosses(confData, i, im, gt.get(i));
        if (p.mining_type === MiningType.HARD_EXAMPLE) {
          const enc = this.encodeMatches(locData, priors, variances, gt, [im], i);
          enc.rows.forEach((row, n) => {
            let l = 0;
            for (let k = 0; k < 4; k++) {
              const v = enc.pred[4 * n + k]! - enc.target[4 * n + k]!;
              l += p.loc_loss_type === LocLossType.SMOOTH_L1 && Math.abs(v) >= 1 ? Math.abs(v) - 0.5 : 0.5 * v * v;
            }
            loss[row.prior]! += f32(l);
          });
        }
        if (nmsParam && nmsParam.nms_threshold > 0) {
          mining.nms = {
            threshold: nmsParam.nms_threshold,
            topK: nmsParam.top_k,
            boxes: (label) =>
              p.use_prior_for_nms
                ? priors
                : offsetsOf(i, label).map((o, k) => decodeBox(priors[k]!, variances[k]!, p.code_type, p.encode_variance_in_target, o)),
          };
        }
        negatives[i] = this.wrap(() => mineExamples(im, loss, mining));
      }
    }
    this.numMatches = countMatches(images);
    this.normalizerValue = lossNormalizer(this.normalization, num, P, this.numMatches);

    // Localization loss over the matched priors.
    const enc = this.encodeMatches(locData, priors, variances, gt, images, 0);
    this.locOffsets = Int32Array.from(enc.rows, (r) => ((r.image * P + r.prior) * L + r.slot) * 4);
    this.locGrad = new Float64Array(enc.pred.length);
    let locLoss = 0;
    for (let n = 0; n < enc.pred.length; n++) {
      const v = enc.pred[n]! - enc.target[n]!;
      if (p.loc_loss_type === LocLossType.SMOOTH_L1 && Math.abs(v) >= 1) {
        locLoss += Math.abs(v) - 0.5;
        this.locGrad[n] = Math.sign(v);
      } else {
        locLoss += 0.5 * v * v;
        this.locGrad[n] = v;
      }
    }

    // Confidence loss over the matched and mined priors (every prior without mining).
    const confLoss = this.confidenceLoss(confData, num, images, negatives, gt);

    let loss = 0;
    if (this.countsTerm[0]) loss += (p.loc_weight * locLoss) / this.normalizerValue;
    if (this.countsTerm[1]) loss += confLoss / this.normalizerValue;
    top[0]!.mutableCpuData()[0] = loss;
  }

  /** Run a bookkeeping step, turning its RangeError (bad boxes or settings) into a LayerError. */
  private wrap<T>(step: () => T): T {
    return failOnRangeError((message) => this.fail(message), step);
  }

  /**
   * The matched priors of `images` (numbered from `firstImage`) in the fork's order (image, then
   * location class, then prior), with each one's offsets and encoded ground truth (the fork's
   * EncodeLocPrediction, bp_inside and encode_variance_in_target included).
   */
  private encodeMatches(
    locData: ArrayLike<number>,
    priors: readonly SizedBox[],
    variances: readonly Float32Array[],
    gt: Map<number, GroundTruthBox[]>,
    images: readonly ImageMatches[],
    firstImage: number,
  ): { rows: { image: number; slot: number; prior: number }[]; pred: Float64Array; target: Float64Array } {
    const p = this.p;
    const P = this.numPriors, L = this.locClasses;
    const rows: { image: number; slot: number; prior: number }[] = [];
    images.forEach((im, n) => {
      const image = firstImage + n;
      im.labels.forEach((label, k) => {
        const idx = im.matches[k]!.indices;
        for (let j = 0; j < idx.length; j++) if (idx[j]! > -1) rows.push({ image, slot: label === -1 ? 0 : label, prior: j });
      });
    });
    const pred = new Float64Array(rows.length * 4);
    const target = new Float64Array(rows.length * 4);
    rows.forEach((r, n) => {
      const im = images[r.image - firstImage]!;
      const gtIndex = im.matches[im.labels.indexOf(p.share_location ? -1 : r.slot)]!.indices[r.prior]!;
      const box = gt.get(r.image)![gtIndex]!;
      const t = this.wrap(() => encodeBox(priors[r.prior]!, variances[r.prior]!, p.code_type, p.encode_variance_in_target, box));
      const at = ((r.image * P + r.prior) * L + r.slot) * 4;
      const o = [locData[at]!, locData[at + 1]!, locData[at + 2]!, locData[at + 3]!];
      if (p.bp_inside) {
        // A coordinate of the matched box outside the image gets the target as its prediction: no gradient.
        const m = p.use_prior_for_matching ? priors[r.prior]! : decodeBox(priors[r.prior]!, variances[r.prior]!, p.code_type, p.encode_variance_in_target, o);
        [m.xmin, m.ymin, m.xmax, m.ymax].forEach((v, k) => {
          if (v < 0 || v > 1) o[k] = t[k]!;
        });
      }
      for (let k = 0; k < 4; k++) {
        const scale = p.encode_variance_in_target ? variances[r.prior]![k]! : 1;
        this.check(scale > 0, () => `prior ${r.prior} has variance ${scale} at ${k}; encode_variance_in_target needs positive variances.`);
        pred[4 * n + k] = o[k]! / scale;
        target[4 * n + k] = t[k]! / scale;
      }
    });
    return { rows, pred, target };
  }

  /** The label a prior's confidence is scored against: its match's, else the background. */
  private priorLabel(im: ImageMatches, boxes: GroundTruthBox[] | undefined, prior: number): number {
    for (const m of im.matches) {
      const g = m.indices[prior]!;
      if (g > -1) return boxes![g]!.label;
    }
    return this.p.background_label_id;
  }

  /** Each prior's confidence loss for image i, in float (the fork's ComputeConfLoss, for mining). */
  private priorConfLosses(confData: ArrayLike<number>, i: number, im: ImageMatches, boxes: GroundTruthBox[] | undefined): Float32Array {
    const P = this.numPriors, C = this.p.num_classes;
    const loss = new Float32Array(P);
    const grad = new Float64Array(C);
    const oneHot = new Float64Array(C);
    for (let k = 0; k < P; k++) {
      const label = this.priorLabel(im, boxes, k);
      this.check(label >= 0 && label < C, () => `prior ${k} of item ${i} is scored against label ${label}, outside [0, ${C}).`);
      if (this.p.conf_loss_type === ConfLossType.SOFTMAX) {
        loss[k] = softmaxRowLoss(confData, (i * P + k) * C, label, grad);
      } else {
        oneHot.fill(0);
        oneHot[label] = 1;
        loss[k] = logisticRowLoss(confData, (i * P + k) * C, oneHot, grad);
      }
    }
    return loss;
  }

  /**
   * The confidence rows and their targets (the fork's EncodeConfPrediction) and their summed loss.
   * With mining: per image with ground truth, its matched priors then its mined negatives.
   * Without: every prior of every image, matched ones against their label, the rest background.
   * As in the fork, every target starts as the background id; LOGISTIC then sets 1 at each row's
   * label (and at the background for mined negatives, when it is a class).
   */
  private confidenceLoss(
    confData: ArrayLike<number>,
    num: number,
    images: readonly ImageMatches[],
    negatives: readonly number[][],
    gt: Map<number, GroundTruthBox[]>,
  ): number {
    const p = this.p;
    const P = this.numPriors, C = p.num_classes, bg = p.background_label_id;
    const mining = p.mining_type !== MiningType.NONE;
    const logistic = p.conf_loss_type === ConfLossType.LOGISTIC;
    const matchLabel = (boxes: GroundTruthBox[], g: number) => (p.map_object_to_agnostic ? bg + 1 : boxes[g]!.label);
    const rowPriors: number[] = []; // i·P + prior, per row
    const rowLabels: number[] = [];
    if (mining) {
      forEachImageWithTruth(images, gt, (i, boxes) => {
        forEachMatch(images[i]!, (j, g) => {
          rowPriors.push(i * P + j);
          rowLabels.push(matchLabel(boxes, g));
        });
        for (const j of negatives[i]!) {
          rowPriors.push(i * P + j);
          rowLabels.push(bg);
        }
      });
    } else {
      for (let r = 0; r < num * P; r++) rowPriors.push(r);
    }
    const rows = rowPriors.length;
    const targets = new Float64Array(logistic ? rows * C : rows).fill(bg);
    if (mining) {
      rowLabels.forEach((label, r) => {
        if (!logistic) targets[r] = label;
        else if (label >= 0 && label < C) targets[r * C + label] = 1;
      });
    } else {
      forEachImageWithTruth(images, gt, (i, boxes) =>
        forEachMatch(images[i]!, (j, g) => {
          // The fork steps an image's targets by P elements, also with LOGISTIC's C per row.
          if (logistic) targets[i * P + j * C + matchLabel(boxes, g)] = 1;
          else targets[i * P + j] = matchLabel(boxes, g);
        }),
      );
    }
    this.confOffsets = Int32Array.from(rowPriors, (r) => r * C);
    this.confGrad = new Float64Array(rows * C);
    let loss = 0;
    for (let r = 0; r < rows; r++) {
      const grad = this.confGrad.subarray(r * C, (r + 1) * C);
      if (logistic) {
        loss += logisticRowLoss(confData, this.confOffsets[r]!, targets.subarray(r * C, (r + 1) * C), grad);
      } else {
        const label = targets[r]!;
        this.check(label >= 0 && label < C, () => `confidence row ${r} has label ${label}, outside [0, ${C}).`);
        loss += softmaxRowLoss(confData, this.confOffsets[r]!, label, grad);
      }
    }
    return loss;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    this.check(!propagateDown[2], () => 'MultiBoxLoss cannot backpropagate to the priors (bottom 2); set propagate_down: true true false false.');
    this.check(!propagateDown[3], () => 'MultiBoxLoss cannot backpropagate to the labels (bottom 3); set propagate_down: true true false false.');
    const scale = top[0]!.cpuDiff()[0]! / this.normalizerValue;
    if (propagateDown[0]) {
      const diff = bottom[0]!.mutableCpuDiff();
      diff.fill(0);
      const s = this.p.loc_weight * scale;
      this.locOffsets.forEach((at, n) => {
        for (let k = 0; k < 4; k++) diff[at + k] = s * this.locGrad[4 * n + k]!;
      });
    }
    if (propagateDown[1]) {
      const diff = bottom[1]!.mutableCpuDiff();
      diff.fill(0);
      const C = this.p.num_classes;
      this.confOffsets.forEach((at, r) => {
        for (let c = 0; c < C; c++) diff[at + c] = scale * this.confGrad[r * C + c]!;
      });
    }
  }

  /** The offsets and confidences may be forced into backward; the priors and labels never. */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex < 2;
  }
}

export const multiBoxLossLayerDef: LayerDef<MultiBoxLossLayer> = {
  type: 'MultiBoxLoss',
  create: (p, ctx) => new MultiBoxLossLayer(p, ctx),
};

/** Each image that has ground truth, in order, with its boxes. */
function forEachImageWithTruth(images: readonly ImageMatches[], gt: Map<number, GroundTruthBox[]>, visit: (i: number, boxes: GroundTruthBox[]) => void): void {
  images.forEach((_, i) => {
    const boxes = gt.get(i);
    if (boxes) visit(i, boxes);
  });
}

/** Each matched prior of an image (location class by class, priors ascending) with its ground-truth index. */
function forEachMatch(image: ImageMatches, visit: (prior: number, gtIndex: number) => void): void {
  for (const m of image.matches) m.indices.forEach((g, j) => g > -1 && visit(j, g));
}

/** −log max(p[label], FLT_MIN) of a softmax over the C scores at `offset`; `grad` gets p − onehot. */
function softmaxRowLoss(conf: ArrayLike<number>, offset: number, label: number, grad: Float64Array): number {
  const C = grad.length;
  let max = conf[offset]!;
  for (let c = 1; c < C; c++) max = Math.max(max, conf[offset + c]!);
  let sum = 0;
  for (let c = 0; c < C; c++) sum += grad[c] = Math.exp(conf[offset + c]! - max);
  for (let c = 0; c < C; c++) grad[c]! /= sum;
  const loss = -Math.log(Math.max(grad[label]!, FLT_MIN));
  grad[label]! -= 1;
  return loss;
}

/** Σ_c sigmoid cross entropy of the C scores at `offset` against `targets`; `grad` gets sigmoid − target. */
function logisticRowLoss(conf: ArrayLike<number>, offset: number, targets: ArrayLike<number>, grad: Float64Array): number {
  let loss = 0;
  for (let c = 0; c < grad.length; c++) {
    const x = conf[offset + c]!;
    const t = targets[c]!;
    const pos = x >= 0 ? 1 : 0;
    // The overflow-safe form of Caffe's SigmoidCrossEntropyLoss.
    loss -= x * (t - pos) - Math.log(1 + Math.exp(x - 2 * x * pos));
    grad[c] = 1 / (1 + Math.exp(-x)) - t;
  }
  return loss;
}
