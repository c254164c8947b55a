import type { Blob } from '@caffe-ts/blob';
import type { ConcatLayer, LayerKernel } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import type { GpuBuffer, GpuDevice } from '../device.js';
import type { GpuValue } from '../runtime.js';
import { dataOf, deviceOf, diffOf, placeholder, writeDiff, IDIV } from './util.js';

/** Bottoms written per forward pass (a 4-branch inception module's concat takes one pass). */
const PER_PASS = 4;

/**
 * One pass of the forward: top slab position r (of o·topSlab + r) comes from bottom k when
 * off_k ≤ r < off_k + slab_k; other positions keep Old (earlier passes) or are 0 on the first.
 */
const forwardSpec = {
  name: 'concat-fwd',
  source: `function (Old, hasOld, X0, X1, X2, X3, o0, o1, o2, o3, s0, s1, s2, s3, topSlab, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const o = ${IDIV('i', 'topSlab')};
    const r = i - o * topSlab;
    if (r >= o0 && r < o0 + s0) { return X0[o * s0 + r - o0]; }
    if (r >= o1 && r < o1 + s1) { return X1[o * s1 + r - o1]; }
    if (r >= o2 && r < o2 + s2) { return X2[o * s2 + r - o2]; }
    if (r >= o3 && r < o3 + s3) { return X3[o * s3 + r - o3]; }
    if (hasOld > 0) { return Old[i]; }
    return 0;
  }`,
};

/** dX_k is the top diff's slab at off_k in each outer step. */
const backwardSpec = {
  name: 'concat-bwd',
  source: `function (DY, off, slab, topSlab, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const o = ${IDIV('i', 'slab')};
    return DY[o * topSlab + off + i - o * slab];
  }`,
};

/** The concat axis of blobs with `numAxes` axes (the layer's rule, its reshape validated it): legacy concat_dim when set, else axis (default 1). */
function concatAxis(layer: ConcatLayer, numAxes: number): number {
  const cp = layer.param.concat_param;
  const raw = cp && hasField(cp, 'concat_dim') ? cp.concat_dim : (cp?.axis ?? 1);
  return raw < 0 ? raw + numAxes : raw;
}

/** Whether a concat keeps images apart (any axis but the batch axis), so it can run by parts of images. */
export const concatSplitsByImage = (layer: ConcatLayer, bottom: Blob[]): boolean => concatAxis(layer, bottom[0]!.numAxes) > 0;

/** Slab sizes and offsets along the concat axis (the layer's own layout rules). */
function slabs(layer: ConcatLayer, bottomShapes: readonly (readonly number[])[], topShape: readonly number[]) {
  const n = topShape.length;
  const axis = concatAxis(layer, n);
  let inner = 1;
  for (let j = axis + 1; j < n; j++) inner *= topShape[j]!;
  const topSlab = topShape[axis]! * inner;
  let off = 0;
  const parts = bottomShapes.map((s) => {
    const slab = s[axis]! * inner;
    const p = { off, slab };
    off += slab;
    return p;
  });
  return { topSlab, parts };
}

/**
 * Write `target` (count floats, outer blocks of topSlab) from pieces each holding `slab` floats
 * per block at offset `off` in the block; 4 pieces per kernel pass.
 */
export function concatInto(dev: GpuDevice, target: GpuBuffer, pieces: { value: GpuValue; off: number; slab: number }[], topSlab: number, count: number): void {
  const ph = placeholder(dev);
  for (let start = 0; start < pieces.length; start += PER_PASS) {
    const xs: unknown[] = [];
    const offs: number[] = [];
    const sizes: number[] = [];
    for (let k = start; k < start + PER_PASS; k++) {
      const piece = pieces[k];
      xs.push(piece ? piece.value : ph);
      offs.push(piece ? piece.off : 0);
      sizes.push(piece ? piece.slab : 0);
    }
    const old = start > 0 ? dev.read(target) : ph;
    dev.runInto(target, forwardSpec, [old, start > 0 ? 1 : 0, ...xs, ...offs, ...sizes, topSlab, count]);
  }
}

/** Concat on the device; one bottom is the identity (the layer shares data and diff). */
export const concatKernel: LayerKernel<ConcatLayer> = {
  forward(layer, bottom, top) {
    if (bottom.length === 1) return;
    const dev = deviceOf(layer);
    const t = top[0]!;
    const { topSlab, parts } = slabs(layer, bottom.map((b) => b.shape), t.shape);
    const pieces = bottom.map((b, k) => ({ value: dataOf(dev, b), off: parts[k]!.off, slab: parts[k]!.slab }));
    concatInto(dev, t.mutableGpuData() as GpuBuffer, pieces, topSlab, t.count());
  },
  backward(layer, top, propagateDown, bottom) {
    if (bottom.length === 1) return;
    const dev = deviceOf(layer);
    const t = top[0]!;
    const { topSlab, parts } = slabs(layer, bottom.map((b) => b.shape), t.shape);
    const dy = diffOf(dev, t);
    bottom.forEach((b, k) => {
      if (!propagateDown[k]) return;
      writeDiff(dev, b, backwardSpec, [dy, parts[k]!.off, parts[k]!.slab, topSlab, b.count()]);
    });
  },
};
