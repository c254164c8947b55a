import { Blob } from '@caffe-ts/blob';
import { createLayer, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { createDetectionEvaluateLayerDef, DetectionEvaluateLayer, detectionEvaluateLayerDef } from './detection-evaluate-layer.js';

const rowsOf = (blob: Blob) => Array.from({ length: blob.shape[2]! }, (_, r) => Array.from(blob.cpuData().subarray(r * 5, r * 5 + 5)));
const detBlob = (rows: number[][]) => makeBlob([1, 1, rows.length, 7], { filler: rows.flat(), dtype: 'float32' });
const gtBlob = (rows: number[][]) => makeBlob([1, 1, rows.length, 8], { filler: rows.flat(), dtype: 'float32' });
const f = Math.fround;

function evaluate(params: Record<string, unknown>, det: number[][], gt: number[][], readFile?: (path: string) => Uint8Array): number[][] {
  const def = readFile ? createDetectionEvaluateLayerDef({ readFile }) : detectionEvaluateLayerDef;
  const layer = createLayer<DetectionEvaluateLayer>(def, { name: 'detection_eval', detection_evaluate_param: { num_classes: 3, ...params } }, { dtype: 'float32' });
  const bottoms = [detBlob(det), gtBlob(gt)];
  const top = new Blob([]);
  layer.setUp(bottoms, [top]);
  layer.forward(bottoms, [top]);
  return rowsOf(top);
}

// Image 0: a class-1 box and a difficult class-1 box; image 1: a class-2 box.
const GT = [
  [0, 1, 0, 0.1, 0.1, 0.4, 0.4, 0],
  [0, 1, 1, 0.6, 0.6, 0.9, 0.9, 1],
  [1, 2, 0, 0.2, 0.2, 0.5, 0.5, 0],
];
const DET = [
  [0, 1, 0.8, 0.12, 0.1, 0.4, 0.4], // overlaps the first box too, but scores lower: a duplicate
  [0, 1, 0.9, 0.1, 0.1, 0.4, 0.4], // the first box itself
  [0, 1, 0.7, 0.6, 0.6, 0.9, 0.9], // the difficult box
  [0, 2, 0.6, 0.2, 0.2, 0.5, 0.5], // no class-2 box in image 0
  [1, 2, 0.5, 0.5, 0.5, 0.8, 0.8], // touches image 1's box at a corner only
  [2, 1, 0.4, 0.1, 0.1, 0.2, 0.2], // an image without ground truth
  [3, -1, -1, -1, -1, -1, -1], // DetectionOutput's row for an image where it found nothing
];

describe('DetectionEvaluate', () => {
  beforeAll(registerContribSchema);

  it('writes the positives per class, then true and false positives by image, label and score (hand-computed)', () => {
    expect(evaluate({ evaluate_difficult_gt: false }, DET, GT)).toEqual([
      [-1, 1, 1, -1, -1],
      [-1, 2, 1, -1, -1],
      [0, 1, f(0.9), 1, 0],
      [0, 1, f(0.8), 0, 1],
      [0, 1, f(0.7), 0, 0],
      [0, 2, f(0.6), 0, 1],
      [1, 2, f(0.5), 0, 1],
      [2, 1, f(0.4), 0, 1],
    ]);
  });

  it('counts difficult boxes with evaluate_difficult_gt (the default)', () => {
    const rows = evaluate({}, DET, GT);
    expect(rows[0]).toEqual([-1, 1, 2, -1, -1]);
    expect(rows[4]).toEqual([0, 1, f(0.7), 1, 0]);
  });

  it('with name_size_file compares in pixels with the +1 widths, image by image', () => {
    const sizes = new TextEncoder().encode('img_a 100 200\nimg_b 50 50\n');
    const read = (path: string) => {
      expect(path).toBe('sizes.txt');
      return sizes;
    };
    // Image 0 (100 × 200): ground truth [0, 0, 2, 2] px, detection [1, 1, 3, 3] px: 4 / (9 + 9 − 4).
    // Normalised, the same boxes overlap by 0.143 only. Image 1 (50 × 50) likewise, at its own size.
    const gt = [
      [0, 1, 0, 0, 0, 0.01, 0.02, 0],
      [1, 1, 0, 0, 0, 0.04, 0.04, 0],
    ];
    const det = [
      [0, 1, 0.9, 0.005, 0.01, 0.015, 0.03],
      [1, 1, 0.8, 0.02, 0.02, 0.06, 0.06],
    ];
    const pixels = evaluate({ overlap_threshold: 0.25, name_size_file: 'sizes.txt' }, det, gt, read);
    expect(pixels.slice(2)).toEqual([
      [0, 1, f(0.9), 1, 0],
      [1, 1, f(0.8), 1, 0],
    ]);
    expect(evaluate({ overlap_threshold: 0.25 }, det, gt).slice(2).map((r) => r.slice(3))).toEqual([
      [0, 1],
      [0, 1],
    ]);
  });

  it('undoes FIT_LARGE_SIZE_AND_PAD\'s padding before comparing', () => {
    // A 100 × 200 image letterboxed into 300 × 300 fills rows 0.25–0.75. The detection [0, 0, 1, 0.5]
    // covers the top half of the picture and the padding above it: once projected, the box
    // [0, 0.25, 1, 0.5] exactly.
    const read = () => new TextEncoder().encode('a 100 200');
    const gt = [[0, 1, 0, 0, 0.25, 1, 0.5, 0]];
    const det = [[0, 1, 0.9, 0, 0, 1, 0.5]];
    const resize = { resize_mode: 'FIT_LARGE_SIZE_AND_PAD', height: 300, width: 300 };
    expect(evaluate({ overlap_threshold: 0.9, name_size_file: 's', resize_param: resize }, det, gt, read)[2]).toEqual([0, 1, f(0.9), 1, 0]);
    expect(evaluate({ overlap_threshold: 0.9, name_size_file: 's' }, det, gt, read)[2]).toEqual([0, 1, f(0.9), 0, 1]);
  });

  it('refuses bad inputs, naming the layer and what was found', () => {
    const run = (params: Record<string, unknown>, det = detBlob(DET), gt = gtBlob(GT), readFile?: (p: string) => Uint8Array) => () => {
      const def = readFile ? createDetectionEvaluateLayerDef({ readFile }) : detectionEvaluateLayerDef;
      const layer = createLayer(def, { name: 'detection_eval', detection_evaluate_param: params });
      layer.setUp([det, gt], [new Blob([])]);
      layer.forward([det, gt], [new Blob([])]);
    };
    expect(run({})).toThrow("DetectionEvaluate layer 'detection_eval': detection_evaluate_param.num_classes is required.");
    expect(run({ num_classes: 3 }, makeBlob([1, 1, 2, 6]))).toThrow(/bottom 0 \(the detections\) must be 1 × 1 × D × 7.*got 1 1 2 6/);
    expect(run({ num_classes: 3 }, detBlob(DET), makeBlob([1, 1, 2, 7]))).toThrow(/bottom 1 \(the ground truth\) must be 1 × 1 × G × 8/);
    expect(run({ num_classes: 3 }, detBlob([[0, 0, 0.5, 0, 0, 1, 1]]))).toThrow(/Found background label in the detection results: row 0 \(image 0\) has label 0/);
    const missing = (path: string): Uint8Array => {
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    };
    expect(run({ num_classes: 3, name_size_file: 'sizes.txt' }, undefined, undefined, missing)).toThrow(
      "DetectionEvaluate layer 'detection_eval': cannot read name_size_file 'sizes.txt'; tried sizes.txt (no such file)",
    );
    expect(run({ num_classes: 3, name_size_file: 's' }, undefined, undefined, () => new TextEncoder().encode('a 10 x'))).toThrow(
      /entry 1 \('a 10 x'\) needs a positive integer height and width/,
    );
  });
});
