import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@caffe-ts/blob';
import { LayerError, LayerRegistry, PythonLayerRegistry, pythonLayerDefFor, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { FASTER_RCNN_CONFIG, fasterRcnnConfig, type FasterRcnnConfigOverrides } from '../faster-rcnn-config.js';
import { FASTER_RCNN_PIXEL_MEANS } from '../faster-rcnn.js';
import { registerContribLayers, registerFasterRcnnPythonLayers } from '../index.js';
import { getTrainingRoidb, prepareTrainingImage, roiDataLayerOf, roidbShare, setRoidb, trainingImageScale, type RoidbEntry, type RoidbImage } from './roi-data-layer.js';

const [MB, MG, MR] = FASTER_RCNN_PIXEL_MEANS as [number, number, number];

/** A BGR image filled by `pixel(y, x)` → [b, g, r]. */
function image(height: number, width: number, pixel: (y: number, x: number) => readonly number[]): RoidbImage {
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(y, x), (y * width + x) * 3);
  return { height, width, channels: 3, data };
}

const PROTOTXT = `name: "roi_data"
layer { name: "input-data" type: "Python" top: "data" top: "im_info" top: "gt_boxes"
  python_param { module: "roi_data_layer.layer" layer: "RoIDataLayer" param_str: "'num_classes': 3" } }`;

function build(config: FasterRcnnConfigOverrides, seed = 1): Net {
  const python = registerFasterRcnnPythonLayers(new PythonLayerRegistry(), config);
  const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
  registry.register(pythonLayerDefFor(python), { override: true });
  return new Net(parseNetParameter(PROTOTXT, 'train.prototxt'), { phase: Phase.TRAIN, registry, log: false, rng: new Rng(seed) });
}

