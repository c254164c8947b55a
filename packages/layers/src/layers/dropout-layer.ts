import { copyFloats, type Blob, type FloatArray } from '@caffe-ts/blob';
import { createMessage, Phase, type DropoutParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Dropout (Caffe's DropoutLayer), inverted: in TRAIN each element is kept with probability
 * 1 − dropout_ratio and scaled by 1/(1 − dropout_ratio), so TEST is the identity. The mask is
 * drawn from the layer's rng (`this.rng`) on every forward and reused by backward. May run
 * in place (top === bottom).
 *
 * caffe-fast-rcnn's `scale_train: false` (DropoutParameter field 2, which @caffe-ts/layers-contrib
 * adds to the schema; the ZF Faster R-CNN prototxts set it) moves the scaling to TEST: TRAIN only
 * masks, and TEST multiplies by 1 − dropout_ratio.
 */
export class DropoutLayer extends Layer {
  readonly type: string = 'Dropout';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  /** Probability of dropping an element. */
  ratio = 0.5;
  /** The TRAIN multiplier of kept elements: 1 / (1 − ratio), or 1 with scale_train false. */
  scale = 2;
  /** The TEST multiplier: 1, or 1 − ratio with scale_train false. */
  testScale = 1;
  /** 1 where the element was kept in the last TRAIN forward. */
  mask = new Uint8Array(0);

  private get dropoutParam(): DropoutParameter {
    return this.param.dropout_param ?? createMessage<DropoutParameter>('DropoutParameter', {});
  }

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    this.ratio = this.dropoutParam.dropout_ratio;
    this.check(this.ratio >= 0 && this.ratio < 1, () => `dropout_ratio must be in [0, 1) (got ${this.ratio})`);
    const scaleTrain = (this.dropoutParam as { scale_train?: boolean }).scale_train ?? true;
    this.scale = scaleTrain ? 1 / (1 - this.ratio) : 1;
    this.testScale = scaleTrain ? 1 : 1 - this.ratio;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    if (top[0] !== bottom[0]) top[0]!.reshape(bottom[0]!.shape);
    const n = bottom[0]!.count();
    if (this.mask.length !== n) this.mask = new Uint8Array(n);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    if (this.phase === Phase.TRAIN) {
      const keep = 1 - this.ratio;
      for (let i = 0; i < x.length; i++) {
        const m = this.rng.bernoulli(keep) ? 1 : 0;
        this.mask[i] = m;
        y[i] = x[i]! * m * this.scale;
      }
    } else if (this.testScale !== 1) {
      for (let i = 0; i < x.length; i++) y[i] = x[i]! * this.testScale;
    } else if (!sameMemory(x, y)) {
      copyFloats(y, x);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    if (this.phase === Phase.TRAIN) {
      for (let i = 0; i < dy.length; i++) dx[i] = dy[i]! * this.mask[i]! * this.scale;
    } else if (this.testScale !== 1) {
      for (let i = 0; i < dy.length; i++) dx[i] = dy[i]! * this.testScale;
    } else if (!sameMemory(dx, dy)) {
      copyFloats(dx, dy);
    }
  }
}

/** In-place use hands the same memory as top and bottom; copying would be a no-op. */
function sameMemory(a: FloatArray, b: FloatArray): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset;
}

export const dropoutLayerDef: LayerDef<DropoutLayer> = {
  type: 'Dropout',
  create: (param, context) => new DropoutLayer(param, context),
};
