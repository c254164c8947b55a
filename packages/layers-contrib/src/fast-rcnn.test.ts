import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { decodeNetParameter, encodeNetParameter, parseNetParameter, Phase, printNetParameter } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribLayers } from './index.js';
import { TINY_FASTER_RCNN } from './testing/tiny-faster-rcnn.js';

// A Fast R-CNN box-regression head, small: features, regions pooled to 3 × 3, a box predictor
// and SmoothL1Loss with inside and outside weights (the py-faster-rcnn training net's layout).
const NET = `name: "fast_rcnn_head"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 16 dim: 16 } } }
layer { name: "rois" type: "Input" top: "rois" input_param { shape { dim: 4 dim: 5 } } }
layer {
  name: "targets" type: "Input"
  top: "bbox_targets" top: "bbox_inside_weights" top: "bbox_outside_weights"
  input_param { shape { dim: 4 dim: 8 } shape { dim: 4 dim: 8 } shape { dim: 4 dim: 8 } }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "gaussian" std: 0.3 } }
}
layer {
  name: "roi_pool5" type: "ROIPooling" bottom: "conv1" bottom: "rois" top: "pool5"
  roi_pooling_param { pooled_w: 3 pooled_h: 3 spatial_scale: 0.5 }
}
layer {
  name: "bbox_pred" type: "InnerProduct" bottom: "pool5" top: "bbox_pred"
  inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 0.01 } }
}
layer {
  name: "loss_bbox" type: "SmoothL1Loss"
  bottom: "bbox_pred" bottom: "bbox_targets" bottom: "bbox_inside_weights" bottom: "bbox_outside_weights"
  top: "loss_bbox" loss_weight: 1
}
`;


describe('a Faster R-CNN test net in py-faster-rcnn\'s layout', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  it('runs forward: proposals inside the image, one row of class probabilities and box deltas per proposal', () => {
    const net = new Net(parseNetParameter(TINY_FASTER_RCNN, 'test.prototxt'), { phase: Phase.TEST, registry, log: false, rng: new Rng(2) });
    const rng = new Rng(4);
    const data = net.blob('data').mutableCpuData();
    for (let i = 0; i < data.length; i++) data[i] = rng.uniformIn(-1, 1);
    net.blob('im_info').mutableCpuData().set([64, 96, 1]);
    net.forward();
    const rois = net.blob('rois');
    const R = rois.shape[0]!;
    expect(R).toBeGreaterThan(0);
    expect(R).toBeLessThanOrEqual(300);
    const r = rois.cpuData();
    for (let i = 0; i < R; i++) {
      const [b, x1, y1, x2, y2] = Array.from(r.subarray(5 * i, 5 * i + 5));
      expect(b).toBe(0);
      expect(0 <= x1! && x1! <= x2! && x2! <= 95 && 0 <= y1! && y1! <= y2! && y2! <= 63, `roi ${i}: ${x1} ${y1} ${x2} ${y2}`).toBe(true);
    }
    expect(net.blob('cls_prob').shape).toEqual([R, 3]);
    expect(net.blob('bbox_pred').shape).toEqual([R, 12]);
    const p = net.blob('cls_prob').cpuData();
    for (let i = 0; i < R; i++) expect(p[3 * i]! + p[3 * i + 1]! + p[3 * i + 2]!).toBeCloseTo(1, 5);
    // Another image size: the proposals follow im_info, and the count may change.
    net.blob('im_info').mutableCpuData().set([40, 50, 1]);
    net.forward();
    const r2 = net.blob('rois').cpuData();
    for (let i = 0; i < net.blob('rois').shape[0]!; i++) expect(r2[5 * i + 3]! <= 49 && r2[5 * i + 4]! <= 39).toBe(true);
    // A scale that puts every box under the minimum size: no proposals, and empty heads.
    net.blob('im_info').mutableCpuData().set([64, 96, 100]);
    net.forward();
    expect(net.blob('rois').shape).toEqual([0, 5]);
    expect(net.blob('cls_prob').shape).toEqual([0, 3]);
  });
});

