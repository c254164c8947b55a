import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, PythonLayerRegistry, pythonLayerDefFor, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { FASTER_RCNN_TRAIN_CONFIG, type FasterRcnnConfigOverrides } from '../faster-rcnn-config.js';
import { registerContribLayers, registerFasterRcnnPythonLayers } from '../index.js';
import { sampleRois, type ProposalTargetConfig } from './proposal-target-layer.js';

// gtA [0,0,9,9] class 1 and gtB [20,0,29,9] class 2, both 10 × 10 with +1 sides. Proposals:
//   p0 [0,0,9,4]:   50/100 with gtA = 0.5 exactly → foreground (≥ FG_THRESH)
//   p1 [0,0,9,3]:   0.4 → background
//   p2 [0,0,9,0]:   0.1 → background
//   p3 [40,0,49,9]: 0   → background (BG_THRESH_LO is 0 in end2end)
//   p4 [20,0,29,6]: 70/100 with gtB = 0.7 → foreground, class 2
// and the two boxes themselves are appended as candidates (overlap 1 → foreground).
const GT = [
  [0, 0, 9, 9, 1],
  [20, 0, 29, 9, 2],
];
const PROPOSALS = [
  [0, 0, 0, 9, 4],
  [0, 0, 0, 9, 3],
  [0, 0, 0, 9, 0],
  [0, 40, 0, 49, 9],
  [0, 20, 0, 29, 6],
];
const cfg = (train: Partial<ProposalTargetConfig> = {}): ProposalTargetConfig => ({ ...FASTER_RCNN_TRAIN_CONFIG, ...train });
const rows = (a: ArrayLike<number>, width: number) => Array.from({ length: a.length / width }, (_, r) => Array.from(a).slice(r * width, r * width + width));
const round = (a: number[]) => a.map((v) => Math.round(v * 1e6) / 1e6 + 0);

