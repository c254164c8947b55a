import { describe, expect, it } from 'vitest';
import { createMessage, decodeBlobProto, decodeDatum, encodeBlobProto, encodeDatum, type BlobProto, type Datum } from '@caffe-ts/proto';
import { arraysToBlobProtoVector, arrayToBlobProto, arrayToDatum, blobProtoToArray, blobProtoVectorToArrays, datumToArray } from './proto-arrays.js';

describe("caffe.io's array ↔ proto conversions", () => {
  it('BlobProto: shape and data (and diff) there and back through the binary format', () => {
    const data = Float32Array.from({ length: 24 }, (_, i) => i / 4 - 2);
    const diff = Float32Array.from({ length: 24 }, (_, i) => -i);
    const proto = decodeBlobProto(encodeBlobProto(arrayToBlobProto({ shape: [2, 3, 4], data }, { shape: [2, 3, 4], data: diff })));
    expect(proto.shape!.dim.map(Number)).toEqual([2, 3, 4]);
    expect(blobProtoToArray(proto)).toEqual({ shape: [2, 3, 4], data });
    expect(blobProtoToArray(proto, { diff: true })).toEqual({ shape: [2, 3, 4], data: diff });
    // Float64 arrays are stored as floats, as pycaffe's astype(float) → repeated float does.
    expect(Array.from(arrayToBlobProto({ shape: [2], data: new Float64Array([0.1, 2]) }).data)).toEqual([Math.fround(0.1), 2]);
  });

  it('BlobProto: the legacy num/channels/height/width shape wins when set, double_data is read where data is empty', () => {
    const legacy = createMessage<BlobProto>('BlobProto', { num: 1, channels: 3, height: 2, width: 2, data: Float32Array.from({ length: 12 }, (_, i) => i) });
    expect(blobProtoToArray(decodeBlobProto(encodeBlobProto(legacy))).shape).toEqual([1, 3, 2, 2]);
    const doubles = createMessage<BlobProto>('BlobProto', { shape: { dim: [3] }, double_data: new Float64Array([0.1, 0.2, 0.3]) });
    const a = blobProtoToArray(decodeBlobProto(encodeBlobProto(doubles)));
    expect(a.data).toBeInstanceOf(Float64Array);
    expect(Array.from(a.data)).toEqual([0.1, 0.2, 0.3]);
    expect(() => blobProtoToArray(createMessage<BlobProto>('BlobProto', { shape: { dim: [4] }, data: [1, 2] }))).toThrow(/holds 2 data values, but its shape 4 needs 4/);
    expect(() => arrayToBlobProto({ shape: [2, 2], data: new Float32Array(3) })).toThrow(/array has 3 values for shape 2×2/);
    expect(() => arrayToBlobProto({ shape: [2], data: new Float32Array(2) }, { shape: [1, 2], data: new Float32Array(2) })).toThrow(/diff shape 1×2 differs from the array's 2/);
  });

  it("BlobProto: NVIDIA Caffe's raw_data (half floats) is read where data and double_data are empty", () => {
    const raw = createMessage<BlobProto>('BlobProto', { shape: { dim: [1, 3] }, raw_data_type: 2, raw_data: Uint8Array.of(0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38) });
    const a = blobProtoToArray(decodeBlobProto(encodeBlobProto(raw)));
    expect(a).toEqual({ shape: [1, 3], data: Float32Array.of(1, -2, 0.5) });
  });

  it('BlobProtoVector: a list of arrays as one serialized message and back', () => {
    const arrays = [{ shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }, { shape: [3], data: new Float32Array([5, 6, 7]) }];
    expect(blobProtoVectorToArrays(arraysToBlobProtoVector(arrays))).toEqual(arrays);
  });

  it('Datum: uint8 arrays as bytes, others as float_data, with the label; and back (not the label)', () => {
    const bytes = { shape: [3, 2, 2], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) };
    const d = decodeDatum(encodeDatum(arrayToDatum(bytes, 7)));
    expect(d).toMatchObject({ channels: 3, height: 2, width: 2, label: 7 });
    expect(Array.from(d.data)).toEqual(Array.from(bytes.data));
    expect(d.float_data.length).toBe(0);
    expect(datumToArray(d)).toEqual(bytes);
    const floats = { shape: [1, 2, 3], data: new Float32Array([0.5, -1, 2, 3, 4, 5]) };
    const f = decodeDatum(encodeDatum(arrayToDatum(floats)));
    expect(f.data.length).toBe(0);
    expect(f.label).toBe(0);
    expect(datumToArray(f)).toEqual(floats);
    expect(() => arrayToDatum({ shape: [2, 2], data: new Float32Array(4) })).toThrow(/Incorrect array shape: a Datum holds C×H×W, got 2×2/);
    expect(() => datumToArray(createMessage<Datum>('Datum', { channels: 3, height: 1, width: 1, data: new Uint8Array([1, 2, 3]), encoded: true }))).toThrow(/encoded image/);
    expect(() => datumToArray(createMessage<Datum>('Datum', { channels: 3, height: 2, width: 1, data: new Uint8Array([1, 2, 3]) }))).toThrow(/holds 3 values, but 3×2×1 needs 6/);
  });
});
