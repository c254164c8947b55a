import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { tanhLayerDef } from './tanh-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('TanH', () => {
  it('forwards (e^2x − 1)/(e^2x + 1)', () => {
    const x = [-3, -0.5, 0, 0.25, 2];
    const layer = createLayer(tanhLayerDef);
    const bottom = makeBlob([5], { filler: x });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const y = blobValues(top);
    x.forEach((v, i) => expect(y[i]).toBeCloseTo((Math.exp(2 * v) - 1) / (Math.exp(2 * v) + 1), 14));
  });

  it('backward is dy · (1 − y²)', () => {
    const layer = createLayer(tanhLayerDef);
    const bottom = makeBlob([3], { filler: [-1, 0, 2] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3]);
    layer.backward([top], [true], [bottom]);
    const dx = blobValues(bottom, 'diff');
    [-1, 0, 2].forEach((v, i) => expect(dx[i]).toBeCloseTo((i + 1) * (1 - Math.tanh(v) ** 2), 14));
  });

  it('passes the gradient check (Caffe: 1e-2, 1e-3) element-wise', () => {
    new GradientChecker(1e-2, 1e-3).checkGradientEltwise(createLayer(tanhLayerDef), [makeBlob([2, 3, 2, 2])], [f64()]);
  });

  it('rejects the wrong number of tops', () => {
    expect(() => createLayer(tanhLayerDef, { name: 't' }).setUp([makeBlob([1])], [f64(), f64()])).toThrow(
      "TanH layer 't': TanH Layer produces 1 top blob(s) as output (got 2).",
    );
  });
});
