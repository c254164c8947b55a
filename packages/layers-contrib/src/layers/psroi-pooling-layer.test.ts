import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { PSROIPoolingLayer, psroiPoolingLayerDef } from './psroi-pooling-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** 1 × 4 × 4 × 4: channel k holds 100·(k + 1) plus the position h·4 + w. */
const maps = () => makeBlob([1, 4, 4, 4], { filler: Array.from({ length: 64 }, (_, i) => 100 * (Math.floor(i / 16) + 1) + (i % 16)) });

function pool(params: Record<string, unknown>, map: Blob, rois: number[][]): { layer: PSROIPoolingLayer; top: Blob; roisBlob: Blob } {
  const layer = createLayer<PSROIPoolingLayer>(psroiPoolingLayerDef, { name: 'psroipooled', psroi_pooling_param: params }, { dtype: map.dtype });
  const roisBlob = makeBlob([rois.length, 5], { dtype: map.dtype, filler: rois.flat() });
  const top = new Blob([], { dtype: map.dtype });
  layer.setUp([map, roisBlob], [top]);
  layer.forward([map, roisBlob], [top]);
  return { layer, top, roisBlob };
}

describe('PSROIPooling', () => {
  beforeAll(registerContribSchema);

  it('averages each bin over its own channel of the group (hand-computed)', () => {
    // The whole map: bins of 2 × 2, bin (ph, pw) read from channel 2·ph + pw.
    const whole = pool({ output_dim: 1, group_size: 2, spatial_scale: 1 }, maps(), [[0, 0, 0, 3, 3]]).top;
    expect(whole.shape).toEqual([1, 1, 2, 2]);
    expect(blobValues(whole)).toEqual([102.5, 204.5, 310.5, 412.5]);
    // Corners rounded halves away from zero (1.5 → 2, 6.5 → 7), the far ones plus 1, times 0.5:
    // x from 1 to 3, y from 0 to 4, bins of 1 × 2.
    const scaled = pool({ output_dim: 1, group_size: 2, spatial_scale: 0.5 }, maps(), [[0, 1.5, 0.4, 5.4, 6.5]]).top;
    expect(blobValues(scaled)).toEqual([103, 204, 311, 412]);
    // −0.5 rounds to −1: the region spans [−1, 3), bins [−1, 1) (clipped to [0, 1)) and [1, 3).
    const negative = pool({ output_dim: 1, group_size: 2, spatial_scale: 1 }, maps(), [[0, -0.5, -0.5, 2, 2]]).top;
    expect(blobValues(negative)).toEqual([100, 201.5, 306, 407.5]);
  });

  it('reads channel (c · group + ph) · group + pw for output channel c', () => {
    const { top } = pool({ output_dim: 4, group_size: 1, spatial_scale: 1 }, maps(), [[0, 0, 0, 3, 3]]);
    expect(blobValues(top)).toEqual([107.5, 207.5, 307.5, 407.5]);
  });

  it('gives a reversed region sides of 0.1, and clips bins to the map', () => {
    const { top } = pool({ output_dim: 1, group_size: 2, spatial_scale: 1 }, maps(), [[0, 2, 2, 0, 0], [0, 2, 2, 9, 9]]);
    // Region 0: every bin is the pixel (2, 2). Region 1: [2, 10) clipped to [2, 4): bins of 4 from 2,
    // so only bin (0, 0) keeps pixels (rows and columns 2–3), the others are empty.
    expect(blobValues(top)).toEqual([110, 210, 310, 410, 112.5, 0, 0, 0]);
  });

  it('spreads each gradient evenly over its bin, summed over regions, overwriting the diff', () => {
    const map = maps();
    const { layer, top, roisBlob } = pool({ output_dim: 1, group_size: 2, spatial_scale: 1 }, map, [[0, 0, 0, 3, 3], [0, 0, 0, 1, 1]]);
    top.mutableCpuDiff().set([4, 8, 12, 16, 1, 1, 1, 1]);
    map.mutableCpuDiff().fill(5);
    layer.backward([top], [true, false], [map, roisBlob]);
    const dx = Array.from(map.cpuDiff());
    // Channel 0, pixels (0..1, 0..1): 4/4 from region 0, then region 1's bin (0, 0) is pixel (0, 0).
    expect(dx.slice(0, 8)).toEqual([1 + 1, 1, 0, 0, 1, 1, 0, 0]);
    // Channel 3 (bin (1, 1)): 16/4 on rows and columns 2–3, and region 1's pixel (1, 1).
    expect(dx.slice(48, 64)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 4, 4, 0, 0, 4, 4]);
  });

  it('passes the gradient check on the maps (1e-2, 1e-2)', () => {
    const map = makeBlob([2, 8, 5, 6]);
    const rois = makeBlob([3, 5], { filler: [0, 0, 0, 5, 4, 1, 1.2, 0.7, 9.6, 7.1, 1, 4, 3, 4, 3] });
    const layer = createLayer(psroiPoolingLayerDef, { psroi_pooling_param: { output_dim: 2, group_size: 2, spatial_scale: 0.6 } });
    new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, [map, rois], [f64()], 0);
  });

  it('refuses maps of the wrong channel count and missing parameters, naming the layer', () => {
    expect(() => pool({ output_dim: 2, group_size: 2, spatial_scale: 1 }, maps(), [[0, 0, 0, 1, 1]])).toThrow(
      "PSROIPooling layer 'psroipooled': bottom 0 (the score maps) must be N × 8 × H × W for output_dim 2 and group_size 2 (got 1 4 4 4 (64)).",
    );
    expect(() => pool({ group_size: 2, spatial_scale: 1 }, maps(), [[0, 0, 0, 1, 1]])).toThrow(/output_dim must be > 0 \(got 0\)/);
    expect(() => pool({ output_dim: 1, group_size: 2 }, maps(), [[0, 0, 0, 1, 1]])).toThrow(/spatial_scale must be a positive number \(got 0\)/);
  });
});
