import type { Blob } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * ArgMax (Caffe's ArgMaxLayer): the indices of the `top_k` (default 1) largest values.
 * - With `axis`: along that axis; the top is the bottom's shape with that axis set to top_k
 *   and holds the indices, or the values when `out_max_val`.
 * - Without: over all of each item's values (axes 1…); the top is N × 1 × top_k (× 1…, at
 *   least 3 axes), or N × 2 × top_k holding indices then values when `out_max_val`.
 * Ties go to the larger index (Caffe sorts (value, index) pairs descending). No backward.
 */
export class ArgMaxLayer extends Layer {
  readonly type: string = 'ArgMax';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  private outMaxVal = false;
  private topK = 1;
  private hasAxis = false;
  private axis = 0;

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const ap = this.param.argmax_param;
    const b = bottom[0]!;
    this.outMaxVal = ap?.out_max_val ?? false;
    this.topK = ap?.top_k ?? 1;
    this.hasAxis = ap !== null && hasField(ap, 'axis');
    this.check(this.topK >= 1, () => `top k must not be less than 1 (got ${this.topK}).`);
    if (this.hasAxis) {
      const n = b.numAxes;
      const a = ap!.axis;
      this.check(a >= -n && a < n, () => `axis ${a} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
      this.axis = b.canonicalAxisIndex(a);
      this.check(
        this.topK <= b.shape[this.axis]!,
        () => `top_k must be less than or equal to the dimension of the axis (top_k ${this.topK}, axis ${this.axis} of ${b.shapeString()}).`,
      );
    } else {
      this.check(
        this.topK <= b.count(1),
        () =>
          `top_k must be less than or equal to the dimension of the flattened bottom blob per instance (top_k ${this.topK}, bottom ${b.shapeString()}).`,
      );
    }
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    let shape: number[];
    if (this.hasAxis) {
      shape = b.shape.slice();
      shape[this.axis] = this.topK;
    } else {
      shape = new Array<number>(Math.max(b.numAxes, 3)).fill(1);
      shape[0] = b.shape[0]!;
      shape[2] = this.topK;
      if (this.outMaxVal) shape[1] = 2;
    }
    this.check(top[0] !== b, () => 'ArgMax layer does not allow in-place computation.');
    top[0]!.reshape(shape);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const x = b.cpuData();
    const y = top[0]!.mutableCpuData();
    const dim = this.hasAxis ? b.shape[this.axis]! : b.count(1);
    // Stride between consecutive elements along the reduced axis.
    const axisDist = this.hasAxis ? b.count(this.axis) / dim : 1;
    const num = dim === 0 ? 0 : b.count() / dim;
    const K = this.topK;
    const order = new Int32Array(dim);
    const vals = new Float64Array(dim);
    for (let i = 0; i < num; i++) {
      const outer = Math.floor(i / axisDist);
      const inner = i % axisDist;
      for (let j = 0; j < dim; j++) {
        vals[j] = x[(outer * dim + j) * axisDist + inner]!;
        order[j] = j;
      }
      // Partial selection of the K largest (value, index) pairs, largest first.
      for (let j = 0; j < K; j++) {
        let best = j;
        for (let m = j + 1; m < dim; m++) {
          const a = order[m]!;
          const c = order[best]!;
          if (vals[a]! > vals[c]! || (vals[a] === vals[c] && a > c)) best = m;
        }
        const tmp = order[j]!;
        order[j] = order[best]!;
        order[best] = tmp;
      }
      for (let j = 0; j < K; j++) {
        const idx = order[j]!;
        if (this.outMaxVal && !this.hasAxis) {
          y[2 * i * K + j] = idx;
          y[2 * i * K + K + j] = vals[idx]!;
        } else {
          y[(outer * K + j) * axisDist + inner] = this.outMaxVal ? vals[idx]! : idx;
        }
      }
    }
  }
}

export const argMaxLayerDef: LayerDef<ArgMaxLayer> = { type: 'ArgMax', create: (p, ctx) => new ArgMaxLayer(p, ctx) };
