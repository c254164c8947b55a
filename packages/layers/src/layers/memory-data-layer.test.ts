import { Blob, setLogSink, type FloatArray } from '@caffe-ts/blob';
import { createMessage, type Datum } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer } from '../testing.js';
import { memoryDataLayerDef, type DatumTransformer, type MemoryDataLayer } from './memory-data-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function setUp(batch: number, c: number, h: number, w: number, extra: Record<string, unknown> = {}) {
  const layer = createLayer(memoryDataLayerDef, {
    name: 'md',
    memory_data_param: { batch_size: batch, channels: c, height: h, width: w },
    ...extra,
  });
  const tops = [f64(), f64()];
  layer.setUp([], tops);
  return { layer, tops };
}

const datum = (props: Partial<Datum>) => createMessage<Datum>('Datum', props);

describe('MemoryData', () => {
  it('shapes data N×C×H×W and label N at set-up, and needs data before a forward', () => {
    const { layer, tops } = setUp(2, 3, 1, 2);
    expect(tops.map((t) => t.shapeString())).toEqual(['2 3 1 2 (12)', '2 (2)']);
    expect([layer.batchSize, layer.channels, layer.height, layer.width]).toEqual([2, 3, 1, 2]);
    expect(() => layer.forward([], tops)).toThrow(
      "MemoryData layer 'md': MemoryDataLayer needs to be initialized by calling Reset (reset(data, labels, n) or addDatumVector(datums))",
    );
  });

  it('serves consecutive batches from reset and wraps around', () => {
    const { layer, tops } = setUp(2, 1, 1, 3);
    // 6 items of 3 values: item i holds 10i, 10i+1, 10i+2 and label i.
    const data = Float64Array.from({ length: 18 }, (_, k) => 10 * Math.floor(k / 3) + (k % 3));
    const labels = Float64Array.from({ length: 6 }, (_, i) => i);
    layer.reset(data, labels, 6);
    const served: number[][] = [];
    for (let it = 0; it < 4; it++) {
      layer.forward([], tops);
      expect(tops[0]!.shape).toEqual([2, 1, 1, 3]);
      expect(tops[1]!.shape).toEqual([2, 1, 1, 1]);
      served.push(blobValues(tops[1]!));
      const i0 = blobValues(tops[1]!)[0]!;
      expect(blobValues(tops[0]!)).toEqual([10 * i0, 10 * i0 + 1, 10 * i0 + 2, 10 * i0 + 10, 10 * i0 + 11, 10 * i0 + 12]);
    }
    expect(served).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [0, 1],
    ]);
    // The arrays are kept by reference, and a new reset starts from the first batch.
    labels[2] = 42;
    layer.forward([], tops);
    expect(blobValues(tops[1]!)).toEqual([42, 3]);
    layer.reset(Float64Array.from({ length: 6 }, (_, k) => -k), Float64Array.of(7, 8), 2);
    layer.forward([], tops);
    expect(blobValues(tops[0]!)).toEqual([-0, -1, -2, -3, -4, -5]);
    expect(blobValues(tops[1]!)).toEqual([7, 8]);
  });

  it('converts Datums (uint8 data or float_data) with their labels, and tracks unconsumed data', () => {
    const { layer, tops } = setUp(1, 2, 1, 1);
    const ml = layer as MemoryDataLayer;
    ml.addDatumVector([
      datum({ channels: 2, height: 1, width: 1, data: Uint8Array.of(3, 250), label: 4 }),
      datum({ channels: 2, height: 1, width: 1, float_data: [0.5, -1.5], label: 9 }),
    ]);
    expect(ml.hasNewData).toBe(true);
    expect(() => ml.addDatumVector([datum({ channels: 2, height: 1, width: 1, float_data: [1, 2] })])).toThrow(
      "MemoryData layer 'md': Can't add data until current data has been consumed.",
    );
    expect(() => ml.setBatchSize(2)).toThrow("MemoryData layer 'md': Can't change batch_size until current data has been consumed.");
    layer.forward([], tops);
    expect([blobValues(tops[0]!), blobValues(tops[1]!)]).toEqual([[3, 250], [4]]);
    expect(ml.hasNewData).toBe(true);
    layer.forward([], tops);
    expect([blobValues(tops[0]!), blobValues(tops[1]!)]).toEqual([[0.5, -1.5], [9]]);
    expect(ml.hasNewData).toBe(false);
    // Consumed: the batch size may change and new data may come.
    ml.setBatchSize(2);
    expect(() => layer.forward([], tops)).not.toThrow();
    expect(tops[0]!.shape).toEqual([2, 2, 1, 1]);
    expect(blobValues(tops[1]!)).toEqual([4, 9]);
  });

  it('applies a transform_param through the given transformer, and asks for one when missing', () => {
    const { layer, tops } = setUp(2, 1, 1, 2, { transform_param: { scale: 0.5 } });
    const ml = layer as MemoryDataLayer;
    const d = [datum({ channels: 1, height: 1, width: 2, data: Uint8Array.of(2, 4), label: 1 }), datum({ channels: 1, height: 1, width: 2, data: Uint8Array.of(6, 8), label: 0 })];
    expect(() => ml.addDatumVector(d)).toThrow(/^MemoryData layer 'md': has a transform_param: pass the DataTransformer/);
    // A stand-in with DataTransformer's shape: scale only.
    const halve: DatumTransformer = {
      inferBlobShape: (x) => [1, x.channels, x.height, x.width],
      transform: (x: Datum, out: FloatArray, offset = 0) => x.data.forEach((v, k) => (out[offset + k] = v * 0.5)),
    };
    ml.addDatumVector(d, halve);
    layer.forward([], tops);
    expect(blobValues(tops[0]!)).toEqual([1, 2, 3, 4]);
    expect(blobValues(tops[1]!)).toEqual([1, 0]);
    const crop: DatumTransformer = { inferBlobShape: () => [1, 1, 1, 1], transform: () => undefined };
    expect(() => ml.addDatumVector(d, crop)).toThrow("MemoryData layer 'md': datum 0 transforms to 1×1×1; memory_data_param says 1×1×2");
  });

  it('warns that reset does not transform when a transform_param is set', () => {
    const lines: string[] = [];
    const prev = setLogSink((l) => void lines.push(l));
    try {
      const { layer } = setUp(1, 1, 1, 1, { transform_param: { scale: 2 } });
      (layer as MemoryDataLayer).reset(Float64Array.of(1), Float64Array.of(0), 1);
    } finally {
      setLogSink(prev);
    }
    expect(lines.some((l) => l.startsWith('W') && l.endsWith('MemoryData does not transform array data on Reset()'))).toBe(true);
  });

  it('serves float32 tops', () => {
    const layer = createLayer(memoryDataLayerDef, { memory_data_param: { batch_size: 1, channels: 1, height: 1, width: 2 } }, { dtype: 'float32' });
    const tops = [new Blob([], { dtype: 'float32' }), new Blob([], { dtype: 'float32' })];
    layer.setUp([], tops);
    (layer as MemoryDataLayer).addDatumVector([datum({ channels: 1, height: 1, width: 2, data: Uint8Array.of(1, 2), label: 3 })]);
    layer.forward([], tops);
    expect(tops[0]!.cpuData()).toBeInstanceOf(Float32Array);
    expect([blobValues(tops[0]!), blobValues(tops[1]!)]).toEqual([[1, 2], [3]]);
  });

  it('rejects bad params, counts and sizes, naming the layer', () => {
    expect(() => setUp(2, 0, 1, 1)).toThrow(
      "MemoryData layer 'md': batch_size, channels, height, and width must be specified and positive in memory_data_param (got batch_size 2, channels 0, height 1, width 1)",
    );
    const { layer } = setUp(2, 1, 1, 2);
    const ml = layer as MemoryDataLayer;
    expect(() => ml.reset(new Float64Array(6), new Float64Array(3), 3)).toThrow(
      "MemoryData layer 'md': n must be a multiple of batch size (n = 3, batch_size = 2)",
    );
    expect(() => ml.reset(new Float64Array(6), new Float64Array(4), 4)).toThrow(
      "MemoryData layer 'md': reset: data holds 6 values; 4 items of 1×1×2 need 8",
    );
    expect(() => ml.reset(new Float64Array(8), new Float64Array(3), 4)).toThrow("MemoryData layer 'md': reset: labels holds 3 values; 4 items need 4");
    expect(() => ml.addDatumVector([])).toThrow("MemoryData layer 'md': There is no datum to add.");
    const one = datum({ channels: 1, height: 1, width: 2, data: Uint8Array.of(1, 2) });
    expect(() => ml.addDatumVector([one])).toThrow(
      "MemoryData layer 'md': The added data must be a multiple of the batch size (1 datums, batch_size 2).",
    );
    expect(() => ml.addDatumVector([one, datum({ channels: 2, height: 1, width: 1, data: Uint8Array.of(1, 2) })])).toThrow(
      "MemoryData layer 'md': datum 1 is 2×1×1; memory_data_param says 1×1×2",
    );
    expect(() => ml.addDatumVector([one, datum({ channels: 1, height: 1, width: 2, float_data: [1] })])).toThrow(
      "MemoryData layer 'md': datum 1 holds 1 float_data values; 1×1×2 needs 2",
    );
    ml.reset(new Float64Array(8), new Float64Array(4), 4);
    expect(() => ml.setBatchSize(3)).toThrow("MemoryData layer 'md': batch_size 3 does not divide the 4 items set by reset (next item 0); reset first");
    expect(() => ml.setBatchSize(0)).toThrow("MemoryData layer 'md': batch_size must be a positive integer (got 0)");
    expect(() => createLayer(memoryDataLayerDef, { name: 'md', memory_data_param: { batch_size: 1, channels: 1, height: 1, width: 1 } }).setUp([], [f64()])).toThrow(
      "MemoryData layer 'md': MemoryData Layer produces 2 top blob(s) as output (got 1).",
    );
  });
});
