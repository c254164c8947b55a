import { Blob, Rng } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { ROIPoolingLayer, roiPoolingLayerDef } from './roi-pooling-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** A 1 × 1 × 4 × 4 map holding 0 … 15 row by row. */
const ramp = () => makeBlob([1, 1, 4, 4], { filler: Array.from({ length: 16 }, (_, i) => i) });

function pool(params: Record<string, unknown>, map: Blob, rois: number[][]): { layer: ROIPoolingLayer; top: Blob; roisBlob: Blob } {
  const layer = createLayer<ROIPoolingLayer>(roiPoolingLayerDef, { name: 'roi_pool', roi_pooling_param: params }, { dtype: map.dtype });
  const roisBlob = makeBlob([rois.length, 5], { dtype: map.dtype, filler: rois.flat() });
  const top = new Blob([], { dtype: map.dtype });
  layer.setUp([map, roisBlob], [top]);
  layer.forward([map, roisBlob], [top]);
  return { layer, top, roisBlob };
}

describe('ROIPooling', () => {
  beforeAll(registerContribSchema);

  it('max-pools each region into pooled_h × pooled_w bins (hand-computed)', () => {
    const { top } = pool({ pooled_h: 2, pooled_w: 2 }, ramp(), [
      [0, 0, 0, 3, 3], // the whole map: 2 × 2 bins of 2 × 2
      [0, 1, 1, 2, 2], // the middle 2 × 2: one value per bin
      [0, 2, 0, 3, 0], // a 2-wide, 1-high strip: the bin rows overlap on row 0
    ]);
    expect(top.shape).toEqual([3, 1, 2, 2]);
    expect(blobValues(top)).toEqual([5, 7, 13, 15, 5, 6, 9, 10, 2, 3, 2, 3]);
  });

  it('scales the corners by spatial_scale, rounding halves away from zero, and bins as Caffe (floor/ceil)', () => {
    // [1, 1, 5, 5] · 0.5 = [0.5, 0.5, 2.5, 2.5] → corners 1 and 3: a 3 × 3 region in 2 × 2 bins
    // of 1.5, covering rows (and columns) [1, 3) and [2, 4).
    // [−1, −1, 3, 3] · 0.5: −0.5 rounds to −1 (not −0), so the region is 4 × 4 from (−1, −1), in
    // bins of 2 covering [−1, 1) (clipped to [0, 1)) and [1, 3).
    const { top } = pool({ pooled_h: 2, pooled_w: 2, spatial_scale: 0.5 }, ramp(), [[0, 1, 1, 5, 5], [0, -1, -1, 3, 3]]);
    expect(blobValues(top)).toEqual([10, 11, 14, 15, 0, 2, 8, 10]);
  });

  it('clips regions to the map: an empty bin gives 0 and no gradient; reversed corners make a 1 × 1 region', () => {
    const map = ramp();
    const { top, layer, roisBlob } = pool({ pooled_h: 2, pooled_w: 2 }, map, [
      [0, -10, -10, -8, -8], // wholly outside: every bin empty
      [0, 3, 2, 1, 1], // x2 < x1, y2 < y1: width and height 1, at (3, 2)
      [0, 2, 2, 9, 9], // past the bottom right: 8 × 8 in bins of 4, three of them wholly off the map
    ]);
    expect(blobValues(top)).toEqual([0, 0, 0, 0, 11, 11, 11, 11, 15, 0, 0, 0]);
    top.mutableCpuDiff().fill(1);
    layer.backward([top], [true, false], [map, roisBlob]);
    const dx = Array.from(map.cpuDiff());
    expect(dx.reduce((a, v) => a + v, 0)).toBe(5);
    expect([dx[11], dx[15]]).toEqual([4, 1]);
  });

  it('starts each bin at −FLT_MAX, as Caffe: a bin of −∞ and NaN gives −FLT_MAX and takes no gradient', () => {
    const map = makeBlob([1, 1, 1, 2], { filler: [-Infinity, Number.NaN] });
    const { top, layer, roisBlob } = pool({ pooled_h: 1, pooled_w: 1 }, map, [[0, 0, 0, 1, 0]]);
    expect(blobValues(top)).toEqual([-3.4028234663852886e38]);
    top.mutableCpuDiff().fill(1);
    layer.backward([top], [true, false], [map, roisBlob]);
    expect(Array.from(map.cpuDiff())).toEqual([0, 0]);
  });

  it('reads each region from its batch image and every channel', () => {
    // 2 images × 2 channels of 2 × 2; value = 10·image + 100·channel + position.
    const values: number[] = [];
    for (let n = 0; n < 2; n++) for (let c = 0; c < 2; c++) for (let p = 0; p < 4; p++) values.push(10 * n + 100 * c + p);
    const map = makeBlob([2, 2, 2, 2], { filler: values });
    const { top } = pool({ pooled_h: 1, pooled_w: 1 }, map, [[1, 0, 0, 1, 1], [0, 0, 0, 0, 1]]);
    expect(top.shape).toEqual([2, 2, 1, 1]);
    expect(blobValues(top)).toEqual([13, 113, 2, 102]);
  });

  it('float32 gives the same bins (corners scaled in float32)', () => {
    const rng = new Rng(3);
    const values = Array.from({ length: 2 * 3 * 9 * 11 }, () => rng.uniformIn(-1, 1));
    const rois = [[0, 3.3, 1.7, 40.2, 30.9], [1, 0, 0, 100, 100], [1, 17, 9, 18, 26]];
    const params = { pooled_h: 3, pooled_w: 4, spatial_scale: 0.25 };
    const a = pool(params, makeBlob([2, 3, 9, 11], { filler: values }), rois).top;
    const b = pool(params, makeBlob([2, 3, 9, 11], { dtype: 'float32', filler: values }), rois).top;
    expect(blobValues(b)).toEqual(blobValues(a).map(Math.fround));
  });

  it('sums the gradients of overlapping regions into the map and overwrites its diff', () => {
    const map = ramp();
    const rois = makeBlob([2, 5], { filler: [0, 0, 0, 3, 3, 0, 2, 2, 3, 3] });
    const layer = createLayer<ROIPoolingLayer>(roiPoolingLayerDef, { roi_pooling_param: { pooled_h: 2, pooled_w: 2 } });
    const top = f64();
    layer.setUp([map, rois], [top]);
    layer.forward([map, rois], [top]);
    // Region 0 takes 5, 7, 13, 15; region 1 (rows and columns 2–3) takes 10, 11, 14, 15.
    top.mutableCpuDiff().set([1, 2, 3, 4, 10, 20, 30, 40]);
    map.mutableCpuDiff().fill(99);
    layer.backward([top], [true, false], [map, rois]);
    const dx = Array.from(map.cpuDiff());
    const want = new Array<number>(16).fill(0);
    Object.assign(want, { 5: 1, 7: 2, 13: 3, 10: 10, 11: 20, 14: 30, 15: 4 + 40 });
    expect(dx).toEqual(want);
  });

  it('passes the gradient check on the map (1e-2, 1e-2), distinct values', () => {
    // Values 0.1 apart, so a 1e-2 step never changes which one a bin takes.
    const rng = new Rng(11);
    const order = Array.from({ length: 2 * 2 * 6 * 7 }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const map = makeBlob([2, 2, 6, 7], { filler: order.map((v) => 0.1 * v - 8) });
    const rois = makeBlob([3, 5], { filler: [0, 0, 0, 6, 5, 1, 1, 2, 5, 4, 1, 3, 0, 6, 3] });
    const layer = createLayer(roiPoolingLayerDef, { roi_pooling_param: { pooled_h: 2, pooled_w: 3 } });
    new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, [map, rois], [f64()], 0);
  });

  it('refuses bad parameters and inputs, naming the layer', () => {
    expect(() => pool({ pooled_h: 0, pooled_w: 2 }, ramp(), [[0, 0, 0, 1, 1]])).toThrow("ROIPooling layer 'roi_pool': pooled_h must be > 0 (got 0).");
    expect(() => pool({ pooled_h: 2, pooled_w: 2, spatial_scale: 0 }, ramp(), [[0, 0, 0, 1, 1]])).toThrow(/spatial_scale must be a positive number/);
    const layer = createLayer(roiPoolingLayerDef, { name: 'r', roi_pooling_param: { pooled_h: 2, pooled_w: 2 } });
    expect(() => layer.setUp([ramp(), makeBlob([2, 4])], [f64()])).toThrow(
      "ROIPooling layer 'r': bottom 1 (the regions) must hold 5 values per region, [batch index, x1, y1, x2, y2] (got 2 4 (8)).",
    );
    expect(() => pool({ pooled_h: 2, pooled_w: 2 }, ramp(), [[0, 0, 0, 1, 1], [1, 0, 0, 1, 1]])).toThrow(
      "ROIPooling layer 'roi_pool': region 1 names image 1 of a batch of 1.",
    );
  });
});
