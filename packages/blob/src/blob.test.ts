import { createMessage, decodeBlobProto, encodeBlobProto, type BlobProto } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { Blob, BlobError, blobProtoData, blobProtoDiff, blobProtoShape, MAX_BLOB_AXES } from './blob.js';
import { setHostAllocator } from './host-memory.js';

const ramp = (b: Blob, start = 0) => {
  const d = b.mutableCpuData();
  for (let i = 0; i < d.length; i++) d[i] = start + i;
  return b;
};

describe('Blob shape', () => {
  it('counts, formats and indexes like Caffe', () => {
    const b = new Blob([2, 3, 4, 5]);
    expect(b.count()).toBe(120);
    expect(b.count(1)).toBe(60);
    expect(b.count(1, 3)).toBe(12);
    expect(b.count(2, 2)).toBe(1);
    expect(b.shapeString()).toBe('2 3 4 5 (120)');
    expect(new Blob([]).shapeString()).toBe('(1)');
    expect(new Blob([0, 3]).shapeString()).toBe('0 3 (0)');
    expect(b.offset(1, 2, 3, 4)).toBe(119);
    expect(b.offset(1)).toBe(60);
    expect(b.cpuData()).toHaveLength(120);
    expect(b.cpuData()).toBeInstanceOf(Float32Array);
    expect(new Blob([3], { dtype: 'float64' }).cpuData()).toBeInstanceOf(Float64Array);
  });

  it('canonicalAxisIndex accepts -numAxes..numAxes-1 and names the blob otherwise', () => {
    const b = new Blob([2, 3, 4, 5]);
    expect(b.canonicalAxisIndex(0)).toBe(0);
    expect(b.canonicalAxisIndex(-1)).toBe(3);
    expect(b.canonicalAxisIndex(-4)).toBe(0);
    expect(b.shapeAt(-2)).toBe(4);
    expect(() => b.canonicalAxisIndex(4)).toThrow(BlobError);
    expect(() => b.canonicalAxisIndex(4)).toThrow('axis 4 out of range for 4-D blob with shape 2 3 4 5 (120)');
    expect(() => b.canonicalAxisIndex(-5)).toThrow(/axis -5 out of range/);
  });

  it('rejects bad dims, too many axes and out-of-range count ranges', () => {
    expect(() => new Blob([2, -1])).toThrow(/invalid blob dimension -1/);
    expect(() => new Blob([2.5])).toThrow(BlobError);
    expect(() => new Blob(new Array(MAX_BLOB_AXES + 1).fill(1))).toThrow(/at most 32/);
    expect(() => new Blob([2, 3]).count(1, 3)).toThrow(/count\(1, 3\) out of range for 2-D blob/);
    expect(() => new Blob([2, 3]).count(2, 1)).toThrow(BlobError);
  });

  it('reshape keeps the memory (and values) while the count fits the capacity', () => {
    const b = ramp(new Blob([2, 3]));
    const mem = b.data;
    b.reshape([3, 2]);
    expect(b.data).toBe(mem);
    expect(Array.from(b.cpuData())).toEqual([0, 1, 2, 3, 4, 5]);
    b.reshape([2, 2]);
    expect(b.data).toBe(mem);
    expect(b.cpuData()).toHaveLength(4);
    expect(Array.from(b.cpuData())).toEqual([0, 1, 2, 3]);
    b.reshape([6]); // back up to the capacity: no reallocation
    expect(b.data).toBe(mem);
    b.reshape([7]);
    expect(b.data).not.toBe(mem);
    expect(b.data.capacity).toBe(7);
    expect(b.cpuData()).toHaveLength(7);
  });

  it('shapeEquals compares shapes, not counts', () => {
    const b = new Blob([2, 3]);
    expect(b.shapeEquals([2, 3])).toBe(true);
    expect(b.shapeEquals([3, 2])).toBe(false);
    expect(b.shapeEquals(new Blob([2, 3]))).toBe(true);
    expect(b.shapeEquals([6])).toBe(false);
  });
});

