import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * BatchReindex (Caffe's BatchReindexLayer): `top[k] = bottom[0][indices[k]]` along the first
 * axis, with the indices in the 1-D second bottom (integers in [0, N)). Items may repeat or be
 * left out, so backward accumulates each top item's diff into its source item. There is no
 * gradient for the indices.
 */
export class BatchReindexLayer extends Layer {
  readonly type: string = 'BatchReindex';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [data, idx] = [bottom[0]!, bottom[1]!];
    this.check(idx.numAxes === 1, () => `the indices (bottom 1) must be 1-D; got shape ${idx.shapeString()}`);
    this.check(data.numAxes >= 1, () => `bottom 0 must have at least one axis; got shape ${data.shapeString()}`);
    this.check(top[0] !== data, () => 'BatchReindex layer does not allow in-place computation.');
    top[0]!.reshape([idx.shape[0]!, ...data.shape.slice(1)]);
  }

  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex !== 1;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const indices = this.checkedIndices(bottom);
    const inner = bottom[0]!.count(1);
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    indices.forEach((src, k) => y.set(x.subarray(src * inner, (src + 1) * inner), k * inner));
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    this.check(!propagateDown[1], () => 'Cannot backprop to index.');
    if (!propagateDown[0]) return;
    const indices = this.checkedIndices(bottom);
    const inner = bottom[0]!.count(1);
    const dx = bottom[0]!.mutableCpuDiff();
    const dy = top[0]!.cpuDiff();
    dx.fill(0);
    indices.forEach((src, k) => {
      for (let j = 0; j < inner; j++) dx[src * inner + j] = dx[src * inner + j]! + dy[k * inner + j]!;
    });
  }

  private checkedIndices(bottom: Blob[]): number[] {
    const num = bottom[0]!.shape[0]!;
    const raw = bottom[1]!.cpuData();
    const out: number[] = [];
    for (let k = 0; k < raw.length; k++) {
      const v = raw[k]!;
      this.check(v >= 0, () => `Index specified for reindex layer was negative (index ${k} is ${v}).`);
      this.check(v < num, () => `Index specified for reindex layer was greater than batch size (index ${k} is ${v}, batch size ${num}).`);
      this.check(Number.isInteger(v), () => `Index specified for reindex layer is not an integer (index ${k} is ${v}).`);
      out.push(v);
    }
    return out;
  }
}

export const batchReindexLayerDef: LayerDef<BatchReindexLayer> = {
  type: 'BatchReindex',
  create: (p, ctx) => new BatchReindexLayer(p, ctx),
};