describe('a Fast R-CNN box-regression head (ROIPooling, SmoothL1Loss)', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  function build(): Net {
    const net = new Net(parseNetParameter(NET, 'fast_rcnn_head.prototxt'), { phase: Phase.TRAIN, registry, log: false, rng: new Rng(3) });
    const rng = new Rng(9);
    const fill = (name: string, f: (i: number) => number) => {
      const d = net.blob(name).mutableCpuData();
      for (let i = 0; i < d.length; i++) d[i] = f(i);
    };
    fill('data', () => rng.uniformIn(-1, 1));
    // Regions in input pixels (spatial_scale 0.5 maps them onto the 8 × 8 features), on both images.
    net.blob('rois').mutableCpuData().set([0, 0, 0, 15, 15, 0, 2, 4, 9, 12, 1, 6, 1, 14, 7, 1, 0, 8, 5, 15]);
    fill('bbox_targets', () => rng.uniformIn(-0.5, 0.5));
    // Only the 4 coordinates of each region's class count (the other 4 have inside weight 0).
    fill('bbox_inside_weights', (i) => (i % 8 < 4 ? 1 : 0));
    fill('bbox_outside_weights', (i) => (i % 8 < 4 ? 1 : 0));
    return net;
  }

  it('trains: the loss falls, and the gradient reaches the features through the pooled regions', () => {
    const net = build();
    expect(net.blob('pool5').shape).toEqual([4, 4, 3, 3]);
    const losses: number[] = [];
    for (let step = 0; step < 60; step++) {
      net.clearParamDiffs();
      losses.push(net.forwardBackward());
      if (step === 0) {
        const conv = net.layers[net.layerNames.indexOf('conv1')]!.blobs[0]!.cpuDiff();
        expect(Array.from(conv).some((g) => g !== 0)).toBe(true);
      }
      for (const p of net.learnableParams) {
        const w = p.mutableCpuData(), g = p.cpuDiff();
        for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.01 * g[i]!;
      }
    }
    expect(losses[0]).toBeGreaterThan(0.1);
    expect(losses[59]!).toBeLessThan(0.1 * losses[0]!);
  });

  it('keeps roi_pooling_param and smooth_l1_loss_param through .caffemodel bytes and prototxt text', () => {
    const param = parseNetParameter(NET);
    (param.layer.find((l) => l.name === 'loss_bbox') as unknown as Record<string, unknown>).smooth_l1_loss_param = { sigma: 3 };
    const back = decodeNetParameter(encodeNetParameter(param));
    const roi = back.layer.find((l) => l.name === 'roi_pool5') as unknown as { roi_pooling_param: { pooled_h: number; pooled_w: number; spatial_scale: number } };
    expect(roi.roi_pooling_param).toMatchObject({ pooled_h: 3, pooled_w: 3, spatial_scale: 0.5 });
    const loss = back.layer.find((l) => l.name === 'loss_bbox') as unknown as { smooth_l1_loss_param: { sigma: number } };
    expect(loss.smooth_l1_loss_param.sigma).toBe(3);
    const text = printNetParameter(back);
    expect(text).toMatch(/roi_pooling_param \{\s+pooled_h: 3\s+pooled_w: 3\s+spatial_scale: 0.5\s+\}/);
    expect(text).toMatch(/smooth_l1_loss_param \{\s+sigma: 3\s+\}/);
  });
});

describe('caffe-fast-rcnn\'s Dropout scale_train (py-faster-rcnn\'s ZF prototxts)', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  const ZF_FC = `name: "zf_fc"
input: "fc6" input_shape { dim: 1 dim: 4 }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 scale_train: false } }
`;

  it('parses at field 2, survives .caffemodel bytes and text, and scales by 1 − ratio at TEST', () => {
    const param = parseNetParameter(ZF_FC, 'zf.prototxt');
    const back = decodeNetParameter(encodeNetParameter(param));
    const drop = back.layer[0] as unknown as { dropout_param: { scale_train: boolean } };
    expect(drop.dropout_param.scale_train).toBe(false);
    expect(printNetParameter(back)).toMatch(/dropout_param \{\s+dropout_ratio: 0.5\s+scale_train: false\s+\}/);
    const net = new Net(param, { phase: Phase.TEST, registry, log: false });
    net.blob('fc6').mutableCpuData().set([2, -4, 6, 0]);
    net.forward();
    expect(Array.from(net.blob('fc6').cpuData())).toEqual([1, -2, 3, 0]);
  });
});
