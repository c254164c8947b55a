import { registerField, registerLayerParamField, registerSsdForkSchema } from '@caffe-ts/proto';

/*
 * Parameter messages of the forks whose layers this package implements. Where a fork's field
 * number is free in BVLC's schema it is used as is, so the fork's .caffemodel files decode with
 * their layer parameters. Where BVLC later gave the number to another field, one schema cannot
 * hold both: the field is registered at the fork's number + 1000 (netron's convention for the
 * same clashes). Prototxt text is unaffected (fields are matched by name); only a fork's binary
 * file carrying such a field would decode it as the BVLC field. Layer parameters in a
 * .caffemodel are never needed to run it (the prototxt defines the net; weights are matched by
 * layer name), so this costs nothing when loading fork weights.
 */

/** SegNet's BN layer (alexgkendall/caffe-segnet): `LayerParameter.bn_param = 45`. */
export const BN_PROTO = `
message BNParameter {
  enum BNMode {
    LEARN = 0;
    INFERENCE = 1;
  }
  optional BNMode bn_mode = 3 [default = LEARN];
  optional FillerParameter scale_filler = 1;
  optional FillerParameter shift_filler = 2;
}
`;

/**
 * SegNet's Upsample (caffe-segnet). The fork's number, 137, is BVLC's embed_param: registered
 * at 1137.
 */
export const UPSAMPLE_PROTO = `
message UpsampleParameter {
  optional uint32 scale = 1 [default = 2];
  optional uint32 scale_h = 2;
  optional uint32 scale_w = 3;
  optional bool pad_out_h = 4 [default = false];
  optional bool pad_out_w = 5 [default = false];
  optional uint32 upsample_h = 6;
  optional uint32 upsample_w = 7;
}
`;

/**
 * DeepLab v2 / PSPNet's Interp. The fork's number, 143, is BVLC's input_param: registered at
 * 1143.
 */
export const INTERP_PROTO = `
message InterpParameter {
  optional int32 height = 1 [default = 0];
  optional int32 width = 2 [default = 0];
  optional int32 zoom_factor = 3 [default = 1];
  optional int32 shrink_factor = 4 [default = 1];
  optional int32 pad_beg = 5 [default = 0];
  optional int32 pad_end = 6 [default = 0];
}
`;

/** ShuffleNet's ShuffleChannel (farmingyard/ShuffleNet): `shuffle_channel_param = 164`. */
export const SHUFFLE_CHANNEL_PROTO = `
message ShuffleChannelParameter {
  optional uint32 group = 1 [default = 1];
}
`;

/**
 * Fast R-CNN's ROIPooling (rbgirshick/caffe-fast-rcnn and py-faster-rcnn):
 * `roi_pooling_param = 8266711`, free in BVLC's schema.
 */
export const ROI_POOLING_PROTO = `
message ROIPoolingParameter {
  optional uint32 pooled_h = 1 [default = 0];
  optional uint32 pooled_w = 2 [default = 0];
  optional float spatial_scale = 3 [default = 1];
}
`;

/** Fast R-CNN's SmoothL1Loss (py-faster-rcnn): `smooth_l1_loss_param = 8266712`, free in BVLC's schema. */
export const SMOOTH_L1_LOSS_PROTO = `
message SmoothL1LossParameter {
  optional float sigma = 1 [default = 1];
}
`;

/**
 * The Proposal layer of OpenCV's dnn schema (opencv_caffe): `proposal_param = 201`, which the SSD
 * fork gives to multibox_loss_param: registered at 1201.
 */
export const PROPOSAL_PROTO = `
message ProposalParameter {
  optional uint32 feat_stride = 1 [default = 16];
  optional uint32 base_size = 2 [default = 16];
  optional uint32 min_size = 3 [default = 16];
  repeated float ratio = 4;
  repeated float scale = 5;
  optional uint32 pre_nms_topn = 6 [default = 6000];
  optional uint32 post_nms_topn = 7 [default = 300];
  optional float nms_thresh = 8 [default = 0.7];
}
`;

/**
 * R-FCN's PSROIPooling (daijifeng001/caffe-rfcn; also in OpenCV's schema):
 * `psroi_pooling_param = 10002`, free in BVLC's schema. The fork marks its fields required;
 * optional here, so a missing one is the layer's clear error rather than a decoding failure.
 */