describe('Blob data', () => {
  it('shareData/shareDiff make two blobs view the same memory', () => {
    const a = ramp(new Blob([2, 3]));
    const b = new Blob([6]);
    b.shareData(a);
    expect(Array.from(b.cpuData())).toEqual([0, 1, 2, 3, 4, 5]);
    b.mutableCpuData()[0] = 42;
    expect(a.cpuData()[0]).toBe(42);
    b.shareDiff(a);
    a.mutableCpuDiff()[5] = 7;
    expect(b.cpuDiff()[5]).toBe(7);
    expect(() => new Blob([5]).shareData(a)).toThrow(/shareData: count mismatch \(2 3 \(6\) vs 5 \(5\)\)/);
  });

  it('update() computes data -= diff', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const b = ramp(new Blob([4], { dtype }), 1);
      b.mutableCpuDiff().set([0.5, -1, 0, 2]);
      b.update();
      expect(Array.from(b.cpuData())).toEqual([0.5, 3, 3, 2]);
      expect(Array.from(b.cpuDiff())).toEqual([0.5, -1, 0, 2]);
    }
  });

  it('asum/sumsq/scale over data and diff', () => {
    const b = new Blob([3]);
    b.mutableCpuData().set([1, -2, 3]);
    b.mutableCpuDiff().set([-1, 0, 2]);
    expect(b.asumData()).toBe(6);
    expect(b.sumsqData()).toBe(14);
    expect(b.asumDiff()).toBe(3);
    expect(b.sumsqDiff()).toBe(5);
    b.scaleData(2);
    b.scaleDiff(-1);
    expect(Array.from(b.cpuData())).toEqual([2, -4, 6]);
    expect(Array.from(b.cpuDiff())).toEqual([1, -0, -2]);
  });

  it('copyFrom copies data or diff, reshaping only when asked', () => {
    const src = ramp(new Blob([2, 2]));
    src.mutableCpuDiff().fill(9);
    const dst = new Blob([4]);
    expect(() => dst.copyFrom(src)).toThrow(/copyFrom: shape mismatch \(2 2 \(4\) into 4 \(4\)\)/);
    dst.copyFrom(src, { reshape: true });
    expect(dst.shape).toEqual([2, 2]);
    expect(Array.from(dst.cpuData())).toEqual([0, 1, 2, 3]);
    dst.copyFrom(src, { copyDiff: true });
    expect(Array.from(dst.cpuDiff())).toEqual([9, 9, 9, 9]);
  });

  it("copyFrom between blobs of the 'wasm' host allocator (kernel memory, memory.copy) and across allocators", () => {
    const prev = setHostAllocator('wasm');
    try {
      const src = new Blob([3, 700]);
      const v = src.mutableCpuData();
      for (let i = 0; i < v.length; i++) v[i] = Math.fround(i / 7 - 100);
      src.mutableCpuDiff().fill(-2.5);
      const dst = new Blob([3, 700]);
      dst.copyFrom(src);
      dst.copyFrom(src, { copyDiff: true });
      expect(Array.from(dst.cpuData())).toEqual(Array.from(v));
      expect(dst.cpuDiff().every((x) => x === -2.5)).toBe(true);
      setHostAllocator('js');
      const plain = new Blob([3, 700]);
      plain.copyFrom(src);
      expect(Array.from(plain.cpuData())).toEqual(Array.from(v));
      src.copyFrom(plain, { copyDiff: true });
      expect(src.cpuDiff().every((x) => x === 0)).toBe(true);
    } finally {
      setHostAllocator(prev);
    }
  });
});

