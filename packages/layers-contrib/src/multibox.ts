import { decodeBox, type Box } from './bbox.js';
import { MatchType, MiningType, type CodeType } from './fork-types.js';

/*
 * SSD's training-time box bookkeeping (the fork's bbox_util MatchBBox, FindMatches and
 * MineHardExamples), kept apart from the MultiBoxLoss layer so each step can be checked alone.
 *
 * The fork keeps boxes in protobuf NormalizedBBox messages, whose fields are 32-bit floats, and
 * decides matches on float overlaps. The geometry here rounds the same way (Math.fround), so an
 * overlap that sits on a threshold falls on the same side as in Caffe.
 */

const f32 = Math.fround;

/** A box as the fork's NormalizedBBox holds it: float coordinates and, once computed, its size. */
export interface SizedBox extends Box {
  /** The area stored with the box (priors and ground truth carry one); computed when absent. */
  size?: number;
}

/** A ground-truth box from the label blob. */
export interface GroundTruthBox extends SizedBox {
  label: number;
  difficult: boolean;
  size: number;
}

/** A box with float coordinates and its float area, as GetPriorBBoxes / GetGroundTruth build it. */
export function floatBox(xmin: number, ymin: number, xmax: number, ymax: number): SizedBox & { size: number } {
  const b: SizedBox = { xmin: f32(xmin), ymin: f32(ymin), xmax: f32(xmax), ymax: f32(ymax) };
  return { ...b, size: floatBoxSize(b) };
}

/** The fork's BBoxSize: the stored size when there is one, else w·h in float; 0 for an inverted box. */
export function floatBoxSize(b: SizedBox): number {
  if (b.xmax < b.xmin || b.ymax < b.ymin) return 0;
  if (b.size !== undefined) return b.size;
  return f32(f32(b.xmax - b.xmin) * f32(b.ymax - b.ymin));
}

/**
 * Intersection over union in float arithmetic (the fork's JaccardOverlap on NormalizedBBox). With
 * `normalized` false (pixel boxes) widths and heights count both end pixels (+1), and, as in the
 * fork, disjoint boxes then intersect in one pixel.
 */
export function floatOverlap(a: SizedBox, b: SizedBox, normalized = true): number {
  const disjoint = b.xmin > a.xmax || b.xmax < a.xmin || b.ymin > a.ymax || b.ymax < a.ymin;
  let w = disjoint ? 0 : f32(Math.min(a.xmax, b.xmax) - Math.max(a.xmin, b.xmin));
  let h = disjoint ? 0 : f32(Math.min(a.ymax, b.ymax) - Math.max(a.ymin, b.ymin));
  if (!normalized) {
    w = f32(w + 1);
    h = f32(h + 1);
  }
  if (!(w > 0 && h > 0)) return 0;
  const inter = f32(w * h);
  return f32(inter / f32(f32(floatBoxSize(a) + floatBoxSize(b)) - inter));
}

/** Whether any coordinate lies outside [0, 1] (the fork's IsCrossBoundaryBBox). */
export function isCrossBoundary(b: Box): boolean {
  return [b.xmin, b.ymin, b.xmax, b.ymax].some((v) => v < 0 || v > 1);
}

/** Match results for one prediction set: per prediction, a ground-truth index or −1 (none) / −2 (ignored). */
export interface BoxMatches {
  indices: Int32Array;
  /** Each prediction's best overlap with any considered ground truth (0 when none exceeds 1e-6). */
  overlaps: Float32Array;
}

/**
 * Match predictions (priors or decoded boxes) to ground truth, as the fork's MatchBBox:
 * 1. each ground-truth box in turn takes the unmatched prediction it overlaps most (bipartite:
 *    the globally largest remaining pair first, lower prediction then lower ground-truth index on
 *    ties), so every ground truth with any overlap gets one prediction;
 * 2. with PER_PREDICTION, every prediction still unmatched then takes the ground truth it overlaps
 *    most, if that overlap is at least `overlapThreshold`.
 * `label` −1 considers all ground truth, else only boxes of that label. With
 * `ignoreCrossBoundary`, predictions reaching outside the image are marked −2 and never match.
 */
