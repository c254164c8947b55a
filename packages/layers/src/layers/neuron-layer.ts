import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';

/**
 * Base of element-wise layers (Caffe's NeuronLayer): one bottom, one top of the same shape.
 * They may run in place (top === bottom), so each backward must be computable from the
 * data left after forward (the top's data, or a bottom sign the forward preserved).
 */
export abstract class NeuronLayer extends Layer {
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  override reshape(bottom: Blob[], top: Blob[]): void {
    if (top[0] !== bottom[0]) top[0]!.reshapeLike(bottom[0]!);
  }
}
