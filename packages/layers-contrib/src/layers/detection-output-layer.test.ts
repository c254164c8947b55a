import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeBox, jaccardOverlap, nms } from '../bbox.js';
import { CodeType } from '../fork-types.js';
import { registerContribSchema } from '../schema.js';
import { detectionOutputLayerDef } from './detection-output-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Three priors: two overlapping heavily, one apart; variances 0.1/0.2. */
const PRIORS = [0.1, 0.1, 0.5, 0.5, 0.12, 0.1, 0.52, 0.5, 0.6, 0.6, 0.9, 0.9];
const VAR = [0.1, 0.1, 0.2, 0.2];
const priorBlob = () => makeBlob([1, 2, 12], { filler: [...PRIORS, ...VAR, ...VAR, ...VAR] });

describe('bbox helpers', () => {
  it('decodes CENTER_SIZE, CORNER and CORNER_SIZE offsets with variances', () => {
    const prior = { xmin: 0.2, ymin: 0.2, xmax: 0.6, ymax: 0.4 };
    const loc = [1, -1, Math.log(2) / 0.2, 0];
    const c = decodeBox(prior, VAR, CodeType.CENTER_SIZE, false, loc);
    // Centre (0.4, 0.3) moves by 0.1·(0.4, −0.2); width doubles to 0.8, height stays 0.2.
    expect(c.xmin).toBeCloseTo(0.04, 12);
    expect(c.xmax).toBeCloseTo(0.84, 12);
    expect(c.ymin).toBeCloseTo(0.18, 12);
    expect(c.ymax).toBeCloseTo(0.38, 12);
    const k = decodeBox(prior, VAR, CodeType.CORNER, false, [1, 1, 1, 1]);
    expect([k.xmin, k.ymin, k.xmax, k.ymax].map((x) => +x.toFixed(12))).toEqual([0.3, 0.3, 0.8, 0.6]);
    const e = decodeBox(prior, VAR, CodeType.CORNER, true, [0.1, 0, 0, 0]);
    expect(e.xmin).toBeCloseTo(0.3, 12);
    const s = decodeBox(prior, VAR, CodeType.CORNER_SIZE, false, [1, 1, 0, 0]);
    expect([s.xmin, s.ymin].map((x) => +x.toFixed(12))).toEqual([0.24, 0.22]);
  });

  it('computes IoU and greedy NMS with top_k and eta', () => {
    const a = { xmin: 0, ymin: 0, xmax: 2, ymax: 2 };
    const b = { xmin: 1, ymin: 0, xmax: 3, ymax: 2 };
    expect(jaccardOverlap(a, b)).toBeCloseTo(2 / 6, 12);
    expect(jaccardOverlap(a, { xmin: 5, ymin: 5, xmax: 6, ymax: 6 })).toBe(0);
    const boxes = [a, b, { xmin: 0.1, ymin: 0, xmax: 2.1, ymax: 2 }];
    expect(nms(boxes, [0.9, 0.8, 0.85], 0, 0.5, 1, -1)).toEqual([0, 1]);
    expect(nms(boxes, [0.9, 0.8, 0.85], 0, 0.3, 1, -1)).toEqual([0]);
    expect(nms(boxes, [0.9, 0.8, 0.85], 0.82, 0.99, 1, -1)).toEqual([0, 2]);
    expect(nms(boxes, [0.9, 0.8, 0.85], 0, 0.99, 1, 2)).toEqual([0, 2]);
  });
});

