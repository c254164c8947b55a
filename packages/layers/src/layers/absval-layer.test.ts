import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { absValLayerDef } from './absval-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('AbsVal', () => {
  it('forwards |x| (Caffe TestAbsVal)', () => {
    const layer = createLayer(absValLayerDef);
    const bottom = makeBlob([2, 3, 4, 5]);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const x = blobValues(bottom);
    expect(blobValues(top)).toEqual(x.map(Math.abs));
  });

  it('backward is sign(x)·dy, 0 at x = 0', () => {
    const layer = createLayer(absValLayerDef);
    const bottom = makeBlob([4], { filler: [-2, 0, 3, -0.5] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual([-1, 0, 3, -4]);
  });

  it('passes the gradient check (Caffe TestAbsGradient: 1e-2, 1e-3, 1701, 0, 0.01)', () => {
    new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 }).checkGradientEltwise(
      createLayer(absValLayerDef),
      [makeBlob([2, 3, 4, 5])],
      [f64()],
    );
  });

  it('rejects in-place computation as Caffe does', () => {
    const blob = makeBlob([3]);
    expect(() => createLayer(absValLayerDef, { name: 'abs1' }).setUp([blob], [blob])).toThrow(
      "AbsVal layer 'abs1': AbsVal Layer does not allow in-place computation.",
    );
  });
});
