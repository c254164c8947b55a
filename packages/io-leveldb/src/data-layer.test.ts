import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { createMessage, encodeDatum, Phase, type Datum, type LayerParameter, type NetParameter } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Net } from '@caffe-ts/net';
import { DataLayer, dataLayerDef, prepareDataLayers, registerDataLayers } from './data-layer.js';
import { setDecodeWorkers } from './decode-pool.js';
import { closeDataSources, primeDataSource, primeDataSources, primedDataSources } from './data-sources.js';
import { formatKey, openDatumDb, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';
import { encodeImage, imageToDatum, type PixelImage } from './image-io.js';

// A 5-record DB of 1×2×3 Datums: record i has every pixel = 10·i + position and label i,
// once as a LevelDB (src) and once as an LMDB (lmdbSrc).
const RECORDS = 5;
let dir: string;
let src: string;
let lmdbSrc: string;
let lines: string[];
let prevSink: LogSink;

function datumFor(i: number, height = 2, width = 3): Uint8Array {
  const data = Uint8Array.from({ length: height * width }, (_, p) => 10 * i + p);
  return encodeDatum(createMessage<Datum>('Datum', { channels: 1, height, width, data, label: i }));
}

async function writeDb(path: string, records: Array<[string, Uint8Array]>, backend: DbBackend = 'leveldb'): Promise<void> {
  const db = await openDatumDb(path, { mode: 'new', backend });
  const w = db.writer();
  for (const [k, v] of records) await w.put(k, v);
  await w.close();
  await db.close();
}

const tinyRecords = (): Array<[string, Uint8Array]> => Array.from({ length: RECORDS }, (_, i) => [formatKey(i), datumFor(i)]);

// These tests pin the layers' semantics on the main thread; decode-workers.test.ts checks that
// the decode workers give the same batches (starting workers for every layer here would be slow).
beforeAll(() => setDecodeWorkers(0));
afterAll(() => setDecodeWorkers('auto'));
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'caffe-ts-datalayer-'));
  src = join(dir, 'tiny_leveldb');
  lmdbSrc = join(dir, 'tiny_lmdb');
  await writeDb(src, tinyRecords());
  await writeDb(lmdbSrc, tinyRecords(), 'lmdb');
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

function dataParam(props: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): LayerParameter {
  return createMessage<LayerParameter>('LayerParameter', {
    name: 'mnist',
    type: 'Data',
    top: ['data', 'label'],
    data_param: { source: src, batch_size: 2, ...props },
    ...extra,
  });
}

function build(param: LayerParameter, tops = 2, rng = new Rng(1701), phase = Phase.TRAIN): { layer: DataLayer; top: Blob[] } {
  const layer = new DataLayer(param, { phase, rng });
  const top = Array.from({ length: tops }, () => new Blob());
  layer.setUp([], top);
  return { layer, top };
}

const labels = (b: Blob) => Array.from(b.cpuData());

