import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker } from '../testing.js';
import { ParameterLayer, parameterLayerDef } from './parameter-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function parameter(dim: number[], name = 'param'): ParameterLayer {
  return createLayer(parameterLayerDef, { name, parameter_param: { shape: { dim } } });
}

describe('ParameterLayer', () => {
  it('creates one zero blob of the given shape and exposes it as the top (shared data and diff)', () => {
    const layer = parameter([2, 3]);
    const top = f64();
    layer.setUp([], [top]);
    expect(layer.blobs.length).toBe(1);
    expect(layer.blobs[0]!.shape).toEqual([2, 3]);
    expect(Array.from(layer.blobs[0]!.cpuData())).toEqual([0, 0, 0, 0, 0, 0]);
    layer.forward([], [top]);
    expect(top.shape).toEqual([2, 3]);
    layer.blobs[0]!.mutableCpuData()[4] = 1.5;
    expect(top.cpuData()[4]).toBe(1.5);
    top.mutableCpuDiff()[1] = -2;
    layer.backward([top], [], []);
    expect(layer.blobs[0]!.cpuDiff()[1]).toBe(-2);
  });

  it('keeps supplied weights of the right shape; rejects the wrong shape', () => {
    const layer = parameter([3]);
    const w = new Blob([3], { dtype: 'float64' });
    w.mutableCpuData().set([1, 2, 3]);
    layer.blobs = [w];
    const top = f64();
    layer.setUp([], [top]);
    layer.forward([], [top]);
    expect(Array.from(top.cpuData())).toEqual([1, 2, 3]);
    const bad = parameter([3], 'p1');
    bad.blobs = [new Blob([4], { dtype: 'float64' })];
    expect(() => bad.setUp([], [f64()])).toThrow("Parameter layer 'p1': Incorrect weight shape: expected shape 3 (3); instead, shape was 4 (4)");
  });

  it('gradient of the parameter, (1e-2, 1e-3)', () => {
    const layer = parameter([2, 2]);
    const w = new Blob([2, 2], { dtype: 'float64' });
    w.mutableCpuData().set([0.5, -1, 2, 0.25]);
    layer.blobs = [w];
    // Params only (checkBottom −2): the layer has no bottoms.
    new GradientChecker(1e-2, 1e-3).checkGradient(layer, [], [f64()], -2);
  });

  it('takes no bottoms', () => {
    expect(() => parameter([1], 'p1').setUp([f64()], [f64()])).toThrow(
      "Parameter layer 'p1': Parameter Layer takes 0 bottom blob(s) as input (got 1).",
    );
  });
});
