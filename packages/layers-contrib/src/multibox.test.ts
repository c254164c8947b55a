import { describe, expect, it } from 'vitest';
import { encodeBox, decodeBox } from './bbox.js';
import { CodeType, MatchType, MiningType } from './fork-types.js';
import { findMatches, floatBox, floatOverlap, greedyNms, matchBoxes, mineExamples, type GroundTruthBox, type MatchingOptions } from './multibox.js';

const gtBox = (label: number, xmin: number, ymin: number, xmax: number, ymax: number): GroundTruthBox => ({
  ...floatBox(xmin, ymin, xmax, ymax),
  label,
  difficult: false,
});

// Four priors: the top-left quarter, the centre quarter, the bottom-right quarter, the whole image.
const A = floatBox(0, 0, 0.5, 0.5);
const B = floatBox(0.25, 0.25, 0.75, 0.75);
const C = floatBox(0.5, 0.5, 1, 1);
const D = floatBox(0, 0, 1, 1);
const priors = [A, B, C, D];
// A quarter against the centre quarter: 0.0625 / (0.25 + 0.25 − 0.0625) = 1/7.
const SEVENTH = Math.fround(0.0625 / 0.4375);

describe('matchBoxes (the fork\'s MatchBBox)', () => {
  const gts = [gtBox(1, 0, 0, 0.5, 0.5), gtBox(2, 0.5, 0.5, 1, 1)];

  it('bipartite: each ground truth takes its best prior; PER_PREDICTION then adds priors at or above the threshold', () => {
    const bi = matchBoxes(gts, priors, -1, MatchType.BIPARTITE, 0.25, false);
    expect(Array.from(bi.indices)).toEqual([0, -1, 1, -1]);
    // D overlaps both ground truths by exactly 0.25: matched (≥ threshold), to the first on the tie.
    const per = matchBoxes(gts, priors, -1, MatchType.PER_PREDICTION, 0.25, false);
    expect(Array.from(per.indices)).toEqual([0, -1, 1, 0]);
    expect(Array.from(per.overlaps)).toEqual([1, SEVENTH, 1, 0.25]);
    // Just above the overlap, D stays unmatched.
    expect(Array.from(matchBoxes(gts, priors, -1, MatchType.PER_PREDICTION, 0.2501, false).indices)).toEqual([0, -1, 1, -1]);
  });

  it('bipartite matching gives a ground truth its best prior even below the threshold, and a prior only one ground truth', () => {
    // Both ground truths overlap B best; B goes to the larger overlap, the other takes its next best.
    const g = [gtBox(1, 0.3, 0.3, 0.7, 0.7), gtBox(1, 0.25, 0.25, 0.6, 0.6)];
    const m = matchBoxes(g, priors, -1, MatchType.BIPARTITE, 0.9, false);
    const o = (a: GroundTruthBox, p: typeof A) => floatOverlap(p, a);
    expect(o(g[0]!, B)).toBeGreaterThan(o(g[1]!, B));
    // B goes to g0 (0.64 against 0.49); g1's next best is A (0.0625 / 0.31), ahead of D (0.1225) and C.
    const next = [A, C, D].map((p) => o(g[1]!, p));
    expect(next[0]).toBeGreaterThan(Math.max(next[1]!, next[2]!));
    expect(Array.from(m.indices)).toEqual([1, 0, -1, -1]);
  });

  it('considers only the given label, and marks cross-boundary predictions −2 when asked', () => {
    expect(Array.from(matchBoxes(gts, priors, 2, MatchType.PER_PREDICTION, 0.25, false).indices)).toEqual([-1, -1, 1, 1]);
    const outside = floatBox(-0.1, 0, 0.5, 0.5);
    const m = matchBoxes(gts, [outside, ...priors], -1, MatchType.PER_PREDICTION, 0.25, true);
    expect(Array.from(m.indices)).toEqual([-2, 0, -1, 1, 0]);
    expect(m.overlaps[0]).toBe(0);
  });

  it('compares overlaps in float, as the fork\'s NormalizedBBox does', () => {
    // A 0.3 × 0.3 box inside the unit prior overlaps it by Math.fround(0.09) = 0.0900000036 in
    // float, by 0.09 in double: at a threshold of float 0.09 only the float overlap matches.
    const small = [gtBox(1, 0, 0, 0.3, 0.3)];
    const m = matchBoxes(small, [floatBox(0, 0, 0.3, 0.3), floatBox(0, 0, 1, 1)], -1, MatchType.PER_PREDICTION, Math.fround(0.09), false);
    expect(m.overlaps[1]).toBe(Math.fround(0.09));
    expect(0.3 * 0.3).toBeLessThan(Math.fround(0.09));
    expect(Array.from(m.indices)).toEqual([0, 0]);
  });
});

