import { Blob, Rng } from '@caffe-ts/blob';
import { createMessage, encodeBinary, Phase, type Datum, type TransformationParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { DataTransformer } from './data-transformer.js';
import { DataError } from './errors.js';
import { encodeImage, type PixelImage } from './image-io.js';

// Caffe's test_data_transformer.cpp setting: a 3×4×5 Datum, every pixel = label or = its index.
const C = 3;
const H = 4;
const W = 5;
const N = C * H * W;

function datum(label: number, uniquePixels: boolean, extra: Partial<Datum> = {}): Datum {
  const data = new Uint8Array(N);
  for (let j = 0; j < N; j++) data[j] = uniquePixels ? j : label;
  return createMessage<Datum>('Datum', { channels: C, height: H, width: W, label, data, ...extra });
}

const tp = (props: Record<string, unknown> = {}) => createMessage<TransformationParameter>('TransformationParameter', props);

function run(t: DataTransformer, d: Datum): Float32Array {
  const shape = t.inferBlobShape(d);
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  t.transform(d, out);
  return out;
}

describe('DataTransformer', () => {
  it('empty transform copies the pixels (label-valued and unique)', () => {
    const t = new DataTransformer(tp(), Phase.TEST, new Rng(1701));
    expect(t.inferBlobShape(datum(0, false))).toEqual([1, C, H, W]);
    expect(Array.from(run(t, datum(7, false)))).toEqual(new Array(N).fill(7));
    expect(Array.from(run(t, datum(0, true)))).toEqual(Array.from({ length: N }, (_, j) => j));
  });

  it('a missing transform_param (null) is the identity', () => {
    const t = new DataTransformer(null, Phase.TRAIN);
    expect(Array.from(run(t, datum(3, false)))).toEqual(new Array(N).fill(3));
  });

  it('scale multiplies after the mean is subtracted', () => {
    const t = new DataTransformer(tp({ scale: 0.5, mean_value: [1] }), Phase.TEST);
    expect(Array.from(run(t, datum(5, false)))).toEqual(new Array(N).fill(2));
  });

  it('mean_value: 2 gives −2 everywhere for label-0 pixels', () => {
    const t = new DataTransformer(tp({ mean_value: [2] }), Phase.TEST);
    expect(Array.from(run(t, datum(0, false)))).toEqual(new Array(N).fill(-2));
  });

  it('mean_value 0,1,2 subtracts per channel: channel c becomes −c', () => {
    const t = new DataTransformer(tp({ mean_value: [0, 1, 2] }), Phase.TEST);
    const out = run(t, datum(0, false));
    for (let j = 0; j < N; j++) expect(out[j]! + 0).toBe(0 - Math.floor(j / (H * W)));
  });

  it('the wrong number of mean values is an error', () => {
    const t = new DataTransformer(tp({ mean_value: [1, 2] }), Phase.TEST);
    expect(() => run(t, datum(0, false))).toThrow('Specify either 1 mean_value or as many as channels: 3 (got 2)');
  });

  it('mean_file 0..59 on index-valued pixels gives 0', () => {
    const mean = createMessage('BlobProto', { num: 1, channels: C, height: H, width: W, data: Array.from({ length: N }, (_, j) => j) });
    const bytes = encodeBinary('BlobProto', mean);
    const read: string[] = [];
    const t = new DataTransformer(tp({ mean_file: 'mean.binaryproto' }), Phase.TEST, new Rng(1), {
      readFile: (p) => {
        read.push(p);
        return bytes;
      },
    });
    expect(read).toEqual(['mean.binaryproto']);
    expect(Array.from(run(t, datum(0, true)))).toEqual(new Array(N).fill(0));
    // The mean image must have the Datum's shape.
    const other = createMessage<Datum>('Datum', { channels: 1, height: H, width: W, data: new Uint8Array(H * W) });
    expect(() => run(t, other)).toThrow(/mean_file '.*' has shape 1 3 4 5, which does not match the Datum's 1 4 5/);
  });

  it('mean_file together with mean_value is refused', () => {
    expect(() => new DataTransformer(tp({ mean_file: 'm', mean_value: [1] }), Phase.TEST, new Rng(1), { readFile: () => new Uint8Array() })).toThrow(
      'Cannot specify mean_file and mean_value at the same time',
    );
  });

  it('a missing mean_file names the file', () => {
    expect(() => new DataTransformer(tp({ mean_file: '/nonexistent/mean.binaryproto' }), Phase.TEST)).toThrow(
      "DataTransformer: cannot read mean_file '/nonexistent/mean.binaryproto': no such file",
    );
  });

  it('crop 2 in TEST takes the centre, deterministically', () => {
    const t = new DataTransformer(tp({ crop_size: 2 }), Phase.TEST, new Rng(1701));
    const d = datum(0, true);
    expect(t.inferBlobShape(d)).toEqual([1, C, 2, 2]);
    // h_off = (4−2)/2 = 1, w_off = floor((5−2)/2) = 1
    const expected: number[] = [];
    for (let c = 0; c < C; c++) for (let h = 0; h < 2; h++) for (let w = 0; w < 2; w++) expected.push(c * 20 + (1 + h) * 5 + 1 + w);
    for (let i = 0; i < 3; i++) expect(Array.from(run(t, d))).toEqual(expected);
  });

  it('crop 2 in TRAIN draws offsets from the rng: the same seed repeats, the crops vary', () => {
    const seq = (seed: number) => {
      const t = new DataTransformer(tp({ crop_size: 2 }), Phase.TRAIN, new Rng(seed));
      return Array.from({ length: 8 }, () => t.transform(datum(0, true), new Float32Array(12)));
    };
    const a = seq(1701);
    expect(seq(1701)).toEqual(a);
    expect(new Set(a.map((x) => `${x.hOff},${x.wOff}`)).size).toBeGreaterThan(1);
    for (const x of a) {
      expect(x.hOff).toBeGreaterThanOrEqual(0);
      expect(x.hOff).toBeLessThanOrEqual(2);
      expect(x.wOff).toBeLessThanOrEqual(3);
      expect(x.mirrored).toBe(false);
    }
    // The output is the crop at the drawn offsets.
    const t = new DataTransformer(tp({ crop_size: 2 }), Phase.TRAIN, new Rng(5));
    const out = new Float32Array(12);
    const { hOff, wOff } = t.transform(datum(0, true), out);
    expect(out[0]).toBe(hOff * 5 + wOff);
    expect(out[3]).toBe((hOff + 1) * 5 + wOff + 1);
  });

  it('mirror flips rows at random, in TRAIN and TEST alike (Caffe: mirror && Rand(2))', () => {
    for (const phase of [Phase.TRAIN, Phase.TEST]) {
      const t = new DataTransformer(tp({ mirror: true }), phase, new Rng(1701));
      const d = datum(0, true);
      const plain = Array.from({ length: N }, (_, j) => j);
      const flipped = plain.map((_, j) => {
        const row = Math.floor(j / W);
        return row * W + (W - 1 - (j % W));
      });
      let m = 0;
      for (let i = 0; i < 20; i++) {
        const out = new Float32Array(N);
        const info = t.transform(d, out);
        expect(Array.from(out)).toEqual(info.mirrored ? flipped : plain);
        if (info.mirrored) m++;
      }
      expect(m).toBeGreaterThan(0);
      expect(m).toBeLessThan(20);
    }
  });

  it('crop + mirror in TRAIN: the sequences with and without mirror differ', () => {
    const seqOf = (mirror: boolean) => {
      const t = new DataTransformer(tp({ crop_size: 2, mirror }), Phase.TRAIN, new Rng(1701));
      return Array.from({ length: 4 }, () => Array.from(run(t, datum(0, true))));
    };
    expect(seqOf(true)).not.toEqual(seqOf(false));
  });

  it('float_data Datums are transformed like uint8 ones', () => {
    const d = createMessage<Datum>('Datum', { channels: 1, height: 2, width: 2, float_data: [0.5, -1, 2, 4], label: 1 });
    const t = new DataTransformer(tp({ scale: 2, mean_value: [0.5] }), Phase.TEST);
    expect(Array.from(run(t, d))).toEqual([0, -3, 3, 7]);
  });

  it('writes into a slice of a batch buffer and into a blob', () => {
    const t = new DataTransformer(tp(), Phase.TEST);
    const out = new Float64Array(2 * N).fill(-9);
    t.transform(datum(4, false), out, N);
    expect(out[N - 1]).toBe(-9);
    expect(out[N]).toBe(4);
    const blob = new Blob([1, C, H, W]);
    t.transformToBlob(datum(6, false), blob);
    expect(blob.cpuData()[N - 1]).toBe(6);
    expect(() => t.transformToBlob(datum(6, false), new Blob([1, C, 2, 2]))).toThrow(/does not fit/);
  });

  it('rejects malformed Datums and crops larger than the Datum', () => {
    const t = new DataTransformer(tp(), Phase.TEST);
    const short = createMessage<Datum>('Datum', { channels: C, height: H, width: W, data: new Uint8Array(10) });
    expect(() => run(t, short)).toThrow('DataTransformer: Datum of 3×4×5 needs 60 values; it has 10 data bytes');
    const big = new DataTransformer(tp({ crop_size: 5 }), Phase.TEST, new Rng(1), { owner: "Data layer 'd'" });
    expect(() => big.inferBlobShape(datum(0, false))).toThrow("Data layer 'd': crop_size 5 is larger than the Datum (4×5)");
    const none = createMessage<Datum>('Datum', { channels: 0, height: H, width: W });
    expect(() => t.inferBlobShape(none)).toThrow(/0 channels/);
  });

  it('encoded Datums must be decoded before the synchronous transform', () => {
    const t = new DataTransformer(tp(), Phase.TEST);
    const d = datum(0, false, { encoded: true });
    let err: unknown;
    try {
      t.inferBlobShape(d);
    } catch (e) {
      err = e;
    }
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toMatch(/Datum is encoded \(it holds a JPEG\/PNG file\); decode it first with await transformer.decode\(datum\)/);
  });

  it('decodes encoded Datums (BGR; force_color / force_gray) and transforms them like raw ones', async () => {
    // A 2×3 colour image, interleaved BGR, stored as PNG bytes with label 4.
    const img: PixelImage = { height: 2, width: 3, channels: 3, data: Uint8Array.from({ length: 18 }, (_, i) => i * 10) };
    const png = await encodeImage(img, 'png');
    const enc = createMessage<Datum>('Datum', { data: png, label: 4, encoded: true });
    const t = new DataTransformer(tp({ scale: 0.5 }), Phase.TEST);
    expect(t.decodeMode).toBe('unchanged');
    const raw = await t.decode(enc, "record 'k'");
    expect([raw.channels, raw.height, raw.width, raw.label, raw.encoded]).toEqual([3, 2, 3, 4, false]);
    // planar: channel 0 (B) holds pixels 0, 3, 6, … of the interleaved data
    expect([...raw.data.subarray(0, 6)]).toEqual([0, 30, 60, 90, 120, 150]);
    expect(run(t, raw)[1]).toBe(15);
    const gray = new DataTransformer(tp({ force_gray: true }), Phase.TEST);
    expect((await gray.decode(enc)).channels).toBe(1);
    expect(gray.decodedChannels(3)).toBe(1);
    expect(new DataTransformer(tp({ force_color: true }), Phase.TEST).decodedChannels(1)).toBe(3);
    expect(() => new DataTransformer(tp({ force_color: true, force_gray: true }), Phase.TEST)).toThrow(/cannot set both force_color and force_gray/);
    const bad = createMessage<Datum>('Datum', { data: Uint8Array.from([1, 2, 3]), encoded: true });
    await expect(t.decode(bad, "record '00000009'")).rejects.toThrow(/DataTransformer: cannot decode record '00000009'/);
    expect(await t.decode(raw)).toBe(raw);
  });
});
