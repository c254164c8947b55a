import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { createMessage, encodeBinary, encodeDatum, Phase, type BlobProto, type Datum, type LayerParameter } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DataLayer, dataLayerDef } from './data-layer.js';
import {
  closeDataSources,
  dataPathCandidates,
  primeDataSource,
  primeDataSources,
  primedDataSourceInfo,
  primedDataSources,
  resolveDataPath,
} from './data-sources.js';
import { formatKey, openDatumDb, type DbBackend } from './datum-db.js';

// Two folders, as if each held a prototxt and the database beside it:
//   a/db  (LevelDB, labels 0..3)   b/db  (LevelDB, labels 100..103)   c/db (LMDB, labels 200..203)
// plus a/mean.binaryproto (a 1×2×3 mean of all 1s).
let dir: string;
let lines: string[];
let prevSink: LogSink;

function datum(label: number): Uint8Array {
  const data = Uint8Array.from({ length: 6 }, (_, p) => 10 + p);
  return encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 2, width: 3, data, label }));
}

async function writeDb(path: string, firstLabel: number, backend: DbBackend = 'leveldb'): Promise<void> {
  const db = await openDatumDb(path, { mode: 'new', backend });
  const w = db.writer();
  for (let i = 0; i < 4; i++) await w.put(formatKey(i), datum(firstLabel + i));
  await w.close();
  await db.close();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'caffe-ts-sources-'));
  for (const sub of ['a', 'b', 'c']) await mkdir(join(dir, sub));
  await writeDb(join(dir, 'a', 'db'), 0);
  await writeDb(join(dir, 'b', 'db'), 100);
  await writeDb(join(dir, 'c', 'db'), 200, 'lmdb');
  const mean = createMessage<BlobProto>('BlobProto', { shape: { dim: [1, 1, 2, 3] }, data: [1, 1, 1, 1, 1, 1] });
  await writeFile(join(dir, 'a', 'mean.binaryproto'), encodeBinary('BlobProto', mean));
});
afterAll(async () => {
  await closeDataSources();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  lines = [];
  prevSink = setLogSink((l) => lines.push(l));
});
afterEach(async () => {
  setLogSink(prevSink);
  await closeDataSources();
});

const net = (sub: string) => join(dir, sub, 'train_val.prototxt');

function layerParam(props: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): LayerParameter {
  return createMessage<LayerParameter>('LayerParameter', {
    name: 'mnist',
    type: 'Data',
    top: ['data', 'label'],
    data_param: { source: 'db', batch_size: 2, ...props },
    ...extra,
  });
}

function build(param: LayerParameter, netFile: string | undefined, phase = Phase.TRAIN): { layer: DataLayer; top: Blob[] } {
  const layer = new DataLayer(param, { phase, rng: new Rng(1), netFile });
  const top = [new Blob(), new Blob()];
  layer.setUp([], top);
  return { layer, top };
}

async function firstLabels(b: { layer: DataLayer; top: Blob[] }): Promise<number[]> {
  await b.layer.prepare();
  b.layer.forward([], b.top);
  return Array.from(b.top[1]!.cpuData());
}

