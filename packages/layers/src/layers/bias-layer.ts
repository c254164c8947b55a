import { type Blob, copyFloats, fillBlob } from '@caffe-ts/blob';
import { createMessage, type BiasParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Bias (Caffe's BiasLayer): top = bottom[0] + b, with b broadcast over the axes of bottom[0]
 * outside [axis, axis + b.numAxes). b is bottom[1] when given, otherwise a learned blob of
 * shape bottom[0].shape[axis .. axis + num_axes) (num_axes −1: to the last axis), filled with
 * bias_param.filler (default constant 0, so the layer starts as the identity).
 * A scalar b (no axes) broadcasts over everything whatever the axis. In place is allowed.
 */
export class BiasLayer extends Layer {
  readonly type: string = 'Bias';
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 1, maxBottomBlobs: 2, exactNumTopBlobs: 1 };

  /** Product of bottom[0]'s axes before the bias's, the bias's count, and product of those after. */
  outerDim = 0;
  biasDim = 0;
  innerDim = 0;

  protected get biasParam(): BiasParameter {
    return this.param.bias_param ?? createMessage<BiasParameter>('BiasParameter', {});
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    if (bottom.length === 1 && this.blobs.length === 0) {
      const bp = this.biasParam;
      const b0 = bottom[0]!;
      const axis = this.canonicalAxis(b0, bp.axis);
      const numAxes = bp.num_axes;
      this.check(numAxes >= -1, () => `num_axes must be non-negative, or -1 to extend to the end of bottom[0] (got ${numAxes})`);
      if (numAxes >= 0) {
        this.check(
          b0.numAxes >= axis + numAxes,
          () =>
            `bias blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis = ${axis} ` +
            `(num_axes ${numAxes}, bottom[0] shape ${b0.shapeString()})`,
        );
      }
      const shape = b0.shape.slice(axis, numAxes === -1 ? undefined : axis + numAxes);
      const bias = this.newBlob(shape);
      fillBlob(bias, bp.filler, this.rng);
      this.blobs = [bias];
    }
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    const bias = bottom.length > 1 ? bottom[1]! : this.blobs[0]!;
    // A scalar bias is the same for any axis; 0 makes outerDim 1.
    const axis = bias.numAxes === 0 ? 0 : this.canonicalAxis(b0, this.biasParam.axis);
    this.check(
      b0.numAxes >= axis + bias.numAxes,
      () =>
        `bias blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis = ${axis} ` +
        `(bias shape ${bias.shapeString()}, bottom[0] shape ${b0.shapeString()})`,
    );
    for (let i = 0; i < bias.numAxes; i++) {
      this.check(
        b0.shape[axis + i] === bias.shape[i],
        () =>
          `dimension mismatch between bottom[0]->shape(${axis + i}) and bias->shape(${i}) ` +
          `(${b0.shape[axis + i]} vs ${bias.shape[i]}; bottom[0] ${b0.shapeString()}, bias ${bias.shapeString()})`,
      );
    }
    this.outerDim = b0.count(0, axis);
    this.biasDim = bias.count();
    this.innerDim = b0.count(axis + bias.numAxes);
    if (top[0] !== b0) top[0]!.reshapeLike(b0);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const b = (bottom.length > 1 ? bottom[1]! : this.blobs[0]!).cpuData();
    const y = top[0]!.mutableCpuData();
    if (top[0] !== bottom[0]) copyFloats(y, bottom[0]!.cpuData());
    const { outerDim, biasDim, innerDim } = this;
    let k = 0;
    for (let n = 0; n < outerDim; n++) {
      for (let d = 0; d < biasDim; d++) {
        const v = b[d]!;
        for (let i = 0; i < innerDim; i++, k++) y[k] = y[k]! + v;
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const dy = top[0]!.cpuDiff();
    // In place the bottom diff already is the top diff.
    if (propagateDown[0] && bottom[0] !== top[0]) copyFloats(bottom[0]!.mutableCpuDiff(), dy);
    const learned = bottom.length === 1;
    if (learned ? (this.paramPropagateDown[0] ?? true) : propagateDown[1]) {
      const db = (learned ? this.blobs[0]! : bottom[1]!).mutableCpuDiff();
      // A learned bias accumulates its diff; a bottom's diff is overwritten.
      if (!learned) db.fill(0);
      const { outerDim, biasDim, innerDim } = this;
      let k = 0;
      for (let n = 0; n < outerDim; n++) {
        for (let d = 0; d < biasDim; d++) {
          let s = 0;
          for (let i = 0; i < innerDim; i++, k++) s += dy[k]!;
          db[d] = db[d]! + s;
        }
      }
    }
  }

  protected canonicalAxis(b: Blob, axis: number): number {
    const n = b.numAxes;
    this.check(axis >= -n && axis < n, () => `axis ${axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    return axis < 0 ? axis + n : axis;
  }
}

export const biasLayerDef: LayerDef<BiasLayer> = { type: 'Bias', create: (p, ctx) => new BiasLayer(p, ctx) };
