import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { createLayer } from '../testing.js';
import { inputLayerDef } from './input-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Input', () => {
  it('shapes each top from its own shape, or all tops from one shape', () => {
    const tops = [f64(), f64()];
    createLayer(inputLayerDef, { input_param: { shape: [{ dim: [2, 3, 4, 5] }, { dim: [2] }] } }).setUp([], tops);
    expect(tops.map((t) => t.shapeString())).toEqual(['2 3 4 5 (120)', '2 (2)']);
    const same = [f64(), f64(), f64()];
    createLayer(inputLayerDef, { input_param: { shape: [{ dim: [1, 3] }] } }).setUp([], same);
    expect(same.every((t) => t.shapeString() === '1 3 (3)')).toBe(true);
  });

  it('leaves shapes to the caller without a shape, and forward changes nothing', () => {
    const top = new Blob([4], { dtype: 'float64' });
    top.mutableCpuData().set([1, 2, 3, 4]);
    const layer = createLayer(inputLayerDef);
    layer.setUp([], [top]);
    expect(top.shape).toEqual([4]);
    top.reshape([2, 2]);
    expect(layer.forward([], [top])).toBe(0);
    expect(top.shape).toEqual([2, 2]);
    expect(Array.from(top.cpuData())).toEqual([1, 2, 3, 4]);
  });

  it('rejects a shape count that is neither 0, 1 nor one per top, and any bottom', () => {
    expect(() =>
      createLayer(inputLayerDef, { name: 'data', input_param: { shape: [{ dim: [1] }, { dim: [2] }] } }).setUp([], [f64(), f64(), f64()]),
    ).toThrow("Input layer 'data': Must specify 'shape' once, once per top blob, or not at all: 3 tops vs. 2 shapes.");
    expect(() => createLayer(inputLayerDef, { name: 'data' }).setUp([f64()], [f64()])).toThrow(
      "Input layer 'data': Input Layer takes 0 bottom blob(s) as input (got 1).",
    );
  });
});
