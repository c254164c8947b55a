import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { BiasLayer, biasLayerDef } from './bias-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
// Caffe's test uses 2×3×4×5 uniform [1, 10]; smaller keeps the exhaustive checks fast.
const SHAPE = [2, 3, 2, 3];
const uniform = (shape: number[], seed = 1701) => makeBlob(shape, { filler: 'uniform', min: 1, max: 10, rng: new Rng(seed) });
const bias = (bias_param: Record<string, unknown> = {}) => createLayer<BiasLayer>(biasLayerDef, { name: 'bias1', bias_param });
const checker = () => new GradientChecker(1e-2, 1e-3);

/** Independent reference: y[idx] = x[idx] + b[idx[axis .. axis + b.ndim)] by multi-index. */
function reference(x: Blob, b: Blob, axis: number): number[] {
  const shape = x.shape;
  const xs = blobValues(x);
  const bs = blobValues(b);
  return xs.map((v, k) => {
    const idx: number[] = [];
    let r = k;
    for (let a = shape.length - 1; a >= 0; a--) {
      idx[a] = r % shape[a]!;
      r = Math.floor(r / shape[a]!);
    }
    let bi = 0;
    for (let a = 0; a < b.numAxes; a++) bi = bi * b.shape[a]! + idx[axis + a]!;
    return v + bs[bi]!;
  });
}

function forward(layer: BiasLayer, bottom: Blob[], top: Blob = f64()): Blob {
  layer.setUp(bottom, [top]);
  layer.forward(bottom, [top]);
  return top;
}

