import { existsSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { logger } from '@caffe-ts/blob';
import { Level, type Iterator as LevelIterator } from 'level';
import type { DatumCursor, DatumCursorOptions, DatumDb, DatumRecord, DatumWriter, DatumWriterOptions, DbMode } from './datum-db.js';
import { DataError } from './errors.js';

const log = logger('db_leveldb.ts');

type LevelDb = Level<string, Uint8Array>;

/** True when `path` looks like a LevelDB directory (LevelDB always writes CURRENT). */
function isLevelDbDir(path: string): boolean {
  try {
    return statSync(path).isDirectory() && existsSync(`${path}/CURRENT`);
  } catch {
    return false;
  }
}

/**
 * A LevelDB of Datum records (Caffe's `db::LevelDB`). Keys are utf8 strings, values raw bytes.
 * Open one with `openDatumDb(path, { backend: 'leveldb' })`.
 */
export class LevelDbDatumDb implements DatumDb {
  readonly backend = 'leveldb' as const;
  readonly path: string;
  readonly mode: DbMode;
  private readonly db: LevelDb;
  private readonly cursors = new Set<LevelDbCursor>();
  private closed = false;

  private constructor(path: string, mode: DbMode, db: LevelDb) {
    this.path = path;
    this.mode = mode;
    this.db = db;
  }

  /** @internal use `openDatumDb`. */
  static async open(path: string, mode: DbMode = 'read'): Promise<LevelDbDatumDb> {
    const abs = resolvePath(path);
    const exists = isLevelDbDir(abs);
    // LevelDB creates the directory even when create_if_missing is false, so check first:
    // reading must never leave an empty database behind.
    if (mode === 'read' && !exists) {
      const why = !existsSync(abs)
        ? 'does not exist'
        : existsSync(`${abs}/data.mdb`)
          ? 'it is an LMDB database (it holds data.mdb); set backend: LMDB'
          : 'not a LevelDB database (no CURRENT file)';
      throw new DataError(`cannot open LevelDB database '${path}': ${why}`);
    }
    if (mode === 'new' && existsSync(abs)) {
      throw new DataError(`cannot create LevelDB database '${path}': it already exists`);
    }
    const db: LevelDb = new Level<string, Uint8Array>(abs, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      createIfMissing: mode !== 'read',
      errorIfExists: mode === 'new',
      // Caffe's settings (db_leveldb.cpp): big blocks and write buffer, few open files.
      blockSize: 65536,
      writeBufferSize: 268435456,
      maxOpenFiles: 100,
    });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      throw new DataError(`cannot open LevelDB database '${path}': ${cause}`, { cause: e });
    }
    log.info(`Opened leveldb ${path}`);
    return new LevelDbDatumDb(path, mode, db);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** A cursor over all records in key order that starts again at the first after the last. */
  cursor(options: DatumCursorOptions = {}): LevelDbCursor {
    this.assertOpen('read from');
    const c = new LevelDbCursor(this.db, this.path, options, () => this.cursors.delete(c));
    this.cursors.add(c);
    return c;
  }

  /** A writer that buffers puts and commits them in batches (Caffe commits every 1000). */
  writer(options: DatumWriterOptions = {}): LevelDbWriter {
    this.assertOpen('write to');
    if (this.mode === 'read') throw new DataError(`LevelDB database '${this.path}' was opened for reading; open it with mode 'write' or 'new' to write`);
    return new LevelDbWriter(this.db, this.path, options);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.assertOpen('read from');
    return this.db.get(key);
  }

  /** Number of records (a full key scan). */
  async count(): Promise<number> {
    this.assertOpen('read from');
    let n = 0;
    for await (const _key of this.db.keys()) n++;
    return n;
  }

  /** Every record in key order (for tools and tests; the Data layer uses `cursor`). */
  async *entries(): AsyncGenerator<DatumRecord> {
    this.assertOpen('read from');
    for await (const [key, value] of this.db.iterator()) yield { key, value };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.cursors]) await c.close();
    await this.db.close();
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new DataError(`cannot ${what} LevelDB database '${this.path}': it is closed`);
  }
}