export const PSROI_POOLING_PROTO = `
message PSROIPoolingParameter {
  optional float spatial_scale = 1;
  optional int32 output_dim = 2;
  optional int32 group_size = 3;
}
`;

/** Fork fields of LayerParameter this package adds besides the SSD fork's: [name, number, type, proto]. */
export const CONTRIB_LAYER_FIELDS: ReadonlyArray<readonly [string, number, string, string]> = [
  ['bn_param', 45, 'BNParameter', BN_PROTO],
  ['shuffle_channel_param', 164, 'ShuffleChannelParameter', SHUFFLE_CHANNEL_PROTO],
  ['upsample_param', 1137, 'UpsampleParameter', UPSAMPLE_PROTO],
  ['interp_param', 1143, 'InterpParameter', INTERP_PROTO],
  ['roi_pooling_param', 8266711, 'ROIPoolingParameter', ROI_POOLING_PROTO],
  ['smooth_l1_loss_param', 8266712, 'SmoothL1LossParameter', SMOOTH_L1_LOSS_PROTO],
  ['proposal_param', 1201, 'ProposalParameter', PROPOSAL_PROTO],
  ['psroi_pooling_param', 10002, 'PSROIPoolingParameter', PSROI_POOLING_PROTO],
];

/**
 * `PoolingParameter.ceil_mode` (BVLC pull request #3057, used by DenseNet and other prototxts):
 * true (the default) rounds the output size up as Caffe always did, false rounds down. Its
 * number there, 13, is BVLC's round_mode (an enum whose 1 means FLOOR, the opposite of
 * ceil_mode's 1): registered at 1013.
 */
export const POOLING_CEIL_MODE_FIELD = { message: 'PoolingParameter', name: 'ceil_mode', id: 1013, type: 'bool', defaultValue: true } as const;

/**
 * `DropoutParameter.scale_train` (caffe-fast-rcnn, field 2, free in BVLC's schema): false moves
 * Dropout's scaling from TRAIN to TEST, as py-faster-rcnn's ZF prototxts ask. The Dropout layer
 * reads it when present.
 */
export const DROPOUT_SCALE_TRAIN_FIELD = { message: 'DropoutParameter', name: 'scale_train', id: 2, type: 'bool', defaultValue: true } as const;

/**
 * Fields that detection prototxts carry, so that such files parse and round-trip as text (the
 * solver reads eval_type, ap_version and show_per_class_result for the SSD fork's test mAP).
 * Their numbers in those tools either clash with BVLC's (the SSD fork's `eval_type` 41 and
 * `ap_version` 42 are BVLC's `layer_wise_reduce` and `weights`) or could not be verified, so they
 * sit at numbers of their own above 1000: these fields are read from text only; binary files of
 * those tools do not carry them into caffe-ts.
 */
export const TEXT_COMPAT_FIELDS = [
  // SSD fork solvers: mAP evaluation during testing.
  { message: 'SolverParameter', name: 'eval_type', id: 1041, type: 'string', defaultValue: 'classification' },
  { message: 'SolverParameter', name: 'ap_version', id: 1042, type: 'string', defaultValue: 'Integral' },
  { message: 'SolverParameter', name: 'show_per_class_result', id: 1044, type: 'bool', defaultValue: false },
  // Solvers of forks that can save caffemodels in the old (V1) layout.
  { message: 'SolverParameter', name: 'store_blobs_in_old_format', id: 1045, type: 'bool', defaultValue: false },
  // OpenCV's dnn: clip decoded boxes to the image in DetectionOutput.
  { message: 'DetectionOutputParameter', name: 'clip', id: 1000, type: 'bool', defaultValue: false },
] as const;

/** Register the SSD fork's schema and every other fork field above. Idempotent. */
export function registerContribSchema(): void {
  registerSsdForkSchema();
  for (const [name, id, typeName, protoText] of CONTRIB_LAYER_FIELDS) registerLayerParamField({ name, id, typeName, protoText });
  registerField({ ...POOLING_CEIL_MODE_FIELD });
  registerField({ ...DROPOUT_SCALE_TRAIN_FIELD });
  for (const field of TEXT_COMPAT_FIELDS) registerField({ ...field });
}
