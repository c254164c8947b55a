import type { Blob, FloatArray } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Crop (Caffe's CropLayer): crops bottom 0 to the shape of bottom 1 on every axis from `axis`
 * (default 2) on; earlier axes are kept whole. `offset` gives the start of the crop: none (0),
 * one for every cropped axis, or one per cropped axis. Backward writes the top diff into the
 * cropped window of bottom 0's diff (zeros elsewhere); bottom 1 only supplies a shape.
 */
export class CropLayer extends Layer {
  readonly type: string = 'Crop';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };

  /** Crop start per axis of bottom 0 (0 for uncropped axes). */
  offsets: number[] = [];

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const b = bottom[0]!;
    const start = this.startAxis(b);
    const offsets = this.param.crop_param?.offset ?? [];
    this.check(
      offsets.length <= 1 || start + offsets.length === b.numAxes,
      () =>
        `number of offset values specified must be equal to the number of dimensions following axis (${offsets.length} offsets, axis ${start}, bottom ${b.shapeString()}).`,
    );
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [b, ref] = [bottom[0]!, bottom[1]!];
    const start = this.startAxis(b);
    const given = this.param.crop_param?.offset ?? [];
    this.check(
      ref.numAxes === b.numAxes,
      () => `bottom 1 must have as many axes as bottom 0 (bottom 0 ${b.shapeString()}, bottom 1 ${ref.shapeString()})`,
    );
    const shape = b.shape.slice();
    this.offsets = [];
    for (let i = 0; i < b.numAxes; i++) {
      let offset = 0;
      if (i >= start) {
        shape[i] = ref.shape[i]!;
        if (given.length === 1) offset = given[0]!;
        else if (given.length > 1) offset = given[i - start]!;
        this.check(
          b.shape[i]! - offset >= ref.shape[i]!,
          () => `the crop for dimension ${i} is out-of-bounds with size ${ref.shape[i]} and offset ${offset} (bottom 0 ${b.shapeString()})`,
        );
      }
      this.offsets.push(offset);
    }
    this.check(top[0] !== b, () => 'Crop layer does not allow in-place computation.');
    top[0]!.reshape(shape);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    this.copyRows(bottom[0]!, top[0]!, bottom[0]!.cpuData(), top[0]!.mutableCpuData(), true);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[0]) {
      const dx = bottom[0]!.mutableCpuDiff();
      dx.fill(0);
      this.copyRows(bottom[0]!, top[0]!, top[0]!.cpuDiff(), dx, false);
    }
    // The reference blob's values do not affect the output.
    if (propagateDown[1]) bottom[1]!.mutableCpuDiff().fill(0);
  }

  /**
   * Copy every innermost row of the top from/to the bottom window: forward reads the bottom
   * into the top, backward the top into the bottom.
   */
  private copyRows(b: Blob, t: Blob, src: FloatArray, dst: FloatArray, forward: boolean): void {
    const n = t.numAxes;
    if (t.count() === 0) return;
    if (n === 0) {
      dst[0] = src[0]!;
      return;
    }
    const rowLen = t.shape[n - 1]!;
    const rows = t.count() / rowLen;
    const idx = new Array<number>(n).fill(0);
    for (let r = 0; r < rows; r++) {
      // Flat start of this row in the top and in the bottom window.
      let tOff = 0;
      let bOff = 0;
      for (let a = 0; a < n; a++) {
        const i = a === n - 1 ? 0 : idx[a]!;
        tOff = tOff * t.shape[a]! + i;
        bOff = bOff * b.shape[a]! + i + this.offsets[a]!;
      }
      if (forward) dst.set(src.subarray(bOff, bOff + rowLen), tOff);
      else dst.set(src.subarray(tOff, tOff + rowLen), bOff);
      // Advance the row index (all axes but the last), last-but-one fastest.
      for (let a = n - 2; a >= 0; a--) {
        if (++idx[a]! < t.shape[a]!) break;
        idx[a] = 0;
      }
    }
  }

  private startAxis(b: Blob): number {
    const axis = this.param.crop_param?.axis ?? 2;
    const n = b.numAxes;
    this.check(axis >= -n && axis < n, () => `crop axis ${axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    return b.canonicalAxisIndex(axis);
  }
}

export const cropLayerDef: LayerDef<CropLayer> = { type: 'Crop', create: (p, ctx) => new CropLayer(p, ctx) };
