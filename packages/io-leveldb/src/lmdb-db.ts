import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve as resolvePath } from 'node:path';
import { logger } from '@caffe-ts/blob';
import type { DatumCursor, DatumCursorOptions, DatumDb, DatumRecord, DatumWriter, DatumWriterOptions, DbMode } from './datum-db.js';
import { DataError } from './errors.js';

const log = logger('db_lmdb.ts');

/** Caffe's LMDB_MAP_SIZE (db_lmdb.cpp): 1 TiB of address space; the file grows only as written. */
export const LMDB_MAP_SIZE = 1099511627776;

// The part of node-lmdb's API used here. Keys are always passed as Buffers (`keyIsBuffer`):
// node-lmdb stores string keys as UTF-16, which is not what Caffe's byte-string keys are.
interface LmdbKeyOptions {
  keyIsBuffer: true;
}
interface LmdbTxn {
  getBinary(dbi: LmdbDbi, key: Buffer, options: LmdbKeyOptions): Buffer | null;
  putBinary(dbi: LmdbDbi, key: Buffer, value: Buffer, options: LmdbKeyOptions): void;
  commit(): void;
  abort(): void;
}
interface LmdbDbi {
  stat(txn: LmdbTxn): { entryCount: number };
  close(): void;
}
interface LmdbCursorHandle {
  goToFirst(options?: LmdbKeyOptions): Buffer | null;
  goToNext(options?: LmdbKeyOptions): Buffer | null;
  getCurrentBinary(): Buffer | null;
  close(): void;
}
interface LmdbEnv {
  open(options: { path: string; mapSize: number; maxDbs: number; readOnly: boolean; unsafeNoLock: boolean }): void;
  openDbi(options: { name: null; create: boolean; keyIsBuffer: true }): LmdbDbi;
  beginTxn(options?: { readOnly: boolean }): LmdbTxn;
  info(): { mapSize: number };
  close(): void;
}
interface NodeLmdb {
  Env: new () => LmdbEnv;
  Cursor: new (txn: LmdbTxn, dbi: LmdbDbi, options: LmdbKeyOptions) => LmdbCursorHandle;
}

const KEY: LmdbKeyOptions = { keyIsBuffer: true };
let nodeLmdb: NodeLmdb | null = null;

/** node-lmdb is a native module: load it only when an LMDB is used, so LevelDB works without it. */
function loadNodeLmdb(): NodeLmdb {
  if (!nodeLmdb) {
    try {
      nodeLmdb = createRequire(import.meta.url)('node-lmdb') as NodeLmdb;
    } catch (e) {
      throw new DataError(`the LMDB backend needs the native module 'node-lmdb', which did not load: ${(e as Error).message}`, { cause: e });
    }
  }
  return nodeLmdb;
}

function errorCode(e: unknown): number | string | undefined {
  return (e as { code?: number | string }).code;
}

const EACCES = 13;
const EROFS = 30;

function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8');
}

/** A view of `value` as a Buffer, without copying. */
function asBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * A plain Uint8Array of what node-lmdb returned: a view when the Buffer has its ArrayBuffer to
 * itself (getCurrentBinary's copies do: a view saves a copy and an allocation, about a third of
 * reading a 1 KB record), else a copy (a pooled Buffer shares its ArrayBuffer with others).
 */
