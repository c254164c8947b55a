import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ReshapeLayer, reshapeLayerDef } from './reshape-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function reshapeTo(dim: number[], extra: Record<string, unknown> = {}, bottomShape = [2, 3, 6, 5], name = 'reshape'): Blob {
  const layer = createLayer<ReshapeLayer>(reshapeLayerDef, { name, reshape_param: { shape: { dim }, ...extra } });
  const top = f64();
  layer.setUp([makeBlob(bottomShape)], [top]);
  return top;
}

describe('ReshapeLayer', () => {
  it('Caffe test_reshape_layer shapes on 2×3×6×5', () => {
    expect(reshapeTo([0, -1, 1, 1]).shape).toEqual([2, 90, 1, 1]);
    expect(reshapeTo([0, 0, 0, 0]).shape).toEqual([2, 3, 6, 5]);
    expect(reshapeTo([0, 3, 10, -1]).shape).toEqual([2, 3, 10, 3]);
    expect(reshapeTo([3, 10, -1], { axis: 1 }).shape).toEqual([2, 3, 10, 3]);
    expect(reshapeTo([1, 1, 1], { axis: 0, num_axes: 0 }).shape).toEqual([1, 1, 1, 2, 3, 6, 5]);
    expect(reshapeTo([1, 1, 1], { axis: 2, num_axes: 0 }).shape).toEqual([2, 3, 1, 1, 1, 6, 5]);
    expect(reshapeTo([1, 1, 1], { axis: -1, num_axes: 0 }).shape).toEqual([2, 3, 6, 5, 1, 1, 1]);
    expect(reshapeTo([-1], { axis: 1, num_axes: 2 }).shape).toEqual([2, 18, 5]);
    // axis −2 is "before the last axis": replaces only the last one.
    expect(reshapeTo([5, 1], { axis: -2 }).shape).toEqual([2, 3, 6, 5, 1]);
  });

  it('is a view: the top shares the bottom data and diff, and follows a new bottom shape', () => {
    const layer = createLayer<ReshapeLayer>(reshapeLayerDef, { reshape_param: { shape: { dim: [0, -1, 1, 1] } } });
    const bottom = makeBlob([2, 3, 6, 5]);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual(blobValues(bottom));
    bottom.mutableCpuData()[7] = 42;
    expect(top.cpuData()[7]).toBe(42);
    top.mutableCpuDiff()[3] = 5;
    layer.backward([top], [true], [bottom]);
    expect(bottom.cpuDiff()[3]).toBe(5);
    // Caffe's TestForwardAfterReshape: a 1-D bottom; the 0 now copies its only dim, 180.
    bottom.reshape([2 * 3 * 6 * 5]);
    layer.forward([bottom], [top]);
    expect(top.shape).toEqual([180, 1, 1, 1]);
    expect(top.cpuData()[7]).toBe(42);
  });

  it('gradient, Caffe (1e-2, 1e-2) element-wise', () => {
    const layer = createLayer(reshapeLayerDef, { reshape_param: { shape: { dim: [6, 2, -1] } } });
    new GradientChecker(1e-2, 1e-2).checkGradientEltwise(layer, [makeBlob([2, 3, 2, 2])], [f64()]);
  });

  it('defaults (axis 0, num_axes −1) and Caffe\'s error messages', () => {
    const layer = createLayer<ReshapeLayer>(reshapeLayerDef, { reshape_param: { shape: { dim: [-1] } } });
    expect(layer.param.reshape_param!.axis).toBe(0);
    expect(layer.param.reshape_param!.num_axes).toBe(-1);
    expect(() => reshapeTo([-1, -1], {}, [2, 3], 'r1')).toThrow(
      "Reshape layer 'r1': new shape contains multiple -1 dims; at most a single (1) value of -1 may be specified",
    );
    expect(() => reshapeTo([4, -1], {}, [2, 3], 'r1')).toThrow(
      "Reshape layer 'r1': bottom count (6) must be divisible by the product of the specified dimensions (4)",
    );
    expect(() => reshapeTo([4, 2], {}, [2, 3], 'r1')).toThrow(
      "Reshape layer 'r1': output count must match input count (top shape 4 2 (8), bottom 2 3 (6))",
    );
    expect(() => reshapeTo([0, 0, 0], {}, [2, 3], 'r1')).toThrow(
      "Reshape layer 'r1': new shape contains a 0, but there was no corresponding bottom axis to copy (dim 2, bottom 2 3 (6))",
    );
    expect(() => reshapeTo([6], { axis: 3 }, [2, 3], 'r1')).toThrow("Reshape layer 'r1': axis 3 out of range for 2-D input blob");
    const b = makeBlob([2, 3]);
    expect(() => createLayer(reshapeLayerDef, { name: 'r1', reshape_param: { shape: { dim: [6] } } }).setUp([b], [b])).toThrow(
      "Reshape layer 'r1': Reshape Layer does not allow in-place computation.",
    );
  });
});
