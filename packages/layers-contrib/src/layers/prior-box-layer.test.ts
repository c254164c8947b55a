import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { PriorBoxLayer, priorBoxLayerDef } from './prior-box-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('PriorBox', () => {
  beforeAll(registerContribSchema);

  it('gives the fork defaults: flip, no clip, variance 0.1, offset 0.5', () => {
    const layer = createLayer(priorBoxLayerDef, { prior_box_param: { min_size: [4] } });
    const top = f64();
    layer.setUp([makeBlob([1, 2, 2, 2]), makeBlob([1, 3, 8, 8])], [top]);
    expect([layer.flip, layer.clip, layer.variance, layer.offset, layer.numPriors]).toEqual([true, false, [0.1], 0.5, 1]);
    expect(top.shape).toEqual([1, 2, 2 * 2 * 1 * 4]);
  });

  it('lays out min, √(min·max) and aspect-ratio boxes per location, then the variances', () => {
    const layer = createLayer<PriorBoxLayer>(priorBoxLayerDef, {
      prior_box_param: { min_size: [4], max_size: [9], aspect_ratio: [2], flip: true, variance: [0.1, 0.1, 0.2, 0.2] },
    });
    const top = f64();
    // A 2×2 map on an 8×10 (H×W) image: step 4 vertically, 5 horizontally.
    const bottom = [makeBlob([1, 1, 2, 2]), makeBlob([1, 3, 8, 10])];
    layer.setUp(bottom, [top]);
    layer.forward(bottom, [top]);
    expect(layer.aspectRatios).toEqual([1, 2, 0.5]);
    expect(layer.numPriors).toBe(4);
    const v = blobValues(top);
    expect(v.length).toBe(2 * 2 * 2 * 4 * 4);
    const box = (cx: number, cy: number, w: number, h: number) => [(cx - w / 2) / 10, (cy - h / 2) / 8, (cx + w / 2) / 10, (cy + h / 2) / 8];
    const s2 = Math.SQRT2;
    const expected: number[] = [];
    for (const [cy, cx] of [[2, 2.5], [2, 7.5], [6, 2.5], [6, 7.5]] as const) {
      expected.push(...box(cx, cy, 4, 4), ...box(cx, cy, 6, 6), ...box(cx, cy, 4 * s2, 4 / s2), ...box(cx, cy, 4 / s2, 4 * s2));
    }
    v.slice(0, 64).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 12));
    // The variances are float32 in the schema.
    expect(v.slice(64)).toEqual(Array.from({ length: 16 }, () => [0.1, 0.1, 0.2, 0.2].map(Math.fround)).flat());
  });

  it('honours step, offset, img_size and clip', () => {
    const layer = createLayer(priorBoxLayerDef, { prior_box_param: { min_size: [6], step: 3, offset: 0, img_size: 12, clip: true, flip: false, aspect_ratio: [1] } });
    const top = f64();
    const bottom = [makeBlob([1, 1, 1, 2]), makeBlob([1, 3, 100, 100])];
    layer.setUp(bottom, [top]);
    layer.forward(bottom, [top]);
    // Centres (0, 0) and (3, 0) on a 12×12 image; clipped to [0, 1].
    expect(blobValues(top).slice(0, 8)).toEqual([0, 0, 0.25, 0.25, 0, 0, 0.5, 0.25]);
  });

  it('rejects bad parameters, naming the layer', () => {
    const setUp = (p: Record<string, unknown>) => () =>
      createLayer(priorBoxLayerDef, { name: 'pb', prior_box_param: p }).setUp([makeBlob([1, 1, 2, 2]), makeBlob([1, 3, 8, 8])], [f64()]);
    expect(setUp({})).toThrow("PriorBox layer 'pb': must provide min_size.");
    expect(setUp({ min_size: [4], max_size: [3] })).toThrow("PriorBox layer 'pb': max_size must be greater than min_size (max_size 3, min_size 4).");
    expect(setUp({ min_size: [4], variance: [0.1, 0.2] })).toThrow("PriorBox layer 'pb': must provide 1 or 4 variances (got 2).");
    expect(setUp({ min_size: [4], step: 2, step_h: 2, step_w: 2 })).toThrow("PriorBox layer 'pb': Either step or step_h/step_w should be specified; not both.");
  });
});
