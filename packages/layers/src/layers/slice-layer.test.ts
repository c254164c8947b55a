import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { SliceLayer, sliceLayerDef } from './slice-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const tops = (n: number) => Array.from({ length: n }, f64);

function slice(p: Record<string, unknown> | null, name = 'slice'): SliceLayer {
  return createLayer(sliceLayerDef, p ? { name, slice_param: p } : { name });
}

describe('SliceLayer', () => {
  it('shapes: even split across num, slice_point across channels, legacy slice_dim (Caffe 6×12×2×3)', () => {
    const bottom = makeBlob([6, 12, 2, 3]);
    const t = tops(3);
    slice({ axis: 0 }).setUp([bottom], t);
    expect(t.map((x) => x.shape)).toEqual([[2, 12, 2, 3], [2, 12, 2, 3], [2, 12, 2, 3]]);
    const u = tops(3);
    slice({ slice_point: [1, 3] }).setUp([bottom], u);
    expect(u.map((x) => x.shape[1])).toEqual([1, 2, 9]);
    const v = tops(2);
    slice({ slice_dim: 2 }).setUp([bottom], v);
    expect(v.map((x) => x.shape)).toEqual([[6, 12, 1, 3], [6, 12, 1, 3]]);
  });

  it('forward copies each slab (negative axis too); backward writes them back', () => {
    const values = Array.from({ length: 2 * 5 * 2 }, (_, i) => i);
    const bottom = makeBlob([2, 5, 2], { filler: values });
    const t = tops(2);
    const layer = slice({ axis: -2, slice_point: [2] });
    layer.setUp([bottom], t);
    layer.forward([bottom], t);
    const want0: number[] = [];
    const want1: number[] = [];
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 5; c++) for (let w = 0; w < 2; w++) (c < 2 ? want0 : want1).push(values[(n * 5 + c) * 2 + w]!);
    }
    expect(blobValues(t[0]!)).toEqual(want0);
    expect(blobValues(t[1]!)).toEqual(want1);
    t[0]!.mutableCpuDiff().set(want0.map((v) => -v));
    t[1]!.mutableCpuDiff().set(want1.map((v) => -v));
    layer.backward(t, [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual(values.map((v) => -v));
  });

  it('a single top is a view of the bottom', () => {
    const bottom = makeBlob([2, 3]);
    const t = tops(1);
    slice(null).setUp([bottom], t);
    expect(t[0]!.data).toBe(bottom.data);
    expect(t[0]!.diff).toBe(bottom.diff);
  });

  it('gradient, Caffe (1e-2, 1e-3): trivial eltwise, across num and across channels (4×5×2×2) exhaustive', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    checker.checkGradientEltwise(slice(null), [makeBlob([2, 3, 2, 2])], tops(1));
    checker.checkGradientExhaustive(slice({ axis: 0 }), [makeBlob([4, 5, 2, 2])], tops(2));
    checker.checkGradientExhaustive(slice({ slice_point: [4] }), [makeBlob([4, 5, 2, 2])], tops(2));
  });

  it('defaults (axis 1) and Caffe\'s error messages', () => {
    const layer = slice({});
    expect(layer.param.slice_param!.axis).toBe(1);
    expect(layer.param.slice_param!.slice_dim).toBe(1);
    expect(() => slice({ axis: 1, slice_dim: 1 }, 's1').setUp([makeBlob([2, 4])], tops(2))).toThrow(
      "Slice layer 's1': Either axis or slice_dim should be specified; not both.",
    );
    expect(() => slice({}, 's1').setUp([makeBlob([2, 5])], tops(2))).toThrow(
      "Slice layer 's1': Number of top blobs (2) should evenly divide input slice axis (5)",
    );
    expect(() => slice({ slice_point: [3, 2] }, 's1').setUp([makeBlob([2, 5])], tops(3))).toThrow(
      "Slice layer 's1': slice_point values must be positive and strictly increasing (got 3, 2)",
    );
    expect(() => slice({ slice_point: [3] }, 's1').setUp([makeBlob([2, 5])], tops(3))).toThrow(
      "Slice layer 's1': expected 2 slice_point value(s) for 3 tops (got 1)",
    );
  });
});
