/**
 * A small SSD in the fork's training layout, for tests: two feature maps (stride 2 and 4), a
 * location and a confidence head on each (permuted to N × H × W × C and flattened), PriorBox per
 * map (two priors per cell: `min` and √(min·max)), everything concatenated, MultiBoxLoss with the
 * settings of the fork's VOC scripts in TRAIN, and DetectionOutput (plus DetectionEvaluate when
 * asked) in TEST. Three classes, the background (0) included. `data` holds the layers that write
 * the `data` and `label` blobs.
 */
export function tinySsdNet(options: {
  data: string;
  /** [min_size, max_size] of the priors on the stride-2 map, then on the stride-4 map. */
  priorSizes: readonly [readonly [number, number], readonly [number, number]];
  keepTopK: number;
  confidenceThreshold: number;
  /** Add DetectionEvaluate after DetectionOutput in TEST. */
  evaluate?: boolean;
}): string {
  const [[min1, max1], [min2, max2]] = options.priorSizes;
  const head = (map: string, name: string, out: number) => `
layer { name: "${map}_${name}" type: "Convolution" bottom: "${map}" top: "${map}_${name}"
  convolution_param { num_output: ${out} kernel_size: 3 pad: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "${map}_${name}_perm" type: "Permute" bottom: "${map}_${name}" top: "${map}_${name}_perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "${map}_${name}_flat" type: "Flatten" bottom: "${map}_${name}_perm" top: "${map}_${name}_flat" flatten_param { axis: 1 } }`;
  const conv = (name: string, bottom: string) => `
layer { name: "${name}" type: "Convolution" bottom: "${bottom}" top: "${name}"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "${name}_relu" type: "ReLU" bottom: "${name}" top: "${name}" }`;
  const prior = (map: string, min: number, max: number) => `
layer { name: "${map}_prior" type: "PriorBox" bottom: "${map}" bottom: "data" top: "${map}_prior"
  prior_box_param { min_size: ${min} max_size: ${max} flip: true clip: false variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }`;
  const evaluate = options.evaluate
    ? `
layer {
  name: "detection_eval" type: "DetectionEvaluate" bottom: "detection_out" bottom: "label" top: "detection_eval"
  include { phase: TEST }
  detection_evaluate_param { num_classes: 3 background_label_id: 0 overlap_threshold: 0.5 evaluate_difficult_gt: false }
}`
    : '';
  return `name: "tiny_ssd"
${options.data}
${conv('conv1', 'data')}${conv('conv2', 'conv1')}
${head('conv1', 'loc', 8)}${head('conv1', 'conf', 6)}${head('conv2', 'loc', 8)}${head('conv2', 'conf', 6)}
${prior('conv1', min1, max1)}${prior('conv2', min2, max2)}
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
    nms_param { nms_threshold: 0.45 top_k: 100 } code_type: CENTER_SIZE keep_top_k: ${options.keepTopK} confidence_threshold: ${options.confidenceThreshold}
  }
}${evaluate}
`;
}
