import { readFile } from 'node:fs/promises';
import type { Logger, Rng } from '@caffe-ts/blob';
import type { Datum } from '@caffe-ts/proto';
import { formatKey, type DbBackend } from './datum-db.js';
import { writeDbAtomically } from './db-write.js';
import { DataError } from './errors.js';

/*
 * Pieces shared by the list-driven dataset tools (convert_imageset, the SSD fork's
 * convert_annoset and get_image_size): reading the list, shuffling it, guessing an encoding from
 * a file name, and writing one record per listed image under Caffe's `%08d_<path>` keys.
 */

/** The text of a list file; a missing or unreadable one is a DataError naming it. */
export async function readListFile(path: string, what = 'image list'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DataError(`cannot read the ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { cause: e });
  }
}

/** Shuffle in place as Caffe's shuffle(begin, end) with the given generator (Fisher–Yates from the back). */
export function shuffleInPlace<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** The encoding a file name suggests (its extension, lower-cased), warning when there is none. */
export function guessEncoding(path: string, log: Logger): string {
  const dot = path.lastIndexOf('.');
  if (dot < 0) {
    log.warn(`Failed to guess the encoding of '${path}'`);
    return path.toLowerCase();
  }
  return path.slice(dot + 1).toLowerCase();
}

/** One line of a list read as whitespace-separated pairs (`image label`, `image annotation`). */
export interface ListPair {
  first: string;
  second: string;
  /** 1-based line of the list file. */
  line: number;
}

/**
 * A list of `first second` pairs, as the fork's tools read theirs with `>>` (so names cannot
 * contain whitespace). Blank lines are skipped; any other line must hold exactly two fields, and
 * with `integerSecond` the second must be an integer. Errors name the file and the line.
 */
export function parseListPairs(text: string, file: string, expected: string, integerSecond = false): ListPair[] {
  const out: ListPair[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const fields = raw.trim().split(/\s+/).filter((f) => f !== '');
    if (fields.length === 0) continue;
    if (fields.length !== 2 || (integerSecond && !/^[+-]?\d+$/.test(fields[1]!))) {
      throw new DataError(`${file}, line ${i + 1}: expected '${expected}', found '${raw}'`);
    }
    out.push({ first: fields[0]!, second: fields[1]!, line: i + 1 });
  }
  return out;
}

/** A record made from one listed image: its stored bytes and the Datum inside (for --check_size). */
export interface ImageRecord {
  value: Uint8Array;
  datum: Datum;
}

export interface WriteImageRecordsOptions {
  backend: DbBackend;
  overwrite?: boolean;
  /** Check that every raw Datum holds as many bytes as the first one (Caffe's --check_size). */
  checkSize?: boolean;
  /** Entries loaded at once (default 8); records are still written in list order. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  log: Logger;
}

/**
 * Write one record per entry under `%08d_<path>` (the entry's index in the list, so indices of
 * skipped entries are left out), committing and logging `Processed N files.` every 1000 records
 * and at the end, as convert_imageset does. `load` returns null to skip an entry; whatever it
 * throws aborts the tool (the first failing entry in list order is reported), and the database
 * is then not left behind.
 */
export async function writeImageRecords<E extends { path: string }>(
  dbPath: string,
  entries: readonly E[],
  options: WriteImageRecordsOptions,
  load: (entry: E, index: number) => Promise<ImageRecord | null>,
): Promise<{ count: number; skipped: string[] }> {
  const { log } = options;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  let count = 0;
  const skipped: string[] = [];
  let dataSize = -1;
  await writeDbAtomically(dbPath, { backend: options.backend, overwrite: options.overwrite }, async (writer) => {
    for (let start = 0; start < entries.length; start += concurrency) {
      const chunk = entries.slice(start, start + concurrency);
      // Load a few entries at once; write them in list order.
      const settled = await Promise.allSettled(chunk.map((entry, k) => load(entry, start + k)));
      for (const s of settled) if (s.status === 'rejected') throw s.reason;
      for (let k = 0; k < chunk.length; k++) {
        const entry = chunk[k]!;
        const record = (settled[k] as PromiseFulfilledResult<ImageRecord | null>).value;
        if (!record) {
          skipped.push(entry.path);
          continue;
        }
        const { datum } = record;
        if (options.checkSize && !datum.encoded) {
          if (dataSize < 0) dataSize = datum.channels * datum.height * datum.width;
          else if (datum.data.length !== dataSize) {
            throw new DataError(`Incorrect data field size ${datum.data.length} (image ${entry.path}; the first image's is ${dataSize})`);
          }
        }
        await writer.put(`${formatKey(start + k, 8)}_${entry.path}`, record.value);
        if (++count % 1000 === 0) log.info(`Processed ${count} files.`);
      }
      options.onProgress?.(Math.min(start + concurrency, entries.length), entries.length);
    }
    await writer.flush();
    if (count % 1000 !== 0) log.info(`Processed ${count} files.`);
  });
  return { count, skipped };
}