describe('findMatches', () => {
  const base: MatchingOptions = {
    numClasses: 3,
    shareLocation: true,
    backgroundLabelId: 0,
    matchType: MatchType.PER_PREDICTION,
    overlapThreshold: 0.5,
    usePriorForMatching: true,
    codeType: CodeType.CORNER,
    encodeVarianceInTarget: false,
    ignoreCrossBoundary: false,
  };
  const variances = priors.map(() => [0.1, 0.1, 0.2, 0.2]);
  const zero = () => priors.map(() => [0, 0, 0, 0]);
  const gts = [gtBox(1, 0, 0, 0.5, 0.5), gtBox(2, 0.5, 0.5, 1, 1)];

  it('gives an image without ground truth no matches', () => {
    expect(findMatches(undefined, priors, variances, zero, base)).toEqual({ labels: [], matches: [] });
  });

  it('with per-class locations splits the prior matches by ground-truth label, skipping the background', () => {
    const m = findMatches(gts, priors, variances, zero, { ...base, shareLocation: false });
    expect(m.labels).toEqual([1, 2]);
    expect(m.matches.map((x) => Array.from(x.indices))).toEqual([
      [0, -1, -1, -1],
      [-1, -1, 1, -1],
    ]);
  });

  it('without use_prior_for_matching matches the decoded predictions instead', () => {
    // Offsets that move prior B onto the top-left quarter (CORNER code, variances 0.1/0.2).
    const offsets = (label: number) => {
      expect(label).toBe(-1);
      const o = zero();
      o[1] = [-2.5, -2.5, -1.25, -1.25];
      return o;
    };
    const m = findMatches(gts, priors, variances, offsets, { ...base, usePriorForMatching: false, matchType: MatchType.BIPARTITE });
    // A and the moved B both cover gt 0 exactly; the bipartite tie goes to the lower index.
    expect(Array.from(m.matches[0]!.indices)).toEqual([0, -1, 1, -1]);
    expect(m.matches[0]!.overlaps[1]).toBe(1);
  });
});

describe('mineExamples (the fork\'s MineHardExamples)', () => {
  const matchesOf = (indices: number[], overlaps: number[]) => ({
    labels: [-1],
    matches: [{ indices: Int32Array.from(indices), overlaps: Float32Array.from(overlaps) }],
  });
  const none = { negPosRatio: 3, negOverlap: 0.5, sampleSize: 64, nms: null };

  it('MAX_NEGATIVE: the highest-loss unmatched priors under neg_overlap, at most neg_pos_ratio per positive', () => {
    const im = matchesOf([0, -1, -1, -1, -1, -1, -2], [0.9, 0.6, 0.1, 0.2, 0.3, 0.0, 0]);
    // Prior 1 overlaps too much to be a negative, 6 is ignored (−2); 2..5 compete: 3 of them by loss.
    const negatives = mineExamples(im, [5, 9, 1, 4, 3, 2, 8], { ...none, miningType: MiningType.MAX_NEGATIVE });
    expect(negatives).toEqual([3, 4, 5]);
    expect(mineExamples(im, [5, 9, 1, 4, 3, 2, 8], { ...none, miningType: MiningType.MAX_NEGATIVE, negPosRatio: 1.5 })).toEqual([3]);
    expect(Array.from(im.matches[0]!.indices)).toEqual([0, -1, -1, -1, -1, -1, -2]);
  });

  it('HARD_EXAMPLE: the sample_size highest losses among all priors; unpicked positives lose their match', () => {
    const im = matchesOf([0, 1, -1, -1, -2], [0.9, 0.7, 0.1, 0.6, 0]);
    const negatives = mineExamples(im, [1, 7, 6, 9, 8], { ...none, miningType: MiningType.HARD_EXAMPLE, sampleSize: 3 });
    // Picked: 3 (9), 4 (8, but ignored: neither positive nor negative), 1 (7).
    expect(negatives).toEqual([3]);
    expect(Array.from(im.matches[0]!.indices)).toEqual([-1, 1, -1, -1, -2]);
  });

  it('NONE mines nothing; HARD_EXAMPLE needs a positive sample_size', () => {
    const im = matchesOf([0, -1], [1, 0]);
    expect(mineExamples(im, [1, 2], { ...none, miningType: MiningType.NONE })).toEqual([]);
    expect(() => mineExamples(im, [1, 2], { ...none, miningType: MiningType.HARD_EXAMPLE, sampleSize: 0 })).toThrow(/sample_size must be positive/);
  });

  it('with NMS, a candidate overlapping a higher-loss one by more than the threshold is dropped first', () => {
    const im = matchesOf([0, -1, -1, -1], [1, 0, 0, 0]);
    const boxes = [A, floatBox(0, 0, 0.5, 0.5), floatBox(0, 0, 0.5, 0.45), C];
    const nms = { threshold: 0.5, topK: -1, boxes: () => boxes };
    // Candidates 1 (loss 3), 2 (loss 2, overlaps 1 by 0.9: dropped), 3 (loss 1): two of three wanted.
    expect(mineExamples(im, [0, 3, 2, 1], { ...none, miningType: MiningType.MAX_NEGATIVE, negPosRatio: 2, nms })).toEqual([1, 3]);
  });
});

