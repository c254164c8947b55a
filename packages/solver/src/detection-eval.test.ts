import { describe, expect, it } from 'vitest';
import { averagePrecision, DetectionTally, type ScoredHit } from './detection-eval.js';

// Four detections of one label, best first: hit, miss, hit, miss; three ground-truth boxes.
// Precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3.
const HITS: ScoredHit[] = [
  { score: 0.6, truePositive: false },
  { score: 0.9, truePositive: true },
  { score: 0.7, truePositive: true },
  { score: 0.8, truePositive: false },
];

describe('averagePrecision (the fork\'s ComputeAP)', () => {
  it('Integral: Σ precision × recall step = 1·1/3 + 2/3·1/3 (hand-computed)', () => {
    expect(averagePrecision(HITS, 3, 'Integral')).toBeCloseTo(5 / 9, 6);
  });

  it('MaxIntegral: the area under the precision envelope, here also 5/9', () => {
    expect(averagePrecision(HITS, 3, 'MaxIntegral')).toBeCloseTo(5 / 9, 6);
    // Hit, miss, hit against 2 boxes: recall 1/2, 1/2, 1 at precision 1, 1/2, 2/3.
    const dip: ScoredHit[] = [
      { score: 3, truePositive: true },
      { score: 2, truePositive: false },
      { score: 1, truePositive: true },
    ];
    expect(averagePrecision(dip, 2, 'MaxIntegral')).toBeCloseTo(0.5 * 1 + 0.5 * (2 / 3), 6);
    expect(averagePrecision(dip, 2, 'Integral')).toBeCloseTo(0.5 * 1 + 0.5 * (2 / 3), 6);
  });

  it('11point: the best precision at recall ≥ 0, 0.1, …, 1, averaged: (4·1 + 3·2/3) / 11', () => {
    expect(averagePrecision(HITS, 3, '11point')).toBeCloseTo(6 / 11, 6);
    // Every box found by the first detections: precision 1 at every recall level.
    expect(averagePrecision([{ score: 1, truePositive: true }, { score: 0.5, truePositive: true }], 2, '11point')).toBeCloseTo(1, 6);
  });

  it('is 0 without detections or ground truth, and refuses an unknown version', () => {
    expect(averagePrecision([], 3, 'Integral')).toBe(0);
    expect(averagePrecision(HITS, 0, 'Integral')).toBe(0);
    expect(() => averagePrecision(HITS, 3, 'VOC' as never)).toThrow("Unknown ap_version: 'VOC' (expected 11point, MaxIntegral, Integral)");
  });
});

describe('DetectionTally', () => {
  it('pools DetectionEvaluate rows over iterations and averages AP over the labels with ground truth', () => {
    const tally = new DetectionTally();
    // Iteration 1: label 1 has 2 boxes, label 2 has 1; label 1: a hit and a difficult match (0, 0).
    tally.add([-1, 1, 2, -1, -1, -1, 2, 1, -1, -1, 0, 1, 0.9, 1, 0, 0, 1, 0.5, 0, 0]);
    // Iteration 2: label 1 has 1 more box; a false then a true positive.
    tally.add([-1, 1, 1, -1, -1, -1, 2, 0, -1, -1, 1, 1, 0.8, 0, 1, 1, 1, 0.7, 1, 0]);
    expect(tally.positives).toEqual(new Map([[1, 3], [2, 1]]));
    expect(tally.hits.get(1)!.length).toBe(3);
    const { map, perLabel, missing } = tally.meanAveragePrecision('Integral');
    // Label 1: hit, miss, hit over 3 boxes: 1·1/3 + 2/3·1/3 = 5/9. Label 2: no detections, AP 0.
    expect(perLabel.get(1)).toBeCloseTo(5 / 9, 6);
    expect(missing).toEqual([2]);
    expect(map).toBeCloseTo(5 / 9 / 2, 6);
  });
});
