import { logger } from '@caffe-ts/blob';
import { decodeDatum, type Datum } from '@caffe-ts/proto';
import { writeBinaryProto } from '@caffe-ts/proto/node';
import { backendLabel, openDatumDb, parseDbBackend, type DatumRecord, type DbBackend } from './datum-db.js';
import { DataError } from './errors.js';
import { formatG } from './format.js';
import { decodeDatumImage } from './image-io.js';

const log = logger('compute_image_mean.ts');

export interface ComputeImageMeanOptions {
  /** Default 'lmdb', as Caffe's tool. */
  backend?: DbBackend;
  /** Write the mean as a BlobProto (1 × C × H × W) here, atomically. */
  outFile?: string;
  /** How the log names outFile (default outFile itself; the CLI gives the path as typed). */
  outName?: string;
  /** Encoded Datums decoded at once (default 8). */
  concurrency?: number;
}

export interface ImageMean {
  /** [1, channels, height, width]. */
  shape: [number, number, number, number];
  /** The mean image, C·H·W float32 values (planar, in the Datums' channel order). */
  data: Float32Array;
  /** The mean of each channel over the image. */
  channelMeans: number[];
  /** Datums averaged. */
  count: number;
}

/**
 * Caffe's `compute_image_mean DB [OUT]`: the mean of every Datum of a LevelDB or LMDB (encoded
 * ones decoded with their own channels), accumulated in float32 as Caffe's BlobProto does, then
 * each channel's mean logged as `mean_value channel [c]: v`. With `outFile`, the mean image is
 * written as a binaryproto BlobProto with num/channels/height/width set (Caffe's legacy shape
 * fields), usable as transform_param.mean_file.
 */
export async function computeImageMean(dbPath: string, options: ComputeImageMeanOptions = {}): Promise<ImageMean> {
  const backend = parseDbBackend(options.backend ?? 'lmdb');
  const db = await openDatumDb(dbPath, { mode: 'read', backend });
  const concurrency = Math.max(1, options.concurrency ?? 8);
  let sum: Float32Array | null = null;
  let shape: [number, number, number] = [0, 0, 0];
  let count = 0;
  try {
    const decode = async (rec: DatumRecord): Promise<Datum> => {
      let d: Datum;
      try {
        d = decodeDatum(rec.value);
      } catch (e) {
        throw new DataError(`${dbPath}: record '${rec.key}' is not a valid Datum: ${(e as Error).message}`, { cause: e });
      }
      return d.encoded ? decodeDatumImage(d, 'unchanged', `record '${rec.key}'`) : d;
    };
    const add = (d: Datum, key: string) => {
      const values = d.data.length > 0 ? d.data : d.float_data;
      if (!sum) {
        shape = [d.channels, d.height, d.width];
        sum = new Float32Array(Math.max(d.data.length, d.float_data.length));
        log.info('Starting iteration');
      }
      const size = Math.max(d.data.length, d.float_data.length);
      if (size !== sum.length || size !== shape[0] * shape[1] * shape[2]) {
        throw new DataError(`${dbPath}: Incorrect data field size ${size} (record '${key}'; the first record holds ${shape.join('×')} = ${sum.length})`);
      }
      // Float32 accumulation, as Caffe's sum_blob (a BlobProto of floats).
      for (let i = 0; i < size; i++) sum[i] = sum[i]! + values[i]!;
      if (++count % 10000 === 0) log.info(`Processed ${count} files.`);
    };
    let pending: DatumRecord[] = [];
    let first = true;
    const drain = async () => {
      const datums = await Promise.all(pending.map(decode));
      datums.forEach((d, i) => add(d, pending[i]!.key));
      pending = [];
    };
    for await (const rec of db.entries()) {
      if (first) {
        first = false;
        const d = decodeDatum(rec.value);
        if (d.encoded) log.info('Decoding Datum');
      }
      pending.push(rec);
      if (pending.length >= concurrency) await drain();
    }
    await drain();
  } finally {
    await db.close();
  }
  if (!sum || count === 0) throw new DataError(`${backendLabel(backend)} database '${dbPath}' holds no records`);
  if (count % 10000 !== 0) log.info(`Processed ${count} files.`);
  const mean = sum as Float32Array;
  for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! / count;
  const [channels, height, width] = shape;
  if (options.outFile) {
    log.info(`Write to ${options.outName ?? options.outFile}`);
    await writeBinaryProto('BlobProto', options.outFile, { num: 1, channels, height, width, data: Array.from(mean) });
  }
  const dim = height * width;
  log.info(`Number of channels: ${channels}`);
  const channelMeans: number[] = [];
  for (let c = 0; c < channels; c++) {
    let m = 0;
    for (let i = 0; i < dim; i++) m = Math.fround(m + mean[dim * c + i]!);
    const v = Math.fround(m / dim);
    channelMeans.push(v);
    log.info(`mean_value channel [${c}]: ${formatG(v)}`);
  }
  return { shape: [1, channels, height, width], data: mean, channelMeans, count };
}
