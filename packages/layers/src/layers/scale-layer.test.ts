import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ScaleLayer, scaleLayerDef } from './scale-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
// Caffe's test uses 2×3×4×5 uniform [1, 10]; smaller keeps the exhaustive checks fast.
const SHAPE = [2, 3, 2, 3];
const uniform = (shape: number[], seed = 1701) => makeBlob(shape, { filler: 'uniform', min: 1, max: 10, rng: new Rng(seed) });
const scale = (scale_param: Record<string, unknown> = {}) => createLayer<ScaleLayer>(scaleLayerDef, { name: 'scale1', scale_param });
const checker = () => new GradientChecker(1e-2, 1e-3);

/** Index into a broadcast blob of shape `bShape` applied at `axis`, for flat index k of `shape`. */
function broadcastIndex(shape: readonly number[], bShape: readonly number[], axis: number, k: number): number {
  const idx: number[] = [];
  let r = k;
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = r % shape[a]!;
    r = Math.floor(r / shape[a]!);
  }
  let bi = 0;
  for (let a = 0; a < bShape.length; a++) bi = bi * bShape[a]! + idx[axis + a]!;
  return bi;
}

/** Independent reference: y = x·s (+ b), s and b broadcast from `axis`. */
function reference(x: Blob, s: Blob, axis: number, b?: Blob): number[] {
  const sv = blobValues(s);
  const bv = b ? blobValues(b) : null;
  return blobValues(x).map((v, k) => {
    const i = broadcastIndex(x.shape, s.shape, axis, k);
    return v * sv[i]! + (bv ? bv[i]! : 0);
  });
}

function forward(layer: ScaleLayer, bottom: Blob[], top: Blob = f64()): Blob {
  layer.setUp(bottom, [top]);
  layer.forward(bottom, [top]);
  return top;
}

