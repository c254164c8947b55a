import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { logger } from '@caffe-ts/blob';
import { backendLabel, openDatumDb, parseDbBackend, type DatumWriter } from './datum-db.js';
import { DataError } from './errors.js';

const log = logger('db.ts');

export interface WriteDbOptions {
  /** Replace an existing database at dbPath (default false: refuse, as Caffe's db::NEW). */
  overwrite?: boolean;
  /** 'leveldb' or 'lmdb' (default 'leveldb'). */
  backend?: string;
  /** Records per committed batch or transaction (default 1000). */
  batchSize?: number;
}

/**
 * Create a database at `dbPath` without ever leaving a half-written one there: the records go
 * into `<dbPath>.tmp-<pid>`, which is renamed over `dbPath` only once everything is written.
 */
export async function writeDbAtomically(
  dbPath: string,
  options: WriteDbOptions,
  fill: (writer: DatumWriter) => Promise<void>,
): Promise<void> {
  const backend = parseDbBackend(options.backend);
  const label = backendLabel(backend);
  if (existsSync(dbPath) && !options.overwrite) {
    throw new DataError(`cannot create ${label} database '${dbPath}': it already exists (pass overwrite to replace it)`);
  }
  const tmp = `${dbPath}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  log.info(`Opening ${backend} ${dbPath}`);
  const db = await openDatumDb(tmp, { mode: 'new', backend });
  try {
    const writer = db.writer({ batchSize: options.batchSize ?? 1000 });
    await fill(writer);
    await writer.close();
    await db.close();
    if (existsSync(dbPath)) await rm(dbPath, { recursive: true, force: true });
    await rename(tmp, dbPath);
  } catch (e) {
    await db.close().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