describe('Blob protos', () => {
  it('round-trips shape, data and diff through a BlobProto (float32: data/diff)', () => {
    const a = ramp(new Blob([2, 3]));
    a.mutableCpuDiff().fill(0.5);
    const proto = decodeBlobProto(encodeBlobProto(a.toProto(true)));
    expect(proto.shape!.dim.map(Number)).toEqual([2, 3]);
    expect(proto.double_data).toHaveLength(0);
    const b = new Blob();
    b.fromProto(proto);
    expect(b.shape).toEqual([2, 3]);
    expect(Array.from(b.cpuData())).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(b.cpuDiff())).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(a.toProto().diff).toHaveLength(0); // diff only when asked
  });

  it('float64 blobs write and read double_data/double_diff', () => {
    const a = new Blob([3], { dtype: 'float64' });
    a.mutableCpuData().set([0.1, 1 / 3, 1e-300]);
    const proto = decodeBlobProto(encodeBlobProto(a.toProto(true)));
    expect(proto.data).toHaveLength(0);
    expect(proto.double_data).toHaveLength(3);
    const b = new Blob([], { dtype: 'float64' });
    b.fromProto(proto);
    expect(Array.from(b.cpuData())).toEqual([0.1, 1 / 3, 1e-300]);
    // A float32 blob takes double_data too, rounding it.
    const c = new Blob();
    c.fromProto(proto);
    expect(c.cpuData()[1]).toBe(Math.fround(1 / 3));
  });

  it("reads NVIDIA Caffe's raw_data: half floats (field 12, type FLOAT16 in field 10), floats and doubles", () => {
    // Wire bytes as NVIDIA Caffe writes them: shape [6], raw_data_type 2, then 6 little-endian halves:
    // 1, −2, 0.5, 65504 (the largest), 2^−24 (the smallest subnormal), +∞.
    const halves = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00].flatMap((h) => [h & 0xff, h >> 8]);
    const bytes = Uint8Array.from([0x3a, 0x03, 0x0a, 0x01, 0x06, 0x50, 0x02, 0x62, 12, ...halves]);
    const proto = decodeBlobProto(bytes);
    const b = new Blob();
    b.fromProto(proto);
    expect(b.shape).toEqual([6]);
    expect(Array.from(b.cpuData())).toEqual([1, -2, 0.5, 65504, 2 ** -24, Infinity]);
    const raw = (type: number, values: Float32Array | Float64Array) =>
      createMessage<BlobProto>('BlobProto', { raw_data_type: type, raw_data: new Uint8Array(values.buffer) });
    const f = new Blob();
    f.fromProto(raw(1, Float32Array.of(0.1, -3)));
    expect(Array.from(f.cpuData())).toEqual([Math.fround(0.1), -3]);
    const d = new Blob([], { dtype: 'float64' });
    d.fromProto(raw(0, Float64Array.of(0.1)));
    expect(Array.from(d.cpuData())).toEqual([0.1]);
    // data, where present, wins (as double_data does over data).
    const both = createMessage<BlobProto>('BlobProto', { data: [7], raw_data_type: 1, raw_data: new Uint8Array(Float32Array.of(8).buffer) });
    expect(blobProtoData(both)).toEqual([7]);
    expect(() => new Blob().fromProto(raw(3, Float32Array.of(1)), { what: "layer 'ip' blob 0" })).toThrow(
      "layer 'ip' blob 0: raw_data of type INT (integers) cannot be read as blob values",
    );
    const odd = createMessage<BlobProto>('BlobProto', { raw_data_type: 2, raw_data: Uint8Array.of(1, 2, 3) });
    expect(() => new Blob().fromProto(odd)).toThrow('blob: raw_data holds 3 bytes, not a whole number of FLOAT16 values (2 bytes each)');
  });

  it("reads NVIDIA Caffe's raw_diff (field 13, its type in field 11) into the diff", () => {
    // Shape [2], raw_data_type FLOAT16 with 1 and 2, raw_diff_type FLOAT16 with −0.5 and 4.
    const half = (...h: number[]) => h.flatMap((x) => [x & 0xff, x >> 8]);
    const bytes = Uint8Array.from([0x3a, 0x03, 0x0a, 0x01, 0x02, 0x50, 0x02, 0x58, 0x02, 0x62, 4, ...half(0x3c00, 0x4000), 0x6a, 4, ...half(0xb800, 0x4400)]);
    const proto = decodeBlobProto(bytes);
    expect([proto.raw_diff_type, proto.raw_diff.length]).toEqual([2, 4]);
    const b = new Blob();
    b.fromProto(proto);
    expect(Array.from(b.cpuData())).toEqual([1, 2]);
    expect(Array.from(b.cpuDiff())).toEqual([-0.5, 4]);
    expect(Array.from(blobProtoDiff(proto))).toEqual([-0.5, 4]);
    const odd = createMessage<BlobProto>('BlobProto', { data: [1], raw_diff_type: 1, raw_diff: Uint8Array.of(1, 2) });
    expect(() => new Blob().fromProto(odd)).toThrow('blob: raw_diff holds 2 bytes, not a whole number of FLOAT values (4 bytes each)');
  });

  it('reads the legacy num/channels/height/width shape', () => {
    const proto = createMessage<BlobProto>('BlobProto', { num: 1, channels: 2, height: 1, width: 3, data: [1, 2, 3, 4, 5, 6] });
    expect(blobProtoShape(proto)).toEqual([1, 2, 1, 3]);
    const b = new Blob();
    b.fromProto(decodeBlobProto(encodeBlobProto(proto)));
    expect(b.shape).toEqual([1, 2, 1, 3]);
    expect(Array.from(b.cpuData())).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('without reshape, a legacy 1 1 M N proto loads into an M×N blob (old InnerProduct weights)', () => {
    const weights = createMessage<BlobProto>('BlobProto', { num: 1, channels: 1, height: 2, width: 3, data: [1, 2, 3, 4, 5, 6] });
    const bias = createMessage<BlobProto>('BlobProto', { num: 1, channels: 1, height: 1, width: 2, data: [7, 8] });
    const w = new Blob([2, 3]);
    const bb = new Blob([2]);
    expect(w.shapeEqualsProto(weights)).toBe(true);
    w.fromProto(weights, { reshape: false });
    bb.fromProto(bias, { reshape: false });
    expect(w.shape).toEqual([2, 3]);
    expect(Array.from(w.cpuData())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(bb.cpuData())).toEqual([7, 8]);
    expect(new Blob([3, 2]).shapeEqualsProto(weights)).toBe(false);
    expect(new Blob([1, 1, 1, 2, 3]).shapeEqualsProto(weights)).toBe(false);
  });

  it('without reshape, a shape mismatch names what was expected and found', () => {
    const proto = createMessage<BlobProto>('BlobProto', { shape: { dim: [3, 2] }, data: [1, 2, 3, 4, 5, 6] });
    expect(() => new Blob([2, 3]).fromProto(proto, { reshape: false, what: 'conv1 weights' })).toThrow(
      'conv1 weights: shape mismatch; expected 2 3 (6), file has 3 2 (6)',
    );
  });

  it('rejects a value count that does not match the shape', () => {
    const proto = createMessage<BlobProto>('BlobProto', { shape: { dim: [2, 2] }, data: [1, 2, 3] });
    expect(() => new Blob().fromProto(proto)).toThrow(/data has 3 values, shape 2 2 \(4\) needs 4/);
  });
});

