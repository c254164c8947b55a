import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { jaccardOverlap } from './bbox.js';
import { registerContribLayers } from './index.js';

// A small SSD in the fork's training layout: two feature maps, a location and a confidence head on
// each (permuted to N × H × W × C and flattened), PriorBox per map, everything concatenated, then
// MultiBoxLoss with the settings of the fork's VOC scripts. The ground truth comes in an Input blob
// laid out as AnnotatedData writes it. The test phase decodes with DetectionOutput.
const head = (map: string, name: string, out: number) => `
layer { name: "${map}_${name}" type: "Convolution" bottom: "${map}" top: "${map}_${name}"
  convolution_param { num_output: ${out} kernel_size: 3 pad: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "${map}_${name}_perm" type: "Permute" bottom: "${map}_${name}" top: "${map}_${name}_perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "${map}_${name}_flat" type: "Flatten" bottom: "${map}_${name}_perm" top: "${map}_${name}_flat" flatten_param { axis: 1 } }`;

const NET = `name: "tiny_ssd"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 32 dim: 32 } } }
layer { name: "label" type: "Input" top: "label" include { phase: TRAIN } input_param { shape { dim: 1 dim: 1 dim: 3 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
${head('conv1', 'loc', 8)}${head('conv1', 'conf', 6)}${head('conv2', 'loc', 8)}${head('conv2', 'conf', 6)}
layer { name: "conv1_prior" type: "PriorBox" bottom: "conv1" bottom: "data" top: "conv1_prior"
  prior_box_param { min_size: 6 max_size: 12 flip: true clip: false variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }
layer { name: "conv2_prior" type: "PriorBox" bottom: "conv2" bottom: "data" top: "conv2_prior"
  prior_box_param { min_size: 12 max_size: 24 flip: true clip: false variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }
layer { name: "mbox_loc" type: "Concat" bottom: "conv1_loc_flat" bottom: "conv2_loc_flat" top: "mbox_loc" concat_param { axis: 1 } }
layer { name: "mbox_conf" type: "Concat" bottom: "conv1_conf_flat" bottom: "conv2_conf_flat" top: "mbox_conf" concat_param { axis: 1 } }
layer { name: "mbox_priorbox" type: "Concat" bottom: "conv1_prior" bottom: "conv2_prior" top: "mbox_priorbox" concat_param { axis: 2 } }
layer {
  name: "mbox_loss" type: "MultiBoxLoss"
  bottom: "mbox_loc" bottom: "mbox_conf" bottom: "mbox_priorbox" bottom: "label" top: "mbox_loss"
  include { phase: TRAIN }
  propagate_down: true propagate_down: true propagate_down: false propagate_down: false
  loss_param { normalization: VALID }
  multibox_loss_param {
    loc_loss_type: SMOOTH_L1 conf_loss_type: SOFTMAX loc_weight: 1.0 num_classes: 3 share_location: true
    match_type: PER_PREDICTION overlap_threshold: 0.5 use_prior_for_matching: true background_label_id: 0
    use_difficult_gt: true neg_pos_ratio: 3.0 neg_overlap: 0.5 code_type: CENTER_SIZE mining_type: MAX_NEGATIVE
  }
}
layer { name: "mbox_conf_reshape" type: "Reshape" bottom: "mbox_conf" top: "mbox_conf_reshape" include { phase: TEST }
  reshape_param { shape { dim: 0 dim: -1 dim: 3 } } }
layer { name: "mbox_conf_softmax" type: "Softmax" bottom: "mbox_conf_reshape" top: "mbox_conf_softmax" include { phase: TEST } softmax_param { axis: 2 } }
layer { name: "mbox_conf_flatten" type: "Flatten" bottom: "mbox_conf_softmax" top: "mbox_conf_flatten" include { phase: TEST } flatten_param { axis: 1 } }
layer {
  name: "detection_out" type: "DetectionOutput"
  bottom: "mbox_loc" bottom: "mbox_conf_flatten" bottom: "mbox_priorbox" top: "detection_out"
  include { phase: TEST }
  detection_output_param {
    num_classes: 3 share_location: true background_label_id: 0
    nms_param { nms_threshold: 0.45 top_k: 50 } code_type: CENTER_SIZE keep_top_k: 10 confidence_threshold: 0.2
  }
}
`;

// Ground truth: image 0 holds a class-1 box, image 1 a class-2 box and a second class-1 box.
const GT = [
  [0, 1, 0, 0.1, 0.15, 0.45, 0.5, 0],
  [1, 2, 0, 0.5, 0.4, 0.9, 0.85, 0],
  [1, 1, 0, 0.05, 0.6, 0.3, 0.95, 0],
];

describe('training a small SSD with MultiBoxLoss', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  it('the loss falls, and the test net then finds each ground-truth box with its class', () => {
    const param = parseNetParameter(NET, 'tiny_ssd.prototxt');
    const train = new Net(param, { phase: Phase.TRAIN, registry, log: false, rng: new Rng(5) });
    expect(train.blob('mbox_priorbox').shape).toEqual([1, 2, (16 * 16 + 8 * 8) * 2 * 4]);
    const rng = new Rng(21);
    const data = train.blob('data').mutableCpuData();
    for (let i = 0; i < data.length; i++) data[i] = rng.uniformIn(-1, 1);
    train.blob('label').mutableCpuData().set(GT.flat());

    const losses: number[] = [];
    for (let step = 0; step < 100; step++) {
      train.clearParamDiffs();
      losses.push(train.forwardBackward());
      for (const p of train.learnableParams) {
        const w = p.mutableCpuData(), g = p.cpuDiff();
        for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.05 * g[i]!;
      }
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[99]!).toBeLessThan(0.2 * losses[0]!);

    const test = new Net(param, { phase: Phase.TEST, registry, log: false });
    test.shareTrainedLayersWith(train);
    test.blob('data').mutableCpuData().set(train.blob('data').cpuData());
    test.forward();
    const det = test.blob('detection_out');
    const rows = Array.from({ length: det.shape[2]! }, (_, r) => Array.from(det.cpuData().subarray(r * 7, r * 7 + 7)));
    for (const [item, label, , xmin, ymin, xmax, ymax] of GT) {
      const box = { xmin: xmin!, ymin: ymin!, xmax: xmax!, ymax: ymax! };
      const best = rows
        .filter((r) => r[0] === item && r[1] === label)
        .map((r) => ({ score: r[2]!, iou: jaccardOverlap({ xmin: r[3]!, ymin: r[4]!, xmax: r[5]!, ymax: r[6]! }, box) }))
        .sort((a, b) => b.score - a.score)[0];
      expect(best, `image ${item} class ${label}`).toBeDefined();
      expect(best!.iou, `image ${item} class ${label}`).toBeGreaterThan(0.7);
    }
  });
});
