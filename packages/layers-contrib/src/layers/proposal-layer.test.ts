import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, pythonLayerDefFor, PythonLayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribLayers } from '../index.js';
import { computeProposals, DEFAULT_PROPOSAL_OPTIONS } from '../proposals.js';
import { createProposalLayer, parseProposalParamStr } from './proposal-layer.js';

const inputs = (A: number, H: number, W: number) => `
layer { name: "rpn" type: "Input" top: "rpn_cls_prob_reshape" top: "rpn_bbox_pred" top: "im_info" top: "conv5"
  input_param { shape { dim: 1 dim: ${2 * A} dim: ${H} dim: ${W} } shape { dim: 1 dim: ${4 * A} dim: ${H} dim: ${W} } shape { dim: 1 dim: 3 }
                shape { dim: 1 dim: 2 dim: ${H} dim: ${W} } } }`;

const pooling = `
layer { name: "roi_pool5" type: "ROIPooling" bottom: "conv5" bottom: "rois" top: "pool5"
  roi_pooling_param { pooled_w: 2 pooled_h: 2 spatial_scale: 0.0625 } }`;

describe('Proposal (OpenCV proposal_param) and py-faster-rcnn\'s Python proposal layer', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  function build(text: string, phase = Phase.TEST, seed = 5): Net {
    const net = new Net(parseNetParameter(text, 'faster_rcnn_test.prototxt'), { phase, registry, log: false });
    const rng = new Rng(seed);
    for (const name of ['rpn_cls_prob_reshape', 'rpn_bbox_pred', 'conv5']) {
      const d = net.blob(name).mutableCpuData();
      for (let i = 0; i < d.length; i++) d[i] = name === 'rpn_bbox_pred' ? rng.uniformIn(-0.3, 0.3) : rng.uniform();
    }
    return net;
  }

  it('a Proposal layer gives rois rows [0, x1, y1, x2, y2] and scores (hand-computed, one anchor per cell)', () => {
    const net = build(`${inputs(1, 1, 2)}
layer { name: "proposal" type: "Proposal" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info"
  top: "rois" top: "scores" proposal_param { ratio: 1 scale: 1 min_size: 4 } }`);
    net.blob('rpn_cls_prob_reshape').mutableCpuData().set([0.9, 0.8, 0.1, 0.2]);
    net.blob('rpn_bbox_pred').mutableCpuData().set([0.25, 0, 0, 0, Math.LN2, 0, 0, 0]);
    net.blob('im_info').mutableCpuData().set([20, 32, 1]);
    net.forward();
    expect(net.blob('rois').shape).toEqual([2, 5]);
    expect(Array.from(net.blob('rois').cpuData())).toEqual([0, 16, 0, 31, 16, 0, 0, 0, 28, 16]);
    expect(Array.from(net.blob('scores').cpuData()).map((v) => Math.fround(v))).toEqual([0.2, 0.1].map(Math.fround));
  });

  it('runs py-faster-rcnn\'s Python layer with its TEST and TRAIN settings, and ROIPooling takes the varying count', () => {
    const python = (phaseSettings: string) => `${inputs(9, 30, 40)}
layer { name: "proposal" type: "Python" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois"
  python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "${phaseSettings}" } }${pooling}`;
    for (const phase of [Phase.TEST, Phase.TRAIN]) {
      const net = build(python("'feat_stride': 16"), phase);
      net.blob('im_info').mutableCpuData().set([480, 640, 1]);
      net.forward();
      const want = computeProposals(
        net.blob('rpn_cls_prob_reshape').cpuData(), net.blob('rpn_bbox_pred').cpuData(), [30, 40], [480, 640, 1],
        { ...DEFAULT_PROPOSAL_OPTIONS, ...(phase === Phase.TRAIN ? { preNmsTopN: 12000, postNmsTopN: 2000 } : {}) }, Math.fround,
      );
      const rois = net.blob('rois');
      expect(rois.shape).toEqual([want.scores.length, 5]);
      if (phase === Phase.TEST) expect(want.scores.length).toBe(300);
      else expect(want.scores.length).toBeGreaterThan(300);
      const got = Array.from(rois.cpuData());
      const boxes = Array.from(want.boxes).map(Math.fround);
      for (let r = 0; r < want.scores.length; r++) expect(got.slice(5 * r, 5 * r + 5)).toEqual([0, ...boxes.slice(4 * r, 4 * r + 4)]);
      expect(net.blob('pool5').shape).toEqual([want.scores.length, 2, 2, 2]);
    }
  });

  it('createProposalLayer reads the phase\'s RPN settings from its configuration', () => {
    const reg = new PythonLayerRegistry();
    reg.register('rpn.proposal_layer', 'ProposalLayer', createProposalLayer({ TRAIN: { RPN_POST_NMS_TOP_N: 7 }, TEST: { RPN_POST_NMS_TOP_N: 3 } }));
    const local = registerBuiltinLayers(new LayerRegistry());
    local.register(pythonLayerDefFor(reg), { override: true });
    registerContribLayers(local);
    const text = `${inputs(9, 30, 40)}
layer { name: "proposal" type: "Python" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois"
  python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "'feat_stride': 16" } }`;
    for (const [phase, count] of [[Phase.TRAIN, 7], [Phase.TEST, 3]] as const) {
      const net = new Net(parseNetParameter(text), { phase, registry: local, log: false });
      const rng = new Rng(5);
      for (const name of ['rpn_cls_prob_reshape', 'rpn_bbox_pred']) net.blob(name).mutableCpuData().forEach((_, i, a) => (a[i] = rng.uniform()));
      net.blob('im_info').mutableCpuData().set([480, 640, 1]);
      net.forward();
      expect(net.blob('rois').shape).toEqual([count, 5]);
    }
    expect(() => createProposalLayer({ TRAIN: { MAX_SIZE: 0 } })).toThrow(/TRAIN.MAX_SIZE must be a positive integer/);
  });

  it("reads param_str's scales (a YAML tuple) and refuses what it cannot read", () => {
    expect(parseProposalParamStr("'feat_stride': 16")).toEqual({ feat_stride: 16 });
    expect(parseProposalParamStr("'feat_stride': 8\n'scales': !!python/tuple [4, 8, 16, 32]")).toEqual({ feat_stride: 8, scales: [4, 8, 16, 32] });
    expect(parseProposalParamStr("{'feat_stride': 16, 'scales': (8, 16), 'ratios': [1]}")).toEqual({ feat_stride: 16, scales: [8, 16], ratios: [1] });
    expect(() => parseProposalParamStr("'feat_stride': sixteen")).toThrow(/cannot read param_str/);
    const text = `${inputs(12, 3, 4)}
layer { name: "proposal" type: "Python" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois"
  python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "'feat_stride': 16\\n'scales': !!python/tuple [4, 8, 16, 32]" } }`;
    const net = build(text);
    net.blob('im_info').mutableCpuData().set([48, 64, 1]);
    net.forward();
    expect(net.blob('rois').shape[1]).toBe(5);
    expect(() => build(`${inputs(9, 3, 4)}
layer { name: "proposal" type: "Python" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois"
  python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "'scales': [8]" } }`)).toThrow(/param_str must give 'feat_stride'/);
  });

  it('names the layer and the blob when the inputs do not fit', () => {
    const net = build(`${inputs(2, 3, 4)}
layer { name: "proposal" type: "Proposal" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois" }`);
    net.blob('im_info').mutableCpuData().set([48, 64, 1]);
    expect(() => net.forward()).toThrow("Proposal layer 'proposal': bottom 0 (the RPN scores) must have 2 × 9 channels for 9 anchors (got 4).");
    expect(() => build(`${inputs(9, 3, 4)}
layer { name: "proposal" type: "Proposal" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois"
  proposal_param { nms_thresh: 1.5 } }`)).toThrow("Proposal layer 'proposal': nms_thresh must be in [0, 1] (got 1.5).");
  });
});
