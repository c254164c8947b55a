import type { FasterRcnnConfigOverrides } from '../faster-rcnn-config.js';

/**
 * A Faster R-CNN training net in py-faster-rcnn's faster_rcnn_end2end train.prototxt layout, small:
 * the Python RoIDataLayer, three stride-2 convolutions (feature stride 8), the RPN with its
 * AnchorTargetLayer, SoftmaxWithLoss (ignore_label −1) and SmoothL1Loss (sigma 3), the Python
 * proposal layer (TRAIN settings) and ProposalTargetLayer, ROIPooling and the classification and
 * box heads with their losses. 3 classes (the background included); anchors of 32 and 64 pixels
 * (scales 2 and 4 of the base 16, three ratios: 6 per cell). For tests, with
 * TINY_FASTER_RCNN_TRAIN_CONFIG (64-pixel images).
 */
export const TINY_FASTER_RCNN_TRAIN = `name: "faster_rcnn_tiny_train"
layer { name: 'input-data' type: 'Python' top: 'data' top: 'im_info' top: 'gt_boxes'
  python_param { module: 'roi_data_layer.layer' layer: 'RoIDataLayer' param_str: "'num_classes': 3" } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
#========= RPN ============
layer { name: "rpn_conv/3x3" type: "Convolution" bottom: "conv3" top: "rpn/output"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 1 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" } } }
layer { name: "rpn_relu/3x3" type: "ReLU" bottom: "rpn/output" top: "rpn/output" }
layer { name: "rpn_cls_score" type: "Convolution" bottom: "rpn/output" top: "rpn_cls_score"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 12 kernel_size: 1 pad: 0 stride: 1 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" } } }
layer { name: "rpn_bbox_pred" type: "Convolution" bottom: "rpn/output" top: "rpn_bbox_pred"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 24 kernel_size: 1 pad: 0 stride: 1 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" } } }
layer { bottom: "rpn_cls_score" top: "rpn_cls_score_reshape" name: "rpn_cls_score_reshape" type: "Reshape"
  reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }
layer { name: 'rpn-data' type: 'Python'
  bottom: 'rpn_cls_score' bottom: 'gt_boxes' bottom: 'im_info' bottom: 'data'
  top: 'rpn_labels' top: 'rpn_bbox_targets' top: 'rpn_bbox_inside_weights' top: 'rpn_bbox_outside_weights'
  python_param { module: 'rpn.anchor_target_layer' layer: 'AnchorTargetLayer' param_str: "'feat_stride': 8\\n'scales': [2, 4]" } }
layer { name: "rpn_loss_cls" type: "SoftmaxWithLoss" bottom: "rpn_cls_score_reshape" bottom: "rpn_labels"
  propagate_down: 1 propagate_down: 0 top: "rpn_cls_loss" loss_weight: 1
  loss_param { ignore_label: -1 normalize: true } }
layer { name: "rpn_loss_bbox" type: "SmoothL1Loss"
  bottom: "rpn_bbox_pred" bottom: "rpn_bbox_targets" bottom: 'rpn_bbox_inside_weights' bottom: 'rpn_bbox_outside_weights'
  top: "rpn_loss_bbox" loss_weight: 1 smooth_l1_loss_param { sigma: 3.0 } }
#========= RoI Proposal ============
layer { name: "rpn_cls_prob" type: "Softmax" bottom: "rpn_cls_score_reshape" top: "rpn_cls_prob" }
layer { name: 'rpn_cls_prob_reshape' type: 'Reshape' bottom: 'rpn_cls_prob' top: 'rpn_cls_prob_reshape'
  reshape_param { shape { dim: 0 dim: 12 dim: -1 dim: 0 } } }
layer { name: 'proposal' type: 'Python' bottom: 'rpn_cls_prob_reshape' bottom: 'rpn_bbox_pred' bottom: 'im_info' top: 'rpn_rois'
  python_param { module: 'rpn.proposal_layer' layer: 'ProposalLayer' param_str: "'feat_stride': 8\\n'scales': [2, 4]" } }
layer { name: 'roi-data' type: 'Python' bottom: 'rpn_rois' bottom: 'gt_boxes'
  top: 'rois' top: 'labels' top: 'bbox_targets' top: 'bbox_inside_weights' top: 'bbox_outside_weights'
  python_param { module: 'rpn.proposal_target_layer' layer: 'ProposalTargetLayer' param_str: "'num_classes': 3" } }
#========= RCNN ============
layer { name: "roi_pool_conv3" type: "ROIPooling" bottom: "conv3" bottom: "rois" top: "roi_pool_conv3"
  roi_pooling_param { pooled_w: 3 pooled_h: 3 spatial_scale: 0.125 } }
layer { name: "fc6" type: "InnerProduct" bottom: "roi_pool_conv3" top: "fc6"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 32 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "cls_score" type: "InnerProduct" bottom: "fc6" top: "cls_score"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" } } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "fc6" top: "bbox_pred"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 12 weight_filler { type: "gaussian" std: 0.001 } bias_filler { type: "constant" } } }
layer { name: "loss_cls" type: "SoftmaxWithLoss" bottom: "cls_score" bottom: "labels"
  propagate_down: 1 propagate_down: 0 top: "loss_cls" loss_weight: 1 }
layer { name: "loss_bbox" type: "SmoothL1Loss" bottom: "bbox_pred" bottom: "bbox_targets" bottom: "bbox_inside_weights" bottom: "bbox_outside_weights"
  top: "loss_bbox" loss_weight: 1 }
`;

