import type { Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Tile (Caffe's TileLayer): repeats the bottom `tiles` times along `axis` (default 1): each
 * block of axes [axis, …) is copied `tiles` times in a row, so top dim = bottom dim · tiles.
 * Backward sums the copies' diffs.
 */
export class TileLayer extends Layer {
  readonly type: string = 'Tile';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  private tiles = 1;
  private outerDim = 0;
  private innerDim = 0;

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const tp = this.param.tile_param;
    const n = b.numAxes;
    const axisParam = tp?.axis ?? 1;
    this.check(axisParam >= -n && axisParam < n, () => `axis ${axisParam} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    const axis = b.canonicalAxisIndex(axisParam);
    this.check(tp !== null && hasField(tp, 'tiles'), () => 'Number of tiles must be specified');
    this.tiles = tp.tiles;
    this.check(this.tiles > 0, () => `Number of tiles must be positive (got ${this.tiles}).`);
    this.check(top[0] !== b, () => 'Tile layer does not allow in-place computation.');
    const shape = b.shape.slice();
    shape[axis] = shape[axis]! * this.tiles;
    top[0]!.reshape(shape);
    this.outerDim = b.count(0, axis);
    this.innerDim = b.count(axis);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const inner = this.innerDim;
    let o = 0;
    for (let i = 0; i < this.outerDim; i++) {
      const block = x.subarray(i * inner, (i + 1) * inner);
      for (let t = 0; t < this.tiles; t++, o += inner) y.set(block, o);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    const inner = this.innerDim;
    let o = 0;
    for (let i = 0; i < this.outerDim; i++) {
      const base = i * inner;
      dx.set(dy.subarray(o, o + inner), base);
      o += inner;
      for (let t = 1; t < this.tiles; t++, o += inner) {
        for (let j = 0; j < inner; j++) dx[base + j] = dx[base + j]! + dy[o + j]!;
      }
    }
  }
}

export const tileLayerDef: LayerDef<TileLayer> = { type: 'Tile', create: (p, ctx) => new TileLayer(p, ctx) };
