import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { splitLayerDef } from './split-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Split', () => {
  it('gives every top the bottom data (shared, not copied)', () => {
    const bottom = makeBlob([2, 3, 2]);
    const tops = [f64(), f64()];
    const layer = createLayer(splitLayerDef);
    layer.setUp([bottom], tops);
    layer.forward([bottom], tops);
    for (const t of tops) {
      expect(t.shape).toEqual([2, 3, 2]);
      expect(blobValues(t)).toEqual(blobValues(bottom));
    }
    bottom.mutableCpuData()[0] = 42;
    expect(tops[1]!.cpuData()[0]).toBe(42);
  });

  it('sums the tops’ diffs into the bottom', () => {
    const bottom = makeBlob([3]);
    const tops = [f64(), f64(), f64()];
    const layer = createLayer(splitLayerDef);
    layer.setUp([bottom], tops);
    layer.forward([bottom], tops);
    tops[0]!.mutableCpuDiff().set([1, 2, 3]);
    tops[1]!.mutableCpuDiff().set([10, 20, 30]);
    tops[2]!.mutableCpuDiff().set([100, 200, 300]);
    layer.backward(tops, [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual([111, 222, 333]);
  });

  it('passes the exhaustive gradient check (Caffe: 1e-2, 1e-2)', () => {
    new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(createLayer(splitLayerDef), [makeBlob([2, 3, 2])], [f64(), f64()]);
    new GradientChecker(1e-2, 1e-2).checkGradientEltwise(createLayer(splitLayerDef), [makeBlob([2, 3])], [f64(), f64(), f64()]);
  });

  it('rejects in-place use and missing tops', () => {
    const b = makeBlob([2]);
    expect(() => createLayer(splitLayerDef, { name: 'sp' }).setUp([b], [f64(), b])).toThrow(
      "Split layer 'sp': Split Layer does not allow in-place computation (top 1 is the bottom).",
    );
    expect(() => createLayer(splitLayerDef, { name: 'sp' }).setUp([b], [])).toThrow(
      "Split layer 'sp': Split Layer produces at least 1 top blob(s) as output (got 0).",
    );
  });
});