describe('RoIDataLayer (py-faster-rcnn roi_data_layer.layer)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roi-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('scales the shorter side to SCALES[0] unless the longer would pass MAX_SIZE; sizes round halves to even', () => {
    expect(trainingImageScale(375, 500, 600, 1000)).toEqual({ scale: 1.6, height: 600, width: 800 });
    expect(trainingImageScale(100, 1000, 600, 1000)).toEqual({ scale: 1, height: 100, width: 1000 });
    // 300 × 1000 at 600 would be 2000 long: the longer side is held to 1000 instead.
    expect(trainingImageScale(300, 1000, 600, 1000)).toEqual({ scale: 1, height: 300, width: 1000 });
    expect(trainingImageScale(400, 1000, 600, 1000)).toEqual({ scale: 1, height: 400, width: 1000 });
    // Exactly MAX_SIZE long is allowed (499 · 1.6 = 798.4 rounds to 798).
    expect(trainingImageScale(300, 500, 600, 1000)).toEqual({ scale: 2, height: 600, width: 1000 });
    expect(trainingImageScale(375, 499, 600, 798)).toEqual({ scale: 1.6, height: 600, width: 798 });
    // 2 × 3 to a shorter side of 3: scale 1.5, width 4.5 → 4 (OpenCV's rounding), 2 × 5 → 7.5 → 8.
    expect(trainingImageScale(2, 3, 3, 100)).toMatchObject({ height: 3, width: 4 });
    expect(trainingImageScale(2, 5, 3, 100)).toMatchObject({ height: 3, width: 8 });
  });

  it('subtracts PIXEL_MEANS per BGR channel, mirrors flipped images and samples as INTER_LINEAR', () => {
    const img = image(1, 2, (_, x) => (x === 0 ? [10, 20, 30] : [50, 60, 70]));
    const same = prepareTrainingImage(img, false, 1, 100, FASTER_RCNN_PIXEL_MEANS);
    expect(same.scale).toBe(1);
    expect(Array.from(same.data)).toEqual([10 - MB, 50 - MB, 20 - MG, 60 - MG, 30 - MR, 70 - MR].map(Math.fround));
    const flipped = prepareTrainingImage(img, true, 1, 100, FASTER_RCNN_PIXEL_MEANS);
    expect(Array.from(flipped.data)).toEqual([50 - MB, 10 - MB, 60 - MG, 20 - MG, 70 - MR, 30 - MR].map(Math.fround));
    // Twice the size: destination x samples source x = (x + 0.5) / 2 − 0.5 = −0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    const up = prepareTrainingImage(img, false, 2, 100, [0, 0, 0]);
    expect([up.height, up.width]).toEqual([2, 4]);
    expect(Array.from(up.data.subarray(0, 8))).toEqual([10, 20, 40, 50, 10, 20, 40, 50]);
  });

  it('getTrainingRoidb appends mirrored copies (x1 = width − x2 − 1) and drops entries without ground truth', () => {
    const img = image(4, 10, () => [0, 0, 0]);
    const entries: RoidbEntry[] = [
      { image: img, width: 10, height: 4, boxes: [[1, 0, 3, 2], [0, 1, 9, 3]], gt_classes: [1, 2], flipped: false },
      { image: img, width: 10, height: 4, boxes: [[1, 0, 3, 2]], gt_classes: [0], flipped: false },
    ];
    const roidb = getTrainingRoidb(entries);
    expect(roidb.length).toBe(2);
    expect(roidb[1]).toMatchObject({ boxes: [[6, 0, 8, 2], [0, 1, 9, 3]], gt_classes: [1, 2], flipped: true });
    expect(getTrainingRoidb(entries, { useFlipped: false }).length).toBe(1);
    expect(() => getTrainingRoidb([{ ...entries[0]!, boxes: [[1, 0, 12, 2]], gt_classes: [1] }])).toThrow(/does not fit an image 10 wide/);
  });

  it('fills data, im_info and gt_boxes (boxes times the scale, class-0 boxes left out), flipped entries mirrored', async () => {
    const net = build({ TRAIN: { SCALES: [8], MAX_SIZE: 32 }, PIXEL_MEANS: [0, 0, 0] });
    expect(net.blob('data').shape).toEqual([1, 3, 8, 32]); // (IMS_PER_BATCH, 3, max(SCALES), MAX_SIZE) at setup
    // A 4 × 6 image (left half dark, right half bright) scaled to 8 × 12.
    const img = image(4, 6, (_, x) => (x < 3 ? [10, 10, 10] : [200, 200, 200]));
    const [plain, mirrored] = getTrainingRoidb([{ image: img, width: 6, height: 4, boxes: [[0, 0, 2, 3], [3, 1, 5, 2]], gt_classes: [1, 0], flipped: false }]);
    for (const [entry, leftDark] of [[plain!, true], [mirrored!, false]] as const) {
      setRoidb(net, [entry]);
      await net.prepare();
      net.forward();
      expect(net.blob('data').shape).toEqual([1, 3, 8, 12]);
      expect(Array.from(net.blob('im_info').cpuData())).toEqual([8, 12, 2]);
      const d = net.blob('data').cpuData();
      expect([d[0], d[11]]).toEqual(leftDark ? [10, 200] : [200, 10]);
      expect(net.blob('gt_boxes').shape).toEqual([1, 5]);
      expect(Array.from(net.blob('gt_boxes').cpuData())).toEqual(leftDark ? [0, 0, 4, 6, 1] : [6, 0, 10, 6, 1]);
    }
  });

  it('reads image files with sharp in prepare() (BGR, as cv2 reads them) and says so when forward runs first', async () => {
    const path = join(dir, 'blocks.png');
    const rgb = new Uint8Array(3 * 4 * 6);
    for (let i = 0; i < 24; i++) rgb.set(i % 6 < 3 ? [250, 20, 30] : [5, 140, 90], 3 * i);
    await sharp(rgb, { raw: { width: 6, height: 4, channels: 3 } }).png().toFile(path);
    const net = build({ TRAIN: { SCALES: [4], MAX_SIZE: 32 } });
    const layer = setRoidb(net, [{ image: path, width: 6, height: 4, boxes: [[0, 0, 2, 3]], gt_classes: [2], flipped: false }]);
    expect(() => net.forward()).toThrow(/Python layer 'input-data' \(roi_data_layer\.layer\.RoIDataLayer\): the next image \(.*blocks\.png\) is not read yet: await net\.prepare\(\)/);
    await net.prepare();
    net.forward();
    const d = net.blob('data').cpuData();
    // Channel planes B, G, R of the top-left (red) and top-right (green-blue) pixels.
    const px = (i: number) => [d[i], d[24 + i], d[48 + i]];
    expect(px(0)).toEqual([30 - MB, 20 - MG, 250 - MR].map(Math.fround));
    expect(px(5)).toEqual([90 - MB, 140 - MG, 5 - MR].map(Math.fround));
    expect(Array.from(net.blob('gt_boxes').cpuData())).toEqual([0, 0, 2, 3, 2]);
    expect(layer.entries?.length).toBe(1);
    // A file whose size is not its entry's.
    setRoidb(net, [{ image: path, width: 8, height: 4, boxes: [[0, 0, 2, 3]], gt_classes: [2], flipped: false }]);
    await expect(net.prepare()).rejects.toThrow(/blocks\.png is 6 × 4, but its roidb entry says 8 × 4/);
  });

  it('runs through each shuffled pass from the layer rng, pairing landscape and portrait images (ASPECT_GROUPING)', async () => {
    // 8 entries: even ones 6 × 4 (landscape), odd ones 4 × 6; entry i's pixels are all i.
    const entries: RoidbEntry[] = Array.from({ length: 8 }, (_, i) => {
      const [w, h] = i % 2 === 0 ? [6, 4] : [4, 6];
      return { image: image(h, w, () => [i, i, i]), width: w, height: h, boxes: [[0, 0, 1, 1]], gt_classes: [1], flipped: false };
    });
    const draw = async (net: Net, n: number) => {
      const out: number[] = [];
      for (let k = 0; k < n; k++) {
        await net.prepare();
        net.forward();
        out.push(net.blob('data').cpuData()[0]!);
      }
      return out;
    };
    const config = { TRAIN: { SCALES: [4], MAX_SIZE: 32 }, PIXEL_MEANS: [0, 0, 0] as const };
    const net = build(config, 11);
    setRoidb(net, entries);
    const seq = await draw(net, 21);
    // As the Python, a pass ends when fewer than IMS_PER_BATCH + 1 entries are left: 7 of 8 per pass.
    for (let pass = 0; pass < 3; pass++) {
      const p = seq.slice(7 * pass, 7 * pass + 7);
      expect(new Set(p).size).toBe(7);
      for (let k = 0; k < 6; k += 2) expect(p[k]! % 2, `pass ${pass}: ${p}`).toBe(p[k + 1]! % 2);
    }
    // The layer's rng decides: the same seed gives the same order, another seed another.
    const again = build(config, 11);
    setRoidb(again, entries);
    expect(await draw(again, 21)).toEqual(seq);
    const other = build(config, 12);
    setRoidb(other, entries);
    expect(await draw(other, 21)).not.toEqual(seq);
  });

  it('fails naming the layer when forward runs before setRoidb, and checks the roidb and the configuration', () => {
    const net = build({ TRAIN: { SCALES: [4], MAX_SIZE: 32 } });
    let error: unknown;
    try {
      net.forward();
    } catch (e) {
      error = e;
    }
    expect(LayerError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/^Python layer 'input-data' \(roi_data_layer\.layer\.RoIDataLayer\): no roidb: hand the training entries to the layer first, with setRoidb\(net, roidb\)/);
    const img = image(4, 6, () => [0, 0, 0]);
    expect(() => setRoidb(net, [{ image: img, width: 6, height: 4, boxes: [[0, 0, 2, 3]], gt_classes: [3], flipped: false }])).toThrow(/entry 0: class 3 is not one of the 3 classes/);
    expect(() => setRoidb(net, [])).toThrow(/the roidb is empty/);
    expect(() => build({ TRAIN: { IMS_PER_BATCH: 2 } })).toThrow(/'input-data'.*IMS_PER_BATCH must be 1/);
    expect(() => build({ TRAIN: { HAS_RPN: false } })).toThrow(/only TRAIN\.HAS_RPN/);
    expect(() => roiDataLayerOf({ layers: [] })).toThrow(/no roi_data_layer\.layer\.RoIDataLayer layer runs the TypeScript RoIDataLayer port/);
  });

  it('exports py-faster-rcnn\'s end2end configuration and checks overrides', () => {
    expect(FASTER_RCNN_CONFIG.PIXEL_MEANS).toEqual(FASTER_RCNN_PIXEL_MEANS);
    expect(FASTER_RCNN_CONFIG.TRAIN).toMatchObject({
      SCALES: [600], MAX_SIZE: 1000, IMS_PER_BATCH: 1, BATCH_SIZE: 128, FG_FRACTION: 0.25, FG_THRESH: 0.5, BG_THRESH_HI: 0.5, BG_THRESH_LO: 0,
      HAS_RPN: true, USE_FLIPPED: true, BBOX_NORMALIZE_TARGETS_PRECOMPUTED: true, BBOX_NORMALIZE_STDS: [0.1, 0.1, 0.2, 0.2],
      RPN_POSITIVE_OVERLAP: 0.7, RPN_NEGATIVE_OVERLAP: 0.3, RPN_FG_FRACTION: 0.5, RPN_BATCHSIZE: 256, RPN_CLOBBER_POSITIVES: false, RPN_POSITIVE_WEIGHT: -1,
    });
    expect(FASTER_RCNN_CONFIG.TEST).toMatchObject({ SCALES: [600], MAX_SIZE: 1000, NMS: 0.3, RPN_PRE_NMS_TOP_N: 6000, RPN_POST_NMS_TOP_N: 300 });
    expect(fasterRcnnConfig({ TRAIN: { BATCH_SIZE: 64 } }).TRAIN).toMatchObject({ BATCH_SIZE: 64, FG_FRACTION: 0.25 });
    expect(() => fasterRcnnConfig({ TRAIN: { FG_FRACTION: 1.5 } })).toThrow('Faster R-CNN config: TRAIN.FG_FRACTION must be in [0, 1] (got 1.5)');
  });
});

