import { copyFloats, type Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Split: one bottom feeds several consumers. Every top shares the bottom's data; backward
 * sums the tops' diffs into the bottom's. The net inserts these for fan-out.
 */
export class SplitLayer extends Layer {
  readonly type = 'Split';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, minTopBlobs: 1 };

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    top.forEach((t, i) => {
      // A top aliasing the bottom would have its diff summed into itself.
      this.check(t !== b, () => `Split Layer does not allow in-place computation (top ${i} is the bottom).`);
      t.reshapeLike(b);
      t.shareData(b);
    });
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    for (const t of top) t.shareData(bottom[0]!);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dx = bottom[0]!.mutableCpuDiff();
    copyFloats(dx, top[0]!.cpuDiff());
    for (let t = 1; t < top.length; t++) {
      const dy = top[t]!.cpuDiff();
      for (let i = 0; i < dx.length; i++) dx[i]! += dy[i]!;
    }
  }
}

export const splitLayerDef: LayerDef<SplitLayer> = { type: 'Split', create: (p, ctx) => new SplitLayer(p, ctx) };
