import { CodeType } from './fork-types.js';

/** A box in normalised image coordinates, as the SSD fork's NormalizedBBox. */
export interface Box {
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
}

/** Area of a normalised box (0 for an empty or inverted one), as the fork's BBoxSize. */
export function boxArea(b: Box): number {
  if (b.xmax < b.xmin || b.ymax < b.ymin) return 0;
  return (b.xmax - b.xmin) * (b.ymax - b.ymin);
}

/** Intersection over union of two normalised boxes (the fork's JaccardOverlap). */
export function jaccardOverlap(a: Box, b: Box): number {
  if (b.xmin > a.xmax || b.xmax < a.xmin || b.ymin > a.ymax || b.ymax < a.ymin) return 0;
  const inter = boxArea({
    xmin: Math.max(a.xmin, b.xmin),
    ymin: Math.max(a.ymin, b.ymin),
    xmax: Math.min(a.xmax, b.xmax),
    ymax: Math.min(a.ymax, b.ymax),
  });
  return inter / (boxArea(a) + boxArea(b) - inter);
}

/**
 * Decode one box from a prior, its four variances and the predicted offsets (the fork's
 * DecodeBBox). With `varianceEncodedInTarget` the offsets already include the variances.
 */
export function decodeBox(
  prior: Box,
  variance: ArrayLike<number>,
  codeType: CodeType,
  varianceEncodedInTarget: boolean,
  loc: ArrayLike<number>,
): Box {
  const v = (i: number) => (varianceEncodedInTarget ? 1 : variance[i]!);
  const pw = prior.xmax - prior.xmin;
  const ph = prior.ymax - prior.ymin;
  switch (codeType) {
    case CodeType.CORNER:
      return {
        xmin: prior.xmin + v(0) * loc[0]!,
        ymin: prior.ymin + v(1) * loc[1]!,
        xmax: prior.xmax + v(2) * loc[2]!,
        ymax: prior.ymax + v(3) * loc[3]!,
      };
    case CodeType.CENTER_SIZE: {
      const cx = v(0) * loc[0]! * pw + (prior.xmin + prior.xmax) / 2;
      const cy = v(1) * loc[1]! * ph + (prior.ymin + prior.ymax) / 2;
      const w = Math.exp(v(2) * loc[2]!) * pw;
      const h = Math.exp(v(3) * loc[3]!) * ph;
      return { xmin: cx - w / 2, ymin: cy - h / 2, xmax: cx + w / 2, ymax: cy + h / 2 };
    }
    case CodeType.CORNER_SIZE:
      return {
        xmin: prior.xmin + v(0) * loc[0]! * pw,
        ymin: prior.ymin + v(1) * loc[1]! * ph,
        xmax: prior.xmax + v(2) * loc[2]! * pw,
        ymax: prior.ymax + v(3) * loc[3]! * ph,
      };
    default:
      throw new RangeError(`unknown code_type ${String(codeType)} (expected CORNER, CENTER_SIZE or CORNER_SIZE)`);
  }
}

/**
 * The regression target of `box` against `prior` (the fork's EncodeBBox, the inverse of
 * decodeBox): offsets divided by the variances unless `encodeVarianceInTarget`. CENTER_SIZE and
 * CORNER_SIZE need a prior of positive width and height, CENTER_SIZE a box of positive size too,
 * and the variances must be positive where they divide; anything else is a RangeError.
 */
export function encodeBox(
  prior: Box,
  variance: ArrayLike<number>,
  codeType: CodeType,
  encodeVarianceInTarget: boolean,
  box: Box,
): [number, number, number, number] {
  const v = (i: number): number => {
    if (encodeVarianceInTarget) return 1;
    const x = variance[i]!;
    if (!(x > 0)) throw new RangeError(`prior variance ${i} must be positive (got ${x})`);
    return x;
  };
  const positive = (what: string, x: number): number => {
    if (!(x > 0)) throw new RangeError(`${what} must be positive to encode against (got ${x})`);
    return x;
  };
  switch (codeType) {
    case CodeType.CORNER:
      return [(box.xmin - prior.xmin) / v(0), (box.ymin - prior.ymin) / v(1), (box.xmax - prior.xmax) / v(2), (box.ymax - prior.ymax) / v(3)];
    case CodeType.CENTER_SIZE: {
      const pw = positive('prior width', prior.xmax - prior.xmin);
      const ph = positive('prior height', prior.ymax - prior.ymin);
      const bw = positive('box width', box.xmax - box.xmin);
      const bh = positive('box height', box.ymax - box.ymin);
      return [
        ((box.xmin + box.xmax) / 2 - (prior.xmin + prior.xmax) / 2) / pw / v(0),
        ((box.ymin + box.ymax) / 2 - (prior.ymin + prior.ymax) / 2) / ph / v(1),
        Math.log(bw / pw) / v(2),
        Math.log(bh / ph) / v(3),
      ];
    }
    case CodeType.CORNER_SIZE: {
      const pw = positive('prior width', prior.xmax - prior.xmin);
      const ph = positive('prior height', prior.ymax - prior.ymin);
      return [
        (box.xmin - prior.xmin) / pw / v(0),
        (box.ymin - prior.ymin) / ph / v(1),
        (box.xmax - prior.xmax) / pw / v(2),
        (box.ymax - prior.ymax) / ph / v(3),
      ];
    }
    default:
      throw new RangeError(`unknown code_type ${String(codeType)} (expected CORNER, CENTER_SIZE or CORNER_SIZE)`);
  }
}

/**
 * Indices of the scores above `threshold`, best first (ties keep index order), at most `topK`
 * of them when topK > -1 (the fork's GetMaxScoreIndex).
 */
export function maxScoreIndices(scores: ArrayLike<number>, threshold: number, topK: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) if (scores[i]! > threshold) idx.push(i);
  // Array.prototype.sort is stable, as the fork's std::stable_sort.
  idx.sort((a, b) => scores[b]! - scores[a]!);
  if (topK > -1 && idx.length > topK) idx.length = topK;
  return idx;
}

/**
 * Greedy non-maximum suppression (the fork's ApplyNMSFast): walk the candidates best first and
 * keep one unless it overlaps an already kept box by more than the (adaptive) threshold. With
 * eta < 1 the threshold shrinks by eta after each kept box while it is above 0.5.
 */
export function nms(boxes: readonly Box[], scores: ArrayLike<number>, scoreThreshold: number, nmsThreshold: number, eta: number, topK: number): number[] {
  const candidates = maxScoreIndices(scores, scoreThreshold, topK);
  const kept: number[] = [];
  let adaptive = nmsThreshold;
  for (const i of candidates) {
    const keep = kept.every((j) => jaccardOverlap(boxes[i]!, boxes[j]!) <= adaptive);
    if (!keep) continue;
    kept.push(i);
    if (eta < 1 && adaptive > 0.5) adaptive *= eta;
  }
  return kept;
}