describe('ProposalTargetLayer (py-faster-rcnn rpn.proposal_target_layer)', () => {
  it('labels, normalised targets per class and the weights, hand-computed', () => {
    const s = sampleRois(PROPOSALS.flat(), GT.flat(), 3, cfg(), new Rng(1));
    expect(s.numFg).toBe(4);
    expect(s.labels.length).toBe(7);
    // Foreground first, then background (each group in random order): key the rows by box.
    const byBox = new Map(rows(s.rois, 5).map((r, i) => [r.slice(1).join(), i]));
    const out = (box: number[]) => {
      const i = byBox.get(box.join());
      expect(i, `box ${box}`).toBeDefined();
      return { i: i!, label: s.labels[i!], targets: round(Array.from(s.targets.subarray(12 * i!, 12 * i! + 12))), inside: Array.from(s.insideWeights.subarray(12 * i!, 12 * i! + 12)), outside: Array.from(s.outsideWeights.subarray(12 * i!, 12 * i! + 12)) };
    };
    const p0 = out([0, 0, 9, 4]);
    expect(p0.i).toBeLessThan(4);
    expect(p0.label).toBe(1);
    // bbox_transform [0,0,9,4] → [0,0,9,9]: dy = (5 − 2.5) / 5 = 0.5, dh = ln 2; divided by stds (0.1, 0.1, 0.2, 0.2).
    expect(p0.targets).toEqual(round([0, 0, 0, 0, 0, 5, 0, Math.LN2 / 0.2, 0, 0, 0, 0]));
    expect(p0.inside).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
    expect(p0.outside).toEqual(p0.inside);
    const p4 = out([20, 0, 29, 6]);
    expect(p4.label).toBe(2);
    expect(p4.targets).toEqual(round([0, 0, 0, 0, 0, 0, 0, 0, 0, 1.5 / 7 / 0.1, 0, Math.log(10 / 7) / 0.2]));
    expect(p4.inside).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    const gtA = out([0, 0, 9, 9]);
    expect([gtA.label, ...gtA.targets]).toEqual([1, ...Array(12).fill(0)]);
    expect(gtA.inside).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
    for (const box of [[0, 0, 9, 3], [0, 0, 9, 0], [40, 0, 49, 9]]) {
      const bg = out(box);
      expect(bg.i).toBeGreaterThanOrEqual(4);
      expect([bg.label, ...bg.targets, ...bg.inside, ...bg.outside]).toEqual(Array(37).fill(0));
    }
  });

  it('applies BG_THRESH_LO inclusively, means and BBOX_INSIDE_WEIGHTS, and raw targets without the normalisation', () => {
    const lo = sampleRois(PROPOSALS.flat(), GT.flat(), 3, cfg({ BG_THRESH_LO: 0.1 }), new Rng(1));
    // p2 (exactly 0.1) stays, p3 (0) goes.
    expect(rows(lo.rois, 5).map((r) => r.slice(1).join()).sort()).toEqual(['0,0,9,0', '0,0,9,3', '0,0,9,4', '0,0,9,9', '20,0,29,6', '20,0,29,9']);
    const shifted = sampleRois(PROPOSALS.flat(), GT.flat(), 3, cfg({ BBOX_NORMALIZE_MEANS: [0, 0.1, 0, 0], BBOX_INSIDE_WEIGHTS: [1, 0.5, 0, 1] }), new Rng(1));
    const i = rows(shifted.rois, 5).findIndex((r) => r.slice(1).join() === '0,0,9,4');
    expect(round(Array.from(shifted.targets.subarray(12 * i + 4, 12 * i + 8)))).toEqual(round([0, 4, 0, Math.LN2 / 0.2]));
    expect(Array.from(shifted.insideWeights.subarray(12 * i + 4, 12 * i + 8))).toEqual([1, 0.5, 0, 1]);
    expect(Array.from(shifted.outsideWeights.subarray(12 * i + 4, 12 * i + 8))).toEqual([1, 1, 0, 1]);
    const raw = sampleRois(PROPOSALS.flat(), GT.flat(), 3, cfg({ BBOX_NORMALIZE_TARGETS_PRECOMPUTED: false }), new Rng(1));
    const j = rows(raw.rois, 5).findIndex((r) => r.slice(1).join() === '0,0,9,4');
    expect(round(Array.from(raw.targets.subarray(12 * j + 4, 12 * j + 8)))).toEqual(round([0, 0.5, 0, Math.LN2]));
  });

  it('samples at most round(FG_FRACTION · BATCH_SIZE) foreground (halves to even) and fills BATCH_SIZE with background', () => {
    // 40 proposals around gtA (overlaps 0.5 … 1) and 60 far away (background).
    const rng = new Rng(9);
    const proposals: number[] = [];
    for (let i = 0; i < 40; i++) proposals.push(0, rng.int(3), rng.int(3), 9, 9);
    for (let i = 0; i < 60; i++) proposals.push(0, 100 + i, 50, 120 + i, 70);
    const seen = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) {
      const s = sampleRois(proposals, GT.flat(), 3, cfg({ BATCH_SIZE: 16 }), new Rng(seed));
      expect([s.numFg, s.labels.length]).toEqual([4, 16]); // round(0.25 · 16) = 4
      expect(Array.from(s.labels.subarray(4)).every((l) => l === 0)).toBe(true);
      expect(Array.from(s.labels.subarray(0, 4)).every((l) => l > 0)).toBe(true);
      seen.add(Array.from(s.rois).join());
    }
    expect(seen.size).toBeGreaterThan(15);
    // 0.25 · 10 = 2.5 rounds to 2 (numpy's round), then 8 background.
    const even = sampleRois(proposals, GT.flat(), 3, cfg({ BATCH_SIZE: 10 }), new Rng(2));
    expect([even.numFg, even.labels.length]).toEqual([2, 10]);
    // Too few background candidates: fewer RoIs than BATCH_SIZE.
    const few = sampleRois(proposals.slice(0, 5 * 45), GT.flat(), 3, cfg({ BATCH_SIZE: 64 }), new Rng(2));
    expect([few.numFg, few.labels.length]).toEqual([16, 16 + 5]);
  });

  describe('as a Python layer', () => {
    const text = (R: number) => `
layer { name: "in" type: "Input" top: "rpn_rois" top: "gt_boxes" input_param { shape { dim: ${R} dim: 5 } shape { dim: 2 dim: 5 } } }
layer { name: "roi-data" type: "Python" bottom: "rpn_rois" bottom: "gt_boxes"
  top: "rois" top: "labels" top: "bbox_targets" top: "bbox_inside_weights" top: "bbox_outside_weights"
  python_param { module: "rpn.proposal_target_layer" layer: "ProposalTargetLayer" param_str: "'num_classes': 3" } }`;
    const build = (R: number, config?: FasterRcnnConfigOverrides) => {
      const python = registerFasterRcnnPythonLayers(new PythonLayerRegistry(), config);
      const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
      registry.register(pythonLayerDefFor(python), { override: true });
      const net = new Net(parseNetParameter(text(R), 'train.prototxt'), { phase: Phase.TRAIN, registry, log: false, rng: new Rng(3) });
      net.blob('gt_boxes').mutableCpuData().set(GT.flat());
      return net;
    };

    it('reshapes its tops as the Python does: rois N × 5, labels (N), targets and weights N × 4·num_classes', () => {
      const net = build(5);
      expect(net.blob('labels').shape).toEqual([1, 1]);
      expect(net.blob('bbox_targets').shape).toEqual([1, 12]);
      net.blob('rpn_rois').mutableCpuData().set(PROPOSALS.flat());
      net.forward();
      expect(net.blob('rois').shape).toEqual([7, 5]);
      expect(net.blob('labels').shape).toEqual([7]);
      for (const b of ['bbox_targets', 'bbox_inside_weights', 'bbox_outside_weights']) expect(net.blob(b).shape).toEqual([7, 12]);
      expect(Array.from(net.blob('labels').cpuData()).sort()).toEqual([0, 0, 0, 1, 1, 2, 2]);
      // The count follows the proposals.
      net.blob('rpn_rois').reshape([2, 5]);
      net.blob('rpn_rois').mutableCpuData().set(PROPOSALS.slice(0, 2).flat());
      net.forward();
      expect(net.blob('rois').shape).toEqual([4, 5]);
      expect(net.blob('labels').shape).toEqual([4]);
    });

    it('takes BATCH_SIZE from the configuration and refuses multi-image proposals and a missing num_classes', () => {
      const net = build(5, { TRAIN: { BATCH_SIZE: 4 } });
      net.blob('rpn_rois').mutableCpuData().set(PROPOSALS.flat());
      net.forward();
      expect(net.blob('rois').shape).toEqual([4, 5]); // 1 fg (round(0.25 · 4)) + 3 bg
      net.blob('rpn_rois').mutableCpuData()[5] = 1;
      expect(() => net.forward()).toThrow(/Python layer 'roi-data' \(rpn\.proposal_target_layer\.ProposalTargetLayer\): only single-item batches are supported \(proposal 1 is of image 1\)/);
      expect(() => new Net(parseNetParameter(text(5).replace("'num_classes': 3", "'classes': 3"), 'train.prototxt'), {
        phase: Phase.TRAIN, registry: (() => {
          const r = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
          r.register(pythonLayerDefFor(registerFasterRcnnPythonLayers(new PythonLayerRegistry())), { override: true });
          return r;
        })(), log: false,
      })).toThrow(/param_str must give 'num_classes'/);
    });
  });
});