describe('roidbShare (data-parallel replicas)', () => {
  const entry = (n: number): RoidbEntry => ({ image: `${n}.jpg`, width: 10, height: 10, boxes: [[0, 0, 5, 5]], gt_classes: [1], flipped: n >= 3 });
  const roidb = [0, 1, 2, 3, 4, 5].map(entry);
  it('gives replica r of N every N-th entry from r on: together every entry once, the mirrored copies shared out too', () => {
    const shares = [0, 1, 2, 3].map((r) => roidbShare(roidb, r, 4).map((e) => e.image));
    expect(shares).toEqual([['0.jpg', '4.jpg'], ['1.jpg', '5.jpg'], ['2.jpg'], ['3.jpg']]);
    expect(roidbShare(roidb, 0, 1)).toEqual(roidb);
  });
  it('refuses more replicas than entries', () => {
    expect(() => roidbShare(roidb.slice(0, 2), 2, 3)).toThrow('the roidb has 2 entries, too few for 3 replicas (each needs one at least)');
  });
});

describe('getTrainingRoidb with COCO crowd boxes (filter_roidb)', () => {
  it('keeps an image with a box that is not crowd, crowd boxes included; drops one with crowd boxes only', () => {
    const base = { width: 10, height: 10, flipped: false };
    const mixed: RoidbEntry = { ...base, image: 'mixed.jpg', boxes: [[0, 0, 4, 4], [5, 5, 9, 9]], gt_classes: [1, 2], crowd: [true, false] };
    const crowdOnly: RoidbEntry = { ...base, image: 'crowd.jpg', boxes: [[0, 0, 4, 4]], gt_classes: [1], crowd: [true] };
    const out = getTrainingRoidb([mixed, crowdOnly]);
    expect(out.map((e) => [e.image, e.flipped, e.boxes.length, e.crowd])).toEqual([
      ['mixed.jpg', false, 2, [true, false]],
      ['mixed.jpg', true, 2, [true, false]],
    ]);
  });
});
