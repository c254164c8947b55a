import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { decodeDatum, type Datum } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatumDb, type DbBackend } from './datum-db.js';
import { extractFeatures, type FeatureNet } from './extract-features.js';

const dir = mkdtempSync(join(tmpdir(), 'extract-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let lines: string[];
let prev: LogSink;
/** This tool's log lines (the databases log their own opening too). */
const msgs = () => lines.filter((l) => l.includes(' extract_features.ts] ')).map((l) => l.replace(/^[IWE]\d{4} [\d:.]+ +\d+ [^\]]+\] /, ''));
beforeEach(() => {
  lines = [];
  prev = setLogSink((l) => lines.push(l));
});
afterEach(() => setLogSink(prev));

/**
 * A net whose blobs hold, at forward pass f, item n, element d: 1000·f + 100·n + d (and the same
 * negated in 'b'), so each stored value says where it came from.
 */
function fakeNet(shapes: Record<string, number[]>): FeatureNet & { passes: number; prepared: number } {
  const net = {
    passes: 0,
    prepared: 0,
    async prepare() {
      net.prepared++;
    },
    forward() {
      net.passes++;
      return 0;
    },
    hasBlob: (name: string) => name in shapes,
    blob(name: string) {
      const shape = shapes[name]!;
      const count = shape.reduce((a, b) => a * b, 1);
      const num = shape[0] ?? 1, dim = count / num, f = net.passes - 1, sign = name === 'b' ? -1 : 1;
      const data = Float32Array.from({ length: count }, (_, i) => sign * (1000 * f + 100 * Math.floor(i / dim) + (i % dim)));
      return { shape, count: () => count, cpuData: () => data };
    },
  };
  return net;
}

async function read(path: string, backend: DbBackend): Promise<{ key: string; datum: Datum }[]> {
  const db = await openDatumDb(path, { backend });
  const out: { key: string; datum: Datum }[] = [];
  for await (const r of db.entries()) out.push({ key: r.key, datum: decodeDatum(r.value) });
  await db.close();
  return out;
}

describe('extractFeatures (Caffe extract_features)', () => {
  for (const backend of ['leveldb', 'lmdb'] as const) {
    it(`${backend}: one Datum per item of each blob, Caffe's keys, legacy shape and float_data`, async () => {
      const net = fakeNet({ a: [3, 2, 1, 2], b: [3, 5] });
      const pa = join(dir, `${backend}-a`), pb = join(dir, `${backend}-b`);
      const result = await extractFeatures(net, ['a', 'b'], [pa, pb], 2, { backend, netName: 'feat.prototxt' });
      expect(result.records).toEqual([6, 6]);
      expect(net.passes).toBe(2);
      expect(net.prepared).toBe(2);
      const a = await read(pa, backend), b = await read(pb, backend);
      expect(a.map((r) => r.key)).toEqual(['0000000000', '0000000001', '0000000002', '0000000003', '0000000004', '0000000005']);
      // Item 4 is the second pass's item 1: values 1000 + 100 + d.
      expect(a[4]!.datum).toMatchObject({ channels: 2, height: 1, width: 2, label: 0 });
      expect(Array.from(a[4]!.datum.float_data)).toEqual([1100, 1101, 1102, 1103]);
      expect(a[4]!.datum.data.length).toBe(0);
      // A 2-axis blob: channels = its second axis, height = width = 1.
      expect(b[2]!.datum).toMatchObject({ channels: 5, height: 1, width: 1 });
      expect(Array.from(b[2]!.datum.float_data)).toEqual([-200, -201, -202, -203, -204]);
      expect(msgs()).toEqual([
        `Opening dataset ${pa}`,
        `Opening dataset ${pb}`,
        'Extracting Features',
        'Extracted features of 6 query images for feature blob a',
        'Extracted features of 6 query images for feature blob b',
        'Successfully extracted the features!',
      ]);
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  }

  it('logs every commitEvery items per blob, as Caffe every 1000', async () => {
    const path = join(dir, 'progress');
    await extractFeatures(fakeNet({ f: [4, 3] }), ['f'], [path], 3, { commitEvery: 5 });
    expect(msgs().filter((m) => m.startsWith('Extracted'))).toEqual([
      'Extracted features of 5 query images for feature blob f',
      'Extracted features of 10 query images for feature blob f',
      'Extracted features of 12 query images for feature blob f',
    ]);
    expect((await read(path, 'leveldb')).length).toBe(12);
  });

  it('refuses bad requests before writing anything', async () => {
    const net = fakeNet({ f: [2, 3] });
    await expect(extractFeatures(net, ['f', 'g'], [join(dir, 'x')], 1)).rejects.toThrow(/number of blob names and dataset names must be equal \(2 blob\(s\): f,g; 1 dataset\(s\)/);
    await expect(extractFeatures(net, ['fc7'], [join(dir, 'x')], 1, { netName: 'feat.prototxt' })).rejects.toThrow('Unknown feature blob name fc7 in the network feat.prototxt');
    await expect(extractFeatures(net, ['f'], [join(dir, 'x')], -1)).rejects.toThrow(/num_mini_batches must be a non-negative integer/);
    await expect(extractFeatures(net, ['f', 'f'], [join(dir, 'x'), join(dir, 'x')], 1)).rejects.toThrow(/dataset .*x is named twice/);
    mkdirSync(join(dir, 'exists'));
    await expect(extractFeatures(net, ['f'], [join(dir, 'exists')], 1, { backend: 'lmdb' })).rejects.toThrow(/cannot create LMDB database '.*exists' for the features: it already exists/);
    await expect(extractFeatures(net, ['f'], [join(dir, 'x')], 1, { backend: 'rocksdb' })).rejects.toThrow(/Unknown db backend rocksdb/);
    expect(net.passes).toBe(0);
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  it('a blob of more than 4 axes fails the run and leaves no database behind', async () => {
    const net = fakeNet({ ok: [2, 2], deep: [1, 2, 2, 2, 2] });
    const ok = join(dir, 'deep-ok'), deep = join(dir, 'deep');
    await expect(extractFeatures(net, ['ok', 'deep'], [ok, deep], 1)).rejects.toThrow(/feature blob deep has 5 axes \(1 2 2 2 2\): a Datum holds at most 4/);
    expect(existsSync(ok)).toBe(false);
    expect(existsSync(deep)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