describe('Data layer', () => {
  it('needs its source primed first', () => {
    expect(() => build(dataParam())).toThrow(
      `Data layer 'mnist': LevelDB source '${src}' was not opened; build the net with await Net.create(...), or call await primeDataSources(netParameter) before new Net(...)`,
    );
  });

  it('produces batches with labels in key order, wrapping at the end', async () => {
    const info = await primeDataSources({ layer: [dataParam()] });
    expect(info).toEqual([{ layer: 'mnist', source: src, path: src, backend: 'leveldb', datumShape: [1, 2, 3] }]);
    expect(primedDataSources()).toEqual([src]);
    const { layer, top } = build(dataParam({ prefetch: 2 }));
    expect(top[0]!.shape).toEqual([2, 1, 2, 3]);
    expect(top[1]!.shape).toEqual([2]);
    expect(lines.some((l) => l.endsWith('output data size: 2,1,2,3'))).toBe(true);

    // Reading is asynchronous: right after set-up nothing is ready, and forward says what to do.
    expect(() => layer.forward([], top)).toThrow(/no prefetched batch is ready; await prepareDataLayers\(net\)/);

    const seen: number[][] = [];
    for (let it = 0; it < 4; it++) {
      await prepareDataLayers({ layers: [layer, { name: 'not a data layer' }] });
      expect(layer.forward([], top)).toBe(0);
      seen.push(labels(top[1]!));
      const data = top[0]!.cpuData();
      for (let n = 0; n < 2; n++) for (let p = 0; p < 6; p++) expect(data[n * 6 + p]).toBe(10 * seen[it]![n]! + p);
    }
    expect(seen).toEqual([
      [0, 1],
      [2, 3],
      [4, 0],
      [1, 2],
    ]);
    expect(lines.some((l) => l.endsWith('Restarting data prefetching from start.'))).toBe(true);
    // Never more than `prefetch` batches are held.
    await layer.prepare();
    await new Promise((r) => setTimeout(r, 20));
    expect(layer.readyBatches).toBe(2);
  });

  it('applies transform_param (scale, crop) and a single top gives data only', async () => {
    await primeDataSource(src);
    const { layer, top } = build(
      dataParam({ batch_size: 3 }, { top: ['data'], transform_param: { scale: 0.5, crop_size: 2 } }),
      1,
      new Rng(1),
      Phase.TEST,
    );
    expect(top[0]!.shape).toEqual([3, 1, 2, 2]);
    await layer.prepare();
    layer.forward([], top);
    // TEST phase: centre crop of the 2×3 image: rows 0–1, columns 0–1 (w_off = floor(1/2) = 0).
    expect(Array.from(top[0]!.cpuData().subarray(0, 4))).toEqual([0, 0.5, 1.5, 2]);
    expect(Array.from(top[0]!.cpuData().subarray(4, 8))).toEqual([5, 5.5, 6.5, 7]);
    expect(Array.from(top[0]!.cpuData().subarray(8, 12))).toEqual([10, 10.5, 11.5, 12]);
  });

  it('rand_skip skips a random number of records in [0, rand_skip) at the start', async () => {
    await primeDataSource(src);
    const skips = new Set<number>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      lines = [];
      const { layer, top } = build(dataParam({ rand_skip: 4, batch_size: 1 }), 2, new Rng(seed));
      await layer.prepare();
      layer.forward([], top);
      const m = lines.map((l) => /Skipping first (\d+) data points\./.exec(l)).find(Boolean);
      const skip = m ? Number(m[1]) : 0;
      expect(skip).toBeLessThan(4);
      expect(labels(top[1]!)).toEqual([skip]);
      skips.add(skip);
      await layer.close();
    }
    expect(skips.size).toBeGreaterThan(1);
  });

  it('two layers on one source read independently', async () => {
    await primeDataSources([dataParam()]);
    const a = build(dataParam());
    const b = build(dataParam({ batch_size: 3 }));
    await prepareDataLayers([a.layer, b.layer]);
    a.layer.forward([], a.top);
    b.layer.forward([], b.top);
    expect(labels(a.top[1]!)).toEqual([0, 1]);
    expect(labels(b.top[1]!)).toEqual([0, 1, 2]);
  });

  it('closeDataSources stops the layers and closes the databases', async () => {
    await primeDataSource(src);
    const { layer, top } = build(dataParam());
    await layer.prepare();
    await closeDataSources();
    expect(primedDataSources()).toEqual([]);
    layer.forward([], top); // batches read before closing are still delivered
    while (layer.readyBatches > 0) layer.forward([], top);
    await expect(layer.prepare()).rejects.toThrow(/closed/);
    // The database can be opened again now that the lock is released.
    const db = await openDatumDb(src);
    await db.close();
  });

  it('a corrupt record surfaces through prepare() as a DataError naming the key', async () => {
    const bad = join(dir, 'bad_leveldb');
    const db = await openDatumDb(bad, { mode: 'new' });
    const w = db.writer();
    await w.put('00000000', datumFor(0));
    await w.put('00000001', Uint8Array.from([0xff, 0xff, 0xff]));
    await w.close();
    await db.close();
    await primeDataSource(bad);
    const { layer, top } = build(dataParam({ source: bad }));
    await expect(layer.prepare()).rejects.toThrow(/Data layer 'mnist', source '.*bad_leveldb': record '00000001' is not a valid Datum \(truncated or corrupt/);
    expect(() => layer.forward([], top)).toThrow(/record '00000001'/);
  });

  it('rejects a missing source and bad params with clear errors', async () => {
    await expect(primeDataSources([dataParam({ backend: 1, source: join(dir, 'nope') })])).rejects.toThrow(
      `Data layer 'mnist': cannot open LMDB database '${join(dir, 'nope')}': does not exist`,
    );
    const err = await primeDataSources([dataParam({ source: join(dir, 'nope') })]).catch((e: unknown) => e);
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe(`Data layer 'mnist': cannot open LevelDB database '${join(dir, 'nope')}': does not exist`);
    await primeDataSource(src);
    expect(() => build(dataParam({ batch_size: 0 }))).toThrow("Data layer 'mnist': batch_size must be positive (got 0)");
    expect(() => build(dataParam(), 3)).toThrow(/at most 2 top blob/);
  });

  it('primeDataSources skips layers excluded from the phase', async () => {
    const train = dataParam({}, { include: [{ phase: Phase.TRAIN }] });
    const test = dataParam({ source: join(dir, 'absent_test_db') }, { name: 'test', include: [{ phase: Phase.TEST }] });
    const info = await primeDataSources({ layer: [train, test] }, { phase: Phase.TRAIN });
    expect(info.map((i) => i.layer)).toEqual(['mnist']);
    await expect(primeDataSources({ layer: [train, test] }, { phase: Phase.TEST })).rejects.toThrow(/does not exist/);
  });

  it('primes legacy V1 `layers { type: DATA }` and resolves sources through resolveSource', async () => {
    const net = createMessage<NetParameter>('NetParameter', {
      layers: [{ name: 'v1data', type: 'DATA', top: ['data'], data_param: { source: 'tiny_leveldb', batch_size: 1 } }],
    });
    const asked: string[] = [];
    const info = await primeDataSources(net, {
      resolveSource: (s, layer) => {
        asked.push(`${layer}:${s}`);
        return join(dir, s);
      },
    });
    expect(asked).toEqual(['v1data:tiny_leveldb']);
    expect(info).toEqual([{ layer: 'v1data', source: 'tiny_leveldb', path: join(dir, 'tiny_leveldb'), backend: 'leveldb', datumShape: [1, 2, 3] }]);
    expect(primedDataSources()).toEqual(['tiny_leveldb']);
  });

  it('reads an LMDB (backend: LMDB) batch for batch as the same records in a LevelDB', async () => {
    const info = await primeDataSources([dataParam({ source: lmdbSrc, backend: 1 }, { name: 'lm' }), dataParam()]);
    expect(info.map((i) => [i.layer, i.backend])).toEqual([
      ['lm', 'lmdb'],
      ['mnist', 'leveldb'],
    ]);
    const lm = build(dataParam({ source: lmdbSrc, backend: 1, batch_size: 3 }, { name: 'lm' }));
    const lev = build(dataParam({ batch_size: 3 }));
    for (let it = 0; it < 3; it++) {
      await prepareDataLayers([lm.layer, lev.layer]);
      lm.layer.forward([], lm.top);
      lev.layer.forward([], lev.top);
      expect(Array.from(lm.top[0]!.cpuData())).toEqual(Array.from(lev.top[0]!.cpuData()));
      expect(labels(lm.top[1]!)).toEqual(labels(lev.top[1]!));
    }
    expect(labels(lm.top[1]!)).toEqual([1, 2, 3]); // records 6..8 of a 5-record source wrap around
    // A source primed as LevelDB is not taken for an LMDB layer.
    expect(() => build(dataParam({ backend: 1 }))).toThrow(/LMDB source '.*tiny_leveldb' was not opened/);
  });

  it('Net.create primes the Data layers itself through the layer definition hook', async () => {
    const registry = new LayerRegistry();
    registerDataLayers(registry);
    const param = createMessage<NetParameter>('NetParameter', {
      name: 'data_only',
      layer: [
        { name: 'train', type: 'Data', top: ['data', 'label'], include: [{ phase: Phase.TRAIN }], data_param: { source: lmdbSrc, backend: 1, batch_size: 2 } },
        { name: 'test', type: 'Data', top: ['data', 'label'], include: [{ phase: Phase.TEST }], data_param: { source: join(dir, 'absent'), batch_size: 2 } },
      ],
    });
    expect(primedDataSources()).toEqual([]);
    const net = await Net.create(param, { registry, phase: Phase.TRAIN, log: false });
    expect(primedDataSources()).toEqual([lmdbSrc]); // the TEST layer was filtered out, never opened
    expect(net.blob('data').shape).toEqual([2, 1, 2, 3]);
    await net.prepare();
    net.forward();
    expect(labels(net.blob('label'))).toEqual([0, 1]);
    await net.prepare();
    net.forward();
    expect(labels(net.blob('label'))).toEqual([2, 3]);
    await expect(Net.create(param, { registry, phase: Phase.TEST, log: false })).rejects.toThrow(
      `Data layer 'test': cannot open LevelDB database '${join(dir, 'absent')}': does not exist`,
    );
  });

  it("a label out of range names the database record it came from (also through the label's split)", async () => {
    const registry = registerBuiltinLayers(new LayerRegistry());
    registerDataLayers(registry);
    const param = createMessage<NetParameter>('NetParameter', {
      layer: [
        { name: 'train', type: 'Data', top: ['data', 'label'], data_param: { source: src, batch_size: 2 } },
        { name: 'ip', type: 'InnerProduct', bottom: ['data'], top: ['ip'], inner_product_param: { num_output: 3 } },
        { name: 'acc', type: 'Accuracy', bottom: ['ip', 'label'], top: ['accuracy'] },
        { name: 'loss', type: 'SoftmaxWithLoss', bottom: ['ip', 'label'], top: ['loss'] },
      ],
    });
    const net = await Net.create(param, { registry, phase: Phase.TRAIN, log: false });
    await net.prepare();
    net.forward(); // labels 0 and 1
    await net.prepare();
    expect(() => net.forward()).toThrow(
      `Accuracy layer 'acc': label 3 in bottom 'label_train_1_split_0' (batch item 1, record '${formatKey(3)}') is outside the valid range [0, 2] (3 classes)`,
    );
  });

  it('shards for data-parallel training: with count 2 the replicas partition every pass, TEST reads all', async () => {
    const shardSrc = join(dir, 'shard_lmdb');
    await writeDb(shardSrc, Array.from({ length: 10 }, (_, i) => [formatKey(i), datumFor(i)]), 'lmdb');
    const registry = new LayerRegistry();
    registerDataLayers(registry);
    const param = createMessage<NetParameter>('NetParameter', {
      name: 'sharded',
      layer: [{ name: 'data', type: 'Data', top: ['data', 'label'], data_param: { source: shardSrc, backend: 1, batch_size: 5 } }],
    });
    const read = async (shard: { index: number; count: number } | undefined, phase = Phase.TRAIN, batches = 3) => {
      const net = await Net.create(param, { registry, phase, log: false, ...(shard ? { shard } : {}) });
      const out: number[][] = [];
      for (let b = 0; b < batches; b++) {
        await net.prepare();
        net.forward();
        out.push(labels(net.blob('label')));
        // The data follow their records (not only the labels).
        expect(net.blob('data').cpuData()[0]).toBe(10 * out[b]![0]!);
      }
      await net.close();
      return out;
    };
    const s0 = await read({ index: 0, count: 2 });
    const s1 = await read({ index: 1, count: 2 });
    expect(s0).toEqual([[0, 2, 4, 6, 8], [0, 2, 4, 6, 8], [0, 2, 4, 6, 8]]);
    expect(s1).toEqual([[1, 3, 5, 7, 9], [1, 3, 5, 7, 9], [1, 3, 5, 7, 9]]);
    // One epoch (10 records) over both replicas: every record exactly once.
    expect([...s0[0]!, ...s1[0]!].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Count 3 with a record count that is not a multiple: the ordinal runs on across wraps (Caffe's offset_).
    const t = await Promise.all([0, 1, 2].map((index) => read({ index, count: 3 }, Phase.TRAIN, 2)));
    expect(t[0]).toEqual([[0, 3, 6, 9, 2], [5, 8, 1, 4, 7]]);
    const firstPass = t.flatMap((r) => r.flat()).slice(0); // 30 reads = 3 passes over 10 records
    for (let k = 0; k < 10; k++) expect(firstPass.filter((v) => v === k).length).toBe(3);
    // Only one replica tests in Caffe: TEST reads every record whatever the shard.
    expect(await read({ index: 1, count: 2 }, Phase.TEST, 1)).toEqual([[0, 1, 2, 3, 4]]);
    await expect(read({ index: 2, count: 2 })).rejects.toThrow("Data layer 'data': shard must have integers 0 <= index < count (got index 2, count 2)");
  });

  it('a Datum whose size differs from the first of its batch is a DataError naming the source, key and both sizes', async () => {
    const mixed = join(dir, 'mixed_lmdb');
    await writeDb(mixed, [...tinyRecords().slice(0, 2), [formatKey(2), datumFor(2, 3, 3)]], 'lmdb');
    await primeDataSource(mixed, { backend: 'lmdb' });
    const { layer, top } = build(dataParam({ source: mixed, backend: 1, batch_size: 3 }));
    const err = await layer.prepare().catch((e: unknown) => e);
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe(
      `Data layer 'mnist', source '${mixed}': Datum size mismatch: record '00000002' is 1×3×3, expected 1×2×3 like record '00000000', the first of its batch`,
    );
    expect(() => layer.forward([], top)).toThrow(/record '00000002' is 1×3×3/);
    // As in Caffe, each batch takes its shape from its first Datum, so batches of one may vary.
    const one = build(dataParam({ source: mixed, backend: 1, batch_size: 1 }));
    const shapes: number[][] = [];
    for (let i = 0; i < 3; i++) {
      await one.layer.prepare();
      one.layer.forward([], one.top);
      shapes.push([...one.top[0]!.shape]);
    }
    expect(shapes).toEqual([
      [1, 1, 2, 3],
      [1, 1, 2, 3],
      [1, 1, 3, 3],
    ]);
    // With a crop, Datums of different sizes transform to one shape and may share a batch.
    const cropped = build(dataParam({ source: mixed, backend: 1, batch_size: 3 }, { transform_param: { crop_size: 2 } }), 2, new Rng(3), Phase.TEST);
    await cropped.layer.prepare();
    cropped.layer.forward([], cropped.top);
    expect(cropped.top[0]!.shape).toEqual([3, 1, 2, 2]);
    expect(Array.from(cropped.top[0]!.cpuData().subarray(8))).toEqual([20, 21, 23, 24]);
  });

  it('a truncated record is a DataError naming its key', async () => {
    const whole = datumFor(1);
    const short = encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 2, width: 3, data: Uint8Array.of(1, 2, 3, 4), label: 1 }));
    const cut = join(dir, 'cut_lmdb');
    await writeDb(cut, [[formatKey(0), datumFor(0)], [formatKey(1), short], [formatKey(2), whole.subarray(0, whole.length - 5)]], 'lmdb');
    await primeDataSource(cut, { backend: 'lmdb' });
    const a = build(dataParam({ source: cut, backend: 1, batch_size: 2 }));
    await expect(a.layer.prepare()).rejects.toThrow(
      `Data layer 'mnist', source '${cut}': record '00000001' is truncated or corrupt: a 1×2×3 Datum needs 6 values, it holds 4 data bytes`,
    );
    const b = build(dataParam({ source: cut, backend: 1, batch_size: 1, rand_skip: 0 }));
    await b.layer.prepare(); // record 0 is whole
    b.layer.forward([], b.top);
    await expect(b.layer.prepare()).rejects.toThrow(/record '00000001' is truncated or corrupt/);
    // Cut inside the pixel bytes: the protobuf itself is incomplete.
    await closeDataSources();
    const cutFirst = join(dir, 'cut_first_lmdb');
    await writeDb(cutFirst, [[formatKey(7), whole.subarray(0, whole.length - 5)]], 'lmdb');
    await expect(primeDataSources([dataParam({ source: cutFirst, backend: 1 })])).rejects.toThrow(
      new RegExp(`^Data layer 'mnist', source '${cutFirst}': record '00000007' is not a valid Datum \\(truncated or corrupt`),
    );
  });

  it('transformer errors name the record', async () => {
    await primeDataSource(src);
    expect(() => build(dataParam({}, { transform_param: { crop_size: 5 } }))).toThrow(
      `Data layer 'mnist', source '${src}': record '00000000': crop_size 5 is larger than the Datum (2×3)`,
    );
  });

  it('registers as type Data', () => {
    const reg = new LayerRegistry();
    registerDataLayers(reg);
    registerDataLayers(reg); // idempotent
    expect(reg.get('Data')).toBe(dataLayerDef);
    const layer = reg.create(dataParam());
    expect(layer).toBeInstanceOf(DataLayer);
    expect(layer.type).toBe('Data');
  });
});

