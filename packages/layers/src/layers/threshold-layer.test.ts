import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { LayerError } from '../errors.js';
import { blobValues, createLayer, makeBlob } from '../testing.js';
import { ThresholdLayer, thresholdLayerDef } from './threshold-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function run(props: Record<string, unknown>, bottom: Blob): { layer: ThresholdLayer; top: Blob } {
  const layer = createLayer<ThresholdLayer>(thresholdLayerDef, { name: 'thr', ...props });
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return { layer, top };
}

describe('Threshold', () => {
  it('keeps the shape and outputs x > 0 ? 1 : 0 by default (Caffe TestSetup, Test)', () => {
    const bottom = makeBlob([2, 3, 6, 5]);
    const { layer, top } = run({}, bottom);
    expect(layer.threshold).toBe(0);
    expect(top.shape).toEqual([2, 3, 6, 5]);
    const x = blobValues(bottom);
    blobValues(top).forEach((y, i) => expect(y).toBe(x[i]! > 0 ? 1 : 0));
  });

  it('uses threshold_param.threshold, strictly greater (Caffe Test2, 0.5)', () => {
    const { layer, top } = run({ threshold_param: { threshold: 0.5 } }, makeBlob([5], { filler: [0.4, 0.5, 0.6, -1, 3] }));
    expect(layer.threshold).toBe(0.5);
    expect(blobValues(top)).toEqual([0, 0, 1, 0, 1]);
  });

  it('has no backward: asking for it throws', () => {
    const bottom = makeBlob([3]);
    const { layer, top } = run({}, bottom);
    expect(() => layer.backward([top], [true], [bottom])).toThrow(LayerError);
    expect(() => layer.backward([top], [true], [bottom])).toThrow(
      "Threshold layer 'thr': backward is not implemented (the threshold step function is not differentiable)",
    );
    // Nothing asked, nothing done.
    expect(() => layer.backward([top], [false], [bottom])).not.toThrow();
  });
});
