import { resolve as resolvePath } from 'node:path';
import { allocArray, logger, type Blob, type FloatArray } from '@caffe-ts/blob';
import { defaultLayerRegistry, Layer, LayerError, type BlobCounts, type LayerDef, type LayerRegistry } from '@caffe-ts/layers';
import {
  CaffeError,
  DataParameter_DB,
  decodeDatum,
  hasField,
  Phase,
  type Datum,
  type LayerParameter,
  type NetParameter,
  type NetStateRule,
  type V1LayerParameter,
  V1LayerParameter_LayerType,
} from '@caffe-ts/proto';
import { DataTransformer } from './data-transformer.js';
import { openDatumDb, type DatumCursor, type DatumDb, type DatumRecord } from './datum-db.js';
import { DataError } from './errors.js';

const log = logger('data_layer.ts');

/*
 * How the asynchronous database meets the synchronous Layer contract
 * ------------------------------------------------------------------
 * `level` only has an async API, while `Layer.setUp` and `Layer.forward` are synchronous. So:
 *
 * 1. Before building a net, `await primeDataSources(netParameter, {phase})` opens each Data
 *    layer's LevelDB and reads its first Datum. Both are kept in a process-wide table keyed by the
 *    `source` string as written in the prototxt. `layerSetUp` finds the open database and the first
 *    Datum there (Caffe reads one Datum in DataLayerSetUp to shape the tops); a layer whose source
 *    was not primed fails with a message that says to call `primeDataSources`.
 * 2. Set-up starts the prefetcher: an async loop that reads and transforms up to `prefetch`
 *    batches ahead (Caffe's prefetch thread and its full/free queues).
 * 3. `forward` never waits: it takes a ready batch. Before each forward the caller (Solver, CLI,
 *    tests) must `await prepareDataLayers(net)`, which resolves once every data layer holds at
 *    least one batch. Forward without a ready batch throws, telling the caller to await it.
 * 4. `closeDataSources()` stops the prefetchers and closes every database.
 */

/** An open data source, shared by every Data layer that reads the same `source`. */
interface PrimedSource {
  source: string;
  path: string;
  db: DatumDb;
  firstKey: string;
  firstDatum: Datum;
  readFile: ((path: string) => Uint8Array) | undefined;
  layers: Set<DataLayer>;
}

const SOURCES_KEY = Symbol.for('caffe-ts.io-leveldb.primedSources');

/** The table is global so that two copies of this package still see one set of open databases. */
function primedSources(): Map<string, PrimedSource> {
  const g = globalThis as Record<symbol, unknown>;
  let m = g[SOURCES_KEY] as Map<string, PrimedSource> | undefined;
  if (!m) {
    m = new Map();
    g[SOURCES_KEY] = m;
  }
  return m;
}

export interface PrimeOptions {
  /** Prime only the Data layers that can run in this phase (by their include/exclude rules). */
  phase?: Phase;
  /** Maps a `source` to the database path (default: resolved against the current directory, as Caffe). */
  resolveSource?: (source: string, layerName: string) => string;
  /** Reads mean_file bytes for the layers' transformers (default fs.readFileSync). */
  readFile?: (path: string) => Uint8Array;
}

/** What priming found for one source. */
export interface PrimedSourceInfo {
  /** The first layer that named this source. */
  layer: string;
  source: string;
  path: string;
  /** Shape of the first Datum: [channels, height, width]. */
  datumShape: [number, number, number];
}

