import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { decodeBlobProto, decodeDatum } from '@caffe-ts/proto';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { computeImageMean } from './compute-image-mean.js';
import { convertCifar } from './convert-cifar.js';
import { convertImageset } from './convert-imageset.js';
import { openDatumDb } from './datum-db.js';
import { decodeDatumImage, encodeImage, imageToDatum, resizeImage, type PixelImage } from './image-io.js';

const dir = mkdtempSync(join(tmpdir(), 'convert-tools-'));
let lines: string[];
let prev: LogSink;
const msgs = () => lines.map((l) => l.replace(/^[IWE]\d{4} [\d:.]+ +\d+ [^\]]+\] /, ''));

const image = (i: number): PixelImage => ({
  height: 6,
  width: 5,
  channels: 3,
  data: Uint8Array.from({ length: 90 }, (_, p) => (i * 17 + p * 5) & 255),
});

beforeAll(async () => {
  mkdirSync(join(dir, 'imgs'));
  const list: string[] = [];
  for (let i = 0; i < 5; i++) {
    writeFileSync(join(dir, 'imgs', `a${i}.png`), await encodeImage(image(i), 'png'));
    list.push(`a${i}.png ${i % 3}`);
  }
  list.splice(2, 0, 'missing.png 7');
  writeFileSync(join(dir, 'list.txt'), `${list.join('\n')}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  lines = [];
  prev = setLogSink((l) => lines.push(l));
});
afterEach(() => setLogSink(prev));

async function records(path: string, backend: 'lmdb' | 'leveldb' = 'lmdb') {
  const db = await openDatumDb(path, { backend });
  const out: { key: string; value: Uint8Array }[] = [];
  for await (const r of db.entries()) out.push(r);
  await db.close();
  return out;
}

describe('convertImageset', () => {
  it('writes raw BGR Datums under %08d_<path> keys, skipping unreadable images (their index too)', async () => {
    const db = join(dir, 'raw_lmdb');
    const res = await convertImageset(`${dir}/imgs/`, join(dir, 'list.txt'), db);
    expect(res.count).toBe(5);
    expect(res.skipped).toEqual(['missing.png']);
    const recs = await records(db);
    expect(recs.map((r) => r.key)).toEqual(['00000000_a0.png', '00000001_a1.png', '00000003_a2.png', '00000004_a3.png', '00000005_a4.png']);
    const d = decodeDatum(recs[2]!.value);
    expect([d.channels, d.height, d.width, d.label, d.encoded]).toEqual([3, 6, 5, 2, false]);
    expect(d.data).toEqual(imageToDatum(image(2)).data);
    const m = msgs();
    expect(m).toContain('A total of 6 images.');
    expect(m.some((x) => /^Could not open or find file .*missing\.png$/.test(x))).toBe(true);
    expect(m).toContain('Processed 5 files.');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('encodes (files kept as they are), resizes, reads gray, shuffles, and uses LevelDB on request', async () => {
    const enc = join(dir, 'enc_leveldb');
    await convertImageset(`${dir}/imgs/`, join(dir, 'list.txt'), enc, { encoded: true, backend: 'leveldb' });
    const recs = await records(enc, 'leveldb');
    const d0 = decodeDatum(recs[0]!.value);
    expect(d0.encoded).toBe(true);
    expect(Buffer.from(d0.data).equals(readFileSync(join(dir, 'imgs', 'a0.png')))).toBe(true);

    const small = join(dir, 'small_lmdb');
    await convertImageset(`${dir}/imgs/`, join(dir, 'list.txt'), small, { encodeType: 'jpg', resizeHeight: 4, resizeWidth: 3, gray: true });
    expect(msgs()).toContain('encode_type specified, assuming encoded=true.');
    const s0 = decodeDatum((await records(small))[0]!.value);
    expect([s0.encoded, s0.data[0], s0.data[1]]).toEqual([true, 0xff, 0xd8]);
    const decoded = await decodeDatumImage(s0);
    expect([decoded.channels, decoded.height, decoded.width]).toEqual([1, 4, 3]);

    const shuffled = join(dir, 'shuffled_lmdb');
    await convertImageset(`${dir}/imgs/`, join(dir, 'list.txt'), shuffled, { shuffle: true, rng: new Rng(4), resizeHeight: 3, resizeWidth: 3 });
    const keys = (await records(shuffled)).map((r) => r.key.slice(9));
    expect([...keys].sort()).toEqual(['a0.png', 'a1.png', 'a2.png', 'a3.png', 'a4.png']);
    expect(keys).not.toEqual(['a0.png', 'a1.png', 'a2.png', 'a3.png', 'a4.png']);
    const r0 = decodeDatum((await records(shuffled))[0]!.value);
    expect([r0.channels, r0.height, r0.width]).toEqual([3, 3, 3]);
  });

  it('refuses an existing database and leaves nothing behind when a check fails', async () => {
    await expect(convertImageset(`${dir}/imgs/`, join(dir, 'list.txt'), join(dir, 'raw_lmdb'))).rejects.toThrow(/already exists/);
    mkdirSync(join(dir, 'mixed'));
    writeFileSync(join(dir, 'mixed', 'x.png'), await encodeImage(image(0), 'png'));
    writeFileSync(join(dir, 'mixed', 'y.png'), await encodeImage(resizeImage(image(1), 3, 3), 'png'));
    writeFileSync(join(dir, 'mixed.txt'), 'x.png 0\ny.png 1\n');
    const target = join(dir, 'mixed_lmdb');
    await expect(convertImageset(`${dir}/mixed/`, join(dir, 'mixed.txt'), target, { checkSize: true })).rejects.toThrow(/Incorrect data field size 27/);
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('computeImageMean', () => {
  it('averages raw and encoded databases alike, writes a binaryproto and logs channel means', async () => {
    const out = join(dir, 'mean.binaryproto');
    const raw = await computeImageMean(join(dir, 'raw_lmdb'), { outFile: out });
    expect(raw.count).toBe(5);
    expect(raw.shape).toEqual([1, 3, 6, 5]);
    const expected = new Float32Array(90);
    for (let i = 0; i < 5; i++) imageToDatum(image(i)).data.forEach((v, k) => (expected[k] = expected[k]! + v));
    for (let k = 0; k < 90; k++) expected[k] = expected[k]! / 5;
    expect(raw.data).toEqual(expected);
    const proto = decodeBlobProto(readFileSync(out));
    expect([proto.num, proto.channels, proto.height, proto.width]).toEqual([1, 3, 6, 5]);
    expect(Float32Array.from(proto.data)).toEqual(expected);
    const m = msgs();
    expect(m).toContain('Number of channels: 3');
    expect(m.filter((x) => x.startsWith('mean_value channel ['))).toHaveLength(3);
    const c0 = expected.subarray(0, 30).reduce((a, b) => a + b, 0) / 30;
    expect(raw.channelMeans[0]).toBeCloseTo(c0, 4);

    lines = [];
    const enc = await computeImageMean(join(dir, 'enc_leveldb'), { backend: 'leveldb' });
    expect(msgs()).toContain('Decoding Datum');
    expect(enc.data).toEqual(expected); // PNG is lossless
  });
});

describe('convertCifar', () => {
  it('writes cifar10_train_<backend> and cifar10_test_<backend> with %05d keys and the planes as stored', async () => {
    const input = join(dir, 'cifar');
    mkdirSync(input);
    const record = (label: number, seed: number) => {
      const r = new Uint8Array(3073);
      r[0] = label;
      for (let i = 1; i < 3073; i++) r[i] = (seed * 31 + i) & 255;
      return r;
    };
    for (let f = 1; f <= 5; f++) writeFileSync(join(input, `data_batch_${f}.bin`), Buffer.concat([record(f, f * 10), record(9 - f, f * 10 + 1)]));
    writeFileSync(join(input, 'test_batch.bin'), record(3, 99));
    const out = join(dir, 'cifar_out');
    mkdirSync(out);
    const res = await convertCifar(input, out, { backend: 'leveldb' });
    expect(res).toEqual({ trainDb: join(out, 'cifar10_train_leveldb'), testDb: join(out, 'cifar10_test_leveldb'), train: 10, test: 1 });
    const train = await records(res.trainDb, 'leveldb');
    expect(train.map((r) => r.key)).toEqual(['00000', '00001', '10000', '10001', '20000', '20001', '30000', '30001', '40000', '40001']);
    const d = decodeDatum(train[2]!.value);
    expect([d.channels, d.height, d.width, d.label]).toEqual([3, 32, 32, 2]);
    expect(d.data).toEqual(record(2, 20).subarray(1));
    const test = await records(res.testDb, 'leveldb');
    expect(test.map((r) => [r.key, decodeDatum(r.value).label])).toEqual([['00000', 3]]);
    expect(msgs()).toEqual(expect.arrayContaining(['Writing Training data', 'Training Batch 1', 'Training Batch 5', 'Writing Testing data']));

    writeFileSync(join(input, 'data_batch_3.bin'), new Uint8Array(100));
    await expect(convertCifar(input, out, { overwrite: true })).rejects.toThrow(/data_batch_3\.bin: 100 bytes is not a whole number of CIFAR-10 records/);
    rmSync(join(input, 'test_batch.bin'));
    writeFileSync(join(input, 'data_batch_3.bin'), record(1, 1));
    await expect(convertCifar(input, join(dir, 'nowhere'))).rejects.toThrow(/Unable to open test file: .*test_batch\.bin: no such file/);
  });
});