describe('Scale', () => {
  it('defaults: axis 1, num_axes 1, a learned scale of shape [C] filled with 1, no bias', () => {
    const layer = scale();
    const x = uniform(SHAPE);
    const top = forward(layer, [x]);
    expect(layer.blobs).toHaveLength(1);
    expect(layer.blobs[0]!.shape).toEqual([3]);
    expect(blobValues(layer.blobs[0]!)).toEqual([1, 1, 1]);
    expect(layer.biasLayer).toBeNull();
    expect(blobValues(top)).toEqual(blobValues(x));
  });

  it('a filler given without a value fills with its own default (constant 0), as in Caffe', () => {
    const layer = scale({ filler: { type: 'constant' } });
    forward(layer, [uniform(SHAPE)]);
    expect(blobValues(layer.blobs[0]!)).toEqual([0, 0, 0]);
  });

  it('multiplies by an element-wise second bottom (axis 0), also in place (Caffe TestForwardEltwise*)', () => {
    const a = uniform(SHAPE);
    const b = uniform(SHAPE, 2);
    const expected = blobValues(a).map((v, i) => v * blobValues(b)[i]!);
    expect(blobValues(forward(scale({ axis: 0 }), [a, b]))).toEqual(expected);
    forward(scale({ axis: 0 }), [a, b], a);
    expect(blobValues(a)).toEqual(expected);
  });

  it('broadcasts a second bottom at the beginning, middle and end, and a scalar (Caffe TestForwardBroadcast*, TestForwardScale*)', () => {
    const cases: [number[], number][] = [
      [[2, 3], 0],
      [[3, 2], 1],
      [[2, 3], 2],
      [[], 1],
      [[], 2],
    ];
    for (const [shape, axis] of cases) {
      const x = uniform(SHAPE);
      const s = uniform(shape, 3);
      expect(blobValues(forward(scale({ axis }), [x, s]))).toEqual(reference(x, s, shape.length === 0 ? 0 : axis));
    }
  });

  it('learned scale over two axes, with and without the bias term (Caffe TestForwardBroadcastMiddleWithParam[AndBias])', () => {
    const plain = scale({ axis: 1, num_axes: 2, filler: { type: 'gaussian' } });
    const x = uniform(SHAPE);
    expect(blobValues(forward(plain, [x]))).toEqual(reference(x, plain.blobs[0]!, 1));

    const withBias = scale({ axis: 1, num_axes: 2, filler: { type: 'gaussian' }, bias_term: true, bias_filler: { type: 'gaussian' } });
    const top = forward(withBias, [x]);
    expect(top.shape).toEqual(SHAPE);
    expect(withBias.blobs.map((b) => b.shape)).toEqual([
      [3, 2],
      [3, 2],
    ]);
    expect(withBias.biasParamId).toBe(1);
    // The bias blob is the internal Bias layer's own.
    expect(withBias.biasLayer!.blobs[0]).toBe(withBias.blobs[1]);
    const got = blobValues(top);
    reference(x, withBias.blobs[0]!, 1, withBias.blobs[1]!).forEach((v, i) => expect(got[i]).toBeCloseTo(v, 12));
  });

  it('bias_term with the scale from bottom[1]: blobs = [bias], shaped like bottom[1]; the bias filler defaults to 0', () => {
    const layer = scale({ bias_term: true });
    const x = uniform(SHAPE);
    const s = uniform([3], 2);
    const top = forward(layer, [x, s]);
    expect(layer.blobs).toHaveLength(1);
    expect(layer.biasParamId).toBe(0);
    expect(layer.blobs[0]!.shape).toEqual([3]);
    expect(blobValues(layer.blobs[0]!)).toEqual([0, 0, 0]);
    expect(blobValues(top)).toEqual(reference(x, s, 1));
  });

  it('uses loaded blobs [scale, bias] instead of filling new ones', () => {
    const layer = scale({ bias_term: true });
    layer.blobs = [makeBlob([3], { filler: [1, 2, 3] }), makeBlob([3], { filler: [10, 20, 30] })];
    const x = makeBlob([1, 3, 1], { filler: [1, 1, 1] });
    expect(blobValues(forward(layer, [x]))).toEqual([11, 22, 33]);
    expect(layer.biasLayer!.blobs[0]).toBe(layer.blobs[1]);
  });

  it('backward: bottom diff = s·dy; a learned scale diff accumulates Σ dy·x, a bottom scale diff is overwritten', () => {
    const x = makeBlob([2, 2], { filler: [1, 2, 3, 4] });
    const top = f64();
    const layer = scale({ filler: { type: 'constant', value: 2 } });
    forward(layer, [x], top);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer.blobs[0]!.mutableCpuDiff().set([100, 200]);
    layer.backward([top], [true], [x]);
    expect(blobValues(x, 'diff')).toEqual([2, 4, 6, 8]);
    expect(blobValues(layer.blobs[0]!, 'diff')).toEqual([100 + 1 + 9, 200 + 4 + 16]);

    const s = makeBlob([2], { filler: [2, 2] });
    s.mutableCpuDiff().set([100, 200]);
    const layer2 = scale();
    const x2 = makeBlob([2, 2], { filler: [1, 2, 3, 4] });
    forward(layer2, [x2, s], top);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer2.backward([top], [true, true], [x2, s]);
    expect(blobValues(s, 'diff')).toEqual([10, 20]);
  });

  it('backward in place equals out of place, incl. the scale and bias diffs (Caffe TestBackward*InPlace)', () => {
    for (const [props, sShape] of [
      [{ axis: 0 }, SHAPE],
      [{ axis: 1 }, [3, 2]],
      [{ bias_term: true, bias_filler: { type: 'gaussian' } }, null],
    ] as [Record<string, unknown>, number[] | null][]) {
      const dy = makeBlob(SHAPE, { rng: new Rng(8) }).cpuData();
      const run = (inPlace: boolean) => {
        const x = uniform(SHAPE);
        const bottom = sShape ? [x, uniform(sShape, 4)] : [x];
        const top = inPlace ? x : f64();
        const layer = scale(props);
        forward(layer, bottom, top);
        top.mutableCpuDiff().set(dy);
        for (const b of layer.blobs) b.mutableCpuDiff().fill(0);
        layer.backward([top], bottom.map(() => true), bottom);
        return [...bottom.map((b) => blobValues(b, 'diff')), ...layer.blobs.map((b) => blobValues(b, 'diff'))];
      };
      const a = run(false);
      const b = run(true);
      expect(b.length).toBe(a.length);
      a.forEach((arr, i) => arr.forEach((v, j) => expect(b[i]![j]).toBeCloseTo(v, 12)));
    }
  });

  it('passes the gradient checks (Caffe TestGradient*: 1e-2, 1e-3; eltwise and exhaustive)', () => {
    checker().checkGradientEltwise(scale({ axis: 0 }), [uniform(SHAPE), uniform(SHAPE, 2)], [f64()]);
    checker().checkGradientExhaustive(scale({ axis: 0, num_axes: -1, filler: { type: 'gaussian' } }), [uniform(SHAPE)], [f64()]);
    checker().checkGradientExhaustive(scale({ axis: 0 }), [uniform(SHAPE), uniform([2, 3], 2)], [f64()]);
    checker().checkGradientExhaustive(scale({ axis: 1 }), [uniform(SHAPE), uniform([3, 2], 2)], [f64()]);
    checker().checkGradientExhaustive(scale({ axis: 1, num_axes: 2, filler: { type: 'gaussian' } }), [uniform(SHAPE)], [f64()]);
    checker().checkGradientExhaustive(scale({ axis: 2 }), [uniform(SHAPE), uniform([2, 3], 2)], [f64()]);
    checker().checkGradientExhaustive(scale(), [uniform(SHAPE), uniform([], 2)], [f64()]);
    checker().checkGradientExhaustive(scale({ bias_term: true, bias_filler: { type: 'gaussian' } }), [uniform(SHAPE), uniform([], 2)], [f64()]);
    checker().checkGradientExhaustive(scale({ axis: 2 }), [uniform(SHAPE), uniform([], 2)], [f64()]);
    // Learned scale and bias together (both params checked).
    checker().checkGradientExhaustive(
      scale({ axis: 1, num_axes: 2, filler: { type: 'gaussian' }, bias_term: true, bias_filler: { type: 'gaussian' } }),
      [uniform(SHAPE)],
      [f64()],
    );
  });

  it('runs in float32', () => {
    const layer = createLayer<ScaleLayer>(scaleLayerDef, { scale_param: { bias_term: true, bias_filler: { type: 'constant', value: 1 } } }, { dtype: 'float32' });
    const x = makeBlob([1, 2], { dtype: 'float32', filler: [1.5, 2] });
    const top = new Blob([], { dtype: 'float32' });
    forward(layer, [x], top);
    expect(layer.blobs.map((b) => b.dtype)).toEqual(['float32', 'float32']);
    expect(blobValues(top)).toEqual([2.5, 3]);
  });

  it('rejects mismatched shapes with messages naming the layer', () => {
    expect(() => forward(scale({ axis: 1 }), [uniform(SHAPE), uniform([2, 2])])).toThrow(
      "Scale layer 'scale1': dimension mismatch between bottom[0]->shape(1) and scale->shape(0) (3 vs 2; bottom[0] 2 3 2 3 (36), scale 2 2 (4))",
    );
    expect(() => forward(scale({ axis: 2, num_axes: 3 }), [uniform(SHAPE)])).toThrow(
      "Scale layer 'scale1': scale blob's shape extends past bottom[0]'s shape when applied starting with bottom[0] axis = 2 (num_axes 3, bottom[0] shape 2 3 2 3 (36))",
    );
    const loaded = scale();
    loaded.blobs = [makeBlob([4])];
    expect(() => forward(loaded, [uniform(SHAPE)])).toThrow(
      "Scale layer 'scale1': dimension mismatch between bottom[0]->shape(1) and scale->shape(0) (3 vs 4; bottom[0] 2 3 2 3 (36), scale 4 (4))",
    );
  });

  it('adds the bias in the scaling sweep with the two-step rounding (float32), in place', () => {
    const props = { filler: { type: 'uniform', min: 0.3, max: 3 }, bias_term: true, bias_filler: { type: 'uniform', min: -1, max: 1 } };
    const layer = createLayer<ScaleLayer>(scaleLayerDef, { name: 's', scale_param: { axis: 1, num_axes: 1, ...props } }, { dtype: 'float32', rng: new Rng(3) });
    const x = makeBlob([2, 3, 4, 5], { dtype: 'float32', filler: 'uniform', min: -5, max: 5, rng: new Rng(8) });
    const before = Float32Array.from(x.cpuData());
    layer.setUp([x], [x]);
    layer.forward([x], [x]);
    const s = layer.blobs[0]!.cpuData(), b = layer.blobs[1]!.cpuData();
    const got = x.cpuData();
    for (let k = 0; k < before.length; k++) {
      const c = Math.floor(k / 20) % 3;
      expect(got[k]).toBe(Math.fround(Math.fround(s[c]! * before[k]!) + b[c]!));
    }
  });

  it('keeps no bottom copy in place when backwardNeeded is false, and then refuses the scale gradient', () => {
    const layer = scale({ axis: 1, num_axes: 1 });
    const x = uniform(SHAPE);
    layer.setUp([x], [x]);
    layer.backwardNeeded = false;
    layer.forward([x], [x]);
    x.mutableCpuDiff().fill(1);
    expect(() => layer.backward([x], [true], [x])).toThrow(/scale gradient needs the bottom of the last in-place forward/);
    layer.backwardNeeded = true;
    layer.forward([x], [x]);
    expect(() => layer.backward([x], [true], [x])).not.toThrow();
  });
});