/** Whether a layer's include/exclude rules let it run in `phase` (stage/level rules are not judged). */
function mayRunIn(layer: Pick<LayerParameter, 'include' | 'exclude'>, phase: Phase): boolean {
  const phaseOnly = (r: NetStateRule) => hasField(r, 'phase');
  if (layer.include.length > 0) return layer.include.some((r) => !phaseOnly(r) || r.phase === phase);
  return !layer.exclude.some((r) => phaseOnly(r) && r.phase === phase && r.stage.length === 0 && r.not_stage.length === 0);
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function decodeRecord(rec: DatumRecord, where: string): Datum {
  try {
    return decodeDatum(rec.value);
  } catch (e) {
    throw new DataError(`${where}: record '${rec.key}' is not a valid Datum: ${describeError(e)}`, { cause: e });
  }
}

/**
 * Open one source (idempotent) and read its first Datum, so that Data layers naming it can be set up.
 */
export async function primeDataSource(
  source: string,
  options: { path?: string; layerName?: string; readFile?: (path: string) => Uint8Array } = {},
): Promise<PrimedSourceInfo> {
  const table = primedSources();
  const who = `Data layer '${options.layerName ?? '?'}'`;
  let entry = table.get(source);
  if (!entry || !entry.db.isOpen) {
    const path = options.path ?? resolvePath(source);
    const db = await openDatumDb(path, { mode: 'read' });
    try {
      const cursor = db.cursor({ readAhead: 1, logRestart: false });
      let first: DatumRecord;
      try {
        first = await cursor.next();
      } finally {
        await cursor.close();
      }
      entry = {
        source,
        path,
        db,
        firstKey: first.key,
        firstDatum: decodeRecord(first, `${who}, source '${source}'`),
        readFile: options.readFile,
        layers: new Set(),
      };
    } catch (e) {
      await db.close();
      throw e;
    }
    table.set(source, entry);
  }
  const d = entry.firstDatum;
  return { layer: options.layerName ?? '', source, path: entry.path, datumShape: [d.channels, d.height, d.width] };
}

/**
 * Open the databases of every Data layer in a net (or a list of layers) before the net is built.
 * With `phase`, layers excluded from that phase by their rules are skipped.
 */
export async function primeDataSources(
  net: Pick<NetParameter, 'layer'> | Pick<NetParameter, 'layer' | 'layers'> | readonly LayerParameter[],
  options: PrimeOptions = {},
): Promise<PrimedSourceInfo[]> {
  const out: PrimedSourceInfo[] = [];
  const seen = new Set<string>();
  for (const layer of dataLayersOf(net)) {
    if (options.phase !== undefined && !mayRunIn(layer, options.phase)) continue;
    const dp = layer.data_param;
    if (!dp || !dp.source) throw new DataError(`Data layer '${layer.name}': data_param.source is required`);
    if (dp.backend === DataParameter_DB.LMDB) throw lmdbError(layer.name, dp.source);
    if (seen.has(dp.source)) continue;
    seen.add(dp.source);
    const path = options.resolveSource ? options.resolveSource(dp.source, layer.name) : resolvePath(dp.source);
    out.push(await primeDataSource(dp.source, { path, layerName: layer.name, readFile: options.readFile }));
  }
  return out;
}

/** What priming needs from a Data layer, in the current or the legacy V1 format. */
type DataLayerLike = Pick<LayerParameter, 'name' | 'data_param' | 'include' | 'exclude'>;

/** The Data layers of a net: current `layer { type: "Data" }` and legacy V1 `layers { type: DATA }`. */
function dataLayersOf(net: Pick<NetParameter, 'layer'> | Partial<Pick<NetParameter, 'layers'>> | readonly LayerParameter[]): DataLayerLike[] {
  if (Array.isArray(net)) return (net as readonly LayerParameter[]).filter((l) => l.type === 'Data');
  const n = net as Partial<Pick<NetParameter, 'layer' | 'layers'>>;
  const current: DataLayerLike[] = (n.layer ?? []).filter((l) => l.type === 'Data');
  const legacy: DataLayerLike[] = (n.layers ?? []).filter((l: V1LayerParameter) => l.type === V1LayerParameter_LayerType.DATA);
  return [...current, ...legacy];
}

/** Stop every Data layer's prefetching and close every primed database. */
export async function closeDataSources(): Promise<void> {
  const table = primedSources();
  const entries = [...table.values()];
  table.clear();
  for (const e of entries) {
    for (const layer of [...e.layers]) await layer.close();
    await e.db.close();
  }
}

/** The sources primed so far (as written in the prototxt). */
export function primedDataSources(): string[] {
  return [...primedSources().keys()];
}

function lmdbError(layer: string, source: string): DataError {
  return new DataError(
    `Data layer '${layer}': source '${source}' uses the LMDB backend, which arrives with the data I/O issue (not supported yet); convert it to LevelDB (backend: LEVELDB)`,
  );
}

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

/** One prefetched batch: data of `shape` and (optionally) batch_size labels. */
interface Batch {
  shape: number[];
  data: FloatArray;
  label: FloatArray | null;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Caffe's Data layer: reads Datums from a LevelDB (`data_param.source`), transforms them
 * (`transform_param`) and outputs `data` (batch_size × C × H × W) and, with a second top,
 * `label` (batch_size). Batches are prefetched asynchronously; see the note at the top of this
 * file for the `primeDataSources` / `prepareDataLayers` protocol.
 */
export class DataLayer extends Layer {
  readonly type: string = 'Data';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1, maxTopBlobs: 2 };

  private entry: PrimedSource | null = null;
  private transformer: DataTransformer | null = null;
  private cursor: DatumCursor | null = null;
  private batchSize = 0;
  private prefetchCount = 4;
  private outputLabels = false;
  private pendingSkip = 0;
  private readonly full: Batch[] = [];
  private readonly free: Batch[] = [];
  private loading: Promise<void> | null = null;
  private error: unknown = null;
  private waiters: Waiter[] = [];
  private closed = false;

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const dp = this.param.data_param;
    if (!dp) this.fail('data_param is required');
    if (!dp.source) this.fail('data_param.source is required');
    if (dp.backend === DataParameter_DB.LMDB) throw lmdbError(this.name, dp.source);
    this.check(dp.batch_size > 0, () => `batch_size must be positive (got ${dp.batch_size})`);
    this.check(dp.prefetch > 0, () => `prefetch must be positive (got ${dp.prefetch})`);
    const entry = primedSources().get(dp.source);
    if (!entry || !entry.db.isOpen) {
      this.fail(`source '${dp.source}' was not opened; call await primeDataSources(netParameter) before building the net`);
    }
    this.entry = entry;
    this.batchSize = dp.batch_size;
    this.prefetchCount = dp.prefetch;
    this.outputLabels = top.length > 1;
    // Each layer transforms with its own generator, as Caffe's prefetch thread seeds its own.
    this.transformer = new DataTransformer(this.param.transform_param, this.phase, this.rng.fork(), {
      owner: `Data layer '${this.name}'`,
      readFile: entry.readFile,
    });
    const shape = this.transformer.inferBlobShape(entry.firstDatum);
    shape[0] = this.batchSize;
    top[0]!.reshape(shape);
    log.info(`output data size: ${shape.join(',')}`);
    if (this.outputLabels) top[1]!.reshape([this.batchSize]);

    this.cursor = entry.db.cursor();
    entry.layers.add(this);
    if (dp.rand_skip > 0) this.pendingSkip = this.rng.int(dp.rand_skip);
    this.pump();
  }

  /** Tops are shaped from each batch in forward (Caffe's data layers reshape there too). */
  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  /**
   * Data layers always run on the host: the batch is copied into the tops' CPU memory and a device
   * backend uploads it when the next layer asks (Caffe's Forward_gpu does the same copy).
   */
  override forward(bottom: Blob[], top: Blob[]): number {
    this.reshape(bottom, top);
    this.forwardCpu(bottom, top);
    return 0;
  }

  protected forwardCpu(_bottom: Blob[], top: Blob[]): void {
    const batch = this.full.shift();
    if (!batch) {
      if (this.error) throw this.error;
      if (this.closed) this.fail('the layer is closed (closeDataSources was called)');
      this.fail('no prefetched batch is ready; await prepareDataLayers(net) (or layer.prepare()) before each forward');
    }
    top[0]!.reshape(batch.shape);
    top[0]!.mutableCpuData().set(batch.data.subarray(0, top[0]!.count()));
    if (this.outputLabels && batch.label) {
      top[1]!.reshape([this.batchSize]);
      top[1]!.mutableCpuData().set(batch.label);
    }
    this.free.push(batch);
    this.pump();
  }

  /** Batches read and transformed ahead. */
  get readyBatches(): number {
    return this.full.length;
  }

  /** Resolves once at least one batch is ready; rejects with the prefetcher's error. */
  override async prepare(): Promise<void> {
    if (this.full.length > 0) return;
    if (this.error) throw this.error;
    if (this.closed) this.fail('the layer is closed (closeDataSources was called)');
    if (!this.cursor) this.fail('prepare() called before setUp()');
    const ready = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.pump();
    await ready;
  }

  /** Stop prefetching and release the cursor (the database stays open for other layers). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.loading;
    await this.cursor?.close();
    this.entry?.layers.delete(this);
    const waiters = this.waiters;
    this.waiters = [];
    const err = new LayerError(`Data layer '${this.name}': closed while waiting for data`);
    for (const w of waiters) w.reject(err);
  }

  /** Start the background loader unless it is running or the queue is full. */
  private pump(): void {
    if (this.loading || this.closed || this.error || !this.cursor) return;
    if (this.full.length >= this.prefetchCount) return;
    this.loading = this.fill().finally(() => {
      this.loading = null;
    });
  }

  /** Load batches until `prefetch` are ready. Never rejects: errors are kept for prepare/forward. */
  private async fill(): Promise<void> {
    try {
      if (this.pendingSkip > 0) {
        const n = this.pendingSkip;
        this.pendingSkip = 0;
        log.info(`Skipping first ${n} data points.`);
        for (let i = 0; i < n; i++) await this.cursor!.next();
      }
      while (!this.closed && this.full.length < this.prefetchCount) {
        const batch = await this.loadBatch();
        if (this.closed) return;
        this.full.push(batch);
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w.resolve();
      }
    } catch (e) {
      if (this.closed) return;
      this.error = CaffeError.isInstance(e)
        ? e
        : new DataError(`Data layer '${this.name}': reading source '${this.entry?.source}' failed: ${describeError(e)}`, { cause: e });
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(this.error);
    }
  }

  /** Read batch_size Datums and transform them; the first Datum of the batch fixes its shape. */
  private async loadBatch(): Promise<Batch> {
    const where = `Data layer '${this.name}', source '${this.entry!.source}'`;
    const t = this.transformer!;
    const n = this.batchSize;
    let batch: Batch | undefined;
    let itemShape: number[] = [];
    let itemSize = 0;
    for (let i = 0; i < n; i++) {
      const rec = await this.cursor!.next();
      if (this.closed) throw new LayerError(`${where}: closed`);
      const datum = decodeRecord(rec, where);
      const shape = t.inferBlobShape(datum);
      if (i === 0) {
        itemShape = shape.slice(1);
        itemSize = itemShape.reduce((a, b) => a * b, 1);
        batch = this.takeBuffer([n, ...itemShape]);
      } else if (shape.length - 1 !== itemShape.length || shape.some((d, k) => k > 0 && d !== itemShape[k - 1])) {
        throw new DataError(`${where}: record '${rec.key}' transforms to ${shape.slice(1).join('×')}, but this batch's first Datum gave ${itemShape.join('×')}`);
      }
      t.transform(datum, batch!.data, i * itemSize);
      if (batch!.label) batch!.label[i] = datum.label;
    }
    return batch!;
  }

  private takeBuffer(shape: number[]): Batch {
    const count = shape.reduce((a, b) => a * b, 1);
    const reuse = this.free.pop();
    const data = reuse && reuse.data.length >= count ? reuse.data : allocArray(this.dtype, count);
    const label = this.outputLabels ? (reuse?.label ?? allocArray(this.dtype, this.batchSize)) : null;
    return { shape, data: data.length === count ? data : data.subarray(0, count), label };
  }
}

export const dataLayerDef: LayerDef = {
  type: 'Data',
  create: (param, context) => new DataLayer(param, context),
};

/** Register the Data layer (idempotent for this package's own definition). */
export function registerDataLayers(registry: LayerRegistry = defaultLayerRegistry()): void {
  if (registry.get('Data') === dataLayerDef) return;
  registry.register(dataLayerDef);
}
