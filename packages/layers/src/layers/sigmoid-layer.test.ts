import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { sigmoidLayerDef } from './sigmoid-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Sigmoid', () => {
  it('forwards 1 / (1 + e^-x) without overflow', () => {
    const x = [-800, -2, 0, 0.5, 3, 800];
    const layer = createLayer(sigmoidLayerDef);
    const bottom = makeBlob([6], { filler: x });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const y = blobValues(top);
    x.forEach((v, i) => expect(y[i]).toBeCloseTo(1 / (1 + Math.exp(-v)), 14));
    expect(y.every(Number.isFinite)).toBe(true);
  });

  it('backward is dy · y(1 − y), also in place', () => {
    const layer = createLayer(sigmoidLayerDef);
    const blob = makeBlob([3], { filler: [-1, 0, 2] });
    layer.setUp([blob], [blob]);
    layer.forward([blob], [blob]);
    const y = blobValues(blob);
    blob.mutableCpuDiff().set([1, 2, 3]);
    layer.backward([blob], [true], [blob]);
    const dx = blobValues(blob, 'diff');
    [1, 2, 3].forEach((d, i) => expect(dx[i]).toBeCloseTo(d * y[i]! * (1 - y[i]!), 14));
  });

  it('passes the gradient check (Caffe: 1e-2, 1e-3, 1701, 0, 0.01)', () => {
    new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 }).checkGradientEltwise(
      createLayer(sigmoidLayerDef),
      [makeBlob([2, 3, 2, 2])],
      [f64()],
    );
  });

  it('rejects the wrong number of blobs', () => {
    expect(() => createLayer(sigmoidLayerDef, { name: 's' }).setUp([], [f64()])).toThrow(
      "Sigmoid layer 's': Sigmoid Layer takes 1 bottom blob(s) as input (got 0).",
    );
  });
});
