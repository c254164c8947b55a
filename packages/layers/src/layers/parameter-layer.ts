import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Parameter (Caffe's ParameterLayer): exposes one learnable blob of shape
 * `parameter_param.shape` as its top. The top shares the blob's data and diff, so whatever
 * gradient reaches the top is the parameter's gradient. The blob starts at zero (Caffe has
 * no filler here); its values come from trained weights or the solver.
 */
export class ParameterLayer extends Layer {
  readonly type: string = 'Parameter';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, exactNumTopBlobs: 1 };

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const shape = (this.param.parameter_param?.shape?.dim ?? []).map(Number);
    for (const [i, d] of shape.entries()) {
      this.check(Number.isInteger(d) && d >= 0, () => `parameter_param.shape dim ${i} must be a non-negative integer (got ${d})`);
    }
    if (this.blobs.length > 0) {
      // Weights were supplied (loaded from a model), as Caffe's "Skipping parameter initialization".
      this.check(this.blobs.length === 1, () => `Incorrect number of weight blobs (expected 1, got ${this.blobs.length}).`);
      const w = this.blobs[0]!;
      this.check(
        w.shapeEquals(shape),
        () => `Incorrect weight shape: expected shape ${shape.join(' ')} (${shape.reduce((a, d) => a * d, 1)}); instead, shape was ${w.shapeString()}`,
      );
    } else {
      this.blobs = [this.newBlob(shape)];
    }
    while (this.paramPropagateDown.length < 1) this.paramPropagateDown.push(true);
    top[0]!.reshape(shape);
  }

  override reshape(_bottom: Blob[], top: Blob[]): void {
    const t = top[0]!;
    t.reshape(this.blobs[0]!.shape);
    t.shareData(this.blobs[0]!);
    t.shareDiff(this.blobs[0]!);
  }

  protected override forwardCpu(_bottom: Blob[], top: Blob[]): void {
    top[0]!.shareData(this.blobs[0]!);
    top[0]!.shareDiff(this.blobs[0]!);
  }

  /** The top's diff is the parameter's diff already. */
  protected override backwardCpu(_top: Blob[], _propagateDown: boolean[], _bottom: Blob[]): void {}
}

export const parameterLayerDef: LayerDef<ParameterLayer> = { type: 'Parameter', create: (p, ctx) => new ParameterLayer(p, ctx) };
