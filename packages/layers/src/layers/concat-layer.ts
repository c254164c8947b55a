import { copyFloats, type Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Concat: joins the bottoms along `axis` (default 1; legacy `concat_dim`, non-negative
 * only). Every other dimension must agree. Backward slices the top's diff back out.
 */
export class ConcatLayer extends Layer {
  readonly type = 'Concat';
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 1, exactNumTopBlobs: 1 };

  private concatAxis = 1;

  /** The (canonical) axis the bottoms are joined along, as of the last reshape. */
  get axis(): number {
    return this.concatAxis;
  }

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const cp = this.param.concat_param;
    this.check(
      !(cp && hasField(cp, 'axis') && hasField(cp, 'concat_dim')),
      () => 'Either axis or concat_dim should be specified; not both.',
    );
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    const cp = this.param.concat_param;
    const n = b0.numAxes;
    if (cp && hasField(cp, 'concat_dim')) {
      const dim = cp.concat_dim;
      this.check(dim >= 0 && dim < n, () => `concat_dim out of range (concat_dim ${dim}, bottom 0 shape ${b0.shapeString()}).`);
      this.concatAxis = dim;
    } else {
      const axis = cp?.axis ?? 1;
      this.check(axis >= -n && axis < n, () => `axis ${axis} out of range for bottom 0 shape ${b0.shapeString()}`);
      this.concatAxis = b0.canonicalAxisIndex(axis);
    }
    const a = this.concatAxis;
    const shape = b0.shape.slice();
    for (let i = 1; i < bottom.length; i++) {
      const b = bottom[i]!;
      this.check(b.numAxes === n, () => `All inputs must have the same #axes (bottom 0: ${b0.shapeString()}, bottom ${i}: ${b.shapeString()}).`);
      for (let j = 0; j < n; j++) {
        if (j === a) continue;
        this.check(
          b.shape[j] === shape[j],
          () => `All inputs must have the same shape, except at concat_axis (axis ${a}; bottom 0: ${b0.shapeString()}, bottom ${i}: ${b.shapeString()}).`,
        );
      }
      shape[a]! += b.shape[a]!;
    }
    const t = top[0]!;
    this.check(bottom.every((b) => b !== t), () => 'Concat layer does not allow in-place computation.');
    t.reshape(shape);
    // With one bottom the layer is the identity: share instead of copying.
    if (bottom.length === 1) {
      t.shareData(b0);
      t.shareDiff(b0);
    }
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    if (bottom.length === 1) return;
    const y = top[0]!.mutableCpuData();
    this.forEachSlab(bottom, top, (b, outer, slab, topSlab, offset) => {
      const x = b.cpuData();
      for (let o = 0; o < outer; o++) copyFloats(y, x.subarray(o * slab, (o + 1) * slab), o * topSlab + offset);
    });
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (bottom.length === 1) return;
    const dy = top[0]!.cpuDiff();
    this.forEachSlab(bottom, top, (b, outer, slab, topSlab, offset, i) => {
      if (!propagateDown[i]) return;
      const dx = b.mutableCpuDiff();
      for (let o = 0; o < outer; o++) copyFloats(dx, dy.subarray(o * topSlab + offset, o * topSlab + offset + slab), o * slab);
    });
  }

  /** Calls `fn` per bottom with its slab size and offset inside each top slab. */
  private forEachSlab(
    bottom: Blob[],
    top: Blob[],
    fn: (b: Blob, outer: number, slab: number, topSlab: number, offset: number, index: number) => void,
  ): void {
    const a = this.concatAxis;
    const t = top[0]!;
    const outer = t.count(0, a);
    const inner = t.count(a + 1);
    const topSlab = t.shape[a]! * inner;
    let offset = 0;
    bottom.forEach((b, i) => {
      const slab = b.shape[a]! * inner;
      fn(b, outer, slab, topSlab, offset, i);
      offset += slab;
    });
  }
}

export const concatLayerDef: LayerDef<ConcatLayer> = { type: 'Concat', create: (p, ctx) => new ConcatLayer(p, ctx) };
