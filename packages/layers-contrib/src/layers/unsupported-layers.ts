import { LayerError, type LayerDef } from '@caffe-ts/layers';

/**
 * The SSD fork's training and evaluation layers this package does not implement, with why. They
 * are registered so that a net naming them fails at construction with this explanation rather
 * than "Unknown layer type"; deploy nets (what `caffe detect` runs) never contain them.
 */
export const UNSUPPORTED_FORK_LAYER_TYPES: Readonly<Record<string, string>> = {
  AnnotatedData: 'reads AnnotatedDatum LMDBs with the fork\'s sampling and distortion pipeline',
  DetectionEvaluate: 'scores detections against ground truth for mAP during SSD training',
  VideoData: 'reads frames from a camera or video file',
};

export const unsupportedForkLayerDefs: readonly LayerDef[] = Object.entries(UNSUPPORTED_FORK_LAYER_TYPES).map(([type, what]) => ({
  type,
  create: (param) => {
    throw new LayerError(
      `${type} layer '${param.name}': not supported by @caffe-ts/layers-contrib (the SSD fork's ${type} ${what}); ` +
        'SSD models run for inference only: use the deploy prototxt (e.g. with `caffe detect`).',
    );
  },
}));
