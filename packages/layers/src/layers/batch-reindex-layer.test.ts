import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { batchReindexLayerDef } from './batch-reindex-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('BatchReindexLayer', () => {
  it('forward picks items by index (Caffe: 5×4×3×2 bottom, perm 4 0 4 0 1 2)', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const bottom = makeBlob([5, 4, 3, 2], { dtype, filler: Array.from({ length: 120 }, (_, i) => i) });
      const perm = [4, 0, 4, 0, 1, 2];
      const idx = makeBlob([6], { dtype, filler: perm });
      const top = new Blob([], { dtype });
      const layer = createLayer(batchReindexLayerDef, {}, { dtype });
      layer.setUp([bottom, idx], [top]);
      layer.forward([bottom, idx], [top]);
      expect(top.shape).toEqual([6, 4, 3, 2]);
      const want: number[] = [];
      for (const p of perm) for (let j = 0; j < 24; j++) want.push(p * 24 + j);
      expect(blobValues(top)).toEqual(want);
    }
  });

  it('backward accumulates repeated items and zeroes unused ones', () => {
    const bottom = makeBlob([3, 2]);
    const idx = makeBlob([4], { filler: [2, 0, 2, 2] });
    const top = f64();
    const layer = createLayer(batchReindexLayerDef);
    layer.setUp([bottom, idx], [top]);
    layer.forward([bottom, idx], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6, 7, 8]);
    bottom.mutableCpuDiff().fill(99);
    layer.backward([top], [true, false], [bottom, idx]);
    expect(blobValues(bottom, 'diff')).toEqual([3, 4, 0, 0, 1 + 5 + 7, 2 + 6 + 8]);
  });

  it('gradient, Caffe (1e-4, 1e-2) exhaustive into the data bottom', () => {
    const layer = createLayer(batchReindexLayerDef);
    new GradientChecker(1e-4, 1e-2).checkGradientExhaustive(layer, [makeBlob([5, 2, 1, 2]), makeBlob([6], { filler: [4, 0, 4, 0, 1, 2] })], [f64()], 0);
  });

  it('checks the indices and refuses to backpropagate to them', () => {
    const bottom = makeBlob([3, 2]);
    const run = (values: number[]) => {
      const layer = createLayer(batchReindexLayerDef, { name: 'br' });
      const idx = makeBlob([values.length], { filler: values });
      layer.setUp([bottom, idx], [f64()]);
      layer.forward([bottom, idx], [f64()]);
    };
    expect(() => run([0, -1])).toThrow("BatchReindex layer 'br': Index specified for reindex layer was negative (index 1 is -1).");
    expect(() => run([3])).toThrow(
      "BatchReindex layer 'br': Index specified for reindex layer was greater than batch size (index 0 is 3, batch size 3).",
    );
    expect(() => run([1.5])).toThrow("BatchReindex layer 'br': Index specified for reindex layer is not an integer (index 0 is 1.5).");
    const layer = createLayer(batchReindexLayerDef, { name: 'br' });
    const idx = makeBlob([2], { filler: [0, 1] });
    const top = f64();
    expect(() => layer.setUp([bottom, makeBlob([2, 1])], [top])).toThrow("BatchReindex layer 'br': the indices (bottom 1) must be 1-D; got shape 2 1 (2)");
    layer.setUp([bottom, idx], [top]);
    layer.forward([bottom, idx], [top]);
    expect(() => layer.backward([top], [true, true], [bottom, idx])).toThrow("BatchReindex layer 'br': Cannot backprop to index.");
    expect(layer.allowForceBackward(0)).toBe(true);
    expect(layer.allowForceBackward(1)).toBe(false);
  });
});
