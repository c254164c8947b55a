import { logger, type Blob } from '@caffe-ts/blob';
import { defaultLayerRegistry, LayerError, type BlobCounts, type LayerContext, type LayerDef, type LayerRegistry } from '@caffe-ts/layers';
import { createMessage, registerSsdForkSchema, type Datum, type LayerParameter } from '@caffe-ts/proto';
import { DataTransformer, type TransformDraws } from './data-transformer.js';
import { DecodePoolUnavailable, type DecodePool } from './decode-pool.js';
import type { DecodeItem, ItemResult } from './decode-protocol.js';
import { parseDbBackend } from './datum-db.js';
import {
  datumShapeString,
  decodeRecord,
  findPrimedSource,
  meanFileReaderFor,
  primeDataLayer,
  ShardedRecordReader,
  unprimedSourceMessage,
  type PrimedSource,
} from './data-sources.js';
import { DataError } from './errors.js';
import { BasePrefetchingDataLayer, type Batch } from './prefetching-layer.js';
import { layerShard, type Shard } from './shard.js';
import { annotatedDataLayerDef } from './annotated-data-layer.js';
import { hdf5DataLayerDef } from './hdf5-data-layer.js';
import { hdf5OutputLayerDef } from './hdf5-output-layer.js';
import { imageDataLayerDef } from './image-data-layer.js';
import { windowDataLayerDef } from './window-data-layer.js';

const log = logger('data_layer.ts');

/*
 * How the asynchronous database meets the synchronous Layer contract
 * ------------------------------------------------------------------
 * LevelDB (`level`) only has an async API, while `Layer.setUp` and `Layer.forward` are synchronous.
 * So:
 *
 * 1. Before the net is built, each Data layer's source is primed (see data-sources.ts): the layer
 *    definition's `prime` hook does it, and `Net.create` awaits that hook; `primeDataSources`
 *    does it for a whole NetParameter. `layerSetUp` finds the open database and its first Datum
 *    there (Caffe reads one Datum in DataLayerSetUp to shape the tops).
 * 2. Set-up starts the prefetcher: an async loop that reads and transforms up to `prefetch`
 *    batches ahead (Caffe's prefetch thread and its full/free queues).
 * 3. `forward` never waits: it takes a ready batch. Before each forward the caller (Solver, CLI,
 *    tests) must `await prepareDataLayers(net)`, which resolves once every data layer holds at
 *    least one batch. Forward without a ready batch throws, telling the caller to await it.
 * 4. `closeDataSources()` stops the prefetchers and closes every database.
 */

/** Something with an async `prepare()` (Data layers, and any other prefetching layer). */
export interface PreparableLayer {
  prepare(): Promise<void>;
}

function isPreparable(x: unknown): x is PreparableLayer {
  return typeof x === 'object' && x !== null && typeof (x as { prepare?: unknown }).prepare === 'function';
}

/**
 * Resolve once every layer with a `prepare()` method has a batch ready. The Solver and the CLI
 * must await this before each forward pass of a net with Data layers.
 */
export async function prepareDataLayers(net: { readonly layers: readonly unknown[] } | Iterable<unknown>): Promise<void> {
  const layers: readonly unknown[] =
    Symbol.iterator in net ? [...(net as Iterable<unknown>)] : (net as { readonly layers: readonly unknown[] }).layers;
  await Promise.all(layers.filter(isPreparable).map((l) => l.prepare()));
}

/**
 * Caffe's Data layer: reads Datums from a LevelDB or LMDB (`data_param.source`, `backend`), decodes
 * encoded ones (JPEG/PNG) while prefetching, transforms them (`transform_param`) and outputs `data`
 * (batch_size × C × H × W) and, with a second top, `label` (batch_size). Batches are prefetched
 * asynchronously; see the note at the top of this file for the `primeDataSources` /
 * `prepareDataLayers` protocol.
 */
