import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import type { Logger } from '@caffe-ts/blob';
import {
  decodeDatum,
  hasField,
  Phase,
  type Datum,
  type LayerParameter,
  type NetParameter,
  type NetStateRule,
  type TransformationParameter,
  type V1LayerParameter,
  V1LayerParameter_LayerType,
} from '@caffe-ts/proto';
import { decodeAnnotatedRecord } from './annotated-datum.js';
import { backendLabel, openDatumDb, parseDbBackend, type DatumCursor, type DatumDb, type DatumRecord, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';
import { decodeDatumImage } from './image-io.js';
import { skipsOrdinal, type Shard } from './shard.js';

/*
 * Open data sources, shared by the Data layers of every net in the process
 * ------------------------------------------------------------------------
 * The databases are asynchronous (LevelDB) while Layer.setUp is synchronous, so each Data layer's
 * source is opened ("primed") before its net is built: by the layer definition's `prime` hook,
 * which `Net.create` awaits, or by `primeDataSources(netParameter)`. Priming resolves the source
 * path, opens the database once per resolved path, reads its first Datum (Caffe reads one in
 * DataLayerSetUp to shape the tops) and records the layer under (layer name, resolved path), so a
 * TRAIN and a TEST net whose layers share a name but not a source both find theirs.
 */

/** Something a Data layer registers so that `closeDataSources` can stop it. */
export interface ClosableLayer {
  close(): Promise<void>;
}

/**
 * What a database's records are: Caffe's Datum (the Data layer) or the SSD fork's AnnotatedDatum
 * (the AnnotatedData layer), whose `datum` field holds the image.
 */
export type RecordType = 'Datum' | 'AnnotatedDatum';

/** The record type a data layer type reads. */
export function recordTypeOf(layerType: unknown): RecordType {
  return layerType === 'AnnotatedData' ? 'AnnotatedDatum' : 'Datum';
}

/** One open database, shared by every layer that reads its path. */
export interface OpenSource {
  path: string;
  backend: DbBackend;
  db: DatumDb;
  recordType: RecordType;
  firstKey: string;
  /** The first record's bytes as stored. */
  firstValue: Uint8Array;
  /** The first record's Datum (an AnnotatedDatum's `datum`). */
  firstDatum: Datum;
  /** The first Datum decoded with the file's own channels, when it is encoded (JPEG/PNG bytes). */
  firstDecoded: Datum | null;
  layers: Set<ClosableLayer>;
}

/** A Data layer's primed source. */
export interface PrimedSource {
  /** The layer's name ('' when primed without one: then any layer naming the path may use it). */
  layer: string;
  /** `data_param.source` as written. */
  source: string;
  path: string;
  open: OpenSource;
  /** The caller's mean_file reader, if they gave one (the path is then theirs to resolve). */
  readFile: ((path: string) => Uint8Array) | undefined;
}

interface SourceTable {
  /** Open databases by resolved path. */
  dbs: Map<string, OpenSource>;
  /** Opens in flight, so that two primes of one path open it once. */
  opening: Map<string, Promise<OpenSource>>;
  /** Primed layers by `layer \0 path`. */
  primed: Map<string, PrimedSource>;
  /** Prefetching layers that read no database (ImageData, WindowData): closed by closeDataSources too. */
  prefetchers?: Set<ClosableLayer>;
  closing: Promise<void> | null;
  /** Bumped by closeDataSources, so that an open that finishes afterwards is not kept. */
  generation: number;
}

const TABLE_KEY = Symbol.for('caffe-ts.io-leveldb.dataSources');

/** The table is global so that two copies of this package still see one set of open databases. */
function table(): SourceTable {
  const g = globalThis as Record<symbol, unknown>;
  let t = g[TABLE_KEY] as SourceTable | undefined;
  if (!t) {
    t = { dbs: new Map(), opening: new Map(), primed: new Map(), closing: null, generation: 0 };
    g[TABLE_KEY] = t;
  }
  return t;
}

/** Record a prefetching layer so that closeDataSources stops it. */
export function trackPrefetcher(layer: ClosableLayer): void {
  const t = table();
  (t.prefetchers ??= new Set()).add(layer);
}

export function untrackPrefetcher(layer: ClosableLayer): void {
  table().prefetchers?.delete(layer);
}

const primeKey = (layer: string, path: string) => `${layer}\u0000${path}`;

// ---------------------------------------------------------------------------------------------
// Paths

/** Where a path named in a net file is looked for: the working directory, then the net file's folder. */
export function dataPathCandidates(path: string, netFile?: string): string[] {
  if (isAbsolute(path)) return [path];
  const out = [resolvePath(path)];
  if (netFile) {
    const beside = resolvePath(dirname(resolvePath(netFile)), path);
    if (beside !== out[0]) out.push(beside);
  }
  return out;
}

/**
 * Resolve a path named in a net (a data `source`, a `mean_file`) as C++ Caffe does (relative to the
 * working directory), falling back to the folder of the net file. `path` is null when none exists.
 */
export function resolveDataPath(path: string, netFile?: string): { path: string | null; tried: string[] } {
  const tried = dataPathCandidates(path, netFile);
  return { path: tried.find((p) => existsSync(p)) ?? null, tried };
}

function triedList(path: string, tried: string[]): string {
  return tried.length === 1 && tried[0] === path ? '' : ` (looked for ${tried.join(', ')})`;
}

/** The resolved path of a layer's source; a DataError listing every place tried when there is none. */
function resolveSourcePath(who: string, source: string, backend: DbBackend, netFile: string | undefined): string {
  const { path, tried } = resolveDataPath(source, netFile);
  if (path === null) throw new DataError(`${who ? `${who}: ` : ''}cannot open ${backendLabel(backend)} database '${source}': does not exist${triedList(source, tried)}`);
  return path;
}

/** The resolved path of a mean_file; a DataError listing every place tried when there is none. */
export function resolveMeanFile(who: string, meanFile: string, netFile: string | undefined): string {
  const { path, tried } = resolveDataPath(meanFile, netFile);
  if (path === null) throw new DataError(`${who}: cannot read mean_file '${meanFile}': no such file${triedList(meanFile, tried)}`);
  return path;
}

// ---------------------------------------------------------------------------------------------
// Records

/** "where: " or nothing. */
const pre = (where: string) => (where ? `${where}: ` : '');

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Decode one record; a record that is not a Datum is a DataError naming its key. */
export function decodeRecord(rec: DatumRecord, where: string): Datum {
  let datum: Datum;
  try {
    datum = decodeDatum(rec.value);
  } catch (e) {
    throw new DataError(`${pre(where)}record '${rec.key}' is not a valid Datum (truncated or corrupt: ${describeError(e)})`, { cause: e });
  }
  checkDatumSize(datum, rec.key, where);
  return datum;
}

export function datumShapeString(d: Datum): string {
  return `${d.channels}×${d.height}×${d.width}`;
}

/** A raw Datum must hold channels·height·width values; fewer or more means a damaged record. */
export function checkDatumSize(d: Datum, key: string, where: string): void {
  if (d.encoded) return; // the bytes are an image file; its size says nothing
  const need = d.channels * d.height * d.width;
  const bytes = d.data.length;
  const floats = d.float_data.length;
  const have = bytes > 0 ? bytes : floats;
  if (have !== need || !(need > 0)) {
    const what = bytes > 0 ? `${bytes} data bytes` : floats > 0 ? `${floats} float_data values` : 'no data';
    throw new DataError(`${pre(where)}record '${key}' is truncated or corrupt: a ${datumShapeString(d)} Datum needs ${need} values, it holds ${what}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Priming

export interface PrimeOptions {
  /** Prime only the Data layers that can run in this phase (by their include/exclude rules). */
  phase?: Phase;
  /** The prototxt the net came from: relative paths not found from the working directory are looked for beside it. */
  netFile?: string;
  /** Maps a `source` to the database path, replacing the search above. */
  resolveSource?: (source: string, layerName: string) => string;
  /** Reads mean_file bytes for the layers' transformers (default fs.readFileSync of the resolved path). */
  readFile?: (path: string) => Uint8Array;
}

/** What priming found for one layer's source. */
export interface PrimedSourceInfo {
  /** The layer that named this source ('' when primed without a layer). */
  layer: string;
  source: string;
  /** The resolved path of the database. */
  path: string;
  backend: DbBackend;
  /** Shape of the first Datum: [channels, height, width]. */
  datumShape: [number, number, number];
}

function infoOf(p: PrimedSource): PrimedSourceInfo {
  const d = p.open.firstDecoded ?? p.open.firstDatum;
  return { layer: p.layer, source: p.source, path: p.path, backend: p.open.backend, datumShape: [d.channels, d.height, d.width] };
}

/** Open the database at `path` once (concurrent callers share the open) and read its first record. */
async function openSource(path: string, backend: DbBackend, where: string, recordType: RecordType = 'Datum'): Promise<OpenSource> {
  const t = table();
  if (t.closing) await t.closing;
  const known = t.dbs.get(path);
  if (known && known.db.isOpen) {
    if (known.backend !== backend) {
      throw new DataError(`${pre(where)}'${path}' is already open as a ${backendLabel(known.backend)} database, not ${backendLabel(backend)}`);
    }
    if (known.recordType !== recordType) {
      throw new DataError(`${pre(where)}'${path}' is already open as a database of ${known.recordType} records, not ${recordType} records`);
    }
    return known;
  }
  const inFlight = t.opening.get(path);
  if (inFlight) return inFlight;
  const generation = t.generation;
  const p = (async (): Promise<OpenSource> => {
    let db: DatumDb;
    try {
      db = await openDatumDb(path, { mode: 'read', backend });
    } catch (e) {
      throw DataError.isInstance(e) && where ? new DataError(`${pre(where)}${e.message}`, { cause: e }) : e;
    }
    try {
      const cursor = db.cursor({ readAhead: 1, logRestart: false });
      let first: DatumRecord;
      try {
        first = await cursor.next();
      } catch (e) {
        throw DataError.isInstance(e) && where ? new DataError(`${pre(where)}${e.message}`, { cause: e }) : e;
      } finally {
        await cursor.close();
      }
      const firstDatum = recordType === 'AnnotatedDatum' ? decodeAnnotatedDatumRecord(first, where) : decodeRecord(first, where);
      // Shaping the tops of an encoded database needs the first image's size: decode it now.
      const firstDecoded = firstDatum.encoded ? await decodeFirst(firstDatum, first.key, where) : null;
      const open: OpenSource = {
        path,
        backend,
        db,
        recordType,
        firstKey: first.key,
        firstValue: first.value,
        firstDatum,
        firstDecoded,
        layers: new Set(),
      };
      if (t.generation !== generation) throw new DataError(`${pre(where)}closeDataSources() was called while the source was being opened`);
      t.dbs.set(path, open);
      return open;
    } catch (e) {
      await db.close();
      throw e;
    }
  })();
  t.opening.set(path, p);
  try {
    return await p;
  } finally {
    if (t.opening.get(path) === p) t.opening.delete(path);
  }
}

/** The Datum of an AnnotatedDatum record, size-checked like a Data layer's records. */
function decodeAnnotatedDatumRecord(rec: DatumRecord, where: string): Datum {
  const datum = decodeAnnotatedRecord(rec, where).datum;
  checkDatumSize(datum, rec.key, where);
  return datum;
}

async function decodeFirst(datum: Datum, key: string, where: string): Promise<Datum> {
  try {
    return await decodeDatumImage(datum, 'unchanged', `record '${key}'`);
  } catch (e) {
    throw DataError.isInstance(e) ? new DataError(`${pre(where)}${e.message}`, { cause: e }) : e;
  }
}

function record(layer: string, source: string, open: OpenSource, readFile: PrimedSource['readFile']): PrimedSourceInfo {
  const entry: PrimedSource = { layer, source, path: open.path, open, readFile };
  const t = table();
  const key = primeKey(layer, open.path);
  t.primed.delete(key); // re-insert, so that the latest priming is found first by source
  t.primed.set(key, entry);
  return infoOf(entry);
}

/**
 * Open one source and read its first Datum, so that Data layers naming it can be set up
 * (idempotent). `path` defaults to the source resolved against the working directory, then
 * against `netFile`'s folder. Without `layerName`, any layer naming this path may use it.
 */
export async function primeDataSource(
  source: string,
  options: {
    path?: string;
    layerName?: string;
    backend?: DbBackend;
    netFile?: string;
    readFile?: (path: string) => Uint8Array;
    /** What the records are (default 'Datum'; 'AnnotatedDatum' for AnnotatedData layers). */
    recordType?: RecordType;
  } = {},
): Promise<PrimedSourceInfo> {
  const layer = options.layerName ?? '';
  const backend = parseDbBackend(options.backend);
  const recordType = options.recordType ?? 'Datum';
  const who = layer ? `${recordType === 'AnnotatedDatum' ? 'AnnotatedData' : 'Data'} layer '${layer}'` : '';
  const path = options.path ?? resolveSourcePath(who, source, backend, options.netFile);
  const open = await openSource(path, backend, layer ? `${who}, source '${source}'` : '', recordType);
  return record(layer, source, open, options.readFile);
}

/** What priming needs from a Data layer, in the current or the legacy V1 format. */
type DataLayerLike = Pick<LayerParameter, 'name' | 'data_param' | 'include' | 'exclude'> & {
  transform_param?: LayerParameter['transform_param'];
  /** 'Data' or 'AnnotatedData' (a V1 layer's enum reads as Data). */
  type?: unknown;
};

/**
 * Prime one Data layer: resolve and open its source, check its mean_file exists. This is what the
 * Data layer definition's `prime` hook runs (`Net.create` awaits it for every layer).
 */
export async function primeDataLayer(layer: DataLayerLike, options: Omit<PrimeOptions, 'phase'> = {}): Promise<PrimedSourceInfo> {
  const recordType = recordTypeOf(layer.type);
  const who = `${recordType === 'AnnotatedDatum' ? 'AnnotatedData' : 'Data'} layer '${layer.name}'`;
  const dp = layer.data_param;
  if (!dp || !dp.source) throw new DataError(`${who}: data_param.source is required`);
  const backend = parseDbBackend(dp.backend);
  const path = options.resolveSource ? options.resolveSource(dp.source, layer.name) : resolveSourcePath(who, dp.source, backend, options.netFile);
  const tp = layer.transform_param;
  if (!options.readFile && tp && hasField(tp, 'mean_file') && tp.mean_file) resolveMeanFile(who, tp.mean_file, options.netFile);
  const open = await openSource(path, backend, `${who}, source '${dp.source}'`, recordType);
  return record(layer.name, dp.source, open, options.readFile);
}

/**
 * Open the databases of every Data layer in a net (or a list of layers) before the net is built
 * with `new Net(...)` (`Net.create` primes by itself). With `phase`, layers excluded from that
 * phase by their rules are skipped.
 */
export async function primeDataSources(
  net: Pick<NetParameter, 'layer'> | Pick<NetParameter, 'layer' | 'layers'> | readonly LayerParameter[],
  options: PrimeOptions = {},
): Promise<PrimedSourceInfo[]> {
  const out: PrimedSourceInfo[] = [];
  const seen = new Set<string>();
  for (const layer of dataLayersOf(net)) {
    if (options.phase !== undefined && !mayRunIn(layer, options.phase)) continue;
    const info = await primeDataLayer(layer, options);
    const key = primeKey(info.layer, info.path);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(info);
  }
  return out;
}

/** Whether a layer's include/exclude rules let it run in `phase` (stage/level rules are not judged). */
function mayRunIn(layer: Pick<LayerParameter, 'include' | 'exclude'>, phase: Phase): boolean {
  const phaseOnly = (r: NetStateRule) => hasField(r, 'phase');
  if (layer.include.length > 0) return layer.include.some((r) => !phaseOnly(r) || r.phase === phase);
  return !layer.exclude.some((r) => phaseOnly(r) && r.phase === phase && r.stage.length === 0 && r.not_stage.length === 0);
}

/** Layer types that read a primed database. */
const DB_LAYER_TYPES: ReadonlySet<unknown> = new Set(['Data', 'AnnotatedData']);

/**
 * The database layers of a net: current `layer { type: "Data" }` (and the SSD fork's
 * `"AnnotatedData"`) and legacy V1 `layers { type: DATA }`.
 */
function dataLayersOf(net: Pick<NetParameter, 'layer'> | Partial<Pick<NetParameter, 'layers'>> | readonly LayerParameter[]): DataLayerLike[] {
  if (Array.isArray(net)) return (net as readonly LayerParameter[]).filter((l) => DB_LAYER_TYPES.has(l.type));
  const n = net as Partial<Pick<NetParameter, 'layer' | 'layers'>>;
  const current: DataLayerLike[] = (n.layer ?? []).filter((l) => DB_LAYER_TYPES.has(l.type));
  const legacy: DataLayerLike[] = (n.layers ?? []).filter((l: V1LayerParameter) => l.type === V1LayerParameter_LayerType.DATA);
  return [...current, ...legacy];
}

/** What a data layer says when its source was not primed before the net was built. */
export function unprimedSourceMessage(backend: DbBackend, source: string): string {
  return `${backendLabel(backend)} source '${source}' was not opened; build the net with await Net.create(...), ` +
    'or call await primeDataSources(netParameter) before new Net(...)';
}

/**
 * The primed source of a Data layer being set up: the one primed for this layer name and the path
 * its source resolves to now; else one primed for that path without a layer; else (a caller's
 * `resolveSource` mapped it elsewhere) the latest primed for this layer name and source string.
 */
export function findPrimedSource(
  layer: string,
  source: string,
  backend: DbBackend,
  netFile: string | undefined,
  recordType: RecordType = 'Datum',
): PrimedSource | undefined {
  const t = table();
  const usable = (p: PrimedSource | undefined) =>
    p && p.open.db.isOpen && p.open.backend === backend && p.open.recordType === recordType ? p : undefined;
  const { path } = resolveDataPath(source, netFile);
  if (path !== null) {
    const hit = usable(t.primed.get(primeKey(layer, path))) ?? usable(t.primed.get(primeKey('', path)));
    if (hit) return hit;
  }
  const all = [...t.primed.values()].reverse();
  return all.find((p) => p.layer === layer && p.source === source && usable(p)) ?? all.find((p) => p.layer === '' && p.source === source && usable(p));
}

/**
 * Stop every Data layer's prefetching and close every primed database. Calling it again (or while
 * it runs) is harmless: later calls wait for the same closing.
 */
export function closeDataSources(): Promise<void> {
  const t = table();
  if (t.closing) return t.closing;
  const prefetchers = [...(t.prefetchers ?? [])];
  t.prefetchers?.clear();
  if (t.dbs.size === 0 && t.opening.size === 0 && prefetchers.length === 0) {
    t.primed.clear();
    return Promise.resolve();
  }
  t.generation++;
  const opens = [...t.dbs.values()];
  const inFlight = [...t.opening.values()];
  t.dbs.clear();
  t.primed.clear();
  const closing = (async () => {
    // Opens still running fail themselves (the generation moved on) and close their database.
    await Promise.allSettled(inFlight);
    const errors: unknown[] = [];
    for (const layer of prefetchers) await layer.close().catch((e: unknown) => errors.push(e));
    for (const o of opens) {
      for (const layer of [...o.layers]) await layer.close().catch((e: unknown) => errors.push(e));
      await o.db.close().catch((e: unknown) => errors.push(e));
    }
    if (errors.length > 0) throw errors[0];
  })();
  t.closing = closing.finally(() => {
    t.closing = null;
  });
  return t.closing;
}

/** The sources primed so far (as written in the prototxt), each once. */
export function primedDataSources(): string[] {
  return [...new Set([...table().primed.values()].map((p) => p.source))];
}

/** What has been primed: one entry per (layer, resolved path). */
export function primedDataSourceInfo(): PrimedSourceInfo[] {
  return [...table().primed.values()].map(infoOf);
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the database layers (Data, AnnotatedData)

/**
 * A layer's mean_file reader: reads it from where it resolves (the working directory, then the
 * net file's folder); undefined without a mean_file (the transformer then needs no reader).
 */
export function meanFileReaderFor(
  who: string,
  tp: TransformationParameter | null | undefined,
  netFile: string | undefined,
): ((path: string) => Uint8Array) | undefined {
  if (!tp || !hasField(tp, 'mean_file') || !tp.mean_file) return undefined;
  const resolved = resolveMeanFile(who, tp.mean_file, netFile);
  return (p) => readFileSync(p === tp.mean_file ? resolved : p);
}

/**
 * The records a database layer reads, in cursor order: `rand_skip` records skipped before the
 * first, and with a data-parallel shard only those whose ordinal (every cursor step, wraps
 * included: Caffe's offset_) belongs to this replica (see shard.ts).
 */
export class ShardedRecordReader {
  /** Cursor steps so far (Caffe's offset_): the ordinal of the next record. */
  private ordinal = 0;

  /** `randSkip`: records to step over before the first read (the layer's draw from rand_skip). */
  constructor(
    private readonly cursor: DatumCursor,
    private readonly shard: Shard | null,
    private readonly phase: Phase,
    private randSkip = 0,
  ) {}

  /** Step over the rand_skip records, whatever their shard, once (before the first batch), saying so in `log`. */
  async skipPending(log: Logger): Promise<void> {
    const n = this.randSkip;
    if (n <= 0) return;
    this.randSkip = 0;
    log.info(`Skipping first ${n} data points.`);
    for (let i = 0; i < n; i++) await this.cursor.next();
    this.ordinal += n;
  }

  /** The next record of this replica's shard (every record without a shard). */
  async next(): Promise<DatumRecord> {
    while (skipsOrdinal(this.shard, this.phase, this.ordinal)) {
      await this.cursor.next();
      this.ordinal++;
    }
    const rec = await this.cursor.next();
    this.ordinal++;
    return rec;
  }

  close(): Promise<void> {
    return this.cursor.close();
  }
}
