import { copyFloats, type Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Slice (Caffe's SliceLayer): cuts the bottom along `axis` (default 1; legacy `slice_dim`,
 * non-negative only) into the tops. `slice_point` gives the top−1 cut positions (strictly
 * increasing); without it the axis is split evenly. With one top the layer is a view.
 * Backward copies each top's diff back into its slab of the bottom diff.
 */
export class SliceLayer extends Layer {
  readonly type: string = 'Slice';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, minTopBlobs: 1 };

  private sliceAxis = 1;
  private slicePoints: number[] = [];
  /** Product of the axes before / after the slice axis. */
  private numSlices = 0;
  private sliceSize = 0;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const sp = this.param.slice_param;
    this.check(
      !(sp && hasField(sp, 'axis') && hasField(sp, 'slice_dim')),
      () => 'Either axis or slice_dim should be specified; not both.',
    );
    this.slicePoints = sp ? sp.slice_point.slice() : [];
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const sp = this.param.slice_param;
    const n = b.numAxes;
    if (sp && hasField(sp, 'slice_dim')) {
      this.sliceAxis = sp.slice_dim;
      this.check(this.sliceAxis < n, () => `slice_dim out of range (slice_dim ${this.sliceAxis}, bottom ${b.shapeString()}).`);
    } else {
      const axis = sp?.axis ?? 1;
      this.check(axis >= -n && axis < n, () => `axis ${axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
      this.sliceAxis = b.canonicalAxisIndex(axis);
    }
    const a = this.sliceAxis;
    const dim = b.shape[a]!;
    this.numSlices = b.count(0, a);
    this.sliceSize = b.count(a + 1);
    const sizes: number[] = [];
    if (this.slicePoints.length > 0) {
      this.check(
        this.slicePoints.length === top.length - 1,
        () => `expected ${top.length - 1} slice_point value(s) for ${top.length} tops (got ${this.slicePoints.length})`,
      );
      this.check(top.length <= dim, () => `more tops (${top.length}) than slice axis ${a} has elements (bottom ${b.shapeString()})`);
      let prev = 0;
      for (const p of this.slicePoints) {
        this.check(p > prev, () => `slice_point values must be positive and strictly increasing (got ${this.slicePoints.join(', ')})`);
        sizes.push(p - prev);
        prev = p;
      }
      this.check(prev <= dim, () => `slice_point ${prev} is past the end of slice axis ${a} (size ${dim}; bottom ${b.shapeString()})`);
      sizes.push(dim - prev);
    } else {
      this.check(
        dim % top.length === 0,
        () => `Number of top blobs (${top.length}) should evenly divide input slice axis (${dim})`,
      );
      for (let i = 0; i < top.length; i++) sizes.push(dim / top.length);
    }
    const shape = b.shape.slice();
    top.forEach((t, i) => {
      this.check(top.length === 1 || t !== b, () => 'Slice layer does not allow in-place computation.');
      shape[a] = sizes[i]!;
      t.reshape(shape);
    });
    if (top.length === 1) {
      top[0]!.shareData(b);
      top[0]!.shareDiff(b);
    }
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    if (top.length === 1) return;
    const x = bottom[0]!.cpuData();
    this.forEachSlab(bottom, top, (t, slab, bottomSlab, offset) => {
      const y = t.mutableCpuData();
      for (let s = 0; s < this.numSlices; s++) copyFloats(y, x.subarray(s * bottomSlab + offset, s * bottomSlab + offset + slab), s * slab);
    });
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0] || top.length === 1) return;
    const dx = bottom[0]!.mutableCpuDiff();
    this.forEachSlab(bottom, top, (t, slab, bottomSlab, offset) => {
      const dy = t.cpuDiff();
      for (let s = 0; s < this.numSlices; s++) copyFloats(dx, dy.subarray(s * slab, (s + 1) * slab), s * bottomSlab + offset);
    });
  }

  /** Calls `fn` per top with its slab size and its offset inside each bottom slab. */
  private forEachSlab(bottom: Blob[], top: Blob[], fn: (t: Blob, slab: number, bottomSlab: number, offset: number) => void): void {
    const a = this.sliceAxis;
    const bottomSlab = bottom[0]!.shape[a]! * this.sliceSize;
    let offset = 0;
    for (const t of top) {
      const slab = t.shape[a]! * this.sliceSize;
      fn(t, slab, bottomSlab, offset);
      offset += slab;
    }
  }
}

export const sliceLayerDef: LayerDef<SliceLayer> = { type: 'Slice', create: (p, ctx) => new SliceLayer(p, ctx) };