describe('source paths', () => {
  it('are looked for from the working directory first, then beside the net file', async () => {
    expect(dataPathCandidates('/abs/db', net('a'))).toEqual(['/abs/db']);
    expect(dataPathCandidates('db')).toEqual([resolve('db')]);
    expect(dataPathCandidates('db', net('a'))).toEqual([resolve('db'), join(dir, 'a', 'db')]);
    expect(dataPathCandidates('db', join(process.cwd(), 'x.prototxt'))).toEqual([resolve('db')]);
    // package.json exists in the working directory (the repository root) and beside a fake net: the working directory wins.
    await writeFile(join(dir, 'a', 'package.json'), '{}');
    expect(resolveDataPath('package.json', net('a')).path).toBe(resolve('package.json'));
    expect(resolveDataPath('mean.binaryproto', net('a'))).toEqual({
      path: join(dir, 'a', 'mean.binaryproto'),
      tried: [resolve('mean.binaryproto'), join(dir, 'a', 'mean.binaryproto')],
    });
    expect(resolveDataPath('nothing_here', net('a')).path).toBeNull();
  });

  it("the prime hook opens a relative source beside the net file, and the layer built with that netFile reads it", async () => {
    await dataLayerDef.prime!(layerParam(), { netFile: net('a') });
    expect(primedDataSourceInfo()).toEqual([{ layer: 'mnist', source: 'db', path: join(dir, 'a', 'db'), backend: 'leveldb', datumShape: [1, 2, 3] }]);
    expect(await firstLabels(build(layerParam(), net('a')))).toEqual([0, 1]);
    // Built without the net file (primeDataSources + new Net), the layer still finds what was primed for its name and source.
    expect(await firstLabels(build(layerParam(), undefined))).toEqual([0, 1]);
    // A layer of another name was not primed, even though its source resolves to an open database.
    expect(() => build(layerParam({}, { name: 'other' }), net('a'))).toThrow("Data layer 'other': LevelDB source 'db' was not opened");
  });

  it('a source found nowhere is a DataError listing every place tried', async () => {
    const p = layerParam({ source: 'no_such_db', backend: 1 });
    await expect(dataLayerDef.prime!(p, { netFile: net('a') })).rejects.toThrow(
      `Data layer 'mnist': cannot open LMDB database 'no_such_db': does not exist (looked for ${resolve('no_such_db')}, ${join(dir, 'a', 'no_such_db')})`,
    );
    await expect(primeDataSources([p])).rejects.toThrow(
      `Data layer 'mnist': cannot open LMDB database 'no_such_db': does not exist (looked for ${resolve('no_such_db')})`,
    );
  });

  it('TRAIN and TEST nets whose layers share a name and a source string each read their own database', async () => {
    const train = layerParam({}, { include: [{ phase: Phase.TRAIN }] });
    const test = layerParam({ backend: 1 }, { include: [{ phase: Phase.TEST }] });
    await primeDataSources({ layer: [train, test] }, { phase: Phase.TRAIN, netFile: net('b') });
    await primeDataSources({ layer: [train, test] }, { phase: Phase.TEST, netFile: net('c') });
    expect(primedDataSourceInfo().map((i) => [i.layer, i.path, i.backend])).toEqual([
      ['mnist', join(dir, 'b', 'db'), 'leveldb'],
      ['mnist', join(dir, 'c', 'db'), 'lmdb'],
    ]);
    expect(primedDataSources()).toEqual(['db']);
    const t = build(train, net('b'));
    const v = build(test, net('c'), Phase.TEST);
    expect(await firstLabels(t)).toEqual([100, 101]);
    expect(await firstLabels(v)).toEqual([200, 201]);
  });

  it('mean_file resolves like the source, and a missing one lists the places tried', async () => {
    const withMean = layerParam({}, { transform_param: { mean_file: 'mean.binaryproto' } });
    await dataLayerDef.prime!(withMean, { netFile: net('a') });
    const b = build(withMean, net('a'));
    await b.layer.prepare();
    b.layer.forward([], b.top);
    expect(Array.from(b.top[0]!.cpuData().subarray(0, 6))).toEqual([9, 10, 11, 12, 13, 14]);

    const noMean = layerParam({}, { transform_param: { mean_file: 'nomean.binaryproto' } });
    await expect(dataLayerDef.prime!(noMean, { netFile: net('a') })).rejects.toThrow(
      `Data layer 'mnist': cannot read mean_file 'nomean.binaryproto': no such file (looked for ${resolve('nomean.binaryproto')}, ${join(dir, 'a', 'nomean.binaryproto')})`,
    );
  });
});

describe('opening and closing', () => {
  it('concurrent primes of one path open the database once', async () => {
    const path = join(dir, 'a', 'db');
    const infos = await Promise.all([primeDataSource('x', { path, layerName: 'l1' }), primeDataSource('y', { path, layerName: 'l2' })]);
    expect(infos.map((i) => i.layer)).toEqual(['l1', 'l2']);
    expect(lines.filter((l) => l.endsWith(`Opened leveldb ${path}`))).toHaveLength(1);
    await expect(primeDataSource('z', { path, backend: 'lmdb' })).rejects.toThrow(`'${path}' is already open as a LevelDB database, not LMDB`);
  });

  it('closeDataSources is idempotent, also while it runs, and lets the databases be opened again', async () => {
    await dataLayerDef.prime!(layerParam(), { netFile: net('a') });
    const b = build(layerParam(), net('a'));
    await b.layer.prepare();
    await Promise.all([closeDataSources(), closeDataSources()]);
    await closeDataSources();
    expect(primedDataSources()).toEqual([]);
    await expect(b.layer.prepare()).resolves.toBeUndefined(); // batches read before closing are still there
    while (b.layer.readyBatches > 0) b.layer.forward([], b.top);
    await expect(b.layer.prepare()).rejects.toThrow(/closed/);
    // LevelDB released its lock: the database opens again, directly and by priming.
    const db = await openDatumDb(join(dir, 'a', 'db'));
    await db.close();
    await dataLayerDef.prime!(layerParam(), { netFile: net('a') });
    expect(await firstLabels(build(layerParam(), net('a')))).toEqual([0, 1]);
  });

  it('closing while a source is being opened fails that priming and leaves nothing open', async () => {
    const priming = primeDataSource('db', { netFile: net('b') });
    await closeDataSources();
    await expect(priming).rejects.toThrow('closeDataSources() was called while the source was being opened');
    expect(primedDataSources()).toEqual([]);
    const db = await openDatumDb(join(dir, 'b', 'db')); // not locked by a stray open
    await db.close();
  });
});
