import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, PythonLayerRegistry, pythonLayerDefFor, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { FASTER_RCNN_TRAIN_CONFIG, type FasterRcnnConfigOverrides } from '../faster-rcnn-config.js';
import { registerContribLayers, registerFasterRcnnPythonLayers } from '../index.js';
import { generateAnchors } from '../proposals.js';
import { anchorTargets, type AnchorTargetOptions } from './anchor-target-layer.js';

// Two anchors per cell, 10 pixels apart: a0 = [0, 0, 9, 9] (10 × 10 with +1 sides), a1 = [0, 0, 9, 6]
// (10 × 7). On a 1 × 3 map they are, in (y, x, a) order:
//   k0 [0,0,9,9]  k1 [0,0,9,6]  k2 [10,0,19,9]  k3 [10,0,19,6]  k4 [20,0,29,9]  k5 [20,0,29,6]
// Ground truth:
//   gtA [10,0,19,6] (70 px): k2 70/100 = 0.7 exactly, k3 70/70 = 1 (gtA's best);
//   gtB [0,0,9,2] (30 px):   k0 30/100 = 0.3 exactly, k1 30/70 = 0.43 (gtB's best);
//   gtC [25,0,29,1] (10 px): k4 10/100 = 0.1, k5 10/70 = 0.14 (gtC's best, under 0.3).
const ANCHORS = Float64Array.from([0, 0, 9, 9, 0, 0, 9, 6]);
const GT = [
  [10, 0, 19, 6, 1],
  [0, 0, 9, 2, 2],
  [25, 0, 29, 1, 1],
];
const options = (train: Partial<AnchorTargetOptions['train']> = {}): AnchorTargetOptions => ({
  anchors: ANCHORS,
  featStride: 10,
  allowedBorder: 0,
  train: { ...FASTER_RCNN_TRAIN_CONFIG, ...train },
});
const run = (train: Partial<AnchorTargetOptions['train']> = {}, gt = GT, imSize: [number, number] = [10, 30]) =>
  anchorTargets([1, 3], gt.flat(), 5, imSize, options(train), new Rng(1));
const round = (a: ArrayLike<number>) => Array.from(a, (v) => Math.round(v * 1e6) / 1e6 + 0);

