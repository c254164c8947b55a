import { DataParameter_DB } from '@caffe-ts/proto';
import { DataError } from './errors.js';
import { LevelDbDatumDb } from './leveldb-db.js';
import { LmdbDatumDb } from './lmdb-db.js';

/**
 * How to open a database, as Caffe's `db::Mode`:
 * - `read`: the database must exist (it is never created);
 * - `write`: open it, creating it when missing;
 * - `new`: create it; an existing database is an error.
 */
export type DbMode = 'read' | 'write' | 'new';

/** The storage engines Caffe reads Datums from (`DataParameter.DB`, `--backend`). */
export type DbBackend = 'leveldb' | 'lmdb';

export interface OpenDatumDbOptions {
  mode?: DbMode;
  /** Default 'leveldb', as `DataParameter.backend`. */
  backend?: DbBackend;
  /**
   * LMDB only, read mode only: open without the lock file (`MDB_NOLOCK`), so a folder that must not
   * be written to can be read. Safe only while nothing writes to the database.
   */
  noLock?: boolean;
}

/** One key/value record; the value is normally a serialized caffe.Datum. */
export interface DatumRecord {
  key: string;
  value: Uint8Array;
}

export interface DatumCursorOptions {
  /** Records fetched per round trip to the database (LevelDB; default 64). */
  readAhead?: number;
  /** Log "Restarting data prefetching from start." when wrapping (default true). */
  logRestart?: boolean;
}

export interface DatumWriterOptions {
  /** Puts per committed batch or transaction (default 1000, as convert_mnist_data). */
  batchSize?: number;
}

/**
 * A key/value database of Datum records, whatever the engine (Caffe's `db::DB`).
 * Keys are strings compared bytewise; values are raw bytes.
 */
export interface DatumDb {
  readonly backend: DbBackend;
  /** The path as given to `openDatumDb`. */
  readonly path: string;
  readonly mode: DbMode;
  readonly isOpen: boolean;
  /** A cursor over all records in key order that starts again at the first after the last. */
  cursor(options?: DatumCursorOptions): DatumCursor;
  /** A writer that buffers puts and commits them in batches; only in mode 'write' or 'new'. */
  writer(options?: DatumWriterOptions): DatumWriter;
  get(key: string): Promise<Uint8Array | undefined>;
  /** Number of records. */
  count(): Promise<number>;
  /** Every record in key order (for tools and tests; the Data layer uses `cursor`). */
  entries(): AsyncGenerator<DatumRecord>;
  /** Close the cursors and the database; closing twice is harmless. */
  close(): Promise<void>;
}

/**
 * Reads records in key order and wraps to the first after the last, as Caffe's DataLayer does
 * (`Next()`: "Restarting data prefetching from start."). Calls must not overlap.
 */
export interface DatumCursor {
  /** Records returned so far. */
  readonly position: number;
  /** How many times the cursor went back to the first record. */
  readonly restarts: number;
  /** The next record, wrapping around at the end; throws DataError for an empty database. */
  next(): Promise<DatumRecord>;
  /** Go back to the first record. */
  seekToFirst(): Promise<void>;
  close(): Promise<void>;
}

/** Buffers puts and commits them every `batchSize` records (Caffe's `db::Transaction`). */
export interface DatumWriter {
  /** Records committed so far. */
  readonly committed: number;
  /** Queue one record; commits once `batchSize` records are queued. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Commit the queued records. */
  flush(): Promise<void>;
  /** Commit what is left (the database stays open). */
  close(): Promise<void>;
}

/** Caffe's record keys: the item index zero-padded to `width` digits (`format_int(i, 8)`). */
export function formatKey(index: number, width = 8): string {
  if (!Number.isInteger(index) || index < 0) throw new DataError(`record index must be a non-negative integer (got ${index})`);
  return String(index).padStart(width, '0');
}

/** 'LevelDB' or 'LMDB', for messages. */
export function backendLabel(backend: DbBackend): string {
  return backend === 'lmdb' ? 'LMDB' : 'LevelDB';
}

/**
 * A backend from a `DataParameter.DB` value (LEVELDB = 0, LMDB = 1) or a name as the tools take it
 * (`--backend leveldb|lmdb`, any case).
 */
export function parseDbBackend(value: DbBackend | string | DataParameter_DB | number | undefined | null): DbBackend {
  if (value === undefined || value === null) return 'leveldb';
  if (typeof value === 'number') {
    if (value === DataParameter_DB.LEVELDB) return 'leveldb';
    if (value === DataParameter_DB.LMDB) return 'lmdb';
    throw new DataError(`Unknown database backend ${value} (expected LEVELDB (0) or LMDB (1))`);
  }
  const name = value.toLowerCase();
  if (name === 'leveldb' || name === 'lmdb') return name;
  throw new DataError(`Unknown db backend ${value} (expected 'leveldb' or 'lmdb')`);
}

/** Open a Datum database; `mode` defaults to `read` (never creates one), `backend` to `leveldb`. */
export async function openDatumDb(path: string, options: OpenDatumDbOptions = {}): Promise<DatumDb> {
  const mode = options.mode ?? 'read';
  const backend = parseDbBackend(options.backend);
  if (backend === 'lmdb') return LmdbDatumDb.open(path, mode, { noLock: options.noLock });
  if (options.noLock) throw new DataError(`noLock applies to LMDB only (opening LevelDB database '${path}')`);
  return LevelDbDatumDb.open(path, mode);
}
