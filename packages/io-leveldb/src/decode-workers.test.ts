import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blob, Rng, setLogSink, type DType, type LogSink } from '@caffe-ts/blob';
import { createMessage, encodeBinary, encodeDatum, Phase, type Datum, type LayerParameter } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DataLayer } from './data-layer.js';
import { closeDataSources, primeDataSource } from './data-sources.js';
import { acquireDecodePool, decodePoolStats, releaseDecodePool, setDecodeWorkers, type DecodePool } from './decode-pool.js';
import { formatKey, openDatumDb } from './datum-db.js';
import { ImageDataLayer, imageDataLayerDef } from './image-data-layer.js';
import { encodeImage, type PixelImage } from './image-io.js';

// Encoded Datums and image files decoded by the worker pool must give the very batches the
// main-thread path gives for the same seed (random crops and mirrors included).

const dir = mkdtempSync(join(tmpdir(), 'decode-workers-'));
const N = 12;
/** Image i: 10×12 BGR (or 9×13 for the odd-sized set), a texture depending on i. */
const image = (i: number, height = 10, width = 12): PixelImage => ({
  height,
  width,
  channels: 3,
  data: Uint8Array.from({ length: height * width * 3 }, (_, p) => (i * 29 + p * 7 + ((p * p) % 13)) & 255),
});
let jpgDb: string;
let pngMixedDb: string;
let brokenDb: string;
let meanFile: string;
let lines: string[];
let prevSink: LogSink;

async function writeDb(path: string, datums: Datum[]): Promise<void> {
  const db = await openDatumDb(path, { mode: 'new', backend: 'lmdb' });
  const w = db.writer();
  for (let i = 0; i < datums.length; i++) await w.put(formatKey(i), encodeDatum(datums[i]!));
  await w.close();
  await db.close();
}

const encoded = async (img: PixelImage, label: number, format: 'jpg' | 'png' = 'jpg') =>
  createMessage<Datum>('Datum', { data: await encodeImage(img, format), encoded: true, label });

beforeAll(async () => {
  jpgDb = join(dir, 'jpg_lmdb');
  await writeDb(jpgDb, await Promise.all(Array.from({ length: N }, (_, i) => encoded(image(i), i))));
  // Two sizes: with batch_size 1 every batch has its own shape (results come back in buffers of their own).
  pngMixedDb = join(dir, 'png_mixed_lmdb');
  await writeDb(pngMixedDb, await Promise.all(Array.from({ length: 4 }, (_, i) => encoded(i % 2 ? image(i, 9, 13) : image(i), i, 'png'))));
  brokenDb = join(dir, 'broken_lmdb');
  const bad = createMessage<Datum>('Datum', { data: Uint8Array.from([0xff, 0xd8, 0xff, 1, 2, 3]), encoded: true, label: 1 });
  await writeDb(brokenDb, [await encoded(image(0), 0), bad, await encoded(image(2), 2)]);
  meanFile = join(dir, 'mean.binaryproto');
  const mean = createMessage('BlobProto', { num: 1, channels: 3, height: 10, width: 12, data: Array.from({ length: 360 }, (_, j) => (j % 97) + 0.25) });
  writeFileSync(meanFile, encodeBinary('BlobProto', mean));
  const list: string[] = [];
  for (let i = 0; i < N; i++) {
    writeFileSync(join(dir, `img${i}.jpg`), await encodeImage(image(i, 11 + (i % 3), 14), 'jpg'));
    list.push(`img${i}.jpg ${i}`);
  }
  writeFileSync(join(dir, 'list.txt'), `${list.join('\n')}\n`);
  writeFileSync(join(dir, 'missing.txt'), 'img0.jpg 0\nnot-there.jpg 1\n');
});
afterAll(() => {
  setDecodeWorkers('auto');
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  lines = [];
  prevSink = setLogSink((l) => lines.push(l));
});
afterEach(async () => {
  setLogSink(prevSink);
  await closeDataSources();
});

const dataParam = (source: string, batch: number, transform: Record<string, unknown>) =>
  createMessage<LayerParameter>('LayerParameter', {
    name: 'data',
    type: 'Data',
    top: ['data', 'label'],
    data_param: { source, backend: 1, batch_size: batch },
    transform_param: transform,
  });

interface Read {
  data: number[][];
  labels: number[][];
  shapes: number[][];
}

