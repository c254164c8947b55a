import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { NormalizeLayer, normalizeLayerDef } from './normalize-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Naive reference: y = s_c · x / √(Σx² + eps) over the image or over each pixel's channels. */
function reference(x: number[], [N, C, S]: number[], scale: number[], acrossSpatial: boolean, eps: number): number[] {
  const y = new Array<number>(x.length);
  for (let n = 0; n < N!; n++) {
    for (let q = 0; q < S!; q++) {
      let sum = 0;
      if (acrossSpatial) for (let i = 0; i < C! * S!; i++) sum += x[n * C! * S! + i]! ** 2;
      else for (let c = 0; c < C!; c++) sum += x[(n * C! + c) * S! + q]! ** 2;
      for (let c = 0; c < C!; c++) y[(n * C! + c) * S! + q] = (scale.length === 1 ? scale[0]! : scale[c]!) * x[(n * C! + c) * S! + q]! / Math.sqrt(sum + eps);
    }
  }
  return y;
}

describe('Normalize', () => {
  beforeAll(registerContribSchema);

  it('defaults: across_spatial, channel_shared, eps 1e-10, scale 1', () => {
    const layer = createLayer<NormalizeLayer>(normalizeLayerDef, {});
    const bottom = makeBlob([2, 3, 2, 2]);
    const top = f64();
    layer.setUp([bottom], [top]);
    expect([layer.acrossSpatial, layer.channelShared, layer.blobs[0]!.shape, blobValues(layer.blobs[0]!)]).toEqual([true, true, [1], [1]]);
    expect(layer.eps).toBe(Math.fround(1e-10));
    layer.forward([bottom], [top]);
    reference(blobValues(bottom), [2, 3, 4], [1], true, layer.eps).forEach((v, i) => expect(blobValues(top)[i]).toBeCloseTo(v, 12));
  });

  it('normalises each pixel across channels with a per-channel scale (the SSD conv4_3 setting)', () => {
    const layer = createLayer<NormalizeLayer>(normalizeLayerDef, {
      norm_param: { across_spatial: false, channel_shared: false, scale_filler: { type: 'constant', value: 20 } },
    });
    const bottom = makeBlob([2, 3, 2, 3]);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.blobs[0]!.mutableCpuData().set([20, 10, 5]);
    layer.forward([bottom], [top]);
    reference(blobValues(bottom), [2, 3, 6], [20, 10, 5], false, layer.eps).forEach((v, i) => expect(blobValues(top)[i]).toBeCloseTo(v, 12));
  });

  for (const [acrossSpatial, channelShared] of [[true, true], [true, false], [false, true], [false, false]] as const) {
    it(`passes the gradient check (across_spatial ${acrossSpatial}, channel_shared ${channelShared})`, () => {
      const layer = createLayer(normalizeLayerDef, {
        norm_param: { across_spatial: acrossSpatial, channel_shared: channelShared, scale_filler: { type: 'gaussian', mean: 1, std: 0.5 } },
      });
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([2, 3, 2, 2])], [f64()]);
    });
  }

  it('rejects a negative eps, naming the layer', () => {
    expect(() => createLayer(normalizeLayerDef, { name: 'n', norm_param: { eps: -1 } }).setUp([makeBlob([1, 2, 2, 2])], [f64()])).toThrow(
      "Normalize layer 'n': eps must be non negative (got -1).",
    );
  });
});
