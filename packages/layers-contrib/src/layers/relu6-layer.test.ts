import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { describe, expect, it } from 'vitest';
import { relu6LayerDef } from './relu6-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('ReLU6', () => {
  it('clamps to [0, 6], in place too', () => {
    const x = [-3, -0.5, 0, 0.5, 5.9, 6, 7, 100];
    const bottom = makeBlob([2, 4], { filler: x });
    const top = f64();
    const layer = createLayer(relu6LayerDef, {});
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual([0, 0, 0, 0.5, 5.9, 6, 6, 6]);
    layer.forward([bottom], [bottom]);
    expect(blobValues(bottom)).toEqual([0, 0, 0, 0.5, 5.9, 6, 6, 6]);
  });

  it('passes the gradient check away from the kinks at 0 and 6 (1e-3, 1e-3)', () => {
    // Values spread over [−3, 9], none within 0.01 of a kink.
    const values = Array.from({ length: 24 }, (_, i) => -3 + i * 0.5 + 0.13);
    const layer = createLayer(relu6LayerDef, {});
    new GradientChecker(1e-3, 1e-3).checkGradientEltwise(layer, [makeBlob([2, 3, 4], { filler: values })], [f64()]);
  });
});
