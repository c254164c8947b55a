import { LayerError, type LayerDef } from '@caffe-ts/layers';

/**
 * The SSD fork's layers this package does not implement, with why. They are registered so that a
 * net naming them fails at construction with this explanation rather than "Unknown layer type".
 * (AnnotatedData, the fork's data layer, is @caffe-ts/io-leveldb's.)
 */
export const UNSUPPORTED_FORK_LAYER_TYPES: Readonly<Record<string, string>> = {
  VideoData: 'reads frames from a camera or video file',
};

export const unsupportedForkLayerDefs: readonly LayerDef[] = Object.entries(UNSUPPORTED_FORK_LAYER_TYPES).map(([type, what]) => ({
  type,
  create: (param) => {
    throw new LayerError(
      `${type} layer '${param.name}': not supported by @caffe-ts/layers-contrib (the SSD fork's ${type} ${what}); ` +
        'feed the net from another data layer.',
    );
  },
}));