/** Run `batches` forwards of a data layer built by `make`, with `workers` decode workers. */
async function readBatches(workers: number, batches: number, make: () => Promise<{ layer: DataLayer | ImageDataLayer; top: Blob[] }>): Promise<Read> {
  setDecodeWorkers(workers);
  const { layer, top } = await make();
  const out: Read = { data: [], labels: [], shapes: [] };
  for (let b = 0; b < batches; b++) {
    await layer.prepare();
    layer.forward([], top);
    out.data.push(Array.from(top[0]!.cpuData()));
    out.labels.push(Array.from(top[1]!.cpuData()));
    out.shapes.push([...top[0]!.shape]);
  }
  await layer.close();
  return out;
}

async function dataLayer(param: LayerParameter, dtype: DType = 'float32', phase = Phase.TRAIN) {
  await primeDataSource(param.data_param!.source, { backend: 'lmdb' });
  const layer = new DataLayer(param, { phase, rng: new Rng(77), dtype });
  const top = [new Blob([1], { dtype }), new Blob([1], { dtype })];
  layer.setUp([], top);
  return { layer, top };
}

describe('decode workers', () => {
  it('start with the first layer that needs them and stop when it is closed', async () => {
    setDecodeWorkers(2);
    const started = decodePoolStats().poolsStarted;
    const { layer, top } = await dataLayer(dataParam(jpgDb, 2, {}));
    await layer.prepare();
    layer.forward([], top);
    expect(decodePoolStats()).toMatchObject({ poolsStarted: started + 1, workersRunning: 2 });
    await layer.close();
    expect(decodePoolStats().workersRunning).toBe(0);
  });
});

