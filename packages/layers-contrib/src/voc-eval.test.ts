import { LayerError } from '@caffe-ts/layers';
import { describe, expect, it } from 'vitest';
import { formatFixed, parseVocResults, vocAp, vocEvalClass, vocResultLine, type VocDetection, type VocGroundTruth } from './voc-eval.js';

// Image a: one box and a difficult one; b: one box; c: none of the class. npos = 2.
const GT = new Map<string, VocGroundTruth>([
  ['a', { boxes: [[1, 1, 10, 10], [20, 20, 29, 29]], difficult: [false, true] }],
  ['b', { boxes: [[5, 5, 14, 14]], difficult: [false] }],
  ['c', { boxes: [], difficult: [] }],
]);
const det = (imageId: string, score: number, box: [number, number, number, number]): VocDetection => ({ imageId, score, box });
const DETS = [
  det('b', 0.4, [5, 5, 14, 14]), // true positive, ranked last
  det('a', 0.8, [2, 2, 10, 10]), // IoU 81 / 100 with a's box, which 0.9 claimed first: false positive
  det('a', 0.9, [1, 1, 10, 10]), // true positive
  det('a', 0.7, [20, 20, 29, 29]), // the difficult box: neither
  det('b', 0.6, [30, 30, 40, 40]), // no overlap: false positive
  det('c', 0.5, [1, 1, 5, 5]), // an image without boxes of the class: false positive
];

describe('vocEvalClass and vocAp (voc_eval.py)', () => {
  it('ranks by score, claims each box once, ignores difficult boxes, and counts only the others as positives', () => {
    const r = vocEvalClass(DETS, GT);
    expect(r.npos).toBe(2);
    // Cumulative tp 1 1 1 1 1 2, fp 0 1 1 2 3 3 (the difficult match adds to neither).
    expect(r.rec).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 1]);
    expect(r.prec).toEqual([1, 0.5, 0.5, 1 / 3, 0.25, 0.4]);
    // Area under the curve made monotone from the right: 0.5 × 1 + 0.5 × 0.4.
    expect(r.ap).toBeCloseTo(0.7, 15);
  });

  it('VOC2007\'s 11-point metric: precision 1 up to recall 0.5 (6 points), 0.4 beyond (5 points)', () => {
    expect(vocEvalClass(DETS, GT, { use07: true }).ap).toBeCloseTo(8 / 11, 15);
    // numpy's arange(0, 1.1, 0.1) has 0.30000000000000004: a recall of exactly 0.3 does not reach it.
    expect(vocAp([0.3], [1], true)).toBeCloseTo(3 / 11, 15);
    expect(vocAp([0.4], [1], true)).toBeCloseTo(5 / 11, 15);
  });

  it('the overlap must pass the threshold strictly, with +1 pixel sides', () => {
    // 5 × 10 of a 10 × 10 box: IoU 50 / 100 = 0.5, not above 0.5.
    expect(vocEvalClass([det('b', 1, [5, 5, 9, 14])], GT).rec).toEqual([0]);
    expect(vocEvalClass([det('b', 1, [5, 5, 9, 14])], GT, { ovthresh: 0.49 }).rec).toEqual([0.5]);
  });

  it('no detections give AP 0; a detection of an image outside the set is an error', () => {
    expect(vocEvalClass([], GT)).toEqual({ rec: [], prec: [], ap: 0, npos: 2 });
    expect(() => vocEvalClass([det('z', 1, [1, 1, 2, 2])], GT)).toThrow(LayerError);
    expect(() => vocEvalClass([det('z', 1, [1, 1, 2, 2])], GT)).toThrow("a detection names image 'z', which the image set does not hold");
  });
});

describe('VOC results files', () => {
  it('formats numbers as Python does: exact halves to even, everything else to nearest', () => {
    expect([formatFixed(0.125, 2), formatFixed(0.375, 2), formatFixed(2.5, 0), formatFixed(3.5, 0), formatFixed(-0.125, 2)]).toEqual(['0.12', '0.38', '2', '4', '-0.12']);
    // 10.05 is 10.0500000000000007… as a double: not a half.
    expect([formatFixed(10.05, 1), formatFixed(0.9995, 3), formatFixed(1 / 3, 4)]).toEqual(['10.1', '1.000', '0.3333']);
  });

  it('writes one line per detection: index, score to 3 decimals, 1-based corners to 1 (pascal_voc.py), and reads them back', () => {
    const line = vocResultLine('000001', 0.0625, [0, 1.25, 9.04, 19]);
    expect(line).toBe('000001 0.062 1.0 2.2 10.0 20.0');
    expect(parseVocResults(`${line}\n\n000002 0.5 1 2 3 4\n`, 'comp4_det_test_cat.txt')).toEqual([
      { imageId: '000001', score: 0.062, box: [1, 2.2, 10, 20] },
      { imageId: '000002', score: 0.5, box: [1, 2, 3, 4] },
    ]);
    expect(() => parseVocResults('000001 0.5 1 2 3\n', 'f.txt')).toThrow("f.txt:1: expected 'image score x1 y1 x2 y2' (got '000001 0.5 1 2 3')");
    expect(() => parseVocResults('ok 0.5 1 2 3 4\nbad 0.5 1 2 x 4\n', 'f.txt')).toThrow(/^f\.txt:2: /);
  });
});
