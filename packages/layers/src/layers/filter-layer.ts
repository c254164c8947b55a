import type { Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Filter (Caffe's FilterLayer): keeps the items (along the first axis) whose selector is
 * nonzero. The last bottom is the selector (N × 1 × 1…); each other bottom i gives top i with
 * only the selected items, in order. As in Caffe, the very first reshape (at set-up, before any
 * selector data exists) sizes the tops for all N items; later ones for the selected count.
 * Backward copies top diffs to the selected items and zeros the rest; the selector gets none.
 */
export class FilterLayer extends Layer {
  readonly type: string = 'Filter';
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 2, minTopBlobs: 1 };

  private indicesToForward: number[] = [];
  private firstReshape = true;
  private selectorIndex = -1;

  override layerSetUp(bottom: Blob[], top: Blob[]): void {
    this.check(
      top.length === bottom.length - 1,
      () => `needs one top per data bottom (the last bottom is the selector): ${bottom.length} bottoms, ${top.length} tops`,
    );
    this.firstReshape = true;
    this.selectorIndex = bottom.length - 1;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const sel = bottom[bottom.length - 1]!;
    this.check(sel.numAxes >= 1, () => `the selector (last bottom) must have at least one axis; got shape ${sel.shapeString()}`);
    for (let i = 1; i < sel.numAxes; i++) {
      this.check(
        sel.shape[i] === 1,
        () => `Selector blob dimensions must be singletons (1), except the first (selector shape ${sel.shapeString()})`,
      );
    }
    const n = sel.shape[0]!;
    for (let i = 0; i < bottom.length - 1; i++) {
      const b = bottom[i]!;
      this.check(
        b.numAxes >= 1 && b.shape[0] === n,
        () => `Each bottom should have the same 0th dimension as the selector blob (bottom ${i} ${b.shapeString()}, selector ${sel.shapeString()})`,
      );
    }
    const s = sel.cpuData();
    this.indicesToForward = [];
    for (let i = 0; i < n; i++) if (s[i] !== 0) this.indicesToForward.push(i);
    let newNum = this.indicesToForward.length;
    if (this.firstReshape) {
      newNum = n;
      this.firstReshape = false;
    }
    top.forEach((t, i) => {
      this.check(t !== bottom[i], () => 'Filter layer does not allow in-place computation.');
      t.reshape([newNum, ...bottom[i]!.shape.slice(1)]);
    });
  }

  /** The selector (the last bottom, index = number of tops) takes no gradient. */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex !== this.selectorIndex;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    top.forEach((t, i) => {
      const b = bottom[i]!;
      const dim = b.count(1);
      const x = b.cpuData();
      const y = t.mutableCpuData();
      this.indicesToForward.forEach((src, k) => y.set(x.subarray(src * dim, (src + 1) * dim), k * dim));
    });
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    this.check(!propagateDown[bottom.length - 1], () => 'Filter Layer cannot backpropagate to filter index inputs');
    top.forEach((t, i) => {
      if (!propagateDown[i]) return;
      const b = bottom[i]!;
      const dim = b.count(1);
      const dx = b.mutableCpuDiff();
      const dy = t.cpuDiff();
      dx.fill(0);
      this.indicesToForward.forEach((dst, k) => dx.set(dy.subarray(k * dim, (k + 1) * dim), dst * dim));
    });
  }
}

export const filterLayerDef: LayerDef<FilterLayer> = { type: 'Filter', create: (p, ctx) => new FilterLayer(p, ctx) };
