import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { PermuteLayer, permuteLayerDef } from './permute-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Permute', () => {
  beforeAll(registerContribSchema);

  it('turns NCHW into NHWC as a naive index map does', () => {
    const shape = [2, 3, 2, 4];
    const bottom = makeBlob(shape);
    const top = f64();
    const layer = createLayer(permuteLayerDef, { permute_param: { order: [0, 2, 3, 1] } });
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(top.shape).toEqual([2, 2, 4, 3]);
    const x = blobValues(bottom);
    const y = blobValues(top);
    for (let n = 0; n < 2; n++)
      for (let c = 0; c < 3; c++)
        for (let h = 0; h < 2; h++)
          for (let w = 0; w < 4; w++) expect(y[((n * 2 + h) * 4 + w) * 3 + c]).toBe(x[((n * 3 + c) * 2 + h) * 4 + w]);
  });

  it('completes a partial order and copies for the identity', () => {
    const layer = createLayer<PermuteLayer>(permuteLayerDef, { permute_param: { order: [1] } });
    const bottom = makeBlob([2, 3, 4]);
    const top = f64();
    layer.setUp([bottom], [top]);
    expect(layer.order).toEqual([1, 0, 2]);
    const id = createLayer(permuteLayerDef, {});
    const t2 = f64();
    id.setUp([bottom], [t2]);
    id.forward([bottom], [t2]);
    expect(blobValues(t2)).toEqual(blobValues(bottom));
  });

  it('passes the gradient check (1e-2, 1e-3)', () => {
    const layer = createLayer(permuteLayerDef, { permute_param: { order: [0, 3, 1, 2] } });
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([2, 3, 2, 2])], [f64()]);
  });

  it('rejects out-of-range and duplicate orders, naming the layer', () => {
    const setUp = (order: number[]) => () => createLayer(permuteLayerDef, { name: 'p', permute_param: { order } }).setUp([makeBlob([1, 2, 3])], [f64()]);
    expect(setUp([3])).toThrow("Permute layer 'p': order 3 must be less than the number of axes of the input (3).");
    expect(setUp([1, 1])).toThrow("Permute layer 'p': there are duplicate orders (1 1).");
  });
});
