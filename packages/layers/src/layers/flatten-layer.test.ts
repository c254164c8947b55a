import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { flattenLayerDef } from './flatten-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function flatShape(props: Record<string, unknown>, shape: number[]): readonly number[] {
  const top = f64();
  createLayer(flattenLayerDef, props).setUp([makeBlob(shape)], [top]);
  return top.shape;
}

describe('Flatten', () => {
  it('computes Caffe’s output shapes for axis and end_axis', () => {
    expect(flatShape({}, [2, 3, 6, 5])).toEqual([2, 90]);
    expect(flatShape({ flatten_param: { axis: 2 } }, [2, 3, 6, 5])).toEqual([2, 3, 30]);
    expect(flatShape({ flatten_param: { end_axis: -2 } }, [2, 3, 6, 5])).toEqual([2, 18, 5]);
    expect(flatShape({ flatten_param: { axis: 0, end_axis: 1 } }, [2, 3, 6, 5])).toEqual([6, 6, 5]);
    expect(flatShape({ flatten_param: { axis: -1 } }, [2, 3])).toEqual([2, 3]);
  });

  it('shares data and diff with the bottom', () => {
    const bottom = makeBlob([2, 3, 2]);
    const top = f64();
    const layer = createLayer(flattenLayerDef);
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual(blobValues(bottom));
    top.mutableCpuDiff().fill(3);
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual(new Array(12).fill(3));
  });

  it('passes the exhaustive gradient check (Caffe: 1e-2, 1e-2)', () => {
    new GradientChecker(1e-2, 1e-2).checkGradientEltwise(createLayer(flattenLayerDef), [makeBlob([2, 3, 2, 2])], [f64()]);
    new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(createLayer(flattenLayerDef), [makeBlob([2, 2, 2])], [f64()]);
  });

  it('rejects in-place use and bad axes', () => {
    const b = makeBlob([2, 3]);
    expect(() => createLayer(flattenLayerDef, { name: 'fl' }).setUp([b], [b])).toThrow(
      "Flatten layer 'fl': Flatten Layer does not allow in-place computation.",
    );
    expect(() => createLayer(flattenLayerDef, { name: 'fl', flatten_param: { axis: 3 } }).setUp([b], [f64()])).toThrow(
      "Flatten layer 'fl': axis 3 / end_axis -1 out of range for bottom shape 2 3 (6)",
    );
  });
});