/**
 * Reads records in key order and wraps to the first after the last, as Caffe's DataLayer does
 * (`Next()`: "Restarting data prefetching from start."). Calls must not overlap.
 */
export class LevelDbCursor implements DatumCursor {
  private iterator: LevelIterator<LevelDb, string, Uint8Array> | null = null;
  private buffer: Array<[string, Uint8Array]> = [];
  private pos = 0;
  private closed = false;
  private readonly readAhead: number;
  private readonly logRestart: boolean;
  /** Records returned so far. */
  position = 0;
  /** How many times the cursor went back to the first record. */
  restarts = 0;

  /** @internal use `DatumDb.cursor()`. */
  constructor(
    private readonly db: LevelDb,
    private readonly path: string,
    options: DatumCursorOptions,
    private readonly onClose: () => void,
  ) {
    this.readAhead = Math.max(1, options.readAhead ?? 64);
    this.logRestart = options.logRestart ?? true;
  }

  /** The next record, wrapping around at the end; throws DataError for an empty database. */
  async next(): Promise<DatumRecord> {
    if (this.closed) throw new DataError(`cursor on LevelDB database '${this.path}' is closed`);
    if (this.pos >= this.buffer.length) await this.refill();
    const [key, value] = this.buffer[this.pos++]!;
    this.position++;
    return { key, value };
  }

  /** Go back to the first record. */
  async seekToFirst(): Promise<void> {
    await this.closeIterator();
    this.buffer = [];
    this.pos = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.closeIterator();
    this.onClose();
  }

  private async refill(): Promise<void> {
    this.iterator ??= this.db.iterator();
    this.buffer = await this.iterator.nextv(this.readAhead);
    this.pos = 0;
    if (this.buffer.length > 0) return;
    // At the end: start over from the first record.
    await this.closeIterator();
    if (this.position === 0) throw new DataError(`LevelDB database '${this.path}' has no records`);
    if (this.logRestart) log.info('Restarting data prefetching from start.');
    this.restarts++;
    this.iterator = this.db.iterator();
    this.buffer = await this.iterator.nextv(this.readAhead);
    if (this.buffer.length === 0) {
      await this.closeIterator();
      throw new DataError(`LevelDB database '${this.path}' has no records`);
    }
  }

  private async closeIterator(): Promise<void> {
    const it = this.iterator;
    this.iterator = null;
    if (it) await it.close();
  }
}

/** Buffers puts and writes them with `db.batch` every `batchSize` records. */
export class LevelDbWriter implements DatumWriter {
  private pending: Array<{ type: 'put'; key: string; value: Uint8Array }> = [];
  private readonly batchSize: number;
  /** Records committed so far. */
  committed = 0;

  /** @internal use `DatumDb.writer()`. */
  constructor(
    private readonly db: LevelDb,
    private readonly path: string,
    options: DatumWriterOptions,
  ) {
    this.batchSize = Math.max(1, options.batchSize ?? 1000);
  }

  /** Queue one record; commits the batch once it holds `batchSize` records. */
  async put(key: string, value: Uint8Array): Promise<void> {
    this.pending.push({ type: 'put', key, value });
    if (this.pending.length >= this.batchSize) await this.flush();
  }

  /** Commit the queued records. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const ops = this.pending;
    this.pending = [];
    try {
      await this.db.batch(ops);
    } catch (e) {
      throw new DataError(`cannot write ${ops.length} records to LevelDB database '${this.path}': ${(e as Error).message}`, { cause: e });
    }
    this.committed += ops.length;
  }

  /** Commit what is left (the database stays open). */
  async close(): Promise<void> {
    await this.flush();
  }
}
