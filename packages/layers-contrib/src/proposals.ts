/*
 * Faster R-CNN's region proposals (py-faster-rcnn's rpn/proposal_layer.py and its helpers): the
 * anchors, their refinement by the RPN's box deltas, clipping, the minimum-size filter, the
 * top-scoring cut and non-maximum suppression. Boxes are [x1, y1, x2, y2] in input pixels with
 * inclusive corners (a box's width is x2 − x1 + 1), as in that code.
 */

/** What shapes the proposals (py-faster-rcnn's TEST configuration by default). */
export interface ProposalOptions {
  /** Input pixels per feature-map cell. */
  featStride: number;
  /** Side of the base anchor (py-faster-rcnn: 16). */
  baseSize: number;
  /** Smallest box side kept, in input pixels before im_info's scale (RPN_MIN_SIZE: 16). */
  minSize: number;
  /** Anchor aspect ratios, height / width (0.5, 1, 2). */
  ratios: readonly number[];
  /** Anchor scales, multiples of the base size (8, 16, 32). */
  scales: readonly number[];
  /** Boxes kept before NMS, best first; 0 keeps all (RPN_PRE_NMS_TOP_N: 6000 at TEST, 12000 at TRAIN). */
  preNmsTopN: number;
  /** Boxes kept after NMS; 0 keeps all (RPN_POST_NMS_TOP_N: 300 at TEST, 2000 at TRAIN). */
  postNmsTopN: number;
  /** Overlap (IoU) above which a lower-scoring box is suppressed (RPN_NMS_THRESH: 0.7). */
  nmsThresh: number;
}

export const DEFAULT_PROPOSAL_OPTIONS: Readonly<ProposalOptions> = Object.freeze({
  featStride: 16,
  baseSize: 16,
  minSize: 16,
  ratios: Object.freeze([0.5, 1, 2]),
  scales: Object.freeze([8, 16, 32]),
  preNmsTopN: 6000,
  postNmsTopN: 300,
  nmsThresh: 0.7,
});

/** numpy's round() (and OpenCV's cvRound): halves to even. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The anchors at one cell, A = ratios × scales of them (ratios outer), as [x1, y1, x2, y2] rows
 * around the base anchor's centre ((baseSize − 1) / 2): for each ratio r, a box of the base's
 * area with width round(√(area / r)) and height round(width · r), then that box times each scale.
 */
export function generateAnchors(baseSize: number, ratios: readonly number[], scales: readonly number[]): Float64Array {
  const anchors = new Float64Array(4 * ratios.length * scales.length);
  const centre = 0.5 * (baseSize - 1);
  let k = 0;
  for (const r of ratios) {
    const w = roundHalfEven(Math.sqrt((baseSize * baseSize) / r));
    const h = roundHalfEven(w * r);
    for (const s of scales) {
      const ws = w * s, hs = h * s;
      anchors.set([centre - 0.5 * (ws - 1), centre - 0.5 * (hs - 1), centre + 0.5 * (ws - 1), centre + 0.5 * (hs - 1)], 4 * k++);
    }
  }
  return anchors;
}

/**
 * py-faster-rcnn's bbox_transform_inv for one box: [x1, y1, x2, y2] (inclusive corners) moved by
 * (dx, dy) of its size and scaled by e^(dw, dh), clipped to a `width` × `height` image. `f` rounds
 * to the blobs' float type.
 */
export function applyBoxDeltas(
  box: readonly [number, number, number, number], dx: number, dy: number, dw: number, dh: number,
  width: number, height: number, f: (v: number) => number = (v) => v,
): [number, number, number, number] {
  const [x1, y1, x2, y2] = box;
  const w = f(x2 - x1 + 1), h = f(y2 - y1 + 1);
  const cx = f(x1 + f(0.5 * w)), cy = f(y1 + f(0.5 * h));
  const px = f(f(dx * w) + cx), py = f(f(dy * h) + cy);
  const pw = f(f(Math.exp(dw)) * w), ph = f(f(Math.exp(dh)) * h);
  const clip = (v: number, hi: number) => Math.max(Math.min(v, hi - 1), 0);
  return [clip(f(px - f(0.5 * pw)), width), clip(f(py - f(0.5 * ph)), height), clip(f(px + f(0.5 * pw)), width), clip(f(py + f(0.5 * ph)), height)];
}

