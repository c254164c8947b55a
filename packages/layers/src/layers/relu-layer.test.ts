import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ReLULayer, reluLayerDef, WASM_MIN_ELEMENTS } from './relu-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('ReLU', () => {
  it('forwards max(x, 0) and keeps the shape', () => {
    const layer = createLayer(reluLayerDef);
    const bottom = makeBlob([2, 3], { filler: [-2, -0.5, 0, 0.5, 1, 3] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(top.shape).toEqual([2, 3]);
    expect(blobValues(top)).toEqual([0, 0, 0, 0.5, 1, 3]);
  });

  it('forwards a leaky slope for negatives', () => {
    // negative_slope is a float32 field: 0.25 is exact, 0.1 would not be.
    const layer = createLayer(reluLayerDef, { relu_param: { negative_slope: 0.25 } });
    const bottom = makeBlob([4], { filler: [-2, -0.5, 0.5, 3] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const y = blobValues(top);
    expect(y).toEqual([-0.5, -0.125, 0.5, 3]);
  });

  it('passes the gradient where x > 0 and the slope elsewhere', () => {
    const layer = createLayer(reluLayerDef, { relu_param: { negative_slope: 0.5 } });
    const bottom = makeBlob([4], { filler: [-1, 2, 0, 3] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual([0.5, 2, 1.5, 4]);
  });

  it('runs in place', () => {
    const layer = createLayer(reluLayerDef, { relu_param: { negative_slope: 0.5 } });
    const blob = makeBlob([4], { filler: [-1, 2, -4, 3] });
    layer.setUp([blob], [blob]);
    layer.forward([blob], [blob]);
    expect(blobValues(blob)).toEqual([-0.5, 2, -2, 3]);
    blob.mutableCpuDiff().set([1, 1, 1, 1]);
    layer.backward([blob], [true], [blob]);
    expect(blobValues(blob, 'diff')).toEqual([0.5, 1, 0.5, 1]);
  });

  it('passes the gradient check (Caffe: 1e-2, 1e-3, seed 1701, kink 0, kinkRange 0.01)', () => {
    const checker = new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 });
    checker.checkGradientEltwise(createLayer(reluLayerDef), [makeBlob([2, 3, 2, 2])], [f64()]);
    checker.checkGradientEltwise(createLayer(reluLayerDef, { relu_param: { negative_slope: 0.01 } }), [makeBlob([2, 3, 2, 2])], [f64()]);
  });

  it('rejects the wrong number of blobs', () => {
    const layer = createLayer<ReLULayer>(reluLayerDef, { name: 'relu1' });
    expect(() => layer.setUp([makeBlob([2]), makeBlob([2])], [f64()])).toThrow(
      "ReLU layer 'relu1': ReLU Layer takes 1 bottom blob(s) as input (got 2).",
    );
    expect(() => layer.setUp([makeBlob([2])], [])).toThrow("ReLU layer 'relu1': ReLU Layer produces 1 top blob(s) as output (got 0).");
  });

  it('float32 forwards the same values above and below the WebAssembly threshold, in place too', () => {
    for (const slope of [0, 0.25]) {
      for (const n of [WASM_MIN_ELEMENTS - 1, WASM_MIN_ELEMENTS + 3]) {
        const layer = createLayer(reluLayerDef, { relu_param: { negative_slope: slope } }, { dtype: 'float32' });
        const bottom = makeBlob([n], { dtype: 'float32', filler: 'uniform', min: -1, max: 1 });
        const want = Array.from(bottom.cpuData(), (v) => Math.fround(Math.max(v, 0) + slope * Math.min(v, 0)));
        const top = new Blob([], { dtype: 'float32' });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        expect(Array.from(top.cpuData())).toEqual(want);
        layer.forward([bottom], [bottom]);
        expect(Array.from(bottom.cpuData())).toEqual(want);
      }
    }
  });
});
