import { Blob, fillBlob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer } from '../testing.js';
import { dummyDataLayerDef } from './dummy-data-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const tops = (n: number) => Array.from({ length: n }, f64);

describe('DummyData', () => {
  it('defaults to zeros and takes legacy 4-D dims once for every top', () => {
    const t = tops(2);
    const layer = createLayer(dummyDataLayerDef, { dummy_data_param: { num: [2], channels: [3], height: [1], width: [2] } });
    t.forEach((b) => b.mutableCpuData().fill(5)); // stale values must be overwritten at set-up
    layer.setUp([], t);
    expect(t.map((b) => b.shapeString())).toEqual(['2 3 1 2 (12)', '2 3 1 2 (12)']);
    expect(t.every((b) => blobValues(b).every((v) => v === 0))).toBe(true);
    expect(layer.forward([], t)).toBe(0);
    expect(t.every((b) => blobValues(b).every((v) => v === 0))).toBe(true);
  });

  it('takes legacy dims per top, and shapes once or per top', () => {
    const legacy = tops(2);
    createLayer(dummyDataLayerDef, { dummy_data_param: { num: [1, 2], channels: [3], height: [4, 5], width: [1] } }).setUp([], legacy);
    expect(legacy.map((b) => b.shape)).toEqual([
      [1, 3, 4, 1],
      [2, 3, 5, 1],
    ]);
    const perTop = tops(2);
    createLayer(dummyDataLayerDef, { dummy_data_param: { shape: [{ dim: [3] }, { dim: [2, 2, 2, 1, 1] }] } }).setUp([], perTop);
    expect(perTop.map((b) => b.shapeString())).toEqual(['3 (3)', '2 2 2 1 1 (8)']);
    const shared = tops(3);
    createLayer(dummyDataLayerDef, { dummy_data_param: { shape: [{ dim: [2, 3] }] } }).setUp([], shared);
    expect(shared.every((b) => b.shapeString() === '2 3 (6)')).toBe(true);
  });

  it('fills constant tops once and refills the others on every forward (constant, gaussian, constant)', () => {
    const t = tops(3);
    const layer = createLayer(
      dummyDataLayerDef,
      {
        dummy_data_param: {
          shape: [{ dim: [2, 3] }],
          data_filler: [
            { type: 'constant', value: 7 },
            { type: 'gaussian', std: 2 },
            { type: 'constant', value: -9 },
          ],
        },
      },
      { rng: new Rng(42) },
    );
    layer.setUp([], t);
    expect(blobValues(t[0]!)).toEqual(Array(6).fill(7));
    expect(blobValues(t[2]!)).toEqual(Array(6).fill(-9));
    // Set-up does not draw from the rng for the gaussian top; the first forward does.
    const reference = new Blob([2, 3], { dtype: 'float64' });
    const rng = new Rng(42);
    fillBlob(reference, { type: 'gaussian', std: 2 }, rng);
    layer.forward([], t);
    expect(blobValues(t[1]!)).toEqual(blobValues(reference));
    // A constant top is never rewritten: what a consumer writes there stays.
    t[0]!.mutableCpuData()[0] = 100;
    layer.forward([], t);
    fillBlob(reference, { type: 'gaussian', std: 2 }, rng);
    expect(blobValues(t[1]!)).toEqual(blobValues(reference));
    expect(blobValues(t[0]!)).toEqual([100, 7, 7, 7, 7, 7]);
    expect(blobValues(t[2]!)).toEqual(Array(6).fill(-9));
  });

  it('uses one non-constant filler for every top, refilling each in order', () => {
    const t = tops(2);
    const layer = createLayer(
      dummyDataLayerDef,
      { dummy_data_param: { shape: [{ dim: [4] }], data_filler: [{ type: 'uniform', min: -1, max: 1 }] } },
      { rng: new Rng(7) },
    );
    layer.setUp([], t);
    expect(blobValues(t[0]!)).toEqual([0, 0, 0, 0]);
    layer.forward([], t);
    const rng = new Rng(7);
    const expected = [0, 1].map(() => {
      const b = new Blob([4], { dtype: 'float64' });
      fillBlob(b, { type: 'uniform', min: -1, max: 1 }, rng);
      return blobValues(b);
    });
    expect(t.map((b) => blobValues(b))).toEqual(expected);
    expect(blobValues(t[0]!).every((v) => v >= -1 && v <= 1)).toBe(true);
  });

  it('works in float32', () => {
    const t = [new Blob([], { dtype: 'float32' })];
    const layer = createLayer(
      dummyDataLayerDef,
      { dummy_data_param: { shape: [{ dim: [2] }], data_filler: [{ type: 'constant', value: 0.5 }] } },
      { dtype: 'float32' },
    );
    layer.setUp([], t);
    layer.forward([], t);
    expect(t[0]!.cpuData()).toBeInstanceOf(Float32Array);
    expect(blobValues(t[0]!)).toEqual([0.5, 0.5]);
  });

  it('rejects bad filler counts, mixed or missing shapes, unknown fillers and bottoms, naming the layer', () => {
    const make = (p: Record<string, unknown>) => createLayer(dummyDataLayerDef, { name: 'dd', dummy_data_param: p });
    expect(() => make({ shape: [{ dim: [1] }], data_filler: [{}, {}] }).setUp([], tops(3))).toThrow(
      "DummyData layer 'dd': Number of data fillers must be 0, 1 or equal to the number of tops: 3; you specified 2 data fillers.",
    );
    expect(() => make({ shape: [{ dim: [1] }], num: [1] }).setUp([], tops(1))).toThrow(
      "DummyData layer 'dd': Both shape and legacy fields were specified",
    );
    expect(() => make({ num: [1], channels: [1, 2], height: [1], width: [1] }).setUp([], tops(3))).toThrow(
      "DummyData layer 'dd': Must specify 'channels' once, or once per top blob (3); specified 2.",
    );
    expect(() => make({ num: [1], channels: [1] }).setUp([], tops(1))).toThrow(
      "DummyData layer 'dd': Must specify 'height' once, or once per top blob (1); specified 0.",
    );
    expect(() => make({}).setUp([], tops(2))).toThrow("DummyData layer 'dd': Must specify 'shape' once, or once per top blob (2); specified 0.");
    expect(() => make({ shape: [{ dim: [1] }], data_filler: [{ type: 'gausian' }] }).setUp([], tops(1))).toThrow(
      /^DummyData layer 'dd': Unknown filler name: gausian \(known fillers: constant, gaussian/,
    );
    expect(() => make({ shape: [{ dim: [1] }] }).setUp([f64()], tops(1))).toThrow(
      "DummyData layer 'dd': DummyData Layer takes 0 bottom blob(s) as input (got 1).",
    );
  });
});
