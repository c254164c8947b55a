import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Input: a source of tops that the caller fills (deploy nets). `input_param.shape` gives
 * one shape per top, one shape for every top, or none (the caller reshapes the tops).
 * Forward and backward do nothing.
 */
export class InputLayer extends Layer {
  readonly type = 'Input';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1 };

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const shapes = this.param.input_param?.shape ?? [];
    this.check(
      shapes.length === 0 || shapes.length === 1 || shapes.length === top.length,
      () => `Must specify 'shape' once, once per top blob, or not at all: ${top.length} tops vs. ${shapes.length} shapes.`,
    );
    if (shapes.length === 0) return;
    top.forEach((t, i) => t.reshape(shapes[shapes.length === 1 ? 0 : i]!.dim.map(Number)));
  }

  /** The tops keep whatever shape the set-up or the caller gave them. */
  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  protected override forwardCpu(_bottom: Blob[], _top: Blob[]): void {}

  protected override backwardCpu(_top: Blob[], _propagateDown: boolean[], _bottom: Blob[]): void {}
}

export const inputLayerDef: LayerDef<InputLayer> = { type: 'Input', create: (p, ctx) => new InputLayer(p, ctx) };