export class DataLayer extends BasePrefetchingDataLayer {
  readonly type: string = 'Data';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1, maxTopBlobs: 2 };

  /** The prototxt this layer's net came from (resolves relative source and mean_file paths). */
  readonly netFile: string | undefined;
  private entry: PrimedSource | null = null;
  private transformer: DataTransformer | null = null;
  private reader: ShardedRecordReader | null = null;
  /** Data-parallel shard (context.shard): only records whose ordinal % count == index are read. */
  readonly shard: Shard | null;
  /** The item shape [C, h, w] batches are laid out for before their first record says (the last batch's). */
  private expectedItemShape: number[] = [];
  /** The end of the reads started so far (see inOrder). */
  private readTail: Promise<void> = Promise.resolve();

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(param, context);
    this.netFile = context.netFile;
    this.shard = layerShard(context, `Data layer '${param.name}'`);
  }

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const dp = this.param.data_param;
    if (!dp) this.fail('data_param is required');
    if (!dp.source) this.fail('data_param.source is required');
    const backend = parseDbBackend(dp.backend);
    this.check(dp.batch_size > 0, () => `batch_size must be positive (got ${dp.batch_size})`);
    this.check(dp.prefetch > 0, () => `prefetch must be positive (got ${dp.prefetch})`);
    const entry = findPrimedSource(this.name, dp.source, backend, this.netFile);
    if (!entry) this.fail(unprimedSourceMessage(backend, dp.source));
    this.entry = entry;
    this.batchSize = dp.batch_size;
    this.prefetchCount = dp.prefetch;
    this.outputLabels = top.length > 1;
    // Each layer transforms with its own generator, as Caffe's prefetch thread seeds its own.
    this.transformer = new DataTransformer(this.param.transform_param, this.phase, this.rng.fork(), {
      owner: `Data layer '${this.name}'`,
      readFile: entry.readFile ?? meanFileReaderFor(`Data layer '${this.name}'`, this.param.transform_param, this.netFile),
    });
    const shape = this.inferShape(this.shapeDatum(entry), entry.open.firstKey);
    shape[0] = this.batchSize;
    top[0]!.reshape(shape);
    this.expectedItemShape = shape.slice(1);
    log.info(`output data size: ${shape.join(',')}`);
    if (this.outputLabels) top[1]!.reshape([this.batchSize]);

    this.reader = new ShardedRecordReader(entry.open.db.cursor(), this.shard, this.phase, dp.rand_skip > 0 ? this.rng.int(dp.rand_skip) : 0);
    entry.open.layers.add(this);
    // An encoded database: start the decode workers now, while the rest of the net is set up.
    if (entry.open.firstDatum.encoded) void this.decodeWorkers(this.transformer.spec);
    this.startPrefetch();
  }

  /** The first Datum as the transformer will see it: decoded (with force_color/force_gray) when encoded. */
  private shapeDatum(entry: PrimedSource): Datum {
    const decoded = entry.open.firstDecoded;
    if (!decoded) return entry.open.firstDatum;
    const channels = this.transformer!.decodedChannels(decoded.channels);
    return createMessage<Datum>('Datum', { channels, height: decoded.height, width: decoded.width, label: decoded.label });
  }

  /** The transformed shape of one Datum; transformer errors name the record. */
  private inferShape(datum: Datum, key: string): number[] {
    try {
      return this.transformer!.inferBlobShape(datum);
    } catch (e) {
      throw this.recordError(e, key);
    }
  }

  /** Re-word a transformer error so that it names the source and the record. */
  private recordError(e: unknown, key: string): unknown {
    if (!DataError.isInstance(e)) return e;
    const owner = `Data layer '${this.name}': `;
    const msg = e.message.startsWith(owner) ? e.message.slice(owner.length) : e.message;
    return new DataError(`${this.where()}: record '${key}': ${msg}`, { cause: e });
  }

  private where(): string {
    return `Data layer '${this.name}', source '${this.entry?.source}'`;
  }

  protected sourceLabel(): string {
    return `source '${this.entry?.source}'`;
  }

  protected override async beforeFirstBatch(): Promise<void> {
    await this.reader!.skipPending(log);
  }

  protected override async releaseResources(): Promise<void> {
    await this.reader?.close();
    this.entry?.open.layers.delete(this);
  }

  /**
   * Read batch_size Datums, decode the encoded ones and transform them. As in Caffe, the first
   * Datum of each batch fixes the batch's shape (so sizes may change between batches, e.g. with
   * batch_size 1), and every other Datum of the batch must transform to that shape. Encoded Datums
   * are decoded and transformed by the decode workers when there are some (decode-pool.ts), with
   * the random choices drawn here in record order, so the batch is the same either way.
   */
  protected async loadBatch(): Promise<Batch> {
    const where = this.where();
    const t = this.transformer!;
    const n = this.batchSize;
    // Loads may overlap (with decode workers): the records and the random draws of each batch are
    // taken in call order, one batch after the other.
    const { records, draws } = await this.inOrder(async () => {
      const records: LoadedRecord[] = [];
      for (let i = 0; i < n; i++) {
        const rec = await this.reader!.next();
        if (this.isClosed) throw new LayerError(`${where}: closed`);
        records.push({ key: rec.key, datum: decodeRecord(rec, where) });
      }
      return { records, draws: records.map(() => t.draw()) };
    });
    const workers = records.some((r) => r.datum.encoded) ? await this.decodeWorkers(t.spec) : null;
    if (workers) {
      try {
        return await this.loadWithWorkers(records, draws, workers);
      } catch (e) {
        // The pool failed (it says so once in the log): this batch is decoded here instead.
        if (!(e instanceof DecodePoolUnavailable)) throw e;
      }
    }
    // Encoded images of the batch are decoded together: sharp runs them on libuv's thread pool.
    await Promise.all(
      records.map(async (r) => {
        if (r.datum.encoded) r.datum = await this.decodeHere(r);
      }),
    );
    return this.assemble(records, draws, this.takeBuffer([n, ...this.expectedItemShape]), new Map());
  }

  /** With decode workers, up to `prefetch` batches are decoded at once. */
  protected override loadsInFlight(): number {
    return this.decodeWorkersActive ? this.prefetchCount : 1;
  }

  /** Run `read` after the reads of the batches started before (each batch's records in one run). */
  private inOrder<T>(read: () => Promise<T>): Promise<T> {
    const run = this.readTail.then(read);
    this.readTail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Decode one encoded record on this thread; errors name the record. */
  private async decodeHere(r: LoadedRecord): Promise<Datum> {
    try {
      return await this.transformer!.decode(r.datum, `record '${r.key}'`);
    } catch (e) {
      throw this.recordError(e, r.key);
    }
  }

  /** Decode and transform the encoded records in the workers, straight into a shared batch buffer. */
  private async loadWithWorkers(records: LoadedRecord[], draws: TransformDraws[], workers: { pool: DecodePool; specId: number }): Promise<Batch> {
    const t = this.transformer!;
    const expect = this.expectedItemShape;
    const batch = this.takeBuffer([records.length, ...expect], true);
    const items: DecodeItem[] = [];
    records.forEach((r, index) => {
      if (!r.datum.encoded) return;
      // A copy of the bytes travels (transferred); the record keeps its own for the errors path.
      items.push({ index, source: { kind: 'bytes', bytes: r.datum.data.slice(), mode: t.decodeMode, what: `record '${r.key}'` }, draws: draws[index]! });
    });
    let results: ItemResult[];
    try {
      results = await workers.pool.run(workers.specId, this.dtype, items, batch.data.buffer as SharedArrayBuffer, expect);
    } catch (e) {
      this.returnBuffer(batch);
      throw e;
    }
    const done = new Map<number, ItemResult>();
    for (const r of results) if (!r.error) done.set(r.index, r);
    // A record a worker could not do is done again here, which fails with the same error (naming
    // the record) as the main-thread path.
    try {
      await Promise.all(
        results.map(async (r) => {
          if (!r.error) return;
          const rec = records[r.index]!;
          rec.datum = await this.decodeHere(rec);
        }),
      );
    } catch (e) {
      this.returnBuffer(batch);
      throw e;
    }
    return this.assemble(records, draws, batch, done);
  }

  /**
   * Check the shapes and fill `batch` in record order: records in `done` were transformed by the
   * workers (written into the batch when `placed`), the others are transformed here.
   */
  private assemble(records: LoadedRecord[], draws: TransformDraws[], batch: Batch, done: Map<number, ItemResult>): Batch {
    const where = this.where();
    const t = this.transformer!;
    const n = records.length;
    let itemShape: number[] = [];
    let itemSize = 0;
    let firstDims = '';
    const first = records[0]!;
    try {
      for (let i = 0; i < n; i++) {
        const { key, datum } = records[i]!;
        const res = done.get(i);
        const shape = res ? res.shape! : this.inferShape(datum, key).slice(1);
        const dims = res ? res.image!.join('×') : datumShapeString(datum);
        if (i === 0) {
          itemShape = shape;
          itemSize = itemShape.reduce((a, b) => a * b, 1);
          firstDims = dims;
          if (!sameShape(shape, batch.shape.slice(1))) {
            this.returnBuffer(batch);
            batch = this.takeBuffer([n, ...itemShape], batch.data.buffer instanceof SharedArrayBuffer);
          }
        } else if (!sameShape(shape, itemShape)) {
          const transformed = (s: number[], d: string) => (s.join('×') === d ? '' : ` (transformed: ${s.join('×')})`);
          throw new DataError(
            `${where}: Datum size mismatch: record '${key}' is ${dims}${transformed(shape, dims)}, ` +
              `expected ${firstDims}${transformed(itemShape, firstDims)} like record '${first.key}', the first of its batch`,
          );
        }
        if (res) {
          if (!res.placed) batch.data.set(res.data!, i * itemSize);
        } else {
          try {
            t.transformDrawn(datum, batch.data, i * itemSize, draws[i]!);
          } catch (e) {
            throw this.recordError(e, key);
          }
        }
        if (batch.label) batch.label[i] = datum.label;
      }
    } catch (e) {
      this.returnBuffer(batch);
      throw e;
    }
    this.expectedItemShape = itemShape;
    batch.keys = records.map((r) => r.key);
    return batch;
  }
}

