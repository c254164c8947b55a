import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { decodeDatum } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatKey, openDatumDb } from './datum-db.js';
import { LMDB_MAP_SIZE, LmdbDatumDb } from './lmdb-db.js';

let dir: string;
let lines: string[];
let prevSink: LogSink;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'caffe-ts-lmdb-'));
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

const message = (l: string) => l.slice(l.indexOf('] ') + 2);

describe('LMDB databases (node-lmdb)', () => {
  it("opens as Caffe's db::LMDB: a folder of data.mdb + lock.mdb, map size 1 TiB, logged", async () => {
    const path = join(dir, 'layout_lmdb');
    const db = await openDatumDb(path, { mode: 'new', backend: 'lmdb' });
    expect(db).toBeInstanceOf(LmdbDatumDb);
    expect((db as LmdbDatumDb).mapSize).toBe(LMDB_MAP_SIZE);
    expect(LMDB_MAP_SIZE).toBe(2 ** 40);
    const w = db.writer({ batchSize: 2 });
    for (let i = 0; i < 5; i++) await w.put(formatKey(i), Uint8Array.of(i));
    expect(w.committed).toBe(4); // two transactions of 2; one put still pending
    await w.flush();
    expect(w.committed).toBe(5);
    await db.close();
    expect((await readdir(path)).sort()).toEqual(['data.mdb', 'lock.mdb']);
    expect(lines.map(message)).toContain(`Opened lmdb ${path}`);

    const rd = await openDatumDb(path, { backend: 'lmdb' });
    expect(await rd.count()).toBe(5);
    expect(() => rd.writer()).toThrow(`LMDB database '${path}' was opened for reading; open it with mode 'write' or 'new' to write`);
    await rd.close();
    expect(() => (rd as LmdbDatumDb).mapSize).toThrow(/closed/);
  });

  it('keys are stored as their bytes, so byte order is key order (as C++ std::string keys)', async () => {
    const path = join(dir, 'order_lmdb');
    const db = await openDatumDb(path, { mode: 'new', backend: 'lmdb' });
    const w = db.writer();
    for (const k of ['b', 'a', 'B', '10', '9', 'ab']) await w.put(k, Uint8Array.of(k.length));
    await w.close();
    const keys: string[] = [];
    for await (const r of db.entries()) keys.push(r.key);
    expect(keys).toEqual(['10', '9', 'B', 'a', 'ab', 'b']);
    await db.close();
  });

  it('closing the database ends the transactions of its cursors and of an unfinished entries() walk', async () => {
    const path = join(dir, 'walk_lmdb');
    const db = await openDatumDb(path, { mode: 'new', backend: 'lmdb' });
    const w = db.writer();
    for (let i = 0; i < 3; i++) await w.put(formatKey(i), Uint8Array.of(i));
    await w.close();
    const it = db.entries();
    expect((await it.next()).value?.key).toBe('00000000');
    const c = db.cursor();
    await c.next();
    await db.close();
    await expect(it.next()).rejects.toThrow(/closed/);
    await expect(c.next()).rejects.toThrow(/closed/);
    // The environment is really closed: it opens again.
    const again = await openDatumDb(path, { backend: 'lmdb' });
    expect(await again.count()).toBe(3);
    await again.close();
  });

  it('noLock reads without creating lock.mdb, and is refused for writing', async () => {
    const src = join(dir, 'nolock_src');
    const db = await openDatumDb(src, { mode: 'new', backend: 'lmdb' });
    const w = db.writer();
    await w.put('k', Uint8Array.of(7));
    await w.close();
    await db.close();
    const bare = join(dir, 'nolock_copy');
    await mkdir(bare);
    await cp(join(src, 'data.mdb'), join(bare, 'data.mdb'));
    const rd = await openDatumDb(bare, { backend: 'lmdb', noLock: true });
    expect(Array.from((await rd.get('k'))!)).toEqual([7]);
    await rd.close();
    expect(await readdir(bare)).toEqual(['data.mdb']);
    await expect(openDatumDb(bare, { backend: 'lmdb', mode: 'write', noLock: true })).rejects.toThrow(/noLock is for reading only/);
    await expect(openDatumDb(bare, { noLock: true })).rejects.toThrow(/noLock applies to LMDB only/);
  });

  it('a folder without data.mdb, a file, or a damaged data.mdb is a DataError naming the path', async () => {
    const empty = join(dir, 'empty_folder');
    await mkdir(empty);
    await expect(openDatumDb(empty, { backend: 'lmdb' })).rejects.toThrow(`cannot open LMDB database '${empty}': not an LMDB database (no data.mdb)`);
    const file = join(dir, 'a_file');
    await writeFile(file, 'x');
    await expect(openDatumDb(file, { backend: 'lmdb' })).rejects.toThrow(`cannot open LMDB database '${file}': not an LMDB database folder (it is a file)`);
    const junk = join(dir, 'junk_lmdb');
    await mkdir(junk);
    await writeFile(join(junk, 'data.mdb'), new Uint8Array(8192).fill(0x5a));
    await expect(openDatumDb(junk, { backend: 'lmdb' })).rejects.toThrow(new RegExp(`^cannot open LMDB database '${junk}': .*(Invalid|not an LMDB)`));
    expect(existsSync(join(dir, 'never_made'))).toBe(false);
  });
});

// An LMDB made by C++ Caffe's convert_mnist_data (backend lmdb) from 100 Fashion-MNIST images.
const caffeMade = fileURLToPath(new URL('../../../../shared/corpus/data/caffe-made/', import.meta.url));
const haveCorpus = existsSync(join(caffeMade, 'fashion100_lmdb', 'data.mdb'));

describe.skipIf(!haveCorpus)('the Caffe-made corpus LMDB (caffe-made/fashion100_lmdb)', () => {
  it('opens from a copy (LMDB writes lock.mdb beside data.mdb) and holds 100 raw 1×28×28 Datums under %08d keys', async () => {
    const copy = join(dir, 'fashion100_lmdb');
    await cp(join(caffeMade, 'fashion100_lmdb'), copy, { recursive: true });
    const db = await openDatumDb(copy, { backend: 'lmdb' });
    expect(await db.count()).toBe(100);
    const keys: string[] = [];
    for await (const r of db.entries()) {
      keys.push(r.key);
      const d = decodeDatum(r.value);
      expect([d.channels, d.height, d.width, d.data.length, d.encoded]).toEqual([1, 28, 28, 784, false]);
      expect(d.label).toBeGreaterThanOrEqual(0);
      expect(d.label).toBeLessThan(10);
    }
    expect(keys).toEqual(Array.from({ length: 100 }, (_, i) => formatKey(i)));
    await db.close();
  });

  it('opens in place with noLock, writing nothing into the corpus', async () => {
    const before = await readdir(join(caffeMade, 'fashion100_lmdb'));
    const db = await openDatumDb(join(caffeMade, 'fashion100_lmdb'), { backend: 'lmdb', noLock: true });
    expect(decodeDatum((await db.get('00000099'))!).data.length).toBe(784);
    await db.close();
    expect(await readdir(join(caffeMade, 'fashion100_lmdb'))).toEqual(before);
  });
});
