import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { UpsampleLayer, upsampleLayerDef } from './upsample-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Upsample', () => {
  beforeAll(registerContribSchema);

  it('SegNet: scatters each value to its pooling argmax in a scale-2 plane', () => {
    const x = makeBlob([1, 1, 2, 2], { filler: [1, 2, 3, 4] });
    // Argmax positions in the 4×4 plane the pooling read.
    const mask = makeBlob([1, 1, 2, 2], { filler: [5, 2, 8, 15] });
    const top = f64();
    const layer = createLayer<UpsampleLayer>(upsampleLayerDef, {});
    layer.setUp([x, mask], [top]);
    layer.forward([x, mask], [top]);
    expect([layer.scaleH, layer.scaleW]).toEqual([2, 2]);
    expect(top.shape).toEqual([1, 1, 4, 4]);
    expect(blobValues(top)).toEqual([0, 0, 2, 0, 0, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 4]);
  });

  it('SegNet: upsample_h/upsample_w give odd output sizes; pad_out_h trims one row', () => {
    const x = makeBlob([1, 1, 2, 2], { filler: [1, 2, 3, 4] });
    const mask = makeBlob([1, 1, 2, 2], { filler: [0, 2, 6, 8] });
    const top = f64();
    const layer = createLayer(upsampleLayerDef, { upsample_param: { upsample_h: 3, upsample_w: 3 } });
    layer.setUp([x, mask], [top]);
    layer.forward([x, mask], [top]);
    expect(blobValues(top)).toEqual([1, 0, 2, 0, 0, 0, 3, 0, 4]);
    const pad = createLayer(upsampleLayerDef, { upsample_param: { scale: 2, pad_out_h: true } });
    const t2 = f64();
    pad.setUp([x, mask], [t2]);
    expect(t2.shape).toEqual([1, 1, 3, 4]);
  });

  it('SegNet: passes the gradient check into the data (1e-2, 1e-3)', () => {
    // Distinct positions inside each 2×2 window, as a MAX pooling mask has.
    const mask: number[] = [];
    for (let p = 0; p < 4; p++) for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) mask.push((2 * i + (p & 1)) * 4 + 2 * j + (p >> 1));
    const layer = createLayer(upsampleLayerDef, {});
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([2, 2, 2, 2]), makeBlob([2, 2, 2, 2], { filler: mask })], [f64()], 0);
  });

  it('one bottom: nearest-neighbour by scale, gradient summed per block', () => {
    const x = makeBlob([1, 1, 1, 2], { filler: [1, 2] });
    const top = f64();
    const layer = createLayer(upsampleLayerDef, { upsample_param: { scale: 3 } });
    layer.setUp([x], [top]);
    layer.forward([x], [top]);
    expect(top.shape).toEqual([1, 1, 3, 6]);
    expect(blobValues(top)).toEqual([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2]);
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(createLayer(upsampleLayerDef, { upsample_param: { scale: 2 } }), [makeBlob([2, 2, 2, 3])], [f64()]);
  });

  it('rejects bad parameters and masks, naming the layer', () => {
    const x = makeBlob([1, 1, 2, 2]);
    const setUp = (p: Record<string, unknown>, bottoms = [x, makeBlob([1, 1, 2, 2], { filler: [0, 1, 2, 3] })]) => () =>
      createLayer(upsampleLayerDef, { name: 'up', upsample_param: p }).setUp(bottoms, [f64()]);
    expect(setUp({ upsample_h: 4 })).toThrow("Upsample layer 'up': upsample_h and upsample_w must be given together.");
    expect(setUp({ scale: 3, pad_out_w: true })).toThrow("Upsample layer 'up': pad_out_w is only supported with scale 2.");
    const layer = createLayer(upsampleLayerDef, { name: 'up', upsample_param: { upsample_h: 2, upsample_w: 2 } });
    const bad = [x, makeBlob([1, 1, 2, 2], { filler: [0, 1, 2, 9] })];
    const top = f64();
    layer.setUp(bad, [top]);
    expect(() => layer.forward(bad, [top])).toThrow("Upsample layer 'up': mask value 9 at 3 is outside the 2×2 output plane (upsample_h/upsample_w too small?).");
  });
});
