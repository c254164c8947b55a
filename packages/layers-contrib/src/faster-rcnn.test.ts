import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { DetectError, type DetectImage } from './detect.js';
import { detectFasterRcnn, fasterRcnnDetections, isFasterRcnnNet } from './faster-rcnn.js';
import { registerContribLayers } from './index.js';
import { TINY_FASTER_RCNN } from './testing/tiny-faster-rcnn.js';

describe('Faster R-CNN detection', () => {
  it('decodes each class box from its region, keeps scores above the threshold and applies NMS per class (hand-computed)', () => {
    // Two regions at input scale 2; both [10, 20, 29, 39] in image pixels (20 × 20, centre (20, 30)).
    const rois = [0, 20, 40, 58, 78, 0, 20, 40, 58, 78];
    const scores = [0.1, 0.7, 0.2, 0.2, 0.6, 0.2];
    const deltas = [
      // Region 0: class 1 moved right by 0.1 · 20; class 2 twice as wide.
      0, 0, 0, 0, 0.1, 0, 0, 0, 0, 0, Math.LN2, 0,
      // Region 1: unchanged.
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    const image = { height: 100, width: 100, scale: 2 };
    const found = fasterRcnnDetections(rois, scores, deltas, 3, image, { confidence: 0.15, labels: ['__background__', 'cat', 'dog'] });
    // Class 1: region 1's [10, 20, 30, 40] overlaps region 0's [12, 20, 32, 40] by 399 / 483 > 0.3.
    // Class 2: equal scores, region 0 first; region 1's box lies inside its [0, 20, 40, 40].
    expect(found.map((d) => [d.name, d.score, d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax])).toEqual([
      ['cat', 0.7, 12, 20, 32, 40],
      ['dog', 0.2, 0, 20, 40, 40],
    ]);
    expect(found[0]!.normalized).toEqual({ xmin: 0.12, ymin: 0.2, xmax: 0.32, ymax: 0.4 });
    // A looser NMS keeps region 1's class 1 box; a higher threshold drops class 2; boxes clip to the image.
    expect(fasterRcnnDetections(rois, scores, deltas, 3, image, { confidence: 0.5, nmsThresh: 0.9 }).map((d) => d.score)).toEqual([0.7, 0.6]);
    const small = fasterRcnnDetections(rois, scores, deltas, 3, { height: 30, width: 25, scale: 2 }, { confidence: 0.15 });
    expect(small.map((d) => [d.box.xmax, d.box.ymax])).toEqual([[24, 29], [24, 29]]);
    expect(() => fasterRcnnDetections(rois, scores, deltas, 4, image)).toThrow(DetectError);
  });

  it("uses R-FCN's class-agnostic deltas (8 per region) for every class", () => {
    // One region [10, 20, 29, 39] at scale 1, three classes; the object deltas move it right by 2.
    const found = fasterRcnnDetections([0, 10, 20, 29, 39], [0.2, 0.5, 0.3], [9, 9, 9, 9, 0.1, 0, 0, 0], 3, { height: 100, width: 100, scale: 1 }, { confidence: 0.25 });
    expect(found.map((d) => [d.label, d.box.xmin, d.box.xmax])).toEqual([[1, 12, 32], [2, 12, 32]]);
  });

  describe('on a test net', () => {
    const registry = registerBuiltinLayers(new LayerRegistry());
    beforeAll(() => registerContribLayers(registry));
    const build = () => new Net(parseNetParameter(TINY_FASTER_RCNN), { phase: Phase.TEST, registry, log: false, rng: new Rng(2) });
    const picture = (height: number, width: number): DetectImage => {
      const rng = new Rng(height * width);
      return { height, width, channels: 3, data: Uint8Array.from({ length: height * width * 3 }, () => rng.int(256)) };
    };

    it('scales the shorter side, sets im_info, and returns per-class NMS detections inside the image', () => {
      const net = build();
      expect(isFasterRcnnNet(net)).toBe(true);
      const { inputSize, detections } = detectFasterRcnn(net, picture(40, 60), { shorterSide: 64, maxSide: 96, confidence: 0 });
      expect(inputSize).toEqual({ height: 64, width: 96 });
      expect(net.blob('data').shape).toEqual([1, 3, 64, 96]);
      expect(Array.from(net.blob('im_info').cpuData())).toEqual([64, 96, 1.6].map(Math.fround));
      expect(detections.length).toBeGreaterThan(0);
      for (const [i, d] of detections.entries()) {
        expect(d.label === 1 || d.label === 2).toBe(true);
        expect(0 <= d.box.xmin && d.box.xmin <= d.box.xmax && d.box.xmax <= 59 && 0 <= d.box.ymin && d.box.ymin <= d.box.ymax && d.box.ymax <= 39).toBe(true);
        if (i > 0) expect(d.score).toBeLessThanOrEqual(detections[i - 1]!.score);
        for (const e of detections.slice(i + 1)) {
          if (e.label !== d.label) continue;
          const w = Math.min(d.box.xmax, e.box.xmax) - Math.max(d.box.xmin, e.box.xmin) + 1;
          const h = Math.min(d.box.ymax, e.box.ymax) - Math.max(d.box.ymin, e.box.ymin) + 1;
          const inter = Math.max(0, w) * Math.max(0, h);
          const area = (b: typeof d.box) => (b.xmax - b.xmin + 1) * (b.ymax - b.ymin + 1);
          expect(inter / (area(d.box) + area(e.box) - inter)).toBeLessThanOrEqual(0.3);
        }
      }
    });

    it('caps the longer side at maxSide, and names what a net lacks', () => {
      const net = build();
      expect(detectFasterRcnn(net, picture(40, 200), { shorterSide: 64, maxSide: 96 }).inputSize).toEqual({ height: 19, width: 96 });
      const ssd = new Net(parseNetParameter('input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }'), { phase: Phase.TEST, registry, log: false });
      expect(isFasterRcnnNet(ssd)).toBe(false);
      expect(() => detectFasterRcnn(ssd, picture(8, 8))).toThrow("the net has no 'im_info' blob (imInfo)");
    });
  });
});