describe('DetectionOutput', () => {
  beforeAll(registerContribSchema);

  const run = (param: Record<string, unknown>, conf: number[], loc = new Array(12).fill(0), num = 1) => {
    const layer = createLayer(detectionOutputLayerDef, { name: 'det', detection_output_param: param });
    const bottom = [makeBlob([num, loc.length / num], { filler: loc }), makeBlob([num, conf.length / num], { filler: conf }), priorBlob()];
    const top = f64();
    layer.setUp(bottom, [top]);
    layer.forward(bottom, [top]);
    return { top, rows: Array.from({ length: top.shape[2]! }, (_, i) => blobValues(top).slice(i * 7, i * 7 + 7)) };
  };

  it('keeps per-class NMS survivors above the threshold, ordered by label then score', () => {
    // Scores per prior for classes [background, cat, dog].
    const conf = [0.1, 0.8, 0.1, 0.1, 0.7, 0.2, 0.2, 0.1, 0.7];
    const { top, rows } = run({ num_classes: 3, nms_param: { nms_threshold: 0.45 }, confidence_threshold: 0.15, code_type: 'CENTER_SIZE' }, conf);
    expect(top.shape).toEqual([1, 1, 3, 7]);
    // cat: prior 0 (0.8) suppresses prior 1 (0.7, IoU ≈ 0.9); dog: prior 2 (0.7) then prior 1 (0.2).
    const p = (i: number) => PRIORS.slice(i * 4, i * 4 + 4);
    [[0, 1, 0.8, ...p(0)], [0, 2, 0.7, ...p(2)], [0, 2, 0.2, ...p(1)]].forEach((want, r) =>
      want.forEach((v, k) => expect(rows[r]![k]).toBeCloseTo(v, 6)),
    );
  });

  it('applies keep_top_k across classes and top_k before NMS', () => {
    const conf = [0.1, 0.8, 0.1, 0.1, 0.7, 0.2, 0.2, 0.1, 0.7];
    const { rows } = run({ num_classes: 3, keep_top_k: 2, nms_param: { nms_threshold: 0.45 }, confidence_threshold: 0.15 }, conf);
    expect(rows.map((r) => [r[1], +r[2]!.toFixed(6)])).toEqual([[1, 0.8], [2, 0.7]]);
    const topK = run({ num_classes: 3, nms_param: { nms_threshold: 0.99, top_k: 1 }, confidence_threshold: 0.05 }, conf);
    expect(topK.rows.map((r) => [r[1], +r[2]!.toFixed(6)])).toEqual([[1, 0.8], [2, 0.7]]);
  });

  it('writes one [i, −1 …] row per image when nothing passes', () => {
    const conf = [0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.9, 0.05, 0.05];
    const { top, rows } = run({ num_classes: 3, confidence_threshold: 0.5 }, conf, new Array(24).fill(0), 2);
    expect(top.shape).toEqual([1, 1, 2, 7]);
    expect(rows).toEqual([[0, -1, -1, -1, -1, -1, -1], [1, -1, -1, -1, -1, -1, -1]]);
  });

  it('decodes per-class locations without share_location', () => {
    const loc = new Array(36).fill(0);
    // Class 2's box at prior 2: xmin + 0.1·1, xmax + 0.2·1 (CORNER, variances 0.1 and 0.2).
    loc[2 * 12 + 2 * 4] = 1;
    loc[2 * 12 + 2 * 4 + 2] = 1;
    const layer = createLayer(detectionOutputLayerDef, { detection_output_param: { num_classes: 3, share_location: false, confidence_threshold: 0.5 } });
    const bottom = [makeBlob([1, 36], { filler: loc }), makeBlob([1, 9], { filler: [0.9, 0, 0, 0.9, 0, 0, 0.1, 0, 0.9] }), priorBlob()];
    const top = f64();
    layer.setUp(bottom, [top]);
    layer.forward(bottom, [top]);
    const row = blobValues(top);
    expect(row.slice(0, 3)).toEqual([0, 2, 0.9]);
    [0.7, 0.6, 1.1, 0.9].forEach((v, k) => expect(row[3 + k]).toBeCloseTo(v, 12));
  });

  it('clamps decoded boxes to [0, 1] with OpenCV\'s clip, and leaves them as decoded without it', () => {
    const loc = new Array(12).fill(0);
    // Prior 2 (0.6 … 0.9), CORNER: xmin − 0.1·10 = −0.4, xmax + 0.2·1 = 1.1.
    loc[2 * 4] = -10;
    loc[2 * 4 + 2] = 1;
    const conf = [0.9, 0.1, 0.9, 0.1, 0.1, 0.9];
    const box = (param: Record<string, unknown>) => run({ num_classes: 2, confidence_threshold: 0.5, ...param }, conf, loc).rows[0]!.slice(3);
    const plain = box({});
    [-0.4, 0.6, 1.1, 0.9].forEach((v, k) => expect(plain[k]).toBeCloseTo(v, 12));
    const clipped = box({ clip: true });
    [0, 0.6, 1, 0.9].forEach((v, k) => expect(clipped[k]).toBeCloseTo(v, 12));
  });

  it('checks num_classes and the bottom shapes, naming the layer', () => {
    expect(() => run({ nms_param: {} }, [1, 2, 3])).toThrow("DetectionOutput layer 'det': Must specify num_classes.");
    expect(() => run({ num_classes: 2 }, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])).toThrow(
      "DetectionOutput layer 'det': Number of priors must match number of confidence predictions (3 priors × 2 classes, conf 1 9 (9)).",
    );
    expect(() => run({ num_classes: 2, save_output_param: { output_directory: '/tmp/x' } }, [])).toThrow(/save_output_param .* is not supported/);
  });
});
