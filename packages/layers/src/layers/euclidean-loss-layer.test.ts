import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { euclideanLossLayerDef } from './euclidean-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('EuclideanLoss', () => {
  it('forwards 1/(2N) Σ‖x1 − x2‖² (hand-computed)', () => {
    const a = makeBlob([2, 2], { filler: [1, 2, 3, 4] });
    const b = makeBlob([2, 2], { filler: [0, 4, 3, 1] });
    const layer = createLayer(euclideanLossLayerDef);
    const top = f64();
    layer.setUp([a, b], [top]);
    expect(layer.forward([a, b], [top])).toBeCloseTo((1 + 4 + 0 + 9) / 4, 14);
    expect(top.shape).toEqual([]);
  });

  it('scales the loss by loss_weight (Caffe TestForward)', () => {
    const rng = new Rng(1701);
    const [a, b] = [makeBlob([10, 5, 1, 1], { rng }), makeBlob([10, 5, 1, 1], { rng })];
    const top = f64();
    const plain = createLayer(euclideanLossLayerDef);
    plain.setUp([a, b], [top]);
    const l1 = plain.forward([a, b], [top]);
    const weighted = createLayer(euclideanLossLayerDef, { loss_weight: [3.7] });
    weighted.setUp([a, b], [top]);
    expect(weighted.forward([a, b], [top])).toBeCloseTo(Math.fround(3.7) * l1, 10);
    let ref = 0;
    for (let i = 0; i < 50; i++) ref += (a.cpuData()[i]! - b.cpuData()[i]!) ** 2;
    expect(l1).toBeCloseTo(ref / 20, 12);
  });

  it('backpropagates to both bottoms with opposite signs', () => {
    const a = makeBlob([2, 1], { filler: [1, 3] });
    const b = makeBlob([2, 1], { filler: [0, 5] });
    const layer = createLayer(euclideanLossLayerDef, { loss_weight: [2] });
    const top = f64();
    layer.setUp([a, b], [top]);
    layer.forward([a, b], [top]);
    layer.backward([top], [true, true], [a, b]);
    expect(blobValues(a, 'diff')).toEqual([1, -2]);
    expect(blobValues(b, 'diff')).toEqual([-1, 2]);
    expect(layer.allowForceBackward(0)).toBe(true);
    expect(layer.allowForceBackward(1)).toBe(true);
  });

  it('passes the gradient check of Caffe (1e-2, 1e-2, 1701) for both bottoms', () => {
    const rng = new Rng(1701);
    const checker = new GradientChecker(1e-2, 1e-2, { seed: 1701 });
    checker.checkGradientExhaustive(
      createLayer(euclideanLossLayerDef, { loss_weight: [3.7] }),
      [makeBlob([4, 3, 1, 1], { rng }), makeBlob([4, 3, 1, 1], { rng })],
      [f64()],
    );
  });

  it('rejects bottoms of different sizes', () => {
    const layer = createLayer(euclideanLossLayerDef, { name: 'l2' });
    expect(() => layer.setUp([makeBlob([2, 3]), makeBlob([2, 4])], [f64()])).toThrow(
      "EuclideanLoss layer 'l2': Inputs must have the same dimension (bottom 0 2 3 (6), bottom 1 2 4 (8)).",
    );
    expect(() => layer.setUp([makeBlob([2, 3]), makeBlob([3, 2])], [f64()])).toThrow(
      "EuclideanLoss layer 'l2': The data and label should have the same first dimension (data 2 3 (6), label 3 2 (6)).",
    );
  });
});
