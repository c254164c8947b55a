import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { logger } from '@caffe-ts/blob';
import { createMessage, encodeDatum, type Datum } from '@caffe-ts/proto';
import { backendLabel, formatKey, openDatumDb, parseDbBackend, type DatumDb, type DatumWriter, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';

const log = logger('extract_features.ts');

/** What extractFeatures needs of a net: a `@caffe-ts/net` Net in the TEST phase has all of it. */
export interface FeatureNet {
  /** Resolves once the data layers hold their next batch (Net.prepare). */
  prepare?(): Promise<void>;
  forward(): number;
  hasBlob(name: string): boolean;
  blob(name: string): { readonly shape: readonly number[]; count(): number; cpuData(): ArrayLike<number> };
}

export interface ExtractFeaturesOptions {
  /** Database engine of every output ('leveldb' or 'lmdb'; Caffe's db_type argument). Default 'leveldb'. */
  backend?: DbBackend | string;
  /** How messages name the net (Caffe names the feature extraction prototxt). */
  netName?: string;
  /** Records per committed transaction and per progress line (default 1000, as Caffe). */
  commitEvery?: number;
}

export interface ExtractFeaturesResult {
  /** Records written to each database, in the order of the blob names. */
  records: number[];
}

/**
 * Caffe's `extract_features`: runs `net` forward `miniBatches` times and stores every item of each
 * named blob as a Datum in the database of the same position, `float_data` holding the item's
 * values and channels/height/width the blob's (Caffe's legacy 4-D shape: axes past the ones a blob
 * has count 1), under the keys 0000000000, 0000000001, … (the item's index, ten digits).
 * Each database is created new (an existing one is an error, as Caffe's `db::NEW`). It is written
 * beside its path and renamed into place once complete, so a failed run leaves none half-written.
 * Progress is logged every `commitEvery` items per blob, then once at the end, in Caffe's words.
 */
export async function extractFeatures(
  net: FeatureNet,
  blobNames: string[],
  dbPaths: string[],
  miniBatches: number,
  options: ExtractFeaturesOptions = {},
): Promise<ExtractFeaturesResult> {
  const netName = options.netName ?? 'the net';
  if (blobNames.length !== dbPaths.length) {
    throw new DataError(`the number of blob names and dataset names must be equal (${blobNames.length} blob(s): ${blobNames.join(',')}; ${dbPaths.length} dataset(s): ${dbPaths.join(',')})`);
  }
  if (blobNames.length === 0) throw new DataError('no feature blob named: give blob1[,blob2,…]');
  if (!Number.isInteger(miniBatches) || miniBatches < 0) throw new DataError(`num_mini_batches must be a non-negative integer (got ${miniBatches})`);
  const commitEvery = options.commitEvery ?? 1000;
  if (!Number.isInteger(commitEvery) || commitEvery < 1) throw new DataError(`commitEvery must be a positive integer (got ${commitEvery})`);
  for (const name of blobNames) {
    if (!net.hasBlob(name)) throw new DataError(`Unknown feature blob name ${name} in the network ${netName}`);
  }
  const seen = new Set<string>();
  for (const path of dbPaths) {
    if (seen.has(path)) throw new DataError(`dataset ${path} is named twice: each feature blob needs its own database`);
    seen.add(path);
  }
  const backend = parseDbBackend(options.backend);
  const label = backendLabel(backend);
  for (const path of dbPaths) {
    if (existsSync(path)) throw new DataError(`cannot create ${label} database '${path}' for the features: it already exists`);
  }

  const outputs: { path: string; tmp: string; db: DatumDb; writer: DatumWriter }[] = [];
  const records = blobNames.map(() => 0);
  try {
    for (const path of dbPaths) {
      log.info(`Opening dataset ${path}`);
      const tmp = `${path}.tmp-${process.pid}`;
      await rm(tmp, { recursive: true, force: true });
      const db = await openDatumDb(tmp, { mode: 'new', backend });
      outputs.push({ path, tmp, db, writer: db.writer({ batchSize: commitEvery }) });
    }
    log.error('Extracting Features');
    for (let b = 0; b < miniBatches; b++) {
      await net.prepare?.();
      net.forward();
      for (let i = 0; i < blobNames.length; i++) {
        const blob = net.blob(blobNames[i]!);
        const shape = blob.shape;
        if (shape.length > 4) throw new DataError(`feature blob ${blobNames[i]} has ${shape.length} axes (${shape.join(' ')}): a Datum holds at most 4 (num, channels, height, width)`);
        const num = shape.length > 0 ? shape[0]! : 1;
        const dim = num > 0 ? blob.count() / num : 0;
        const data = blob.cpuData();
        for (let n = 0; n < num; n++) {
          const datum = createMessage<Datum>('Datum', {
            channels: shape[1] ?? 1,
            height: shape[2] ?? 1,
            width: shape[3] ?? 1,
            float_data: Array.from({ length: dim }, (_, d) => data[n * dim + d]!),
          });
          await outputs[i]!.writer.put(formatKey(records[i]!, 10), encodeDatum(datum));
          records[i]!++;
          if (records[i]! % commitEvery === 0) log.error(`Extracted features of ${records[i]} query images for feature blob ${blobNames[i]}`);
        }
      }
    }
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i]!;
      await o.writer.close();
      await o.db.close();
      log.error(`Extracted features of ${records[i]} query images for feature blob ${blobNames[i]}`);
    }
    for (const o of outputs) await rename(o.tmp, o.path);
  } catch (e) {
    for (const o of outputs) {
      await o.db.close().catch(() => undefined);
      await rm(o.tmp, { recursive: true, force: true });
    }
    throw e;
  }
  log.error('Successfully extracted the features!');
  return { records };
}
