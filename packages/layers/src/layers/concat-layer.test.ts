import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { concatLayerDef } from './concat-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Concat', () => {
  it('concatenates along channels (default) and num, matching hand-made layouts', () => {
    const a = makeBlob([2, 1, 2], { filler: [1, 2, 3, 4] });
    const b = makeBlob([2, 2, 2], { filler: [5, 6, 7, 8, 9, 10, 11, 12] });
    const top = f64();
    const layer = createLayer(concatLayerDef);
    layer.setUp([a, b], [top]);
    layer.forward([a, b], [top]);
    expect(top.shape).toEqual([2, 3, 2]);
    expect(blobValues(top)).toEqual([1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12]);

    const c = makeBlob([1, 2, 2], { filler: [13, 14, 15, 16] });
    const top0 = f64();
    const byNum = createLayer(concatLayerDef, { concat_param: { axis: 0 } });
    byNum.setUp([b, c], [top0]);
    byNum.forward([b, c], [top0]);
    expect(top0.shape).toEqual([3, 2, 2]);
    expect(blobValues(top0)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  });

  it('honours legacy concat_dim and negative axes', () => {
    const a = makeBlob([2, 3, 1]);
    const b = makeBlob([2, 3, 2]);
    for (const props of [{ concat_param: { concat_dim: 2 } }, { concat_param: { axis: -1 } }]) {
      const top = f64();
      createLayer(concatLayerDef, props).setUp([a, b], [top]);
      expect(top.shape).toEqual([2, 3, 3]);
    }
  });

  it('slices the diff back in backward; one bottom is a shared identity', () => {
    const a = makeBlob([1, 1, 2]);
    const b = makeBlob([1, 2, 2]);
    const top = f64();
    const layer = createLayer(concatLayerDef);
    layer.setUp([a, b], [top]);
    layer.forward([a, b], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6]);
    layer.backward([top], [true, true], [a, b]);
    expect(blobValues(a, 'diff')).toEqual([1, 2]);
    expect(blobValues(b, 'diff')).toEqual([3, 4, 5, 6]);

    const single = f64();
    const one = createLayer(concatLayerDef);
    one.setUp([b], [single]);
    one.forward([b], [single]);
    expect(blobValues(single)).toEqual(blobValues(b));
  });

  it('passes the exhaustive gradient checks (Caffe: 1e-2, 1e-2)', () => {
    const checker = new GradientChecker(1e-2, 1e-2);
    checker.checkGradientExhaustive(createLayer(concatLayerDef), [makeBlob([2, 1, 2]), makeBlob([2, 2, 2])], [f64()]);
    checker.checkGradientExhaustive(
      createLayer(concatLayerDef, { concat_param: { axis: 0 } }),
      [makeBlob([1, 2, 2]), makeBlob([2, 2, 2])],
      [f64()],
    );
    checker.checkGradientEltwise(createLayer(concatLayerDef), [makeBlob([2, 3])], [f64()]);
    // Caffe's TestGradientChannelsBottomOneOnly.
    checker.checkGradient(createLayer(concatLayerDef), [makeBlob([2, 1, 2]), makeBlob([2, 2, 2])], [f64()], 1);
  });

  it('rejects mismatched shapes and conflicting axis params with Caffe’s messages', () => {
    expect(() => createLayer(concatLayerDef, { name: 'cat' }).setUp([makeBlob([2, 3, 2]), makeBlob([2, 3, 3])], [f64()])).toThrow(
      "Concat layer 'cat': All inputs must have the same shape, except at concat_axis (axis 1; bottom 0: 2 3 2 (12), bottom 1: 2 3 3 (18)).",
    );
    expect(() => createLayer(concatLayerDef, { name: 'cat' }).setUp([makeBlob([2, 3]), makeBlob([2, 3, 1])], [f64()])).toThrow(
      "Concat layer 'cat': All inputs must have the same #axes",
    );
    expect(() =>
      createLayer(concatLayerDef, { name: 'cat', concat_param: { axis: 1, concat_dim: 1 } }).setUp([makeBlob([2, 3])], [f64()]),
    ).toThrow("Concat layer 'cat': Either axis or concat_dim should be specified; not both.");
    expect(() => createLayer(concatLayerDef, { name: 'cat' }).setUp([], [f64()])).toThrow(
      "Concat layer 'cat': Concat Layer takes at least 1 bottom blob(s) as input (got 0).",
    );
  });
});
