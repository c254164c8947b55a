import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatKey, openDatumDb, parseDbBackend, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';

let dir: string;
let lines: string[];
let prevSink: LogSink;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'caffe-ts-db-'));
  lines = [];
  prevSink = setLogSink((l) => lines.push(l));
});
afterEach(async () => {
  setLogSink(prevSink);
  await rm(dir, { recursive: true, force: true });
});

const bytes = (...v: number[]) => Uint8Array.from(v);

describe('formatKey', () => {
  it('zero-pads to 8 digits as caffe::format_int(i, 8)', () => {
    expect(formatKey(0)).toBe('00000000');
    expect(formatKey(59999)).toBe('00059999');
    expect(formatKey(123456789)).toBe('123456789');
    expect(() => formatKey(-1)).toThrow(DataError);
  });
});

describe.each<DbBackend>(['leveldb', 'lmdb'])('DatumDb (%s)', (backend) => {
  const label = backend === 'lmdb' ? 'LMDB' : 'LevelDB';
  it('round-trips records written in batches, in key order', async () => {
    const path = join(dir, 'db');
    const db = await openDatumDb(path, { mode: 'new', backend });
    const w = db.writer({ batchSize: 3 });
    for (let i = 9; i >= 0; i--) await w.put(formatKey(i), bytes(i, i * 2));
    expect(w.committed).toBe(9); // three full batches; one record still pending
    await w.close();
    expect(w.committed).toBe(10);
    await db.close();

    const rd = await openDatumDb(path, { backend });
    expect(rd.mode).toBe('read');
    expect(await rd.count()).toBe(10);
    const keys: string[] = [];
    for await (const r of rd.entries()) {
      keys.push(r.key);
      expect(Array.from(r.value)).toEqual([Number(r.key), Number(r.key) * 2]);
      expect(r.value).toBeInstanceOf(Uint8Array);
    }
    expect(keys).toEqual(Array.from({ length: 10 }, (_, i) => formatKey(i)));
    expect(Array.from((await rd.get('00000004'))!)).toEqual([4, 8]);
    expect(await rd.get('nope')).toBeUndefined();
    await expect(async () => rd.writer()).rejects.toThrow(/opened for reading/);
    await rd.close();
    expect(() => rd.cursor()).toThrow(/closed/);
  });

  it('cursor wraps to the first record and logs the restart as Caffe', async () => {
    const path = join(dir, 'wrap');
    const db = await openDatumDb(path, { mode: 'new', backend });
    const w = db.writer();
    for (let i = 0; i < 3; i++) await w.put(formatKey(i), bytes(i));
    await w.close();
    const c = db.cursor({ readAhead: 2 });
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) seen.push((await c.next()).key);
    expect(seen).toEqual(['00000000', '00000001', '00000002', '00000000', '00000001', '00000002', '00000000']);
    expect(c.restarts).toBe(2);
    expect(lines.filter((l) => l.endsWith('Restarting data prefetching from start.'))).toHaveLength(2);
    await c.seekToFirst();
    expect((await c.next()).key).toBe('00000000');
    await db.close(); // closes the cursor too
    await expect(c.next()).rejects.toThrow(/closed/);
  });

  it('an empty database is an error for a cursor', async () => {
    const db = await openDatumDb(join(dir, 'empty'), { mode: 'new', backend });
    await expect(db.cursor().next()).rejects.toThrow(/has no records/);
    await db.close();
  });

  it('a missing database is a DataError and is not created', async () => {
    const path = join(dir, `missing_${backend}`);
    const err = await openDatumDb(path, { backend }).catch((e: unknown) => e);
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe(`cannot open ${label} database '${path}': does not exist`);
    expect(existsSync(path)).toBe(false);
  });

  it("mode 'new' refuses an existing database; 'write' opens or creates", async () => {
    const path = join(dir, 'x');
    const w = await openDatumDb(path, { mode: 'write', backend });
    expect(w.backend).toBe(backend);
    await (await w.writer()).close();
    await w.close();
    await w.close(); // closing twice is harmless
    await expect(openDatumDb(path, { mode: 'new', backend })).rejects.toThrow(`cannot create ${label} database '${path}': it already exists`);
    const db = await openDatumDb(path, { mode: 'write', backend });
    expect(db.isOpen).toBe(true);
    expect(await db.count()).toBe(0);
    await db.close();
    expect(db.isOpen).toBe(false);
  });
});

describe('backends', () => {
  it('parseDbBackend reads DataParameter.DB values and tool names', () => {
    expect(parseDbBackend(undefined)).toBe('leveldb');
    expect(parseDbBackend(0)).toBe('leveldb');
    expect(parseDbBackend(1)).toBe('lmdb');
    expect(parseDbBackend('LMDB')).toBe('lmdb');
    expect(() => parseDbBackend('rocksdb')).toThrow("Unknown db backend rocksdb (expected 'leveldb' or 'lmdb')");
    expect(() => parseDbBackend(7)).toThrow(/Unknown database backend 7/);
  });

  it('opening a database with the other backend says which one it is', async () => {
    const lev = join(dir, 'a_leveldb');
    const lm = join(dir, 'a_lmdb');
    await (await openDatumDb(lev, { mode: 'new' })).close();
    await (await openDatumDb(lm, { mode: 'new', backend: 'lmdb' })).close();
    await expect(openDatumDb(lev, { backend: 'lmdb' })).rejects.toThrow(`cannot open LMDB database '${lev}': it is a LevelDB database (it holds CURRENT); set backend: LEVELDB`);
    await expect(openDatumDb(lm)).rejects.toThrow(`cannot open LevelDB database '${lm}': it is an LMDB database (it holds data.mdb); set backend: LMDB`);
  });
});
