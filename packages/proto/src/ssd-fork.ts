/**
 * Schema additions of the SSD fork of Caffe (weiliu89/caffe, branch ssd), which MobileNet-SSD,
 * OpenCV's face detector and other detection models are written against. Field numbers are the
 * fork's, so its .caffemodel files decode. Nothing is registered until registerSsdForkSchema()
 * is called.
 *
 * Not included: the fork's SolverParameter fields (eval_type = 41, ap_version = 42), whose
 * numbers BVLC master later gave to layer_wise_reduce and weights; one schema cannot hold both.
 */
import { registerField, registerProtoTypes } from './extend-schema.js';
import { lookupType } from './schema.js';

/** The fork's message types, as proto2 source in package caffe. */
export const SSD_FORK_PROTO_TEXT = `
syntax = "proto2";
package caffe;

// Label names of a detection data set.
message LabelMapItem {
  optional string name = 1;
  optional int32 label = 2;
  optional string display_name = 3;
}
message LabelMap {
  repeated LabelMapItem item = 1;
}

// Random crops for data augmentation, in normalised [0, 1] image coordinates.
message Sampler {
  optional float min_scale = 1 [default = 1];
  optional float max_scale = 2 [default = 1];
  optional float min_aspect_ratio = 3 [default = 1];
  optional float max_aspect_ratio = 4 [default = 1];
}
// Overlap/coverage bounds a sampled crop must meet against the ground-truth boxes.
message SampleConstraint {
  optional float min_jaccard_overlap = 1;
  optional float max_jaccard_overlap = 2;
  optional float min_sample_coverage = 3;
  optional float max_sample_coverage = 4;
  optional float min_object_coverage = 5;
  optional float max_object_coverage = 6;
}
message BatchSampler {
  optional bool use_original_image = 1 [default = true];
  optional Sampler sampler = 2;
  optional SampleConstraint sample_constraint = 3;
  optional uint32 max_sample = 4;
  optional uint32 max_trials = 5 [default = 100];
}
// When a box survives a crop.
message EmitConstraint {
  enum EmitType {
    CENTER = 0;
    MIN_OVERLAP = 1;
  }
  optional EmitType emit_type = 1 [default = CENTER];
  optional float emit_overlap = 2;
}

// Ground truth records (AnnotatedDatum is what the fork's LMDBs hold).
message NormalizedBBox {
  optional float xmin = 1;
  optional float ymin = 2;
  optional float xmax = 3;
  optional float ymax = 4;
  optional int32 label = 5;
  optional bool difficult = 6;
  optional float score = 7;
  optional float size = 8;
}
message Annotation {
  optional int32 instance_id = 1 [default = 0];
  optional NormalizedBBox bbox = 2;
}
message AnnotationGroup {
  optional int32 group_label = 1;
  repeated Annotation annotation = 2;
}
message AnnotatedDatum {
  enum AnnotationType {
    BBOX = 0;
  }
  optional Datum datum = 1;
  optional AnnotationType type = 2;
  repeated AnnotationGroup annotation_group = 3;
}

// Extra TransformationParameter policies.
message ResizeParameter {
  optional float prob = 1 [default = 1];
  enum Resize_mode {
    WARP = 1;
    FIT_SMALL_SIZE = 2;
    FIT_LARGE_SIZE_AND_PAD = 3;
  }
  optional Resize_mode resize_mode = 2 [default = WARP];
  optional uint32 height = 3 [default = 0];
  optional uint32 width = 4 [default = 0];
  optional uint32 height_scale = 8 [default = 0];
  optional uint32 width_scale = 9 [default = 0];
  enum Pad_mode {
    CONSTANT = 1;
    MIRRORED = 2;
    REPEAT_NEAREST = 3;
  }
  optional Pad_mode pad_mode = 5 [default = CONSTANT];
  repeated float pad_value = 6;
  // Interpolations to pick from (OpenCV's numbering).
  enum Interp_mode {
    LINEAR = 1;
    AREA = 2;
    NEAREST = 3;
    CUBIC = 4;
    LANCZOS4 = 5;
  }
  repeated Interp_mode interp_mode = 7;
}
message SaltPepperParameter {
  optional float fraction = 1 [default = 0];
  repeated float value = 2;
}
message NoiseParameter {
  optional float prob = 1 [default = 0];
  optional bool hist_eq = 2 [default = false];
  optional bool inverse = 3 [default = false];
  optional bool decolorize = 4 [default = false];
  optional bool gauss_blur = 5 [default = false];
  // JPEG quality; -1 leaves the image uncompressed.
  optional float jpeg = 6 [default = -1];
  optional bool posterize = 7 [default = false];
  optional bool erode = 8 [default = false];
  optional bool saltpepper = 9 [default = false];
  optional SaltPepperParameter saltpepper_param = 10;
  optional bool clahe = 11 [default = false];
  optional bool convert_to_hsv = 12 [default = false];
  optional bool convert_to_lab = 13 [default = false];
}
// Photometric distortions, each applied with its own probability.
message DistortionParameter {
  optional float brightness_prob = 1 [default = 0];
  optional float brightness_delta = 2 [default = 0];
  optional float contrast_prob = 3 [default = 0];
  optional float contrast_lower = 4 [default = 0];
  optional float contrast_upper = 5 [default = 0];
  optional float hue_prob = 6 [default = 0];
  optional float hue_delta = 7 [default = 0];
  optional float saturation_prob = 8 [default = 0];
  optional float saturation_lower = 9 [default = 0];
  optional float saturation_upper = 10 [default = 0];
  optional float random_order_prob = 11 [default = 0];
}
// Zoom-out: place the image on a larger canvas.
message ExpansionParameter {
  optional float prob = 1 [default = 1];
  optional float max_expand_ratio = 2 [default = 1];
}

// Layer parameters.
message AnnotatedDataParameter {
  repeated BatchSampler batch_sampler = 1;
  optional string label_map_file = 2;
  // Overrides the type stored in each AnnotatedDatum.
  optional AnnotatedDatum.AnnotationType anno_type = 3;
}
message DetectionEvaluateParameter {
  optional uint32 num_classes = 1;
  optional uint32 background_label_id = 2 [default = 0];
  optional float overlap_threshold = 3 [default = 0.5];
  optional bool evaluate_difficult_gt = 4 [default = true];
  optional string name_size_file = 5;
  optional ResizeParameter resize_param = 6;
}
message NonMaximumSuppressionParameter {
  optional float nms_threshold = 1 [default = 0.3];
  optional int32 top_k = 2;
  // Adaptive NMS factor.
  optional float eta = 3 [default = 1.0];
}
message SaveOutputParameter {
  optional string output_directory = 1;
  optional string output_name_prefix = 2;
  // VOC or COCO.
  optional string output_format = 3;
  optional string label_map_file = 4;
  optional string name_size_file = 5;
  optional uint32 num_test_image = 6;
  optional ResizeParameter resize_param = 7;
}
message DetectionOutputParameter {
  optional uint32 num_classes = 1;
  optional bool share_location = 2 [default = true];
  optional int32 background_label_id = 3 [default = 0];
  optional NonMaximumSuppressionParameter nms_param = 4;
  optional SaveOutputParameter save_output_param = 5;
  optional PriorBoxParameter.CodeType code_type = 6 [default = CORNER];
  optional bool variance_encoded_in_target = 8 [default = false];
  // Boxes kept per image after NMS; -1 keeps all.
  optional int32 keep_top_k = 7 [default = -1];
  optional float confidence_threshold = 9;
  optional bool visualize = 10 [default = false];
  optional float visualize_threshold = 11;
  optional string save_file = 12;
}
message MultiBoxLossParameter {
  enum LocLossType {
    L2 = 0;
    SMOOTH_L1 = 1;
  }
  optional LocLossType loc_loss_type = 1 [default = SMOOTH_L1];
  enum ConfLossType {
    SOFTMAX = 0;
    LOGISTIC = 1;
  }
  optional ConfLossType conf_loss_type = 2 [default = SOFTMAX];
  optional float loc_weight = 3 [default = 1.0];
  optional uint32 num_classes = 4;
  optional bool share_location = 5 [default = true];
  enum MatchType {
    BIPARTITE = 0;
    PER_PREDICTION = 1;
  }
  optional MatchType match_type = 6 [default = PER_PREDICTION];
  optional float overlap_threshold = 7 [default = 0.5];
  optional bool use_prior_for_matching = 8 [default = true];
  optional uint32 background_label_id = 9 [default = 0];
  optional bool use_difficult_gt = 10 [default = true];
  // Legacy switch, replaced by mining_type.
  optional bool do_neg_mining = 11;
  optional float neg_pos_ratio = 12 [default = 3.0];
  optional float neg_overlap = 13 [default = 0.5];
  optional PriorBoxParameter.CodeType code_type = 14 [default = CORNER];
  optional bool encode_variance_in_target = 16 [default = false];
  optional bool map_object_to_agnostic = 17 [default = false];
  optional bool ignore_cross_boundary_bbox = 18 [default = false];
  optional bool bp_inside = 19 [default = false];
  enum MiningType {
    NONE = 0;
    MAX_NEGATIVE = 1;
    HARD_EXAMPLE = 2;
  }
  optional MiningType mining_type = 20 [default = MAX_NEGATIVE];
  optional NonMaximumSuppressionParameter nms_param = 21;
  optional int32 sample_size = 22 [default = 64];
  optional bool use_prior_for_nms = 23 [default = false];
}
// L2 normalisation with a learned per-channel (or shared) scale.
message NormalizeParameter {
  optional bool across_spatial = 1 [default = true];
  optional FillerParameter scale_filler = 2;
  optional bool channel_shared = 3 [default = true];
  optional float eps = 4 [default = 1e-10];
}
message PermuteParameter {
  // New axis order, a permutation of 0..N-1.
  repeated uint32 order = 1;
}
message PriorBoxParameter {
  enum CodeType {
    CORNER = 1;
    CENTER_SIZE = 2;
    CORNER_SIZE = 3;
  }
  repeated float min_size = 1;
  repeated float max_size = 2;
  repeated float aspect_ratio = 3;
  // Also use 1/r for every aspect ratio r.
  optional bool flip = 4 [default = true];
  optional bool clip = 5 [default = false];
  repeated float variance = 6;
  // Image size and step; taken from the bottoms when unset.
  optional uint32 img_size = 7;
  optional uint32 img_h = 8;
  optional uint32 img_w = 9;
  optional float step = 10;
  optional float step_h = 11;
  optional float step_w = 12;
  optional float offset = 13 [default = 0.5];
}
message VideoDataParameter {
  enum VideoType {
    WEBCAM = 0;
    VIDEO = 1;
  }
  optional VideoType video_type = 1 [default = WEBCAM];
  optional int32 device_id = 2 [default = 0];
  optional string video_file = 3;
  optional uint32 skip_frames = 4 [default = 0];
}
`;

