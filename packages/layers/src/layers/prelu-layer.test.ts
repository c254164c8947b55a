import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, fillGaussian, GradientChecker, makeBlob } from '../testing.js';
import { PReLULayer, preluLayerDef } from './prelu-layer.js';
import { reluLayerDef } from './relu-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];

function prelu(props: Record<string, unknown> = {}): PReLULayer {
  return createLayer(preluLayerDef, { name: 'prelu1', ...props });
}

/** Independent reference: channel c = (i / (H·W)) mod C, or 0 when shared. */
function reference(x: number[], slopes: number[], shape: number[], shared: boolean): number[] {
  const dim = shape.slice(2).reduce((a, b) => a * b, 1);
  return x.map((v, i) => {
    const c = shared ? 0 : Math.floor(i / dim) % shape[1]!;
    return v > 0 ? v : slopes[c]! * v;
  });
}

describe('PReLU', () => {
  it('fills the slopes with 0.25 by default (Caffe TestPReLUParam), one per channel', () => {
    const layer = prelu();
    layer.setUp([makeBlob(SHAPE)], [f64()]);
    expect(layer.blobs).toHaveLength(1);
    expect(layer.blobs[0]!.shape).toEqual([3]);
    expect(blobValues(layer.blobs[0]!)).toEqual([0.25, 0.25, 0.25]);
    expect(layer.channelShared).toBe(false);
  });

  it('channel_shared: a single slope of shape []', () => {
    const layer = prelu({ prelu_param: { channel_shared: true } });
    layer.setUp([makeBlob(SHAPE)], [f64()]);
    expect(layer.blobs[0]!.shape).toEqual([]);
    expect(blobValues(layer.blobs[0]!)).toEqual([0.25]);
  });

  it('uses prelu_param.filler when given', () => {
    const layer = prelu({ prelu_param: { filler: { type: 'constant', value: 0.5 } } });
    layer.setUp([makeBlob(SHAPE)], [f64()]);
    expect(blobValues(layer.blobs[0]!)).toEqual([0.5, 0.5, 0.5]);
  });

  it('forwards max(x,0) + a_c·min(x,0) per channel (Caffe TestPReLUForward)', () => {
    const layer = prelu();
    const bottom = makeBlob(SHAPE);
    const top = f64();
    layer.setUp([bottom], [top]);
    fillGaussian(layer.blobs[0]!, new Rng(7));
    layer.forward([bottom], [top]);
    expect(top.shape).toEqual(SHAPE);
    expect(blobValues(top)).toEqual(reference(blobValues(bottom), blobValues(layer.blobs[0]!), SHAPE, false));
  });

  it('forwards with one shared slope (Caffe TestPReLUForwardChannelShared)', () => {
    const layer = prelu({ prelu_param: { channel_shared: true } });
    const bottom = makeBlob(SHAPE);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.blobs[0]!.mutableCpuData()[0] = -0.75;
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual(reference(blobValues(bottom), [-0.75], SHAPE, true));
  });

  it('matches ReLU with negative_slope 0.25, forward and backward (Caffe TestPReLUConsistencyReLU)', () => {
    const p = prelu();
    const r = createLayer(reluLayerDef, { relu_param: { negative_slope: 0.25 } });
    const b1 = makeBlob(SHAPE);
    const b2 = makeBlob(SHAPE);
    const t1 = f64();
    const t2 = f64();
    p.setUp([b1], [t1]);
    r.setUp([b2], [t2]);
    p.forward([b1], [t1]);
    r.forward([b2], [t2]);
    expect(blobValues(t1)).toEqual(blobValues(t2));
    const dy = makeBlob(SHAPE, { rng: new Rng(3) }).cpuData();
    t1.mutableCpuDiff().set(dy);
    t2.mutableCpuDiff().set(dy);
    p.backward([t1], [true], [b1]);
    r.backward([t2], [true], [b2]);
    expect(blobValues(b1, 'diff')).toEqual(blobValues(b2, 'diff'));
  });

  it('backward: dx = dy (x > 0) or a_c·dy, and the slope diff accumulates Σ dy·x over x ≤ 0', () => {
    const shape = [1, 2, 3];
    const layer = prelu();
    const x = [1, -2, 0, -1, 3, -4];
    const bottom = makeBlob(shape, { filler: x });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.blobs[0]!.mutableCpuData().set([0.5, -1]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6]);
    layer.blobs[0]!.mutableCpuDiff().set([10, 20]);
    layer.backward([top], [true], [bottom]);
    expect(blobValues(bottom, 'diff')).toEqual([1, 0.5 * 2, 0.5 * 3, -1 * 4, 5, -1 * 6]);
    // x ≤ 0 counts (x = 0 adds 0); the existing diff is kept.
    expect(blobValues(layer.blobs[0]!, 'diff')).toEqual([10 + 2 * -2 + 3 * 0, 20 + 4 * -1 + 6 * -4]);
  });

  it('in place gives the same top, bottom diff and slope diff as out of place (bottom copy, Caffe TestPReLUInPlace)', () => {
    const dy = makeBlob(SHAPE, { rng: new Rng(5) }).cpuData();
    const run = (inPlace: boolean) => {
      const layer = prelu();
      const bottom = makeBlob(SHAPE);
      const top = inPlace ? bottom : f64();
      layer.setUp([bottom], [top]);
      fillGaussian(layer.blobs[0]!, new Rng(9));
      layer.forward([bottom], [top]);
      const y = blobValues(top);
      top.mutableCpuDiff().set(dy);
      layer.backward([top], [true], [bottom]);
      return { y, dx: blobValues(bottom, 'diff'), da: blobValues(layer.blobs[0]!, 'diff') };
    };
    const a = run(false);
    const b = run(true);
    expect(b.y).toEqual(a.y);
    expect(b.dx).toEqual(a.dx);
    expect(b.da).toEqual(a.da);
    expect(a.da.some((v) => v !== 0)).toBe(true);
  });

  it('passes the exhaustive gradient check incl. the slopes (Caffe: 1e-2, 1e-3, 1701, 0, 0.01)', () => {
    const checker = new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 });
    const layer = prelu();
    const bottom = makeBlob([2, 3, 2, 2]);
    const top = f64();
    layer.setUp([bottom], [top]);
    fillGaussian(layer.blobs[0]!, new Rng(11));
    checker.checkGradientExhaustive(layer, [bottom], [top]);
  });

  it('passes the exhaustive gradient check with channel_shared (Caffe: 1e-2, 1e-3, 1701, 0, 0.01)', () => {
    const checker = new GradientChecker(1e-2, 1e-3, { seed: 1701, kink: 0, kinkRange: 0.01 });
    checker.checkGradientExhaustive(prelu({ prelu_param: { channel_shared: true } }), [makeBlob([2, 3, 2, 2])], [f64()]);
  });

  it('runs in float32', () => {
    const layer = createLayer(preluLayerDef, {}, { dtype: 'float32' });
    const bottom = makeBlob([1, 2, 2], { dtype: 'float32', filler: [-4, 2, -8, 1] });
    const top = new Blob([], { dtype: 'float32' });
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(top.cpuData()).toBeInstanceOf(Float32Array);
    expect(blobValues(top)).toEqual([-1, 2, -2, 1]);
  });

  it('rejects a bottom with fewer than 2 axes and a loaded slope blob of the wrong size', () => {
    expect(() => prelu().setUp([makeBlob([4])], [f64()])).toThrow(
      "PReLU layer 'prelu1': Number of axes of bottom blob must be >=2 (bottom shape 4 (4)).",
    );
    const layer = prelu();
    layer.blobs = [makeBlob([2])];
    expect(() => layer.setUp([makeBlob(SHAPE)], [f64()])).toThrow(
      "PReLU layer 'prelu1': Negative slope size is inconsistent with prototxt config (expected 3 slope(s) for 3 channels, the slope blob has shape 2 (2))",
    );
  });
});