describe('blob byte limit', () => {
  it('refuses a shape over the limit before allocating, naming the shape', async () => {
    const { BlobSizeError, setMaxBlobBytes, maxBlobBytes } = await import('./blob.js');
    expect(maxBlobBytes()).toBeGreaterThan(0);
    const prev = setMaxBlobBytes(1024);
    try {
      expect(() => new Blob([16, 16])).not.toThrow(); // exactly 1024 bytes of float32
      expect(() => new Blob([16, 16], { dtype: 'float64' })).toThrow(BlobSizeError);
      expect(() => new Blob([1000, 1000])).toThrow(/^blob shape \[1000, 1000\] \(1000000 float32 elements, 4000000 bytes\) exceeds the 1024-byte limit per blob/);
      expect(() => new Blob([1e6, 1e6])).toThrow(BlobSizeError);
      const b = new Blob([2]);
      expect(() => b.reshape([1000, 1000])).toThrow(BlobSizeError);
      expect(b.shape).toEqual([2]); // unchanged after the refusal
    } finally {
      setMaxBlobBytes(prev);
    }
  });

  it('reshaping to the shape a blob has keeps its memory; a new shape is checked again', async () => {
    const { BlobSizeError, setMaxBlobBytes } = await import('./blob.js');
    const b = new Blob([3, 4]);
    const data = b.mutableCpuData();
    data[5] = 7;
    b.reshape([3, 4]);
    expect(b.cpuData()).toBe(data);
    expect(b.cpuData()[5]).toBe(7);
    // A scalar blob ([] holds one value) gets its memory on construction.
    expect(new Blob([]).cpuData().length).toBe(1);
    const prev = setMaxBlobBytes(64);
    try {
      expect(() => b.reshape([4, 4])).not.toThrow();
      expect(() => b.reshape([5, 4])).toThrow(BlobSizeError);
      expect(b.shape).toEqual([4, 4]);
    } finally {
      setMaxBlobBytes(prev);
    }
  });

  it('names the blob when a BlobProto claims too many elements', async () => {
    const { setMaxBlobBytes } = await import('./blob.js');
    const { createMessage } = await import('@caffe-ts/proto');
    const prev = setMaxBlobBytes(1 << 20);
    try {
      const proto = createMessage<import('@caffe-ts/proto').BlobProto>('BlobProto', { shape: { dim: [1e6, 1e6] } });
      expect(() => new Blob().fromProto(proto, { what: 'mean file' })).toThrow(/^mean file: blob size 1000000000000 exceeds the 2\^31-1 element limit/);
      const proto2 = createMessage<import('@caffe-ts/proto').BlobProto>('BlobProto', { shape: { dim: [1000, 1000] } });
      expect(() => new Blob().fromProto(proto2, { what: 'mean file' })).toThrow(/^mean file: blob shape \[1000, 1000\]/);
    } finally {
      setMaxBlobBytes(prev);
    }
  });

  it("legacy accessors (Caffe's num/channels/height/width, LegacyShape): missing axes count 1, more than four axes refuse", () => {
    const b = new Blob([2, 3, 4, 5]);
    expect([b.num, b.channels, b.height, b.width]).toEqual([2, 3, 4, 5]);
    const ip = new Blob([64, 500]);
    expect([ip.num, ip.channels, ip.height, ip.width]).toEqual([64, 500, 1, 1]);
    expect(ip.legacyShape(-1)).toBe(500);
    expect(ip.legacyShape(-3)).toBe(1);
    const scalar = new Blob([]);
    expect([scalar.num, scalar.channels, scalar.height, scalar.width]).toEqual([1, 1, 1, 1]);
    expect(() => new Blob([1, 2, 3, 4, 5]).num).toThrow(/Cannot use legacy accessors on Blobs with > 4 axes \(shape 1 2 3 4 5 \(120\)\)/);
    expect(() => b.legacyShape(4)).toThrow(/legacy shape index 4 is not in \[-4, 4\)/);
  });
});

