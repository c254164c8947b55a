import { describe, expect, it } from 'vitest';
import { computeProposals, DEFAULT_PROPOSAL_OPTIONS, generateAnchors, nmsPixelBoxes, type ProposalOptions } from './proposals.js';

describe('Faster R-CNN proposals', () => {
  it("generates py-faster-rcnn's nine anchors for base 16, ratios 0.5/1/2, scales 8/16/32", () => {
    const rows = Array.from({ length: 9 }, (_, k) => Array.from(generateAnchors(16, [0.5, 1, 2], [8, 16, 32]).subarray(4 * k, 4 * k + 4)));
    expect(rows).toEqual([
      [-84, -40, 99, 55],
      [-176, -88, 191, 103],
      [-360, -184, 375, 199],
      [-56, -56, 71, 71],
      [-120, -120, 135, 135],
      [-248, -248, 263, 263],
      [-36, -80, 51, 95],
      [-80, -168, 95, 183],
      [-168, -344, 183, 359],
    ]);
  });

  it('rounds anchor sides half to even, as numpy does', () => {
    // Base 8, ratio 2.5: width round(√(64 / 2.5) = 5.06) = 5, height round(12.5) = 12 (not 13);
    // centre 3.5.
    expect(Array.from(generateAnchors(8, [2.5], [1]))).toEqual([1.5, -2, 5.5, 9]);
  });

  it('NMS keeps the best box and drops those overlapping it by more than the threshold (inclusive corners)', () => {
    // Box 1 overlaps box 0 by IoU 81/121 = 0.669 (10 × 10 boxes shifted by 1: 9·9 over 2·100 − 81);
    // box 2 overlaps box 0 by 100/100 (the same box); box 3 is apart.
    const boxes = [0, 0, 9, 9, 1, 1, 10, 10, 0, 0, 9, 9, 50, 50, 59, 59];
    expect(nmsPixelBoxes(boxes, [0, 1, 2, 3], 0.7)).toEqual([0, 1, 3]);
    expect(nmsPixelBoxes(boxes, [0, 1, 2, 3], 0.6)).toEqual([0, 3]);
    expect(nmsPixelBoxes(boxes, [3, 2, 1, 0], 0.7)).toEqual([3, 2, 1]);
  });

  const one: ProposalOptions = { ...DEFAULT_PROPOSAL_OPTIONS, ratios: [1], scales: [1], minSize: 4 };

  it("applies the deltas to each cell's anchors, clips to the image, sorts by score (hand-computed)", () => {
    // A 1 × 2 map, one 16 × 16 anchor ([0, 0, 15, 15], centre 8) per cell, stride 16: cells at x 0 and 16.
    const scores = [0.9, 0.8, /* object */ 0.1, 0.2];
    // Cell 0: dx 0.25 (centre 8 + 4 = 12), dw ln 2 (width 32): [−4, 8 − 8, 28, 16] → x clipped to 0;
    // cell 1: no change: centre (24, 8), [16, 0, 32, 16] → x2 clipped to 31 (image 32 wide).
    const deltas = [0.25, 0, 0, 0, Math.LN2, 0, 0, 0];
    const { boxes, scores: kept } = computeProposals(scores, deltas, [1, 2], [20, 32, 1], one);
    expect(Array.from(kept)).toEqual([0.2, 0.1]);
    expect(Array.from(boxes)).toEqual([16, 0, 31, 16, 0, 0, 28, 16]);
  });

  it('drops boxes under min_size · scale, and keeps pre_nms_topn before NMS and post_nms_topn after', () => {
    // Four cells; cell 2's box is shrunk to 16 · e^−2.5 ≈ 1.3 px (2.3 counting both corners).
    const scores = [0, 0, 0, 0, 0.4, 0.3, 0.2, 0.1];
    const deltas = new Array<number>(16).fill(0);
    deltas[2 * 4 + 2] = -2.5;
    const all = computeProposals(scores, deltas, [1, 4], [16, 64, 1], { ...one, minSize: 3 });
    expect(Array.from(all.scores)).toEqual([0.4, 0.3, 0.1]);
    // min_size 3 times scale 0.5 = 1.5: that box stays.
    expect(computeProposals(scores, deltas, [1, 4], [16, 64, 0.5], { ...one, minSize: 3 }).scores).toHaveLength(4);
    expect(Array.from(computeProposals(scores, deltas, [1, 4], [16, 64, 1], { ...one, minSize: 3, preNmsTopN: 2 }).scores)).toEqual([0.4, 0.3]);
    expect(Array.from(computeProposals(scores, deltas, [1, 4], [16, 64, 1], { ...one, minSize: 3, postNmsTopN: 1 }).scores)).toEqual([0.4]);
  });
});