describe('decode workers (one pool held through these tests, so that it starts once)', () => {
  let held: DecodePool | null = null;
  beforeAll(async () => {
    setDecodeWorkers(2);
    held = await acquireDecodePool();
  });
  afterAll(() => {
    if (held) releaseDecodePool(held);
  });

  it('Data over encoded JPEGs: the same batches as the main thread (crop, mirror, mean_file, scale), decoded by the workers', async () => {
    const tp = { crop_size: 7, mirror: true, mean_file: meanFile, scale: 0.5 };
    const here = await readBatches(0, 4, () => dataLayer(dataParam(jpgDb, 5, tp)));
    const before = decodePoolStats();
    const pooled = await readBatches(2, 4, () => dataLayer(dataParam(jpgDb, 5, tp)));
    const after = decodePoolStats();
    expect(after.itemsDone - before.itemsDone).toBeGreaterThanOrEqual(20);
    expect(pooled).toEqual(here);
    expect(here.labels[2]).toEqual([10, 11, 0, 1, 2]); // wrapping
    // The crops and mirrors do vary (the comparison above is not between constant batches).
    expect(new Set(here.data.map((d) => d.slice(0, 20).join())).size).toBe(4);
  });

  it('float64 nets, TEST-phase centre crops and one-image batches of changing sizes match too', async () => {
    const tp = { crop_size: 6, mean_value: [100, 110, 120] };
    const p = () => dataParam(jpgDb, 3, tp);
    expect(await readBatches(2, 2, () => dataLayer(p(), 'float64'))).toEqual(await readBatches(0, 2, () => dataLayer(p(), 'float64')));
    expect(await readBatches(2, 2, () => dataLayer(p(), 'float32', Phase.TEST))).toEqual(
      await readBatches(0, 2, () => dataLayer(p(), 'float32', Phase.TEST)),
    );
    const mixed = () => dataLayer(dataParam(pngMixedDb, 1, { mirror: true }));
    const pooled = await readBatches(2, 5, mixed);
    expect(pooled.shapes).toEqual([
      [1, 3, 10, 12],
      [1, 3, 9, 13],
      [1, 3, 10, 12],
      [1, 3, 9, 13],
      [1, 3, 10, 12],
    ]);
    expect(pooled).toEqual(await readBatches(0, 5, mixed));
  });

  it('a record that does not decode, or batches of mixed sizes, fail with the main-thread messages', async () => {
    const failure = async (workers: number, param: LayerParameter) => {
      setDecodeWorkers(workers);
      const { layer } = await dataLayer(param);
      const e = await layer.prepare().then(
        () => null,
        (err: unknown) => err as Error,
      );
      await layer.close();
      await closeDataSources();
      return e;
    };
    const broken = dataParam(brokenDb, 3, {});
    const a = await failure(1, broken);
    expect(a?.message).toMatch(new RegExp(`^Data layer 'data', source '${brokenDb}': record '00000001': cannot decode record '00000001' \\(6 bytes\\)`));
    // The decoder's own explanation after the record (libvips' text) varies from run to run.
    const head = (m: string | undefined) => m?.replace(/\(6 bytes\)[\s\S]*$/, '(6 bytes)');
    expect(head(a?.message)).toBe(head((await failure(0, broken))?.message));
    const mixed = dataParam(pngMixedDb, 2, {});
    const b = await failure(1, mixed);
    expect(b?.message).toBe(
      `Data layer 'data', source '${pngMixedDb}': Datum size mismatch: record '00000001' is 3×9×13, expected 3×10×12 like record '00000000', the first of its batch`,
    );
    expect(b?.message).toBe((await failure(0, mixed))?.message);
  });

  const imageParam = (source: string, props: Record<string, unknown>, transform: Record<string, unknown>) =>
    createMessage<LayerParameter>('LayerParameter', {
      name: 'images',
      type: 'ImageData',
      top: ['data', 'label'],
      image_data_param: { source, root_folder: `${dir}/`, batch_size: 5, ...props },
      transform_param: transform,
    });
  const imageLayer = async (param: LayerParameter, shard?: { index: number; count: number }) => {
    await imageDataLayerDef.prime!(param, {});
    const layer = new ImageDataLayer(param, { phase: Phase.TRAIN, rng: new Rng(5), ...(shard ? { shard } : {}) });
    const top = [new Blob(), new Blob()];
    layer.setUp([], top);
    return { layer, top };
  };

  it('ImageData (resize, shuffle, crop, mirror, a shard): the same batches as the main thread', async () => {
    const p = imageParam(join(dir, 'list.txt'), { new_height: 10, new_width: 13, shuffle: true }, { crop_size: 8, mirror: true, scale: 0.25 });
    const before = decodePoolStats().itemsDone;
    const pooled = await readBatches(2, 3, () => imageLayer(p));
    expect(decodePoolStats().itemsDone - before).toBeGreaterThanOrEqual(15);
    expect(pooled).toEqual(await readBatches(0, 3, () => imageLayer(p)));
    const shard = { index: 1, count: 2 };
    expect(await readBatches(2, 2, () => imageLayer(p, shard))).toEqual(await readBatches(0, 2, () => imageLayer(p, shard)));
    // Without resizing the images differ in height: the crop makes them one shape.
    const unresized = imageParam(join(dir, 'list.txt'), {}, { crop_size: 9, mirror: true });
    expect(await readBatches(2, 2, () => imageLayer(unresized))).toEqual(await readBatches(0, 2, () => imageLayer(unresized)));
  });

  it('ImageData: a missing image is named as on the main thread', async () => {
    const p = imageParam(join(dir, 'missing.txt'), { batch_size: 2, new_height: 10, new_width: 12 }, {});
    setDecodeWorkers(2);
    const { layer } = await imageLayer(p);
    await expect(layer.prepare()).rejects.toThrow(`ImageData layer 'images': Could not load not-there.jpg: Could not open or find file ${dir}/not-there.jpg`);
    await layer.close();
  });

  it('when a worker dies, the layer goes on decoding on the main thread with the same results', async () => {
    const tp = { crop_size: 7, mirror: true };
    const here = await readBatches(0, 3, () => dataLayer(dataParam(jpgDb, 4, tp)));
    setDecodeWorkers(2);
    // Kill a worker of the held pool after the first batch (this test comes last: the pool is then off).
    const pool = held!;
    expect(pool).not.toBeNull();
    const { layer, top } = await dataLayer(dataParam(jpgDb, 4, tp));
    const got: Read = { data: [], labels: [], shapes: [] };
    for (let b = 0; b < 3; b++) {
      await layer.prepare();
      layer.forward([], top);
      got.data.push(Array.from(top[0]!.cpuData()));
      got.labels.push(Array.from(top[1]!.cpuData()));
      got.shapes.push([...top[0]!.shape]);
      if (b === 0) await (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0]!.worker.terminate();
    }
    await layer.close();
    expect(got).toEqual(here);
    expect(lines.some((l) => l.includes('a decode worker failed') && l.includes('decode on the main thread'))).toBe(true);
  });
});
