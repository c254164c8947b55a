import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Flatten: merges axes `axis`…`end_axis` (defaults 1 and −1) into one, e.g. N×C×H×W →
 * N×(C·H·W). A view: the top shares the bottom's data and diff.
 */
export class FlattenLayer extends Layer {
  readonly type = 'Flatten';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [b, t] = [bottom[0]!, top[0]!];
    this.check(t !== b, () => 'Flatten Layer does not allow in-place computation.');
    const fp = this.param.flatten_param;
    const axis = fp?.axis ?? 1;
    const endAxis = fp?.end_axis ?? -1;
    const n = b.numAxes;
    const inRange = (a: number) => a >= -n && a < n;
    this.check(inRange(axis) && inRange(endAxis), () => `axis ${axis} / end_axis ${endAxis} out of range for bottom shape ${b.shapeString()}`);
    const start = b.canonicalAxisIndex(axis);
    const end = b.canonicalAxisIndex(endAxis);
    this.check(start <= end, () => `end_axis ${endAxis} comes before axis ${axis} for bottom shape ${b.shapeString()}`);
    t.reshape([...b.shape.slice(0, start), b.count(start, end + 1), ...b.shape.slice(end + 1)]);
    t.shareData(b);
    t.shareDiff(b);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    top[0]!.shareData(bottom[0]!);
  }

  protected override backwardCpu(top: Blob[], _propagateDown: boolean[], bottom: Blob[]): void {
    bottom[0]!.shareDiff(top[0]!);
  }
}

export const flattenLayerDef: LayerDef<FlattenLayer> = { type: 'Flatten', create: (p, ctx) => new FlattenLayer(p, ctx) };