/** The settings TINY_FASTER_RCNN_TRAIN trains with: 64-pixel shorter sides, 96 at most, 64 RoIs per image. */
export const TINY_FASTER_RCNN_TRAIN_CONFIG: FasterRcnnConfigOverrides = Object.freeze({
  TRAIN: Object.freeze({ SCALES: Object.freeze([64]), MAX_SIZE: 96, BATCH_SIZE: 64 }),
});

/**
 * The test net of TINY_FASTER_RCNN_TRAIN, as py-faster-rcnn's faster_rcnn_end2end test.prototxt
 * is to its train.prototxt: data and im_info inputs, the same layers (names and shapes) without
 * the target layers and losses, the proposal layer's top named `rois`, and cls_prob.
 */
export const TINY_FASTER_RCNN_TRAIN_TEST = `name: "faster_rcnn_tiny_test"
input: "data"
input_shape { dim: 1 dim: 3 dim: 64 dim: 96 }
input: "im_info"
input_shape { dim: 1 dim: 3 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "conv3" type: "Convolution" bottom: "conv2" top: "conv3"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 2 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "rpn_conv/3x3" type: "Convolution" bottom: "conv3" top: "rpn/output"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 stride: 1 } }
layer { name: "rpn_relu/3x3" type: "ReLU" bottom: "rpn/output" top: "rpn/output" }
layer { name: "rpn_cls_score" type: "Convolution" bottom: "rpn/output" top: "rpn_cls_score"
  convolution_param { num_output: 12 kernel_size: 1 pad: 0 stride: 1 } }
layer { name: "rpn_bbox_pred" type: "Convolution" bottom: "rpn/output" top: "rpn_bbox_pred"
  convolution_param { num_output: 24 kernel_size: 1 pad: 0 stride: 1 } }
layer { bottom: "rpn_cls_score" top: "rpn_cls_score_reshape" name: "rpn_cls_score_reshape" type: "Reshape"
  reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }
layer { name: "rpn_cls_prob" type: "Softmax" bottom: "rpn_cls_score_reshape" top: "rpn_cls_prob" }
layer { name: 'rpn_cls_prob_reshape' type: 'Reshape' bottom: 'rpn_cls_prob' top: 'rpn_cls_prob_reshape'
  reshape_param { shape { dim: 0 dim: 12 dim: -1 dim: 0 } } }
layer { name: 'proposal' type: 'Python' bottom: 'rpn_cls_prob_reshape' bottom: 'rpn_bbox_pred' bottom: 'im_info' top: 'rois'
  python_param { module: 'rpn.proposal_layer' layer: 'ProposalLayer' param_str: "'feat_stride': 8\\n'scales': [2, 4]" } }
layer { name: "roi_pool_conv3" type: "ROIPooling" bottom: "conv3" bottom: "rois" top: "roi_pool_conv3"
  roi_pooling_param { pooled_w: 3 pooled_h: 3 spatial_scale: 0.125 } }
layer { name: "fc6" type: "InnerProduct" bottom: "roi_pool_conv3" top: "fc6" inner_product_param { num_output: 32 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "cls_score" type: "InnerProduct" bottom: "fc6" top: "cls_score" inner_product_param { num_output: 3 } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "fc6" top: "bbox_pred" inner_product_param { num_output: 12 } }
layer { name: "cls_prob" type: "Softmax" bottom: "cls_score" top: "cls_prob" }
`;

/** py-faster-rcnn's experiments/cfgs/faster_rcnn_end2end.yml, as the repository has it. */
export const END2END_YML = `EXP_DIR: faster_rcnn_end2end
TRAIN:
  HAS_RPN: True
  IMS_PER_BATCH: 1
  BBOX_NORMALIZE_TARGETS_PRECOMPUTED: True
  RPN_POSITIVE_OVERLAP: 0.7
  RPN_BATCHSIZE: 256
  PROPOSAL_METHOD: gt
  BG_THRESH_LO: 0.0
TEST:
  HAS_RPN: True
`;

/** END2END_YML with TINY_FASTER_RCNN_TRAIN's settings (64-pixel images in training and test; 64 RoIs per image), for `caffe train --cfg`. */
export const TINY_FASTER_RCNN_YML = `${END2END_YML.replace('TEST:\n', '  SCALES: [64]\n  MAX_SIZE: 96\n  BATCH_SIZE: 64\nTEST:\n')}  SCALES: [64]\n  MAX_SIZE: 96\n`;