describe('greedyNms (the fork\'s ApplyNMS)', () => {
  it('keeps the best box, drops those overlapping it beyond the threshold and boxes of no area, stops at top_k', () => {
    const boxes = [A, floatBox(0, 0, 0.5, 0.4), C, floatBox(0.2, 0.2, 0.2, 0.9), B];
    // Scores: 1 > 0 > 4 > 3 > 2. Box 1 vs 0: 0.2/0.25 = 0.8 > 0.5 → 0 dropped; 4 vs 1: small; 3 has no area.
    expect(greedyNms(boxes, [0.9, 1, 0.1, 0.5, 0.7], 0.5, -1)).toEqual([1, 4, 2]);
    // top_k first cuts the candidates to the best k (1 and 0 here, of which 0 falls), then caps the kept.
    expect(greedyNms(boxes, [0.9, 1, 0.1, 0.5, 0.7], 0.5, 2)).toEqual([1]);
    expect(greedyNms(boxes, [0.9, 1, 0.1, 0.5, 0.7], 0.5, 3)).toEqual([1, 4]);
    expect(greedyNms([A, B, C], [3, 2, 1], 0.5, 2)).toEqual([0, 1]);
    // top_k 0 (the fork's default when nms_param omits it) keeps nothing.
    expect(greedyNms(boxes, [0.9, 1, 0.1, 0.5, 0.7], 0.5, 0)).toEqual([]);
  });
});

describe('encodeBox', () => {
  const prior = { xmin: 0.2, ymin: 0.1, xmax: 0.6, ymax: 0.5 };
  const box = { xmin: 0.3, ymin: 0.2, xmax: 0.5, ymax: 0.7 };
  const variance = [0.1, 0.1, 0.2, 0.2];

  it('is the inverse of decodeBox for every code type, with and without variances in the target', () => {
    for (const code of [CodeType.CORNER, CodeType.CENTER_SIZE, CodeType.CORNER_SIZE]) {
      for (const inTarget of [false, true]) {
        const back = decodeBox(prior, variance, code, inTarget, encodeBox(prior, variance, code, inTarget, box));
        for (const k of ['xmin', 'ymin', 'xmax', 'ymax'] as const) expect(back[k]).toBeCloseTo(box[k], 12);
      }
    }
  });

  it('CENTER_SIZE: centre offsets over the prior size and log size ratios, each over its variance (hand-computed)', () => {
    // Prior centre (0.4, 0.3), size 0.4 × 0.4; box centre (0.4, 0.45), size 0.2 × 0.5.
    const e = encodeBox(prior, variance, CodeType.CENTER_SIZE, false, box);
    expect(e[0]).toBeCloseTo(0, 12);
    expect(e[1]).toBeCloseTo(0.15 / 0.4 / 0.1, 12);
    expect(e[2]).toBeCloseTo(Math.log(0.5) / 0.2, 12);
    expect(e[3]).toBeCloseTo(Math.log(1.25) / 0.2, 12);
  });

  it('refuses a degenerate prior or box and non-positive variances', () => {
    expect(() => encodeBox({ ...prior, xmax: 0.2 }, variance, CodeType.CENTER_SIZE, false, box)).toThrow(/prior width must be positive/);
    expect(() => encodeBox(prior, variance, CodeType.CENTER_SIZE, false, { ...box, ymax: 0.2 })).toThrow(/box height must be positive/);
    expect(() => encodeBox(prior, [0.1, 0, 0.2, 0.2], CodeType.CORNER, false, box)).toThrow(/prior variance 1 must be positive/);
    expect(encodeBox(prior, [0, 0, 0, 0], CodeType.CORNER, true, box)).toEqual([0.3 - 0.2, 0.2 - 0.1, 0.5 - 0.6, 0.7 - 0.5].map((x) => expect.closeTo(x, 12)));
  });
});
