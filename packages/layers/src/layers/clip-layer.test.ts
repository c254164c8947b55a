import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ClipLayer, clipLayerDef } from './clip-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];
const clip = (min: number, max: number) => createLayer<ClipLayer>(clipLayerDef, { name: 'clip1', clip_param: { min, max } });

describe('Clip', () => {
  it('forwards max(min, min(x, max)) (Caffe TestClip, min −1, max 2)', () => {
    const layer = clip(-1, 2);
    const bottom = makeBlob(SHAPE, { std: 2 });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const x = blobValues(bottom);
    const y = blobValues(top);
    y.forEach((v, i) => {
      expect(v).toBeGreaterThanOrEqual(-1);
      expect(v).toBeLessThanOrEqual(2);
      expect(x[i]! > -1 || v === -1).toBe(true);
      expect(x[i]! < 2 || v === 2).toBe(true);
      expect(!(x[i]! >= -1 && x[i]! <= 2) || v === x[i]).toBe(true);
    });
    expect(x.some((v) => v < -1) && x.some((v) => v > 2)).toBe(true);
  });

  it('passes the gradient only where min ≤ x ≤ max (both ends included)', () => {
    const layer = clip(-1, 2);
    const bottom = makeBlob([6], { filler: [-3, -1, 0, 2, 2.5, 1] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6]);
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual([0, 2, 3, 4, 0, 6]);
  });

  it('passes the gradient check away from the kinks (Caffe TestClipGradient: 1e-2, 1e-3)', () => {
    const epsilon = 1e-2;
    const bottom = makeBlob(SHAPE, { std: 2 });
    // As Caffe's test: move inputs within epsilon of min or max out of the discontinuity.
    const x = bottom.mutableCpuData();
    for (let i = 0; i < x.length; i++) {
      if (x[i]! >= -1 - epsilon && x[i]! <= -1 + epsilon) x[i] = x[i]! - epsilon;
      else if (x[i]! >= 2 - epsilon && x[i]! <= 2 + epsilon) x[i] = x[i]! + epsilon;
    }
    new GradientChecker(epsilon, 1e-3).checkGradientEltwise(clip(-1, 2), [bottom], [f64()]);
  });

  it('requires both min and max (required fields in caffe.proto)', () => {
    expect(() => createLayer(clipLayerDef, { name: 'clip1', clip_param: { min: 0 } }).setUp([makeBlob([2])], [f64()])).toThrow(
      "Clip layer 'clip1': clip_param { min, max } is required (both fields)",
    );
    expect(() => createLayer(clipLayerDef, { name: 'clip1' }).setUp([makeBlob([2])], [f64()])).toThrow(
      "Clip layer 'clip1': clip_param { min, max } is required (both fields)",
    );
  });
});