/** LayerParameter fields of the fork: [name, number, type]. */
export const SSD_FORK_LAYER_FIELDS: ReadonlyArray<readonly [string, number, string]> = [
  ['annotated_data_param', 200, 'AnnotatedDataParameter'],
  ['multibox_loss_param', 201, 'MultiBoxLossParameter'],
  ['permute_param', 202, 'PermuteParameter'],
  ['prior_box_param', 203, 'PriorBoxParameter'],
  ['detection_output_param', 204, 'DetectionOutputParameter'],
  ['detection_evaluate_param', 205, 'DetectionEvaluateParameter'],
  ['norm_param', 206, 'NormalizeParameter'],
  ['video_data_param', 207, 'VideoDataParameter'],
];

/** TransformationParameter fields of the fork: [name, number, type]. */
export const SSD_FORK_TRANSFORM_FIELDS: ReadonlyArray<readonly [string, number, string]> = [
  ['resize_param', 8, 'ResizeParameter'],
  ['noise_param', 9, 'NoiseParameter'],
  ['emit_constraint', 10, 'EmitConstraint'],
  ['crop_h', 11, 'uint32'],
  ['crop_w', 12, 'uint32'],
  ['distort_param', 13, 'DistortionParameter'],
  ['expand_param', 14, 'ExpansionParameter'],
];

/** Adds the SSD fork's types and fields to the schema. Safe to call more than once. */
export function registerSsdForkSchema(): void {
  // Once registered, plugins may extend the fork's messages with fields of their own; comparing
  // the definitions again would then see a difference, so a second call does nothing.
  if (Object.prototype.hasOwnProperty.call(lookupType('LayerParameter').fields, 'prior_box_param')) return;
  registerProtoTypes(SSD_FORK_PROTO_TEXT);
  for (const [name, id, type] of SSD_FORK_LAYER_FIELDS) registerField({ message: 'LayerParameter', name, id, type });
  for (const [name, id, type] of SSD_FORK_TRANSFORM_FIELDS) {
    registerField({ message: 'TransformationParameter', name, id, type, ...(type === 'uint32' ? { defaultValue: 0 } : {}) });
  }
}