export function matchBoxes(
  groundTruth: readonly GroundTruthBox[],
  predictions: readonly SizedBox[],
  label: number,
  matchType: MatchType,
  overlapThreshold: number,
  ignoreCrossBoundary: boolean,
): BoxMatches {
  const n = predictions.length;
  const indices = new Int32Array(n).fill(-1);
  const overlaps = new Float32Array(n);
  const gtIndices: number[] = [];
  groundTruth.forEach((g, i) => {
    if (label === -1 || g.label === label) gtIndices.push(i);
  });
  if (gtIndices.length === 0) return { indices, overlaps };

  // Overlaps above 1e-6, per prediction (sparse: most priors touch no ground truth).
  const touching: number[] = [];
  const pairOverlaps = new Map<number, Float32Array>();
  for (let i = 0; i < n; i++) {
    if (ignoreCrossBoundary && isCrossBoundary(predictions[i]!)) {
      indices[i] = -2;
      continue;
    }
    let row: Float32Array | undefined;
    for (let j = 0; j < gtIndices.length; j++) {
      const o = floatOverlap(predictions[i]!, groundTruth[gtIndices[j]!]!);
      if (o > 1e-6) {
        row ??= new Float32Array(gtIndices.length).fill(-1);
        row[j] = o;
        if (o > overlaps[i]!) overlaps[i] = o;
      }
    }
    if (row) {
      touching.push(i);
      pairOverlaps.set(i, row);
    }
  }

  const pool = gtIndices.map((_, j) => j);
  while (pool.length > 0) {
    let bestI = -1, bestJ = -1, best = -1;
    for (const i of touching) {
      if (indices[i] !== -1) continue;
      const row = pairOverlaps.get(i)!;
      for (const j of pool) {
        if (row[j]! >= 0 && row[j]! > best) {
          bestI = i;
          bestJ = j;
          best = row[j]!;
        }
      }
    }
    if (bestI === -1) break;
    indices[bestI] = gtIndices[bestJ]!;
    overlaps[bestI] = best;
    pool.splice(pool.indexOf(bestJ), 1);
  }

  if (matchType === MatchType.PER_PREDICTION) {
    for (const i of touching) {
      if (indices[i] !== -1) continue;
      const row = pairOverlaps.get(i)!;
      let bestJ = -1, best = -1;
      for (let j = 0; j < gtIndices.length; j++) {
        const o = row[j]!;
        if (o >= 0 && o >= overlapThreshold && o > best) {
          bestJ = j;
          best = o;
        }
      }
      if (bestJ !== -1) {
        indices[i] = gtIndices[bestJ]!;
        overlaps[i] = best;
      }
    }
  } else if (matchType !== MatchType.BIPARTITE) {
    throw new RangeError(`unknown match_type ${String(matchType)} (expected BIPARTITE or PER_PREDICTION)`);
  }
  return { indices, overlaps };
}

/** One image's matches, per location class in ascending label order (−1 alone with share_location). */
export interface ImageMatches {
  labels: number[];
  matches: BoxMatches[];
}

/** What findMatches needs to know about the loss's configuration. */
export interface MatchingOptions {
  numClasses: number;
  shareLocation: boolean;
  backgroundLabelId: number;
  matchType: MatchType;
  overlapThreshold: number;
  usePriorForMatching: boolean;
  codeType: CodeType;
  encodeVarianceInTarget: boolean;
  ignoreCrossBoundary: boolean;
}

/**
 * The fork's FindMatches for one image: the priors matched against all its ground truth (then
 * split by ground-truth label when locations are per class), or, without use_prior_for_matching,
 * each location class's decoded predictions matched against that class's ground truth.
 * `locPredictions(label)` gives the image's offsets for a location class (label −1 when shared).
 */
export function findMatches(
  groundTruth: readonly GroundTruthBox[] | undefined,
  priors: readonly SizedBox[],
  variances: readonly ArrayLike<number>[],
  locPredictions: (label: number) => readonly ArrayLike<number>[],
  o: MatchingOptions,
): ImageMatches {
  const result: ImageMatches = { labels: [], matches: [] };
  if (!groundTruth) return result; // an image without ground truth: every prediction is negative
  const locClasses = o.shareLocation ? 1 : o.numClasses;
  if (!o.usePriorForMatching) {
    for (let c = 0; c < locClasses; c++) {
      const label = o.shareLocation ? -1 : c;
      if (!o.shareLocation && label === o.backgroundLabelId) continue;
      const offsets = locPredictions(label);
      const decoded = priors.map((p, k) => {
        const b = decodeBox(p, variances[k]!, o.codeType, o.encodeVarianceInTarget, offsets[k]!);
        return { xmin: f32(b.xmin), ymin: f32(b.ymin), xmax: f32(b.xmax), ymax: f32(b.ymax) };
      });
      result.labels.push(label);
      result.matches.push(matchBoxes(groundTruth, decoded, label, o.matchType, o.overlapThreshold, o.ignoreCrossBoundary));
    }
    return result;
  }
  const all = matchBoxes(groundTruth, priors, -1, o.matchType, o.overlapThreshold, o.ignoreCrossBoundary);
  if (o.shareLocation) {
    result.labels.push(-1);
    result.matches.push(all);
    return result;
  }
  for (let c = 0; c < locClasses; c++) {
    if (c === o.backgroundLabelId) continue;
    const indices = new Int32Array(all.indices.length).fill(-1);
    all.indices.forEach((g, m) => {
      if (g > -1 && groundTruth[g]!.label === c) indices[m] = g;
    });
    result.labels.push(c);
    result.matches.push({ indices, overlaps: all.overlaps });
  }
  return result;
}