describe('Bias', () => {
  it('defaults: axis 1, num_axes 1, a learned bias of shape [C] filled with 0', () => {
    const layer = bias();
    const bottom = uniform(SHAPE);
    const top = forward(layer, [bottom]);
    expect(layer.blobs).toHaveLength(1);
    expect(layer.blobs[0]!.shape).toEqual([3]);
    expect(blobValues(layer.blobs[0]!)).toEqual([0, 0, 0]);
    expect(blobValues(top)).toEqual(blobValues(bottom));
    expect([layer.outerDim, layer.biasDim, layer.innerDim]).toEqual([2, 3, 6]);
  });

  it('adds an element-wise second bottom (axis 0), also in place (Caffe TestForwardEltwise*)', () => {
    const a = uniform(SHAPE);
    const b = uniform(SHAPE, 2);
    const expected = blobValues(a).map((v, i) => v + blobValues(b)[i]!);
    expect(blobValues(forward(bias({ axis: 0 }), [a, b]))).toEqual(expected);
    forward(bias({ axis: 0 }), [a, b], a);
    expect(blobValues(a)).toEqual(expected);
  });

  it('adds a learned element-wise bias (axis 0, num_axes −1, gaussian filler)', () => {
    const layer = bias({ axis: 0, num_axes: -1, filler: { type: 'gaussian' } });
    const x = uniform(SHAPE);
    const top = forward(layer, [x]);
    expect(layer.blobs[0]!.shape).toEqual(SHAPE);
    expect(blobValues(top)).toEqual(reference(x, layer.blobs[0]!, 0));
  });

  it('broadcasts a second bottom at the beginning, middle and end (Caffe TestForwardBroadcast*)', () => {
    const cases: [number[], number][] = [
      [[2, 3], 0],
      [[3, 2], 1],
      [[2, 3], 2],
    ];
    for (const [shape, axis] of cases) {
      const x = uniform(SHAPE);
      const b = uniform(shape, 3);
      expect(blobValues(forward(bias({ axis }), [x, b]))).toEqual(reference(x, b, axis));
    }
  });

  it('broadcasts a learned bias over two axes (axis 1, num_axes 2)', () => {
    const layer = bias({ axis: 1, num_axes: 2, filler: { type: 'gaussian' } });
    const x = uniform(SHAPE);
    const top = forward(layer, [x]);
    expect(layer.blobs[0]!.shape).toEqual([3, 2]);
    expect(blobValues(top)).toEqual(reference(x, layer.blobs[0]!, 1));
  });

  it('adds a scalar second bottom whatever the axis (Caffe TestForwardBias, TestForwardBiasAxis2)', () => {
    for (const axis of [1, 2]) {
      const layer = bias({ axis });
      const x = uniform(SHAPE);
      const b = makeBlob([], { filler: [4.5] });
      const top = forward(layer, [x, b]);
      expect(blobValues(top)).toEqual(blobValues(x).map((v) => v + 4.5));
      expect([layer.outerDim, layer.biasDim, layer.innerDim]).toEqual([1, 1, 36]);
    }
  });

  it('backward: bottom diff = top diff; a learned bias diff accumulates, a bottom bias diff is overwritten', () => {
    const x = makeBlob([2, 2], { filler: [1, 2, 3, 4] });
    const top = f64();
    const layer = bias();
    forward(layer, [x], top);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer.blobs[0]!.mutableCpuDiff().set([100, 200]);
    layer.backward([top], [true], [x]);
    expect(blobValues(x, 'diff')).toEqual([1, 2, 3, 4]);
    expect(blobValues(layer.blobs[0]!, 'diff')).toEqual([104, 206]);

    const b = makeBlob([2], { filler: [0, 0] });
    b.mutableCpuDiff().set([100, 200]);
    const layer2 = bias();
    forward(layer2, [x, b], top);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer2.backward([top], [true, true], [x, b]);
    expect(blobValues(b, 'diff')).toEqual([4, 6]);
  });

  it('backward in place equals out of place (Caffe TestBackwardEltwiseInPlace, TestBackwardBroadcastMiddleInPlace)', () => {
    for (const [shape, axis] of [
      [SHAPE, 0],
      [[3, 2], 1],
    ] as [number[], number][]) {
      const dy = makeBlob(SHAPE, { rng: new Rng(8) }).cpuData();
      const run = (inPlace: boolean) => {
        const x = uniform(SHAPE);
        const b = uniform(shape, 4);
        const top = inPlace ? x : f64();
        const layer = bias({ axis });
        forward(layer, [x, b], top);
        top.mutableCpuDiff().set(dy);
        layer.backward([top], [true, true], [x, b]);
        return [blobValues(x, 'diff'), blobValues(b, 'diff')];
      };
      expect(run(true)).toEqual(run(false));
    }
  });

  it('passes the gradient checks (Caffe TestGradient*: 1e-2, 1e-3; eltwise and exhaustive)', () => {
    checker().checkGradientEltwise(bias({ axis: 0 }), [uniform(SHAPE), uniform(SHAPE, 2)], [f64()]);
    checker().checkGradientExhaustive(bias({ axis: 0, num_axes: -1, filler: { type: 'gaussian' } }), [uniform(SHAPE)], [f64()]);
    checker().checkGradientExhaustive(bias({ axis: 0 }), [uniform(SHAPE), uniform([2, 3], 2)], [f64()]);
    checker().checkGradientExhaustive(bias({ axis: 1 }), [uniform(SHAPE), uniform([3, 2], 2)], [f64()]);
    checker().checkGradientExhaustive(bias({ axis: 1, num_axes: 2, filler: { type: 'gaussian' } }), [uniform(SHAPE)], [f64()]);
    checker().checkGradientExhaustive(bias({ axis: 2 }), [uniform(SHAPE), uniform([2, 3], 2)], [f64()]);
    checker().checkGradientExhaustive(bias(), [uniform(SHAPE), uniform([], 2)], [f64()]);
    checker().checkGradientExhaustive(bias({ axis: 2 }), [uniform(SHAPE), uniform([], 2)], [f64()]);
  });

  it('runs in float32', () => {
    const layer = createLayer<BiasLayer>(biasLayerDef, { bias_param: { filler: { type: 'constant', value: 0.5 } } }, { dtype: 'float32' });
    const x = makeBlob([1, 2], { dtype: 'float32', filler: [1, 2] });
    const top = new Blob([], { dtype: 'float32' });
    forward(layer, [x], top);
    expect(layer.blobs[0]!.dtype).toBe('float32');
    expect(blobValues(top)).toEqual([1.5, 2.5]);
  });

  it('rejects mismatched shapes and a bad num_axes with messages naming the layer', () => {
    expect(() => forward(bias({ axis: 1 }), [uniform(SHAPE), uniform([2, 2])])).toThrow(
      "Bias layer 'bias1': dimension mismatch between bottom[0]->shape(1) and bias->shape(0) (3 vs 2; bottom[0] 2 3 2 3 (36), bias 2 2 (4))",
    );
    expect(() => forward(bias({ axis: 3 }), [uniform(SHAPE), uniform([3, 2])])).toThrow(
      "Bias layer 'bias1': bias blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis = 3 (bias shape 3 2 (6), bottom[0] shape 2 3 2 3 (36))",
    );
    expect(() => forward(bias({ num_axes: -2 }), [uniform(SHAPE)])).toThrow(
      "Bias layer 'bias1': num_axes must be non-negative, or -1 to extend to the end of bottom[0] (got -2)",
    );
    expect(() => forward(bias({ axis: 4 }), [uniform(SHAPE)])).toThrow("Bias layer 'bias1': axis 4 out of range for 4-D bottom blob with shape 2 3 2 3 (36)");
    expect(() => forward(bias(), [uniform(SHAPE), uniform([3]), uniform([3])])).toThrow(
      "Bias layer 'bias1': Bias Layer takes at most 2 bottom blob(s) as input (got 3).",
    );
  });
});