/**
 * Greedy non-maximum suppression over boxes in `order` (best first): keeps a box, drops every
 * later one whose IoU with it is above `thresh` (areas with inclusive corners). Returns the kept
 * indices, best first.
 */
export function nmsPixelBoxes(boxes: ArrayLike<number>, order: readonly number[], thresh: number, f: (v: number) => number = (v) => v): number[] {
  // Each ranked box's area once (by rank), not once per pair.
  const areas = Float64Array.from(order, (i) => f(f(boxes[4 * i + 2]! - boxes[4 * i]! + 1) * f(boxes[4 * i + 3]! - boxes[4 * i + 1]! + 1)));
  const suppressed = new Uint8Array(order.length);
  const keep: number[] = [];
  for (let a = 0; a < order.length; a++) {
    if (suppressed[a]) continue;
    const i = order[a]!;
    keep.push(i);
    const areaI = areas[a]!;
    for (let b = a + 1; b < order.length; b++) {
      if (suppressed[b]) continue;
      const j = order[b]!;
      const w = Math.max(0, f(Math.min(boxes[4 * i + 2]!, boxes[4 * j + 2]!) - Math.max(boxes[4 * i]!, boxes[4 * j]!) + 1));
      const h = Math.max(0, f(Math.min(boxes[4 * i + 3]!, boxes[4 * j + 3]!) - Math.max(boxes[4 * i + 1]!, boxes[4 * j + 1]!) + 1));
      const inter = f(w * h);
      if (f(inter / f(areaI + areas[b]! - inter)) > thresh) suppressed[b] = 1;
    }
  }
  return keep;
}

/** The proposals of one image: boxes (4 per row) and their scores, best first. */
export interface Proposals {
  boxes: Float64Array;
  scores: Float64Array;
}

/**
 * Proposals from one image's RPN outputs.
 * - `scores`: the 2A × H × W class probabilities (background for anchors 0 … A − 1, then object);
 *   the object half is read.
 * - `deltas`: the 4A × H × W box deltas (dx, dy, dw, dh per anchor).
 * - `imInfo`: [height, width, scale] of the network input.
 * Anchor a at cell (y, x) is anchors[a] shifted by featStride · (x, y); rows are taken in the
 * order (y, x, a). `f` rounds to the blobs' float type (py-faster-rcnn computes in float32 for
 * float blobs). Equal scores keep their row order.
 */
