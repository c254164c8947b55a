import type { LayerParameter } from '@caffe-ts/proto';
import { createMessage } from '@caffe-ts/proto';

/*
 * The fork parameter messages as they read once registerContribSchema() has run (snake_case,
 * defaults from the schema, enums as numbers, unset sub-messages null).
 */

export enum CodeType {
  CORNER = 1,
  CENTER_SIZE = 2,
  CORNER_SIZE = 3,
}

export interface PriorBoxParameter {
  min_size: number[];
  max_size: number[];
  aspect_ratio: number[];
  flip: boolean;
  clip: boolean;
  variance: number[];
  img_size: number;
  img_h: number;
  img_w: number;
  step: number;
  step_h: number;
  step_w: number;
  offset: number;
}

export interface NonMaximumSuppressionParameter {
  nms_threshold: number;
  top_k: number;
  eta: number;
}

/** Where the SSD fork's DetectionOutput writes its results during a test pass. */
export interface SaveOutputParameter {
  output_directory: string;
  output_name_prefix: string;
  /** 'VOC', 'COCO' or 'ILSVRC'. */
  output_format: string;
  label_map_file: string;
  name_size_file: string;
  num_test_image: number;
  resize_param: ResizeParameter | null;
}

export interface DetectionOutputParameter {
  num_classes: number;
  share_location: boolean;
  background_label_id: number;
  nms_param: NonMaximumSuppressionParameter | null;
  save_output_param: SaveOutputParameter | null;
  code_type: CodeType;
  variance_encoded_in_target: boolean;
  keep_top_k: number;
  confidence_threshold: number;
  /** OpenCV's field (text only, see TEXT_COMPAT_FIELDS): clamp decoded boxes to [0, 1] before NMS. */
  clip?: boolean;
}

export enum LocLossType {
  L2 = 0,
  SMOOTH_L1 = 1,
}

export enum ConfLossType {
  SOFTMAX = 0,
  LOGISTIC = 1,
}

export enum MatchType {
  BIPARTITE = 0,
  PER_PREDICTION = 1,
}

export enum MiningType {
  NONE = 0,
  MAX_NEGATIVE = 1,
  HARD_EXAMPLE = 2,
}

export interface MultiBoxLossParameter {
  loc_loss_type: LocLossType;
  conf_loss_type: ConfLossType;
  loc_weight: number;
  num_classes: number;
  share_location: boolean;
  match_type: MatchType;
  overlap_threshold: number;
  use_prior_for_matching: boolean;
  background_label_id: number;
  use_difficult_gt: boolean;
  do_neg_mining: boolean;
  neg_pos_ratio: number;
  neg_overlap: number;
  code_type: CodeType;
  encode_variance_in_target: boolean;
  map_object_to_agnostic: boolean;
  ignore_cross_boundary_bbox: boolean;
  bp_inside: boolean;
  mining_type: MiningType;
  nms_param: NonMaximumSuppressionParameter | null;
  sample_size: number;
  use_prior_for_nms: boolean;
}

export enum ResizeMode {
  WARP = 1,
  FIT_SMALL_SIZE = 2,
  FIT_LARGE_SIZE_AND_PAD = 3,
}

/** The fields of the fork's ResizeParameter that map boxes back to image pixels. */
export interface ResizeParameter {
  resize_mode: ResizeMode;
  height: number;
  width: number;
  height_scale: number;
  width_scale: number;
}

export interface DetectionEvaluateParameter {
  num_classes: number;
  background_label_id: number;
  overlap_threshold: number;
  evaluate_difficult_gt: boolean;
  name_size_file: string;
  resize_param: ResizeParameter | null;
}

export interface PermuteParameter {
  order: number[];
}

export interface NormalizeParameter {
  across_spatial: boolean;
  scale_filler: unknown;
  channel_shared: boolean;
  eps: number;
}

export enum BNMode {
  LEARN = 0,
  INFERENCE = 1,
}

export interface BNParameter {
  bn_mode: BNMode;
  scale_filler: unknown;
  shift_filler: unknown;
}

export interface UpsampleParameter {
  scale: number;
  scale_h: number;
  scale_w: number;
  pad_out_h: boolean;
  pad_out_w: boolean;
  upsample_h: number;
  upsample_w: number;
}

export interface InterpParameter {
  height: number;
  width: number;
  zoom_factor: number;
  shrink_factor: number;
  pad_beg: number;
  pad_end: number;
}

export interface ShuffleChannelParameter {
  group: number;
}

export interface ROIPoolingParameter {
  pooled_h: number;
  pooled_w: number;
  spatial_scale: number;
}

export interface SmoothL1LossParameter {
  sigma: number;
}

export interface PSROIPoolingParameter {
  spatial_scale: number;
  output_dim: number;
  group_size: number;
}

export interface ProposalParameter {
  feat_stride: number;
  base_size: number;
  min_size: number;
  ratio: number[];
  scale: number[];
  pre_nms_topn: number;
  post_nms_topn: number;
  nms_thresh: number;
}

/**
 * A fork parameter sub-message of a LayerParameter, or a fresh one (reading the schema's
 * defaults) when the prototxt leaves it out.
 */
export function forkParam<T>(param: LayerParameter, field: string, typeName: string): T {
  const value = (param as unknown as Record<string, unknown>)[field];
  return (value ?? createMessage<T>(typeName, {})) as T;
}
