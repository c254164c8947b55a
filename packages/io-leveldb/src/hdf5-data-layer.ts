import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { logger, type Blob } from '@caffe-ts/blob';
import { Layer, type BlobCounts, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import { hasField, type LayerParameter } from '@caffe-ts/proto';
import { dataPathCandidates } from './data-sources.js';
import { DataError } from './errors.js';
import { hdf5DatasetShapesSync, hdf5Ready, isHdf5Ready, readHdf5DatasetsSync, type Hdf5Array } from './hdf5.js';

const log = logger('hdf5_data_layer.ts');

/** One loaded file: a row-major blob per top, all with the same number of rows. */
interface LoadedFile {
  path: string;
  rows: number;
  /** Per top: shape (rows first) and values. */
  blobs: { shape: number[]; data: Hdf5Array }[];
}

/**
 * Caffe's HDF5Data layer: `hdf5_data_param.source` is a text file listing .h5 files (whitespace
 * separated); each top reads the dataset of the same name, whose first axis is the row. Each
 * forward copies `batch_size` rows, moving on to the next file at the end of one and back to the
 * first after the last; with `shuffle`, the file order and each file's rows are permuted (again
 * at every pass). HDF5 holds no transformation: `transform_param` is refused, as in Caffe.
 *
 * Files are read synchronously in forward, as Caffe does (the library is loaded by the layer
 * definition's `prime` hook, which `Net.create` awaits).
 */
export class HDF5DataLayer extends Layer {
  readonly type: string = 'HDF5Data';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1 };

  readonly netFile: string | undefined;
  private files: string[] = [];
  private filePermutation: number[] = [];
  private currentFile = 0;
  private currentRow = 0;
  private loaded: LoadedFile | null = null;
  private dataPermutation: number[] = [];
  private batchSize = 0;
  private loggedType = false;

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(param, context);
    this.netFile = context.netFile;
  }

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    if (hasField(this.param, 'transform_param') && this.param.transform_param) this.fail(`${this.type} does not transform data.`);
    const p = this.param.hdf5_data_param;
    if (!p || !p.source) this.fail('hdf5_data_param.source is required');
    this.check(p.batch_size > 0, () => `batch_size must be positive (got ${p.batch_size})`);
    if (!isHdf5Ready()) this.fail('the HDF5 library is not loaded; build the net with await Net.create(...), or await hdf5Ready() first');
    this.batchSize = p.batch_size;
    log.info(`Loading list of HDF5 filenames from: ${p.source}`);
    const listPath = resolveListFile(`${this.type} layer '${this.name}'`, p.source, this.netFile);
    let list: string;
    try {
      list = readFileSync(listPath, 'utf8');
    } catch (e) {
      this.fail(`Failed to read source file ${p.source}: ${(e as Error).message}`); // a directory, no permission
    }
    const names = list.split(/\s+/).filter((s) => s.length > 0);
    log.info(`Number of HDF5 files: ${names.length}`);
    if (names.length < 1) this.fail(`Must have at least 1 HDF5 filename listed in ${p.source}`);
    this.files = names.map((n) => resolveListed(n, listPath, this.netFile));
    this.filePermutation = names.map((_, i) => i);
    if (p.shuffle) this.shuffle(this.filePermutation);
    this.currentFile = 0;
    this.load(this.files[this.filePermutation[0]!]!);
    this.currentRow = 0;
    for (let i = 0; i < top.length; i++) {
      const shape = this.loaded!.blobs[i]!.shape.slice();
      shape[0] = this.batchSize;
      top[i]!.reshape(shape);
    }
  }

  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  /** Caffe's LoadHDF5FileData: one dataset per top, all with the same number of rows. */
  private load(path: string): void {
    const tops = this.param.top;
    const shapes = hdf5DatasetShapesSync(path);
    for (const name of tops) {
      if (!(name in shapes)) this.fail(`Failed to find HDF5 dataset ${name} in ${path}`);
      if (shapes[name]!.length < 1) this.fail(`dataset ${name} in ${path} must have at least 1 axis`);
    }
    const read = readHdf5DatasetsSync(path, tops);
    const blobs = tops.map((name) => {
      const d = read[name]!;
      if (typeof d.data === 'string') this.fail(`dataset ${name} in ${path} holds a string, not numbers`);
      return { shape: d.shape, data: d.data };
    });
    if (!this.loggedType) {
      this.loggedType = true;
      const first = blobs[0]!.data;
      log.info(`Datatype class: ${first instanceof Float32Array || first instanceof Float64Array ? 'H5T_FLOAT' : 'H5T_INTEGER'}`);
    }
    const rows = blobs[0]!.shape[0]!;
    blobs.forEach((b, i) => {
      if (b.shape[0] !== rows) this.fail(`dataset ${tops[i]} in ${path} has ${b.shape[0]} rows, but ${tops[0]} has ${rows}`);
    });
    if (this.loaded) {
      // Later files must fit the tops shaped from the first one.
      blobs.forEach((b, i) => {
        const want = this.loaded!.blobs[i]!.shape.slice(1).join('×');
        if (b.shape.slice(1).join('×') !== want) {
          this.fail(`dataset ${tops[i]} in ${path} has rows of ${b.shape.slice(1).join('×')}, but the first file's are ${want}`);
        }
      });
    }
    this.loaded = { path, rows, blobs };
    this.dataPermutation = Array.from({ length: rows }, (_, i) => i);
    if (this.param.hdf5_data_param!.shuffle) this.shuffle(this.dataPermutation);
  }

  /** Fisher–Yates with the layer's generator (Caffe uses std::random_shuffle). */
  private shuffle(a: number[]): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }

  /** Caffe's Next(): the next row, the next file at the end of one. */
  private next(): void {
    if (++this.currentRow === this.loaded!.rows) {
      if (this.files.length > 1) {
        if (++this.currentFile === this.files.length) {
          this.currentFile = 0;
          if (this.param.hdf5_data_param!.shuffle) this.shuffle(this.filePermutation);
        }
        this.load(this.files[this.filePermutation[this.currentFile]!]!);
      }
      this.currentRow = 0;
      if (this.param.hdf5_data_param!.shuffle) this.shuffle(this.dataPermutation);
    }
  }

  protected forwardCpu(_bottom: Blob[], top: Blob[]): void {
    for (let j = 0; j < top.length; j++) {
      const shape = this.loaded!.blobs[j]!.shape.slice();
      shape[0] = this.batchSize;
      top[j]!.reshape(shape);
    }
    for (let i = 0; i < this.batchSize; i++) {
      const row = this.dataPermutation[this.currentRow]!;
      for (let j = 0; j < top.length; j++) {
        const src = this.loaded!.blobs[j]!.data;
        const dim = top[j]!.count() / this.batchSize;
        const out = top[j]!.mutableCpuData();
        for (let k = 0; k < dim; k++) out[i * dim + k] = src[row * dim + k]!;
      }
      this.next();
    }
  }
}

/** The list file: looked for from the working directory, then beside the net file. */
function resolveListFile(who: string, source: string, netFile: string | undefined): string {
  const tried = dataPathCandidates(source, netFile);
  const found = tried.find((p) => existsSync(p));
  if (!found) throw new DataError(`${who}: Failed to open source file: ${source}${tried.length > 1 || tried[0] !== source ? ` (looked for ${tried.join(', ')})` : ''}`);
  return found;
}

/** A listed .h5 file: from the working directory (as Caffe), else beside the list, else beside the net file. */
function resolveListed(name: string, listPath: string, netFile: string | undefined): string {
  if (isAbsolute(name)) return name;
  const candidates = [resolvePath(name), resolvePath(dirname(listPath), name), ...(netFile ? [resolvePath(dirname(resolvePath(netFile)), name)] : [])];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

export const hdf5DataLayerDef: LayerDef = {
  type: 'HDF5Data',
  create: (param, context) => new HDF5DataLayer(param, context),
  /** Loads the HDF5 library (asynchronous, once) so that set-up and forward can read files synchronously. */
  prime: async () => {
    await hdf5Ready();
  },
};