describe('AnchorTargetLayer (py-faster-rcnn rpn.anchor_target_layer)', () => {
  it('labels anchors by the overlap rules: ≥ 0.7 and each box\'s best positive, < 0.3 negative, exactly 0.3 ignored', () => {
    const t = run();
    // k0: best overlap exactly 0.3 (not < 0.3) → ignored; k1: gtB's best; k2: exactly 0.7; k3: gtA's best;
    // k4: 0.1 → negative; k5: gtC's best (positives are labelled after the negatives).
    expect(Array.from(t.labels)).toEqual([-1, 1, 1, 1, 0, 1]);
  });

  it('RPN_CLOBBER_POSITIVES labels the negatives last, so a best anchor under 0.3 turns negative', () => {
    expect(Array.from(run({ RPN_CLOBBER_POSITIVES: true }).labels)).toEqual([-1, 1, 1, 1, 0, 0]);
  });

  it('moves the thresholds with RPN_POSITIVE_OVERLAP / RPN_NEGATIVE_OVERLAP', () => {
    // Just above 0.7: k2 is nobody's best, so it falls to ignored; at 0.31, k0 (0.3) turns negative.
    expect(Array.from(run({ RPN_POSITIVE_OVERLAP: 0.7000001, RPN_NEGATIVE_OVERLAP: 0.31 }).labels)).toEqual([0, 1, -1, 1, 0, 1]);
  });

  it('regresses every inside anchor to its best box with bbox_transform', () => {
    const t = run();
    expect(round(t.targets)).toEqual(round([
      // k0 → gtB: centre y 1.5 vs 5 in a 10-high box, height 3 / 10.
      0, -0.35, 0, Math.log(0.3),
      // k1 → gtB: centre y 1.5 vs 3.5, height 3 / 7.
      0, -2 / 7, 0, Math.log(3 / 7),
      // k2 → gtA: centre y 3.5 vs 5, height 7 / 10.
      0, -0.15, 0, Math.log(0.7),
      0, 0, 0, 0, // k3 is gtA
      // k4 → gtC ([25,0,29,1]: centre (27.5, 1), 5 × 2) from centre (25, 5), 10 × 10.
      0.25, -0.4, Math.log(0.5), Math.log(0.2),
      // k5 → gtC from centre (25, 3.5), 10 × 7.
      0.25, -2.5 / 7, Math.log(0.5), Math.log(2 / 7),
    ]));
  });

  it('weights: inside 1 for positives; outside 1 / (labelled anchors), or p / positives and (1 − p) / negatives', () => {
    const t = run();
    expect(Array.from(t.insideWeights)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]);
    // 5 labelled anchors (k1 … k5).
    expect(round(t.outsideWeights)).toEqual(round([0, 0, 0, 0, ...Array(20).fill(1 / 5)]));
    const p = run({ RPN_POSITIVE_WEIGHT: 0.25 });
    // 4 positives share 0.25, the one negative (k4) gets 0.75.
    expect(round(p.outsideWeights)).toEqual(round([0, 0, 0, 0, ...Array(12).fill(0.0625), ...Array(4).fill(0.75), ...Array(4).fill(0.0625)]));
  });

  it('ignores anchors reaching outside the image (allowed_border 0): label −1 and zero targets and weights', () => {
    // 29 wide: k4 and k5 (x2 = 29) leave the image; then gtC overlaps no inside anchor.
    const t = anchorTargets([1, 3], GT.slice(0, 2).flat(), 5, [10, 29], options(), new Rng(1));
    expect(Array.from(t.labels)).toEqual([-1, 1, 1, 1, -1, -1]);
    expect(Array.from(t.targets.subarray(16))).toEqual(Array(8).fill(0));
    expect(Array.from(t.outsideWeights.subarray(16))).toEqual(Array(8).fill(0));
    // As in the Python, a box that overlaps no inside anchor has a best overlap of 0, which every
    // anchor missing it ties: with gtC kept, k0 … k3 all turn positive.
    const quirk = anchorTargets([1, 3], GT.flat(), 5, [10, 29], options(), new Rng(1));
    expect(Array.from(quirk.labels)).toEqual([1, 1, 1, 1, -1, -1]);
    // With allowed_border 1 they count again (29 < 29 + 1).
    const b = anchorTargets([1, 3], GT.slice(0, 2).flat(), 5, [10, 29], { ...options(), allowedBorder: 1 }, new Rng(1));
    expect(Array.from(b.labels)).toEqual([-1, 1, 1, 1, 0, 0]);
  });

  it('subsamples to RPN_BATCHSIZE with at most RPN_FG_FRACTION positives, over seeded draws', () => {
    // A 10 × 10 map of one 16 × 16 anchor, stride 16, and four boxes: many positives, more negatives.
    const anchors = Float64Array.from([0, 0, 15, 15]);
    const gt = [
      [0, 0, 47, 47, 1],
      [64, 64, 111, 111, 1],
      [0, 96, 47, 143, 2],
      [96, 0, 159, 47, 2],
    ].flat();
    const opts = (train: Partial<AnchorTargetOptions['train']>): AnchorTargetOptions => ({ anchors, featStride: 16, allowedBorder: 0, train: { ...FASTER_RCNN_TRAIN_CONFIG, ...train } });
    const count = (l: Float64Array, v: number) => l.filter((x) => x === v).length;
    const full = anchorTargets([10, 10], gt, 5, [160, 160], opts({}), new Rng(3));
    const pos = count(full.labels, 1), neg = count(full.labels, 0);
    // The boxes cover 3 × 3, 3 × 3, 3 × 3 and 4 × 3 cells; each anchor inside one overlaps it by
    // 1/9, and they all tie for that box's best: 9 + 9 + 9 + 12 positives. The other 61 overlap nothing.
    expect(pos).toBe(39);
    expect(neg).toBe(100 - 39);
    const seen = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) {
      const t = anchorTargets([10, 10], gt, 5, [160, 160], opts({ RPN_BATCHSIZE: 32, RPN_FG_FRACTION: 0.25 }), new Rng(seed));
      expect(count(t.labels, 1)).toBe(8); // ⌊0.25 · 32⌋
      expect(count(t.labels, 0)).toBe(24); // 32 − 8
      // Kept labels are a subset of the unsampled ones; weights follow the kept labels.
      t.labels.forEach((l, k) => {
        if (l !== -1) expect(l).toBe(full.labels[k]);
        expect(t.outsideWeights[4 * k]).toBe(l === -1 ? 0 : 1 / 32);
        expect(t.insideWeights[4 * k]).toBe(l === 1 ? 1 : 0);
      });
      seen.add(Array.from(t.labels).join());
    }
    expect(seen.size).toBeGreaterThan(15); // the draws differ from seed to seed
    // Fewer positives than the cap: all kept, negatives fill the rest of the batch.
    const t = anchorTargets([10, 10], gt, 5, [160, 160], opts({ RPN_BATCHSIZE: 64 }), new Rng(4));
    expect([count(t.labels, 1), count(t.labels, 0)]).toEqual([32, 32]);
    const t2 = anchorTargets([10, 10], gt, 5, [160, 160], opts({ RPN_BATCHSIZE: 100 }), new Rng(4));
    expect([count(t2.labels, 1), count(t2.labels, 0)]).toEqual([39, 61]);
  });

  describe('as a Python layer', () => {
    const inputs = (A: number, H: number, W: number, G: number) => `
layer { name: "in" type: "Input" top: "rpn_cls_score" top: "gt_boxes" top: "im_info" top: "data"
  input_param { shape { dim: 1 dim: ${2 * A} dim: ${H} dim: ${W} } shape { dim: ${G} dim: 5 } shape { dim: 1 dim: 3 } shape { dim: 1 dim: 3 dim: ${16 * H} dim: ${16 * W} } } }
layer { name: "rpn-data" type: "Python" bottom: "rpn_cls_score" bottom: "gt_boxes" bottom: "im_info" bottom: "data"
  top: "rpn_labels" top: "rpn_bbox_targets" top: "rpn_bbox_inside_weights" top: "rpn_bbox_outside_weights"
  python_param { module: "rpn.anchor_target_layer" layer: "AnchorTargetLayer" param_str: "PARAMS" } }`;
    const build = (params: string, A: number, H: number, W: number, G: number, config?: FasterRcnnConfigOverrides) => {
      const python = registerFasterRcnnPythonLayers(new PythonLayerRegistry(), config);
      const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
      registry.register(pythonLayerDefFor(python), { override: true });
      return new Net(parseNetParameter(inputs(A, H, W, G).replace('PARAMS', params), 'train.prototxt'), { phase: Phase.TRAIN, registry, log: false, rng: new Rng(7) });
    };

    it("writes py-faster-rcnn's layouts: labels 1 × 1 × A·H × W, targets and weights 1 × 4A × H × W", () => {
      // scales 1 and 2 with the 3 ratios: A = 6 anchors of 16 and 32 pixels; a 3 × 4 map of a 48 × 64 image.
      const net = build("'feat_stride': 16\\n'scales': [1, 2]", 6, 3, 4, 1);
      expect(net.blob('rpn_labels').shape).toEqual([1, 1, 18, 4]);
      expect(net.blob('rpn_bbox_targets').shape).toEqual([1, 24, 3, 4]);
      net.blob('gt_boxes').mutableCpuData().set([8, 4, 40, 36, 1]);
      net.blob('im_info').mutableCpuData().set([48, 64, 1]);
      net.forward();
      const anchors = generateAnchors(16, [0.5, 1, 2], [1, 2]);
      const want = anchorTargets([3, 4], [8, 4, 40, 36, 1], 5, [48, 64], { anchors, featStride: 16, allowedBorder: 0, train: FASTER_RCNN_TRAIN_CONFIG }, new Rng(1));
      const labels = net.blob('rpn_labels').cpuData(), targets = net.blob('rpn_bbox_targets').cpuData();
      const outside = net.blob('rpn_bbox_outside_weights').cpuData(), inside = net.blob('rpn_bbox_inside_weights').cpuData();
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 4; x++) {
          for (let a = 0; a < 6; a++) {
            const k = (y * 4 + x) * 6 + a;
            expect(labels[(a * 3 + y) * 4 + x]).toBe(want.labels[k]); // (a, y, x)
            for (let j = 0; j < 4; j++) {
              const at = ((4 * a + j) * 3 + y) * 4 + x;
              expect(targets[at]).toBeCloseTo(want.targets[4 * k + j]!, 6);
              expect(inside[at]).toBe(want.insideWeights[4 * k + j]);
              expect(outside[at]).toBeCloseTo(want.outsideWeights[4 * k + j]!, 7);
            }
          }
        }
      }
      expect(Array.from(labels).filter((l) => l === 1).length).toBeGreaterThan(0);
    });

    it('takes the RPN settings from the configuration, and refuses what it cannot use', () => {
      const net = build("'feat_stride': 16", 9, 2, 2, 1, { TRAIN: { RPN_BATCHSIZE: 3 } });
      net.blob('gt_boxes').mutableCpuData().set([0, 0, 200, 200, 1]);
      net.blob('im_info').mutableCpuData().set([1000, 1000, 1]);
      net.forward();
      expect(Array.from(net.blob('rpn_labels').cpuData()).filter((l) => l >= 0).length).toBeLessThanOrEqual(3);
      expect(() => build("'scales': [8]", 9, 2, 2, 1)).toThrow(
        /Python layer 'rpn-data' \(rpn\.anchor_target_layer\.AnchorTargetLayer\): param_str must give 'feat_stride'/,
      );
      expect(() => build("'feat_stride': 16", 9, 2, 2, 1, { TRAIN: { RPN_POSITIVE_WEIGHT: 1.5 } })).toThrow(/TRAIN\.RPN_POSITIVE_WEIGHT must be negative \(uniform weights\) or in \(0, 1\) \(got 1\.5\)/);
      expect(() => build("'feat_stride': 16\\n'scales': [8, 0]", 9, 2, 2, 1)).toThrow(/every scale must be positive \(got \[8, 0\]\)/);
      // Forks' 'ratios' (read by the proposal layer's port too): A = 2 ratios × 1 scale.
      expect(build("'feat_stride': 16\\n'scales': [8]\\n'ratios': [1, 2]", 2, 2, 2, 1).blob('rpn_labels').shape).toEqual([1, 1, 4, 2]);
      const wrongGt = build("'feat_stride': 16", 9, 2, 2, 1);
      wrongGt.blob('gt_boxes').reshape([1, 4]);
      expect(() => wrongGt.forward()).toThrow(/'rpn-data'.*bottom 1 \(gt_boxes\) must be G × 5/);
    });
  });
});
