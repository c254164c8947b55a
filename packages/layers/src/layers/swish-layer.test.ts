import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { SwishLayer, swishLayerDef } from './swish-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];
const checker = () => new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 });

function forward(props: Record<string, unknown>, bottom: Blob): number[] {
  const layer = createLayer(swishLayerDef, props);
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return blobValues(top);
}

describe('Swish', () => {
  it('beta defaults to 1', () => {
    expect(createLayer<SwishLayer>(swishLayerDef).beta).toBe(1);
  });

  it('forwards x / (1 + e^(−βx)) (Caffe TestSwish, TestSwishWithBeta β 1.5)', () => {
    const bottom = makeBlob(SHAPE);
    const x = blobValues(bottom);
    forward({}, bottom).forEach((y, i) => expect(y).toBeCloseTo(x[i]! / (1 + Math.exp(-x[i]!)), 14));
    forward({ swish_param: { beta: 1.5 } }, bottom).forEach((y, i) => expect(y).toBeCloseTo(x[i]! / (1 + Math.exp(-1.5 * x[i]!)), 14));
  });

  it('is x/2 with beta 0 (Caffe TestSwishAsLinear) and finite for huge inputs', () => {
    const bottom = makeBlob(SHAPE);
    const x = blobValues(bottom);
    forward({ swish_param: { beta: 0 } }, bottom).forEach((y, i) => expect(y).toBe(x[i]! / 2));
    expect(forward({}, makeBlob([2], { filler: [-1000, 1000] }))).toEqual([-0, 1000]);
  });

  it('backward is dy·(βy + σ(βx)(1 − βy)), the same in place', () => {
    const x = [-2, -0.5, 0, 1.5];
    const beta = 1.5;
    const expected = x.map((v, i) => {
      const s = 1 / (1 + Math.exp(-beta * v));
      return (i + 1) * (s + beta * v * s * (1 - s));
    });
    for (const inPlace of [false, true]) {
      const layer = createLayer(swishLayerDef, { swish_param: { beta } });
      const bottom = makeBlob([4], { filler: x });
      const top = inPlace ? bottom : f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      top.mutableCpuDiff().set([1, 2, 3, 4]);
      layer.backward([top], [true], [bottom]);
      blobValues(bottom, 'diff').forEach((d, i) => expect(d).toBeCloseTo(expected[i]!, 13));
    }
  });

  it('passes the gradient check for beta 1, 1.5 and 0 (Caffe: 1e-2, 1e-3, 1701, 0, 0.01)', () => {
    for (const swish_param of [{}, { beta: 1.5 }, { beta: 0 }]) {
      checker().checkGradientEltwise(createLayer(swishLayerDef, { swish_param }), [makeBlob(SHAPE)], [f64()]);
    }
  });

  it('rejects a missing top', () => {
    expect(() => createLayer(swishLayerDef, { name: 'sw' }).setUp([makeBlob([2])], [])).toThrow(
      "Swish layer 'sw': Swish Layer produces 1 top blob(s) as output (got 0).",
    );
  });
});
