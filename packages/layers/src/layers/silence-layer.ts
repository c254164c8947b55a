import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Silence (Caffe's SilenceLayer): consumes its bottoms so that unused outputs are not reported
 * as net outputs. Produces no tops; backward zeroes the bottoms' diffs.
 */
export class SilenceLayer extends Layer {
  readonly type: string = 'Silence';
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 1, exactNumTopBlobs: 0 };

  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  protected override forwardCpu(_bottom: Blob[], _top: Blob[]): void {}

  protected override backwardCpu(_top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    bottom.forEach((b, i) => {
      if (propagateDown[i]) b.mutableCpuDiff().fill(0);
    });
  }
}

export const silenceLayerDef: LayerDef<SilenceLayer> = { type: 'Silence', create: (p, ctx) => new SilenceLayer(p, ctx) };
