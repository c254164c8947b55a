/**
 * A Faster R-CNN test net in py-faster-rcnn's layout, small: inputs declared with the deprecated
 * `input` fields, the RPN's scores reshaped to two classes for the softmax and back, the Python
 * proposal layer, ROIPooling, and the classification and box heads
 * (3 classes, the background included), with random fillers: for tests.
 */
export const TINY_FASTER_RCNN = `name: "faster_rcnn_tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 64 dim: 96 }
input: "im_info"
input_shape { dim: 1 dim: 3 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "rpn_conv/3x3" type: "Convolution" bottom: "conv2" top: "rpn/output"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "rpn_relu/3x3" type: "ReLU" bottom: "rpn/output" top: "rpn/output" }
layer { name: "rpn_cls_score" type: "Convolution" bottom: "rpn/output" top: "rpn_cls_score"
  convolution_param { num_output: 18 kernel_size: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "rpn_bbox_pred" type: "Convolution" bottom: "rpn/output" top: "rpn_bbox_pred"
  convolution_param { num_output: 36 kernel_size: 1 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "rpn_cls_score_reshape" type: "Reshape" bottom: "rpn_cls_score" top: "rpn_cls_score_reshape"
  reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }
layer { name: "rpn_cls_prob" type: "Softmax" bottom: "rpn_cls_score_reshape" top: "rpn_cls_prob" }
layer { name: "rpn_cls_prob_reshape" type: "Reshape" bottom: "rpn_cls_prob" top: "rpn_cls_prob_reshape"
  reshape_param { shape { dim: 0 dim: 18 dim: -1 dim: 0 } } }
layer { name: "proposal" type: "Python" bottom: "rpn_cls_prob_reshape" bottom: "rpn_bbox_pred" bottom: "im_info" top: "rois"
  python_param { module: "rpn.proposal_layer" layer: "ProposalLayer" param_str: "'feat_stride': 16" } }
layer { name: "roi_pool2" type: "ROIPooling" bottom: "conv2" bottom: "rois" top: "pool2"
  roi_pooling_param { pooled_w: 3 pooled_h: 3 spatial_scale: 0.0625 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool2" top: "fc" inner_product_param { num_output: 16 weight_filler { type: "xavier" } } }
layer { name: "cls_score" type: "InnerProduct" bottom: "fc" top: "cls_score" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "bbox_pred" type: "InnerProduct" bottom: "fc" top: "bbox_pred" inner_product_param { num_output: 12 weight_filler { type: "xavier" } } }
layer { name: "cls_prob" type: "Softmax" bottom: "cls_score" top: "cls_prob" }
`;
