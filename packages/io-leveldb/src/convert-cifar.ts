import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { logger } from '@caffe-ts/blob';
import { createMessage, encodeDatum, type Datum } from '@caffe-ts/proto';
import { formatKey, parseDbBackend, type DatumWriter, type DbBackend } from './datum-db.js';
import { writeDbAtomically } from './db-write.js';
import { DataError } from './errors.js';

const log = logger('convert_cifar_data.ts');

/** CIFAR-10 binary records: 1 label byte, then a 32×32 image as three 1024-byte planes R, G, B. */
export const CIFAR_SIZE = 32;
export const CIFAR_IMAGE_BYTES = 3072;
const RECORD_BYTES = 1 + CIFAR_IMAGE_BYTES;
/** Records per batch file in the real data set; keys count from fileIndex · 10000. */
export const CIFAR_BATCH_SIZE = 10000;
const TRAIN_BATCHES = 5;

export interface ConvertCifarOptions {
  /** Default 'lmdb' (the backend Caffe's create_cifar10.sh uses). */
  backend?: DbBackend;
  /** Replace existing databases (default false: refuse). */
  overwrite?: boolean;
}

export interface ConvertCifarResult {
  trainDb: string;
  testDb: string;
  train: number;
  test: number;
}

/** The records of one batch file; a file that is not a whole number of records is a DataError. */
async function readBatch(path: string, what: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new DataError(`Unable to open ${what}: ${path}${(e as { code?: string }).code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`, { cause: e });
  }
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    throw new DataError(`${path}: ${bytes.length} bytes is not a whole number of CIFAR-10 records (${RECORD_BYTES} bytes each: 1 label + 3072 pixels)`);
  }
  return bytes;
}

/** The Datum of one record: 3×32×32, the planes stored as they come (R, G, B; Caffe does not swap them). */
export function cifarDatumBytes(record: Uint8Array): Uint8Array {
  return encodeDatum(
    createMessage<Datum>('Datum', {
      channels: 3,
      height: CIFAR_SIZE,
      width: CIFAR_SIZE,
      data: record.subarray(1, RECORD_BYTES),
      label: record[0]!,
    }),
  );
}

async function putBatch(writer: DatumWriter, bytes: Uint8Array, firstKey: number): Promise<number> {
  const n = bytes.length / RECORD_BYTES;
  for (let i = 0; i < n; i++) {
    await writer.put(formatKey(firstKey + i, 5), cifarDatumBytes(bytes.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES)));
  }
  return n;
}

/**
 * Caffe's `convert_cifar_data INPUT_FOLDER OUTPUT_FOLDER DB_TYPE`: data_batch_1.bin … data_batch_5.bin
 * → `<out>/cifar10_train_<backend>` and test_batch.bin → `<out>/cifar10_test_<backend>`, Datums
 * 3×32×32 under the keys `%05d` (batch file index · 10000 + record). Each database is written under
 * a temporary name and renamed when complete. Batch files may hold fewer than 10,000 records
 * (handy for tests); they must hold whole records.
 */
export async function convertCifar(inputFolder: string, outputFolder: string, options: ConvertCifarOptions = {}): Promise<ConvertCifarResult> {
  const backend = parseDbBackend(options.backend ?? 'lmdb');
  const trainDb = join(outputFolder, `cifar10_train_${backend}`);
  const testDb = join(outputFolder, `cifar10_test_${backend}`);
  // Read every input first, so that a missing file fails before any database is made.
  const trainFiles: Uint8Array[] = [];
  for (let f = 0; f < TRAIN_BATCHES; f++) trainFiles.push(await readBatch(join(inputFolder, `data_batch_${f + 1}.bin`), `train file #${f + 1}`));
  const testFile = await readBatch(join(inputFolder, 'test_batch.bin'), 'test file');

  let train = 0;
  await writeDbAtomically(trainDb, { backend, overwrite: options.overwrite }, async (writer) => {
    log.info('Writing Training data');
    for (let f = 0; f < TRAIN_BATCHES; f++) {
      log.info(`Training Batch ${f + 1}`);
      train += await putBatch(writer, trainFiles[f]!, f * CIFAR_BATCH_SIZE);
    }
  });
  let test = 0;
  await writeDbAtomically(testDb, { backend, overwrite: options.overwrite }, async (writer) => {
    log.info('Writing Testing data');
    test = await putBatch(writer, testFile, 0);
  });
  return { trainDb, testDb, train, test };
}