export function computeProposals(
  scores: ArrayLike<number>,
  deltas: ArrayLike<number>,
  [H, W]: readonly [number, number],
  imInfo: readonly [number, number, number],
  options: ProposalOptions,
  f: (v: number) => number = (v) => v,
): Proposals {
  const anchors = generateAnchors(options.baseSize, options.ratios, options.scales);
  const A = anchors.length / 4, plane = H * W, n = A * plane;
  const [imH, imW, imScale] = imInfo;
  const minSize = f(options.minSize * imScale);
  const boxes = new Float64Array(4 * n);
  const score = new Float64Array(n);
  const valid: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const cell = y * W + x;
      for (let a = 0; a < A; a++) {
        const k = cell * A + a;
        const sx = x * options.featStride, sy = y * options.featStride;
        const anchor = [anchors[4 * a]! + sx, anchors[4 * a + 1]! + sy, anchors[4 * a + 2]! + sx, anchors[4 * a + 3]! + sy] as const;
        const delta = (j: number) => deltas[(4 * a + j) * plane + cell]!;
        const [bx1, by1, bx2, by2] = applyBoxDeltas(anchor, delta(0), delta(1), delta(2), delta(3), imW, imH, f);
        boxes.set([bx1, by1, bx2, by2], 4 * k);
        score[k] = scores[(A + a) * plane + cell]!;
        if (f(bx2 - bx1 + 1) >= minSize && f(by2 - by1 + 1) >= minSize) valid.push(k);
      }
    }
  }
  // Best first; equal scores keep their row order, and a NaN score ranks last.
  const rank = (k: number) => (Number.isNaN(score[k]!) ? -Infinity : score[k]!);
  valid.sort((i, j) => rank(j) - rank(i) || i - j);
  const ranked = options.preNmsTopN > 0 ? valid.slice(0, options.preNmsTopN) : valid;
  let keep = nmsPixelBoxes(boxes, ranked, options.nmsThresh, f);
  if (options.postNmsTopN > 0) keep = keep.slice(0, options.postNmsTopN);
  const out: Proposals = { boxes: new Float64Array(4 * keep.length), scores: new Float64Array(keep.length) };
  keep.forEach((k, r) => {
    out.boxes.set(boxes.subarray(4 * k, 4 * k + 4), 4 * r);
    out.scores[r] = score[k]!;
  });
  return out;
}

/**
 * IoU of every box with every query box (py-faster-rcnn's bbox_overlaps, utils/bbox.pyx): rows of
 * `boxes` and `query` are [x1, y1, x2, y2] with inclusive corners, so sides and areas count
 * x2 − x1 + 1; boxes that do not intersect (an intersection side ≤ 0) overlap 0. Returns N × K
 * values, row-major (box n, query k at n · K + k), in float64 as the Cython code computes.
 */
export function bboxOverlaps(boxes: ArrayLike<number>, query: ArrayLike<number>): Float64Array {
  const N = Math.floor(boxes.length / 4), K = Math.floor(query.length / 4);
  const out = new Float64Array(N * K);
  for (let k = 0; k < K; k++) {
    const qx1 = query[4 * k]!, qy1 = query[4 * k + 1]!, qx2 = query[4 * k + 2]!, qy2 = query[4 * k + 3]!;
    const queryArea = (qx2 - qx1 + 1) * (qy2 - qy1 + 1);
    for (let n = 0; n < N; n++) {
      const x1 = boxes[4 * n]!, y1 = boxes[4 * n + 1]!, x2 = boxes[4 * n + 2]!, y2 = boxes[4 * n + 3]!;
      const iw = Math.min(x2, qx2) - Math.max(x1, qx1) + 1;
      if (!(iw > 0)) continue;
      const ih = Math.min(y2, qy2) - Math.max(y1, qy1) + 1;
      if (!(ih > 0)) continue;
      const inter = iw * ih;
      out[n * K + k] = inter / ((x2 - x1 + 1) * (y2 - y1 + 1) + queryArea - inter);
    }
  }
  return out;
}

/**
 * The regression target that moves box `from` onto box `to` (py-faster-rcnn's bbox_transform;
 * applyBoxDeltas is its inverse): the centre offset in units of `from`'s width and height, and the
 * log ratios of the sides, with inclusive corners (width x2 − x1 + 1, centre x1 + width / 2).
 */
export function bboxTransform(from: ArrayLike<number>, to: ArrayLike<number>): [number, number, number, number] {
  const fw = from[2]! - from[0]! + 1, fh = from[3]! - from[1]! + 1;
  const tw = to[2]! - to[0]! + 1, th = to[3]! - to[1]! + 1;
  const fcx = from[0]! + 0.5 * fw, fcy = from[1]! + 0.5 * fh;
  const tcx = to[0]! + 0.5 * tw, tcy = to[1]! + 0.5 * th;
  return [(tcx - fcx) / fw, (tcy - fcy) / fh, Math.log(tw / fw), Math.log(th / fh)];
}