/** One record of a batch being loaded (its Datum replaced by the decoded one once decoded). */
interface LoadedRecord {
  key: string;
  datum: Datum;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, k) => d === b[k]);
}

export const dataLayerDef: LayerDef = {
  type: 'Data',
  create: (param, context) => new DataLayer(param, context),
  /** Opens the layer's source before `Net.create` builds the net (see data-sources.ts). */
  prime: async (param, context) => {
    await primeDataLayer(param, { netFile: context.netFile });
  },
};

/** The data layers of this package: Data, ImageData, WindowData, HDF5Data, HDF5Output and the SSD fork's AnnotatedData. */
const DATA_LAYER_DEFS: readonly LayerDef[] = [
  dataLayerDef,
  imageDataLayerDef,
  windowDataLayerDef,
  hdf5DataLayerDef,
  hdf5OutputLayerDef,
  annotatedDataLayerDef,
];

/**
 * Register this package's data layers (idempotent for its own definitions). Also registers the SSD
 * fork's schema (registerSsdForkSchema), so that prototxts with `annotated_data_param` and the
 * fork's transform_param fields parse once this has run.
 */
export function registerDataLayers(registry: LayerRegistry = defaultLayerRegistry()): void {
  registerSsdForkSchema();
  for (const def of DATA_LAYER_DEFS) {
    if (registry.has(def.type) && registry.get(def.type) === def) continue;
    registry.register(def);
  }
}