describe('Data layer over encoded Datums', () => {
  /** Image i: 4×5 BGR with pixel values depending on i; stored as PNG (lossless) with label i. */
  const image = (i: number): PixelImage => ({
    height: 4,
    width: 5,
    channels: 3,
    data: Uint8Array.from({ length: 60 }, (_, p) => (i * 40 + p * 3) & 255),
  });

  it('decodes PNG records while prefetching: the same batches as the raw Datums, gray with force_gray', async () => {
    const encoded = join(dir, 'png_lmdb');
    const raw = join(dir, 'raw_lmdb');
    const enc: Array<[string, Uint8Array]> = [];
    const plain: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < 3; i++) {
      const png = await encodeImage(image(i), 'png');
      enc.push([formatKey(i), encodeDatum(createMessage<Datum>('Datum', { data: png, label: i, encoded: true }))]);
      plain.push([formatKey(i), encodeDatum(imageToDatum(image(i), i))]);
    }
    await writeDb(encoded, enc, 'lmdb');
    await writeDb(raw, plain, 'lmdb');
    const param = (source: string, name: string, transform: Record<string, unknown> = {}) =>
      dataParam({ source, backend: 1, batch_size: 3 }, { name, transform_param: { scale: 0.5, ...transform } });
    const info = await primeDataSources({ layer: [param(encoded, 'enc'), param(raw, 'raw'), param(encoded, 'gray', { force_gray: true })] });
    expect(info.map((x) => x.datumShape)).toEqual([
      [3, 4, 5],
      [3, 4, 5],
      [3, 4, 5],
    ]);
    const a = build(param(encoded, 'enc'));
    const b = build(param(raw, 'raw'));
    const g = build(param(encoded, 'gray', { force_gray: true }));
    expect(a.top[0]!.shape).toEqual([3, 3, 4, 5]);
    expect(g.top[0]!.shape).toEqual([3, 1, 4, 5]);
    await prepareDataLayers([a.layer, b.layer, g.layer]);
    a.layer.forward([], a.top);
    b.layer.forward([], b.top);
    g.layer.forward([], g.top);
    expect(Array.from(a.top[0]!.cpuData())).toEqual(Array.from(b.top[0]!.cpuData()));
    expect(labels(a.top[1]!)).toEqual([0, 1, 2]);
    expect(g.top[0]!.shape).toEqual([3, 1, 4, 5]);
  });

  it('names the record that does not decode', async () => {
    const bad = join(dir, 'bad_png_lmdb');
    const png = await encodeImage(image(0), 'png');
    await writeDb(
      bad,
      [
        [formatKey(0), encodeDatum(createMessage<Datum>('Datum', { data: png, label: 0, encoded: true }))],
        [formatKey(1), encodeDatum(createMessage<Datum>('Datum', { data: Uint8Array.from([1, 2, 3]), label: 1, encoded: true }))],
      ],
      'lmdb',
    );
    const param = dataParam({ source: bad, backend: 1, batch_size: 2 }, { name: 'bad' });
    await primeDataSources({ layer: [param] });
    const { layer } = build(param);
    await expect(layer.prepare()).rejects.toThrow(/Data layer 'bad', source '.*bad_png_lmdb': record '00000001': cannot decode record '00000001' \(3 bytes\)/);
  });
});
