import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ELULayer, eluLayerDef } from './elu-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];
const checker = () => new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 });

describe('ELU', () => {
  it('alpha defaults to 1', () => {
    expect(createLayer<ELULayer>(eluLayerDef).alpha).toBe(1);
  });

  it('forwards x for x > 0 and alpha·(e^x − 1) otherwise (Caffe TestELU, alpha 0.5)', () => {
    const layer = createLayer<ELULayer>(eluLayerDef, { elu_param: { alpha: 0.5 } });
    const bottom = makeBlob(SHAPE);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const x = blobValues(bottom);
    const y = blobValues(top);
    x.forEach((v, i) => {
      if (v > 0) expect(y[i]).toBe(v);
      else expect(y[i]).toBeCloseTo(0.5 * (Math.exp(v) - 1), 14);
    });
  });

  it('is ReLU with alpha 0 (Caffe TestELUasReLU)', () => {
    const layer = createLayer(eluLayerDef, { elu_param: { alpha: 0 } });
    const bottom = makeBlob(SHAPE);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const x = blobValues(bottom);
    blobValues(top).forEach((v, i) => expect(v).toBe(Math.max(x[i]!, 0)));
  });

  it('backward is dy for x > 0 and dy·(y + alpha) otherwise, also in place', () => {
    const x = [-2, -0.5, 0, 1.5];
    const expected = x.map((v, i) => (i + 1) * (v > 0 ? 1 : 2 * Math.exp(v)));
    for (const inPlace of [false, true]) {
      const layer = createLayer(eluLayerDef, { elu_param: { alpha: 2 } });
      const bottom = makeBlob([4], { filler: x });
      const top = inPlace ? bottom : f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      top.mutableCpuDiff().set([1, 2, 3, 4]);
      layer.backward([top], [true], [bottom]);
      blobValues(bottom, 'diff').forEach((d, i) => expect(d).toBeCloseTo(expected[i]!, 14));
    }
  });

  it('passes the gradient check (Caffe: 1e-2, 1e-3, 1701, 0, 0.01), also as ReLU', () => {
    checker().checkGradientEltwise(createLayer(eluLayerDef, { elu_param: { alpha: 0.5 } }), [makeBlob(SHAPE)], [f64()]);
    checker().checkGradientEltwise(createLayer(eluLayerDef, { elu_param: { alpha: 0 } }), [makeBlob(SHAPE)], [f64()]);
  });

  it('rejects two bottoms', () => {
    expect(() => createLayer(eluLayerDef, { name: 'e' }).setUp([makeBlob([2]), makeBlob([2])], [f64()])).toThrow(
      "ELU layer 'e': ELU Layer takes 1 bottom blob(s) as input (got 2).",
    );
  });
});