function toBytes(b: Buffer): Uint8Array {
  if (b.byteOffset === 0 && b.buffer.byteLength === b.byteLength) return new Uint8Array(b.buffer, 0, b.byteLength);
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/**
 * An LMDB of Datum records (Caffe's `db::LMDB`): a folder holding data.mdb and lock.mdb, the
 * unnamed database, keys as raw bytes. Opened as Caffe does: map size 1 TiB, read-only for reading.
 * node-lmdb is synchronous; the async `DatumDb` methods simply resolve at once.
 */
export class LmdbDatumDb implements DatumDb {
  readonly backend = 'lmdb' as const;
  readonly path: string;
  readonly mode: DbMode;
  private readonly env: LmdbEnv;
  private readonly dbi: LmdbDbi;
  private readonly cursors = new Set<LmdbCursor>();
  private closed = false;

  private constructor(path: string, mode: DbMode, env: LmdbEnv, dbi: LmdbDbi) {
    this.path = path;
    this.mode = mode;
    this.env = env;
    this.dbi = dbi;
  }

  /** @internal use `openDatumDb(path, { backend: 'lmdb' })`. */
  static async open(path: string, mode: DbMode = 'read', options: { noLock?: boolean } = {}): Promise<LmdbDatumDb> {
    return LmdbDatumDb.openSync(path, mode, options);
  }

  /** @internal */
  static openSync(path: string, mode: DbMode, options: { noLock?: boolean } = {}): LmdbDatumDb {
    const abs = resolvePath(path);
    const fail = (verb: string, why: string, cause?: unknown): never => {
      throw new DataError(`cannot ${verb} LMDB database '${path}': ${why}`, cause === undefined ? undefined : { cause });
    };
    if (options.noLock && mode !== 'read') fail('open', `noLock is for reading only (mode '${mode}')`);
    if (mode === 'read') {
      if (!existsSync(abs)) fail('open', 'does not exist');
      if (!statSync(abs).isDirectory()) fail('open', 'not an LMDB database folder (it is a file)');
      if (!existsSync(join(abs, 'data.mdb'))) {
        fail('open', existsSync(join(abs, 'CURRENT')) ? 'it is a LevelDB database (it holds CURRENT); set backend: LEVELDB' : 'not an LMDB database (no data.mdb)');
      }
    } else if (mode === 'new') {
      // Caffe: mkdir(source), which fails when anything is there already.
      if (existsSync(abs)) fail('create', 'it already exists');
      mkdirSync(abs);
    } else {
      mkdirSync(abs, { recursive: true });
    }
    const lmdb = loadNodeLmdb();
    const readOnly = mode === 'read';
    const tryOpen = (noLock: boolean): LmdbEnv => {
      const env = new lmdb.Env();
      env.open({ path: abs, mapSize: LMDB_MAP_SIZE, maxDbs: 1, readOnly, unsafeNoLock: noLock });
      return env;
    };
    let env: LmdbEnv;
    try {
      env = tryOpen(options.noLock === true);
    } catch (e) {
      const code = errorCode(e);
      // As Caffe built with ALLOW_LMDB_NOLOCK: a folder we may not write the lock file into is
      // still readable without it.
      if (readOnly && !options.noLock && (code === EACCES || code === EROFS)) {
        log.warn('Permission denied. Trying with MDB_NOLOCK ...');
        try {
          env = tryOpen(true);
        } catch (e2) {
          return fail('open', (e2 as Error).message, e2);
        }
      } else {
        return fail('open', (e as Error).message, e);
      }
    }
    let dbi: LmdbDbi;
    try {
      dbi = env.openDbi({ name: null, create: !readOnly, keyIsBuffer: true });
    } catch (e) {
      env.close();
      return fail('open', (e as Error).message, e);
    }
    log.info(`Opened lmdb ${path}`);
    return new LmdbDatumDb(path, mode, env, dbi);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** The environment's map size in bytes (Caffe's LMDB_MAP_SIZE, 1 TiB). */
  get mapSize(): number {
    this.assertOpen('inspect');
    return this.env.info().mapSize;
  }

  cursor(options: DatumCursorOptions = {}): LmdbCursor {
    this.assertOpen('read from');
    const txn = this.env.beginTxn({ readOnly: true });
    let handle: LmdbCursorHandle;
    try {
      handle = new (loadNodeLmdb().Cursor)(txn, this.dbi, KEY);
    } catch (e) {
      txn.abort();
      throw new DataError(`cannot read LMDB database '${this.path}': ${(e as Error).message}`, { cause: e });
    }
    const c = new LmdbCursor(txn, handle, this.path, options, () => this.cursors.delete(c));
    this.cursors.add(c);
    return c;
  }

  writer(options: DatumWriterOptions = {}): LmdbWriter {
    this.assertOpen('write to');
    if (this.mode === 'read') throw new DataError(`LMDB database '${this.path}' was opened for reading; open it with mode 'write' or 'new' to write`);
    return new LmdbWriter(this.env, this.dbi, this.path, options, () => this.assertOpen('write to'));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.assertOpen('read from');
    const txn = this.env.beginTxn({ readOnly: true });
    try {
      const v = txn.getBinary(this.dbi, keyBytes(key), KEY);
      return v ? toBytes(v) : undefined;
    } finally {
      txn.abort();
    }
  }

  async count(): Promise<number> {
    this.assertOpen('read from');
    const txn = this.env.beginTxn({ readOnly: true });
    try {
      return this.dbi.stat(txn).entryCount;
    } finally {
      txn.abort();
    }
  }

  async *entries(): AsyncGenerator<DatumRecord> {
    // A registered cursor, so that close() ends its transaction even while this generator is suspended.
    const c = this.cursor({ logRestart: false });
    try {
      for (let r = c.nextInPass(); r !== null; r = c.nextInPass()) yield r;
    } finally {
      await c.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Read transactions must end before the environment closes.
    for (const c of [...this.cursors]) await c.close();
    this.closed = true;
    this.dbi.close();
    this.env.close();
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new DataError(`cannot ${what} LMDB database '${this.path}': it is closed`);
  }
}

/** A read transaction and an LMDB cursor in it, held for the cursor's life (as Caffe's LMDBCursor). */
export class LmdbCursor implements DatumCursor {
  private started = false;
  private closed = false;
  private readonly logRestart: boolean;
  position = 0;
  restarts = 0;

  /** @internal use `DatumDb.cursor()`. */
  constructor(
    private readonly txn: LmdbTxn,
    private readonly handle: LmdbCursorHandle,
    private readonly path: string,
    options: DatumCursorOptions,
    private readonly onClose: () => void,
  ) {
    this.logRestart = options.logRestart ?? true;
  }

  async next(): Promise<DatumRecord> {
    const rec = this.nextInPass();
    if (rec) return rec;
    if (this.position === 0) throw new DataError(`LMDB database '${this.path}' has no records`);
    // At the end: start over from the first record.
    if (this.logRestart) log.info('Restarting data prefetching from start.');
    this.restarts++;
    this.started = false;
    const again = this.nextInPass();
    if (!again) throw new DataError(`LMDB database '${this.path}' has no records`);
    return again;
  }

  /** @internal The next record, or null at the end (no wrapping). */
  nextInPass(): DatumRecord | null {
    if (this.closed) throw new DataError(`cursor on LMDB database '${this.path}' is closed`);
    const key = this.started ? this.handle.goToNext(KEY) : this.handle.goToFirst(KEY);
    this.started = true;
    if (key === null) return null;
    this.position++;
    return { key: key.toString('utf8'), value: toBytes(this.handle.getCurrentBinary()!) };
  }

  async seekToFirst(): Promise<void> {
    this.started = false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
    this.txn.abort();
    this.onClose();
  }
}

/** Buffers puts and writes each `batchSize` of them in one write transaction (convert_mnist_data commits every 1000). */
export class LmdbWriter implements DatumWriter {
  private pending: Array<[Buffer, Buffer]> = [];
  private readonly batchSize: number;
  committed = 0;

  /** @internal use `DatumDb.writer()`. */
  constructor(
    private readonly env: LmdbEnv,
    private readonly dbi: LmdbDbi,
    private readonly path: string,
    options: DatumWriterOptions,
    private readonly assertOpen: () => void,
  ) {
    this.batchSize = Math.max(1, options.batchSize ?? 1000);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    // Copy the value: the caller may reuse its buffer before the batch is committed.
    this.pending.push([keyBytes(key), Buffer.from(asBuffer(value))]);
    if (this.pending.length >= this.batchSize) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    this.assertOpen();
    const ops = this.pending;
    this.pending = [];
    let txn: LmdbTxn | null = null;
    try {
      txn = this.env.beginTxn();
      for (const [k, v] of ops) txn.putBinary(this.dbi, k, v, KEY);
      txn.commit();
      txn = null;
    } catch (e) {
      txn?.abort();
      throw new DataError(`cannot write ${ops.length} records to LMDB database '${this.path}': ${(e as Error).message}`, { cause: e });
    }
    this.committed += ops.length;
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