/** Matched predictions (index > −1) over a set of images. */
export function countMatches(images: readonly ImageMatches[]): number {
  let n = 0;
  for (const im of images) for (const m of im.matches) for (const g of m.indices) if (g > -1) n++;
  return n;
}

/** What mineExamples needs to know about the loss's configuration. */
export interface MiningOptions {
  miningType: MiningType;
  negPosRatio: number;
  negOverlap: number;
  sampleSize: number;
  /** NMS among the candidates before picking them (the loss's nms_param with a threshold > 0). */
  nms: { threshold: number; topK: number; boxes: (label: number) => readonly SizedBox[] } | null;
}

function eligible(type: MiningType, matchIndex: number, overlap: number, negOverlap: number): boolean {
  if (type === MiningType.MAX_NEGATIVE) return matchIndex === -1 && overlap < negOverlap;
  return type === MiningType.HARD_EXAMPLE;
}

/**
 * The fork's MineHardExamples for one image, given each prior's loss (confidence loss plus, for
 * HARD_EXAMPLE, localization loss). Returns the selected negatives (ascending prior index within
 * each location class) and, for HARD_EXAMPLE, unmatches the positives that were not selected
 * (mutating `image`).
 * - MAX_NEGATIVE: the unmatched priors whose best overlap is below neg_overlap, highest loss
 *   first, at most neg_pos_ratio × the positives.
 * - HARD_EXAMPLE: all priors, highest loss first, at most sample_size.
 * With NMS, candidates overlapping a higher-loss candidate by more than the threshold are dropped
 * first. Loss ties keep prior order (the fork's std::sort leaves them unspecified).
 */
export function mineExamples(image: ImageMatches, loss: ArrayLike<number>, o: MiningOptions): number[] {
  const negatives: number[] = [];
  if (o.miningType === MiningType.NONE) return negatives;
  image.labels.forEach((label, k) => {
    const { indices, overlaps } = image.matches[k]!;
    const candidates: number[] = [];
    for (let m = 0; m < indices.length; m++) if (eligible(o.miningType, indices[m]!, overlaps[m]!, o.negOverlap)) candidates.push(m);
    let numSel = candidates.length;
    if (o.miningType === MiningType.MAX_NEGATIVE) {
      let positives = 0;
      for (const g of indices) if (g > -1) positives++;
      numSel = Math.min(Math.trunc(f32(positives * o.negPosRatio)), numSel);
    } else {
      if (!(o.sampleSize > 0)) throw new RangeError(`sample_size must be positive for HARD_EXAMPLE mining (got ${o.sampleSize})`);
      numSel = Math.min(o.sampleSize, numSel);
    }
    const byLoss = (a: number, b: number) => loss[b]! - loss[a]!;
    const selected = new Set<number>();
    if (o.nms) {
      const boxes = o.nms.boxes(label);
      const kept = greedyNms(candidates.map((m) => boxes[m]!), candidates.map((m) => loss[m]!), o.nms.threshold, o.nms.topK);
      for (let n = 0; n < Math.min(kept.length, numSel); n++) selected.add(candidates[kept[n]!]!);
    } else {
      const sorted = [...candidates].sort(byLoss);
      for (let n = 0; n < numSel; n++) selected.add(sorted[n]!);
    }
    for (let m = 0; m < indices.length; m++) {
      if (indices[m]! > -1) {
        if (o.miningType === MiningType.HARD_EXAMPLE && !selected.has(m)) indices[m] = -1;
      } else if (indices[m] === -1 && selected.has(m)) {
        negatives.push(m);
      }
    }
  });
  return negatives;
}

/**
 * The fork's ApplyNMS (the exact, non-adaptive one used in mining): candidates by score, highest
 * first (stable), at most topK of them when topK > −1; boxes under 1e-5 in area are dropped; each
 * kept box removes the remaining ones overlapping it by more than `threshold`. Stops at topK kept.
 */
export function greedyNms(boxes: readonly SizedBox[], scores: readonly number[], threshold: number, topK: number): number[] {
  let order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  if (topK > -1 && topK < order.length) order = order.slice(0, topK);
  const kept: number[] = [];
  while (order.length > 0) {
    const best = order.shift()!;
    if (floatBoxSize(boxes[best]!) < 1e-5) continue;
    kept.push(best);
    if (topK > -1 && kept.length >= topK) break;
    order = order.filter((i) => floatBoxSize(boxes[i]!) >= 1e-5 && floatOverlap(boxes[best]!, boxes[i]!) <= threshold);
  }
  return kept;
}

/**
 * Run a step of the SSD layers' bookkeeping, turning its RangeError (bad boxes or settings, which
 * the steps report so) into the layer's own error through `fail`.
 */
export function failOnRangeError<T>(fail: (message: string) => never, step: () => T): T {
  try {
    return step();
  } catch (e) {
    if (e instanceof RangeError) fail(e.message);
    throw e;
  }
}
