import { Blob, Rng } from '@caffe-ts/blob';
import { Phase, registerField } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { LayerError } from '../errors.js';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { DropoutLayer, dropoutLayerDef } from './dropout-layer.js';
import { PoolingLayer, poolingLayerDef } from './pooling-layer.js';

type Props = Record<string, unknown>;

function dropout(p: Props = {}, phase: Phase = Phase.TRAIN, seed = 1701): DropoutLayer {
  return createLayer(dropoutLayerDef, { name: 'drop1', dropout_param: p }, { phase, rng: new Rng(seed) });
}

const f64 = () => new Blob([], { dtype: 'float64' });

function forward(layer: DropoutLayer, bottom: Blob, top: Blob = f64()): Blob {
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

describe('DropoutLayer', () => {
  it('TRAIN: each output is 0 or x/(1 − ratio), about ratio of them dropped', () => {
    for (const ratio of [0.5, 0.2, 0.8]) {
      const bottom = makeBlob([4, 5, 10, 10]);
      const layer = dropout({ dropout_ratio: ratio });
      const top = forward(layer, bottom);
      expect(layer.ratio).toBe(Math.fround(ratio));
      expect(layer.scale).toBeCloseTo(1 / (1 - ratio), 6);
      expect(top.shape).toEqual(bottom.shape);
      const x = bottom.cpuData();
      const y = top.cpuData();
      let dropped = 0;
      for (let i = 0; i < x.length; i++) {
        if (y[i] === 0) dropped++;
        else expect(y[i]).toBe(x[i]! * layer.scale);
        expect(layer.mask[i]).toBe(y[i] === 0 ? 0 : 1);
      }
      // 2000 Bernoulli draws: 5 standard deviations is well under 0.06.
      expect(Math.abs(dropped / x.length - ratio)).toBeLessThan(0.06);
    }
  });

  it('sum of a pooled all-ones output lies in [0, count·scale] (Caffe test_maxpool_dropout_layers)', () => {
    const bottom = makeBlob([2, 3, 6, 5], { filler: 1 });
    const pool: PoolingLayer = createLayer(poolingLayerDef, { pooling_param: { kernel_size: 3, stride: 2 } });
    const pooled = f64();
    pool.setUp([bottom], [pooled]);
    pool.forward([bottom], [pooled]);
    const layer = dropout();
    // In place, as in the Caffe test.
    forward(layer, pooled, pooled);
    const sum = blobValues(pooled).reduce((a, b) => a + b, 0);
    expect(sum).toBeGreaterThanOrEqual(0);
    expect(sum).toBeLessThanOrEqual(pooled.count() * 2);
    expect(blobValues(pooled).every((v) => v === 0 || v === 2)).toBe(true);
    expect(blobValues(pooled).some((v) => v === 0)).toBe(true);
  });

  it('TEST: identity, and backward copies the diff', () => {
    const bottom = makeBlob([2, 3, 4]);
    const layer = dropout({}, Phase.TEST);
    const top = forward(layer, bottom);
    expect(blobValues(top)).toEqual(blobValues(bottom));
    top.mutableCpuDiff().set(blobValues(bottom).map((v) => 3 * v));
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual(blobValues(top, 'diff'));
  });

  it('backward applies the forward mask and scale; in place too', () => {
    for (const inPlace of [false, true]) {
      const bottom = makeBlob([3, 7], { filler: 1 });
      const layer = dropout({ dropout_ratio: 0.25 });
      const top = inPlace ? bottom : f64();
      forward(layer, bottom, top);
      const kept = Array.from(layer.mask);
      top.mutableCpuDiff().fill(3);
      layer.backward([top], [true], [bottom]);
      expect(blobValues(bottom, 'diff')).toEqual(kept.map((m) => (m ? 3 / 0.75 : 0)));
      expect(blobValues(top)).toEqual(kept.map((m) => (m ? 1 / 0.75 : 0)));
    }
  });

  it('draws a fresh mask each forward from the layer rng, repeatable by seed', () => {
    const bottom = makeBlob([50]);
    const layer = dropout({}, Phase.TRAIN, 42);
    forward(layer, bottom);
    const first = Array.from(layer.mask);
    layer.forward([bottom], [f64()]);
    expect(Array.from(layer.mask)).not.toEqual(first);
    const again = dropout({}, Phase.TRAIN, 42);
    forward(again, bottom);
    expect(Array.from(again.mask)).toEqual(first);
  });

  it('gradient (float64, Caffe (1e-2, 1e-2), reseeded before each forward)', () => {
    const checker = new GradientChecker(1e-2, 1e-2, { seed: 1701 });
    checker.checkGradient(dropout(), [makeBlob([2, 3, 4, 5])], [f64()]);
    checker.checkGradientExhaustive(dropout({ dropout_ratio: 0.3 }), [makeBlob([2, 3, 2])], [f64()]);
    checker.checkGradient(dropout({}, Phase.TEST), [makeBlob([2, 3, 4])], [f64()]);
  });

  describe('params', () => {
    it('defaults: ratio 0.5, scale 2', () => {
      const layer = createLayer(dropoutLayerDef, { name: 'd' }, { phase: Phase.TRAIN });
      forward(layer, makeBlob([2, 2]));
      expect(layer.ratio).toBe(0.5);
      expect(layer.scale).toBe(2);
      expect(layer.type).toBe('Dropout');
    });

    it('dropout_ratio must be in [0, 1)', () => {
      let err: unknown;
      try {
        forward(dropout({ dropout_ratio: 1 }), makeBlob([2, 2]));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LayerError);
      expect((err as Error).message).toBe("Dropout layer 'drop1': dropout_ratio must be in [0, 1) (got 1)");
    });
  });
});

describe('DropoutLayer with caffe-fast-rcnn\'s scale_train: false', () => {
  // The field @caffe-ts/layers-contrib registers (DropoutParameter 2).
  beforeAll(() => registerField({ message: 'DropoutParameter', name: 'scale_train', id: 2, type: 'bool', defaultValue: true }));

  it('TRAIN only masks (kept elements unscaled); TEST multiplies by 1 − ratio; backward alike', () => {
    const bottom = makeBlob([2, 50]);
    const train = dropout({ dropout_ratio: 0.25, scale_train: false });
    const top = forward(train, bottom);
    expect([train.scale, train.testScale]).toEqual([1, 1 - Math.fround(0.25)]);
    const x = bottom.cpuData(), y = top.cpuData();
    for (let i = 0; i < x.length; i++) expect(y[i]! + 0).toBe(train.mask[i] ? x[i] : 0); // + 0: a dropped negative is −0
    top.mutableCpuDiff().fill(2);
    train.backward([top], [true], [bottom]);
    expect(Array.from(bottom.cpuDiff())).toEqual(Array.from(train.mask, (m) => 2 * m));

    const test = dropout({ dropout_ratio: 0.25, scale_train: false }, Phase.TEST);
    const out = forward(test, bottom);
    expect(Array.from(out.cpuData())).toEqual(Array.from(x, (v) => v * 0.75));
    out.mutableCpuDiff().fill(4);
    test.backward([out], [true], [bottom]);
    expect(Array.from(bottom.cpuDiff())).toEqual(new Array(100).fill(3));
    // In place, as the ZF prototxts use it.
    const inPlace = makeBlob([1, 4], { filler: [4, -8, 2, 0] });
    forward(dropout({ dropout_ratio: 0.5, scale_train: false }, Phase.TEST), inPlace, inPlace);
    expect(blobValues(inPlace)).toEqual([2, -4, 1, 0]);
  });
});
