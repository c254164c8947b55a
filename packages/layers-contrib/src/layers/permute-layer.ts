import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { forkParam, type PermuteParameter } from '../fork-types.js';

/**
 * Permute (SSD fork): reorder a blob's axes. `order` lists the new axes (a prefix is enough:
 * the axes it leaves out follow in their original order), e.g. order 0 2 3 1 turns NCHW into
 * NHWC. Backward moves the diff back.
 */
export class PermuteLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
  readonly type = 'Permute';
  order: number[] = [];
  private needPermute = false;

  override layerSetUp(bottom: Blob[]): void {
    const p = forkParam<PermuteParameter>(this.param, 'permute_param', 'PermuteParameter');
    const numAxes = bottom[0]!.numAxes;
    const order: number[] = [];
    for (const o of p.order) {
      this.check(o < numAxes, () => `order ${o} must be less than the number of axes of the input (${numAxes}).`);
      this.check(!order.includes(o), () => `there are duplicate orders (${p.order.join(' ')}).`);
      order.push(o);
    }
    for (let i = 0; i < numAxes; i++) if (!order.includes(i)) order.push(i);
    this.order = order;
    this.needPermute = order.some((o, i) => o !== i);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes === this.order.length, () => `the input must keep ${this.order.length} axes (got ${b.shapeString()}).`);
    top[0]!.reshape(this.order.map((o) => b.shape[o]!));
  }

  /** For each top element, the index of its bottom element. */
  private *pairs(bottom: Blob): Generator<[number, number]> {
    const shape = bottom.shape;
    const n = shape.length;
    const strides = new Array<number>(n);
    let s = 1;
    for (let a = n - 1; a >= 0; a--) {
      strides[a] = s;
      s *= shape[a]!;
    }
    const topShape = this.order.map((o) => shape[o]!);
    const topStrides = this.order.map((o) => strides[o]!);
    const count = bottom.count();
    const idx = new Array<number>(n).fill(0);
    let src = 0;
    for (let t = 0; t < count; t++) {
      yield [t, src];
      // Odometer over the top's axes, tracking the bottom offset.
      for (let a = n - 1; a >= 0; a--) {
        idx[a]!++;
        src += topStrides[a]!;
        if (idx[a]! < topShape[a]!) break;
        src -= topStrides[a]! * topShape[a]!;
        idx[a] = 0;
      }
    }
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    if (!this.needPermute) {
      y.set(x);
      return;
    }
    for (const [t, s] of this.pairs(bottom[0]!)) y[t] = x[s]!;
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    if (!this.needPermute) {
      dx.set(dy);
      return;
    }
    for (const [t, s] of this.pairs(bottom[0]!)) dx[s] = dy[t]!;
  }
}

export const permuteLayerDef: LayerDef<PermuteLayer> = { type: 'Permute', create: (p, ctx) => new PermuteLayer(p, ctx) };
