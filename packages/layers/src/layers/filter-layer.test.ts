import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { FilterLayer, filterLayerDef } from './filter-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Caffe's fixture: data 4×3×6×4 (scaled down to 4×3×2×2), labels 4×1×1×1, selector 0 1 1 0. */
function fixture() {
  const data = makeBlob([4, 3, 2, 2]);
  const labels = makeBlob([4, 1, 1, 1], { filler: [3, 1, 4, 2] });
  const selector = makeBlob([4, 1, 1, 1], { filler: [0, 1, 1, 0] });
  return { data, labels, selector, bottoms: [data, labels, selector], tops: [f64(), f64()] };
}

describe('FilterLayer', () => {
  it('the first reshape sizes the tops for every item; forward keeps the selected ones', () => {
    const { data, bottoms, tops } = fixture();
    const layer = createLayer<FilterLayer>(filterLayerDef);
    layer.setUp(bottoms, tops);
    expect(tops.map((t) => t.shape)).toEqual([[4, 3, 2, 2], [4, 1, 1, 1]]);
    layer.forward(bottoms, tops);
    expect(tops.map((t) => t.shape)).toEqual([[2, 3, 2, 2], [2, 1, 1, 1]]);
    expect(blobValues(tops[1]!)).toEqual([1, 4]);
    expect(blobValues(tops[0]!)).toEqual(blobValues(data).slice(12, 36));
  });

  it('backward copies top diffs to the selected items and zeroes the rest', () => {
    const { data, bottoms, tops } = fixture();
    const layer = createLayer<FilterLayer>(filterLayerDef);
    layer.setUp(bottoms, tops);
    layer.forward(bottoms, tops);
    tops[0]!.mutableCpuDiff().set(Array.from({ length: 24 }, (_, i) => i + 1));
    data.mutableCpuDiff().fill(99);
    layer.backward(tops, [true, false, false], bottoms);
    expect(blobValues(data, 'diff')).toEqual([...new Array(12).fill(0), ...Array.from({ length: 24 }, (_, i) => i + 1), ...new Array(12).fill(0)]);
  });

  it('selecting nothing gives empty tops', () => {
    const { bottoms, tops, selector } = fixture();
    const layer = createLayer<FilterLayer>(filterLayerDef);
    layer.setUp(bottoms, tops);
    selector.mutableCpuData().fill(0);
    layer.forward(bottoms, tops);
    expect(tops.map((t) => t.shape)).toEqual([[0, 3, 2, 2], [0, 1, 1, 1]]);
  });

  it('gradient, Caffe (1e-2, 1e-3) exhaustive into the data bottom', () => {
    const { bottoms, tops } = fixture();
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(createLayer(filterLayerDef), bottoms, tops, 0);
  });

  it('Caffe\'s checks: tops = bottoms − 1, singleton selector dims, matching num, no selector gradient', () => {
    const { bottoms, tops } = fixture();
    const make = () => createLayer<FilterLayer>(filterLayerDef, { name: 'f1' });
    expect(() => make().setUp(bottoms, [f64()])).toThrow(
      "Filter layer 'f1': needs one top per data bottom (the last bottom is the selector): 3 bottoms, 1 tops",
    );
    expect(() => make().setUp([bottoms[0]!, makeBlob([4, 2])], [f64()])).toThrow(
      "Filter layer 'f1': Selector blob dimensions must be singletons (1), except the first (selector shape 4 2 (8))",
    );
    expect(() => make().setUp([makeBlob([3, 2]), bottoms[2]!], [f64()])).toThrow(
      "Filter layer 'f1': Each bottom should have the same 0th dimension as the selector blob (bottom 0 3 2 (6), selector 4 1 1 1 (4))",
    );
    const layer = make();
    layer.setUp(bottoms, tops);
    layer.forward(bottoms, tops);
    expect(() => layer.backward(tops, [true, false, true], bottoms)).toThrow("Filter layer 'f1': Filter Layer cannot backpropagate to filter index inputs");
    expect([0, 1, 2].map((i) => layer.allowForceBackward(i))).toEqual([true, true, false]);
  });
});
