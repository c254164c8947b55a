import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Reshape (Caffe's ReshapeLayer): a view of the bottom with a new shape. `reshape_param.shape`
 * replaces the bottom axes [axis, axis + num_axes) (num_axes −1: to the end; a negative axis
 * counts from the end, −1 meaning "after the last axis"). In the new dims, 0 copies the bottom
 * dim at the same position and one −1 is inferred so the count is unchanged. The top shares
 * the bottom's data and diff, so nothing is copied.
 */
export class ReshapeLayer extends Layer {
  readonly type: string = 'Reshape';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  /** Index (within the new dims) of the −1 dim, or −1 when none. */
  private inferredAxis = -1;
  /** Indices (within the new dims) of the 0 dims, copied from the bottom. */
  private copyAxes: number[] = [];
  /** Product of the explicit (positive) new dims. */
  private constantCount = 1;
  private dims: number[] = [];

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    this.check(top[0] !== bottom[0], () => 'Reshape Layer does not allow in-place computation.');
    this.dims = (this.param.reshape_param?.shape?.dim ?? []).map(Number);
    this.inferredAxis = -1;
    this.copyAxes = [];
    this.constantCount = 1;
    this.dims.forEach((d, i) => {
      if (d === 0) this.copyAxes.push(i);
      else if (d === -1) {
        this.check(
          this.inferredAxis === -1,
          () => 'new shape contains multiple -1 dims; at most a single (1) value of -1 may be specified',
        );
        this.inferredAxis = i;
      } else {
        this.check(d > 0, () => `new shape dim ${i} is ${d}; dims must be positive, 0 (copy) or -1 (infer)`);
        this.constantCount *= d;
      }
    });
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const rp = this.param.reshape_param;
    const inputAxis = rp?.axis ?? 0;
    const n = b.numAxes;
    const start = inputAxis >= 0 ? inputAxis : n + inputAxis + 1;
    this.check(start >= 0, () => `axis ${inputAxis} out of range`);
    this.check(start <= n, () => `axis ${inputAxis} out of range for ${n}-D input blob`);
    const numAxes = rp?.num_axes ?? -1;
    this.check(numAxes >= -1, () => `num_axes must be >= 0, or -1 for all (got ${numAxes})`);
    const end = numAxes === -1 ? n : start + numAxes;
    this.check(end <= n, () => `end_axis = axis + num_axes is out of range (axis ${inputAxis}, num_axes ${numAxes}, bottom ${b.shapeString()})`);
    const shape = [...b.shape.slice(0, start), ...this.dims, ...b.shape.slice(end)];
    for (const i of this.copyAxes) {
      this.check(
        start + i < n,
        () => `new shape contains a 0, but there was no corresponding bottom axis to copy (dim ${i}, bottom ${b.shapeString()})`,
      );
      shape[start + i] = b.shape[start + i]!;
    }
    if (this.inferredAxis >= 0) {
      let explicit = this.constantCount * b.count(0, start) * b.count(end);
      for (const i of this.copyAxes) explicit *= shape[start + i]!;
      this.check(
        explicit > 0 && b.count() % explicit === 0,
        () => `bottom count (${b.count()}) must be divisible by the product of the specified dimensions (${explicit})`,
      );
      shape[start + this.inferredAxis] = b.count() / explicit;
    }
    const count = shape.reduce((a, d) => a * d, 1);
    this.check(
      count === b.count(),
      () => `output count must match input count (top shape ${shape.join(' ')} (${count}), bottom ${b.shapeString()})`,
    );
    const t = top[0]!;
    t.reshape(shape);
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

export const reshapeLayerDef: LayerDef<ReshapeLayer> = { type: 'Reshape', create: (p, ctx) => new ReshapeLayer(p, ctx) };
