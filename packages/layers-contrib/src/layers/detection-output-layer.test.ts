import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeBox, jaccardOverlap, nms } from '../bbox.js';
import { CodeType } from '../fork-types.js';
import { registerContribSchema } from '../schema.js';
import { createDetectionOutputLayerDef, detectionOutputLayerDef } from './detection-output-layer.js';

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
  });
});

describe("DetectionOutput's save_output_param (the fork's test-time result files)", () => {
  beforeAll(registerContribSchema);

  const LABEL_MAP = 'item { name: "background" label: 0 } item { name: "cat" label: 1 } item { name: "dog" label: 2 }';
  const SIZES = 'img_a 100 200\nimg_b 50 40\n';
  // Two images; CORNER offsets of 0, so the boxes are the priors. Image 0: cat on prior 0 (0.8),
  // dog on prior 2 (0.7); image 1: cat on prior 2 (0.6); every other score under the threshold.
  const CONF = [0.1, 0.8, 0.1, 0.8, 0.1, 0.1, 0.2, 0.1, 0.7, 0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.3, 0.6, 0.1];

  function run(save: Record<string, unknown>, files: Record<string, string> = { 'labelmap.prototxt': LABEL_MAP, 'sizes.txt': SIZES }) {
    const written = new Map<string, string>();
    const dirs: string[] = [];
    const def = createDetectionOutputLayerDef({
      readFile: (path) => {
        if (!(path in files)) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
        return new TextEncoder().encode(files[path]);
      },
      fileSystem: { writeFile: (path, text) => void written.set(path, text), makeDirectory: (path) => void dirs.push(path) },
    });
    const layer = createLayer(def, {
      name: 'det',
      detection_output_param: { num_classes: 3, confidence_threshold: 0.15, nms_param: { nms_threshold: 0.45 }, save_output_param: save },
    });
    const bottom = [makeBlob([2, 12], { filler: 0 }), makeBlob([2, 9], { filler: CONF }), priorBlob()];
    const top = f64();
    layer.setUp(bottom, [top]);
    layer.forward(bottom, [top]);
    return { written, dirs, top };
  }
  const base = { output_directory: 'out/', output_name_prefix: 'comp4_det_test_', label_map_file: 'labelmap.prototxt', name_size_file: 'sizes.txt' };

  it('VOC: one file per class of "image score xmin ymin xmax ymax" in the original pixels (hand-computed)', () => {
    const { written, dirs, top } = run({ ...base, output_format: 'VOC' });
    expect(dirs).toEqual(['out/']);
    // img_a is 100 × 200 (h × w): prior 0 [0.1, 0.1, 0.5, 0.5] → [20, 10, 100, 50]; img_b is 50 × 40.
    expect(Object.fromEntries(written)).toEqual({
      'out/comp4_det_test_cat.txt': 'img_a 0.8 20 10 100 50\nimg_b 0.6 24 30 36 45\n',
      'out/comp4_det_test_dog.txt': 'img_a 0.7 120 60 180 90\n',
    });
    expect(top.shape).toEqual([1, 1, 3, 7]);
  });

  it('COCO writes a JSON list of image_id, category_id, bbox [x, y, w, h] and score; ILSVRC lines with the label', () => {
    const coco = run({ ...base, output_name_prefix: 'detections', output_format: 'COCO' }).written.get('out/detections.json')!;
    expect(JSON.parse(coco)).toEqual([
      { image_id: 'img_a', category_id: 'cat', bbox: [20, 10, 80, 40], score: 0.8 },
      { image_id: 'img_a', category_id: 'dog', bbox: [120, 60, 60, 30], score: 0.7 },
      { image_id: 'img_b', category_id: 'cat', bbox: [24, 30, 12, 15], score: 0.6 },
    ]);
    const ilsvrc = run({ ...base, output_name_prefix: 'val', output_format: 'ILSVRC' }).written.get('out/val.txt');
    expect(ilsvrc).toBe('img_a 1 0.8 20 10 100 50\nimg_a 2 0.7 120 60 180 90\nimg_b 1 0.6 24 30 36 45\n');
  });

  it('rounds to hundredths, then truncates the corners and the size to whole pixels, as the fork', () => {
    // 10 × 33 images: prior 2 [0.6, 0.6, 0.9, 0.9] → x 19.8, y 6, w 9.9, h 3 → "19 6 28 9".
    const files = { 'labelmap.prototxt': LABEL_MAP, 'sizes.txt': 'img_a 10 33\nimg_b 10 33\n' };
    const ilsvrc = run({ ...base, output_name_prefix: 'val', output_format: 'ILSVRC' }, files).written.get('out/val.txt')!;
    expect(ilsvrc.split('\n')[2]).toBe('img_b 1 0.6 19 6 28 9');
    const coco = JSON.parse(run({ ...base, output_name_prefix: 'd', output_format: 'COCO' }, files).written.get('out/d.json')!);
    expect(coco[2].bbox).toEqual([19.8, 6, 9.9, 3]);
  });

  it('writes every num_test_image images, each VOC round starting from empty files', () => {
    const { written } = run({ ...base, output_format: 'VOC', num_test_image: 1 });
    // The second round empties the files the first wrote, then writes its own line; like the
    // fork's name_count_, the name list restarts with each round, so image 1 is img_a again.
    expect(Object.fromEntries(written)).toEqual({ 'out/comp4_det_test_cat.txt': 'img_a 0.6 120 60 180 90\n', 'out/comp4_det_test_dog.txt': '' });
  });

  it('saves nothing without label_map_file or name_size_file, as the fork; refuses an unknown format and bad files', () => {
    expect(run({ output_directory: 'out/', output_format: 'VOC', name_size_file: 'sizes.txt' }).written.size).toBe(0);
    expect(() => run({ ...base, output_format: 'PASCAL' })).toThrow("DetectionOutput layer 'det': save_output_param.output_format must be VOC, COCO or ILSVRC (got 'PASCAL').");
    expect(() => run({ ...base, output_format: 'VOC', label_map_file: 'nope.prototxt' })).toThrow(/cannot read save_output_param.label_map_file 'nope.prototxt'; tried nope.prototxt \(no such file\)/);
    expect(() => run({ ...base, output_format: 'VOC', num_test_image: 3 })).toThrow(/num_test_image 3 must be in \[1, 2\]/);
    expect(() => run({ ...base, output_format: 'VOC' }, { 'labelmap.prototxt': 'item { name: "cat" label: 1 }', 'sizes.txt': SIZES })).toThrow(
      "DetectionOutput layer 'det': Cannot find label: 2 in the label map.",
    );
  });
});
