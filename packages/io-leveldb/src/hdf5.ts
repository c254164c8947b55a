import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Dataset as H5Dataset, File as H5File, Group as H5Group } from 'h5wasm';
import { maxBlobBytes } from '@caffe-ts/blob';
import { CaffeError } from '@caffe-ts/proto';
import { DataError } from './errors.js';

/*
 * HDF5 files through h5wasm (libhdf5 compiled to WebAssembly)
 * -----------------------------------------------------------
 * The module loads asynchronously once (`await hdf5Ready()`); after that every file operation is
 * synchronous (h5wasm's Node build reads and writes the real file system directly), which is what
 * the synchronous Layer API needs: the HDF5Data layer's definition awaits `hdf5Ready()` in its
 * `prime` hook and reads files in setUp and forward.
 *
 * Datasets are named by their path inside the file ("label", "data/conv1/0"); groups on the way
 * are created when writing and walked when reading. This is the layout of Caffe's HDF5 data files
 * and of its `.caffemodel.h5` (`data/<layer>/<i>`) and `.solverstate.h5` (`iter`, `learned_net`,
 * `current_step`, `history/<i>`) snapshots.
 */

/** Numbers as h5wasm returns them for the dataset's stored type. */
export type Hdf5Array = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

/** One dataset: its shape (`[]` for a scalar) and its values in row-major order, or a string. */
export interface Hdf5Dataset {
  shape: number[];
  data: Hdf5Array | string;
}

/** What `writeHdf5Datasets` takes: numbers as typed arrays or plain arrays (stored as float32), or strings. */
export interface Hdf5DatasetInput {
  shape?: number[];
  data: Hdf5Array | readonly number[] | string;
}

interface H5wasmModule {
  File: typeof H5File;
  Dataset: typeof H5Dataset;
  Group: typeof H5Group;
  ready: Promise<unknown>;
}

let loaded: H5wasmModule | null = null;
let loading: Promise<H5wasmModule> | null = null;

/** Load the HDF5 library (once per process). Every other function here needs it loaded. */
export function hdf5Ready(): Promise<H5wasmModule> {
  if (loaded) return Promise.resolve(loaded);
  loading ??= (async () => {
    let mod: H5wasmModule;
    try {
      mod = ((await import('h5wasm/node')) as { default: H5wasmModule }).default;
      await mod.ready;
    } catch (e) {
      loading = null;
      throw new DataError(`the HDF5 library (npm package 'h5wasm') did not load: ${(e as Error).message}`, { cause: e });
    }
    loaded = mod;
    return mod;
  })();
  return loading;
}

/** Whether `hdf5Ready()` has finished, so the synchronous functions can run. */
export function isHdf5Ready(): boolean {
  return loaded !== null;
}

function lib(what: string): H5wasmModule {
  if (!loaded) throw new DataError(`${what}: the HDF5 library is not loaded yet; await hdf5Ready() first`);
  return loaded;
}

function isDataset(x: unknown): x is H5Dataset {
  return loaded !== null && x instanceof loaded.Dataset;
}

function isGroup(x: unknown): x is H5Group {
  return loaded !== null && x instanceof loaded.Group;
}

const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]; // \x89HDF\r\n\x1a\n

/**
 * Whether the file carries the HDF5 signature (at offset 0, or after a user block at 512, 1024, …).
 * h5wasm does not throw for a file that is not HDF5, so this is checked first.
 */
export function isHdf5File(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(8);
    for (let offset = 0; offset + 8 <= size; offset = offset === 0 ? 512 : offset * 2) {
      readSync(fd, buf, 0, 8, offset);
      if (SIGNATURE.every((b, i) => buf[i] === b)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

function openForReading(path: string): H5File {
  const h5 = lib(`reading HDF5 file '${path}'`);
  const abs = resolvePath(path);
  if (!existsSync(abs)) throw new DataError(`Failed opening HDF5 file: ${path}: no such file`);
  // A directory (a source list naming '.') opens but fails every read with a plain EISDIR.
  if (!statSync(abs).isFile()) throw new DataError(`Failed opening HDF5 file: ${path}: not a regular file`);
  if (!isHdf5File(abs)) throw new DataError(`Failed opening HDF5 file: ${path}: not an HDF5 file (no HDF5 signature)`);
  let file: H5File;
  try {
    file = new h5.File(abs, 'r');
  } catch (e) {
    throw new DataError(`Failed opening HDF5 file: ${path}: ${(e as Error).message}`, { cause: e });
  }
  // h5wasm hands back a negative id instead of throwing when libhdf5 refuses the file (a
  // truncated file, a corrupt superblock); every later call would then fail untyped.
  if (Number(file.file_id) < 0) throw new DataError(`Failed opening HDF5 file: ${path}: the HDF5 library cannot open it (truncated or corrupt)`);
  return file;
}

/**
 * Runs `read` on an open file and closes it. A corrupt file makes h5wasm throw plain Errors (or
 * libhdf5 abort): those become DataErrors naming the file.
 */
function reading<T>(path: string, read: (file: H5File) => T): T {
  const file = openForReading(path);
  try {
    return read(file);
  } catch (e) {
    if (CaffeError.isInstance(e)) throw e;
    const message = e instanceof Error ? e.message : String(e);
    throw new DataError(`Failed reading HDF5 file ${path}: ${message}`, { cause: e });
  } finally {
    try {
      file.close();
    } catch {
      // closing a file the library already gave up on: the read's outcome is what matters
    }
  }
}

function toDataset(path: string, name: string, d: H5Dataset): Hdf5Dataset {
  // The shape and type come from the file: checked against the memory limit before h5wasm
  // allocates room for the values (a corrupt header can claim any size).
  const meta = d.metadata;
  const bytes = Number(meta.total_size) * Number(meta.size);
  if (!(bytes <= maxBlobBytes())) {
    throw new DataError(
      `${path}: dataset '${name}' claims shape ${(meta.shape ?? []).join('×')} of ${meta.size}-byte values (${bytes} bytes), ` +
        `over the ${maxBlobBytes()}-byte limit per blob (set CAFFE_TS_MAX_BLOB_BYTES to raise it)`,
    );
  }
  const value = d.value;
  const shape = d.shape ?? [];
  if (typeof value === 'string') return { shape, data: value };
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    return { shape, data: Float64Array.from(value, (v) => Number(v)) };
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView) && !(value instanceof Uint8ClampedArray)) {
    return { shape, data: value as Hdf5Array };
  }
  if (typeof value === 'number') return { shape, data: Float64Array.of(value) };
  throw new DataError(`${path}: dataset '${name}' has type ${JSON.stringify(d.dtype)}, which is neither numbers nor a string`);
}

/**
 * Every dataset of an HDF5 file (walking its groups), or only those in `names`, keyed by path
 * ("data", "data/conv1/0"). Synchronous: call `await hdf5Ready()` once before.
 */
export function readHdf5DatasetsSync(path: string, names?: readonly string[]): Record<string, Hdf5Dataset> {
  return reading(path, (file) => {
    const out: Record<string, Hdf5Dataset> = {};
    if (names) {
      for (const name of names) {
        const d = file.get(name);
        if (!isDataset(d)) throw new DataError(`Failed to find HDF5 dataset ${name} in ${path}${d ? ' (it is not a dataset)' : ''}`);
        out[name] = toDataset(path, name, d);
      }
      return out;
    }
    const walk = (group: H5Group, prefix: string) => {
      for (const key of group.keys()) {
        const entity = group.get(key);
        const name = prefix + key;
        if (isDataset(entity)) out[name] = toDataset(path, name, entity);
        else if (isGroup(entity)) walk(entity, `${name}/`);
      }
    };
    walk(file, '');
    return out;
  });
}

/** `readHdf5DatasetsSync` after loading the library. */
export async function readHdf5Datasets(path: string, names?: readonly string[]): Promise<Record<string, Hdf5Dataset>> {
  await hdf5Ready();
  return readHdf5DatasetsSync(path, names);
}

/**
 * The names and shapes of an HDF5 file's datasets, without reading their values (what Caffe's
 * hdf5_load_nd_dataset checks first).
 */
export function hdf5DatasetShapesSync(path: string): Record<string, number[]> {
  return reading(path, (file) => {
    const out: Record<string, number[]> = {};
    const walk = (group: H5Group, prefix: string) => {
      for (const key of group.keys()) {
        const entity = group.get(key);
        if (isDataset(entity)) out[prefix + key] = entity.shape ?? [];
        else if (isGroup(entity)) walk(entity, `${prefix}${key}/`);
      }
    };
    walk(file, '');
    return out;
  });
}

export interface WriteHdf5Options {
  /** Compress numeric datasets with gzip at this level (1–9); default none, as Caffe writes. */
  gzip?: number;
}

/**
 * Write datasets to a new HDF5 file (replacing any file at `path`), creating the groups their paths
 * name. Numbers keep their typed array's type (Caffe writes float32 or float64); a plain number
 * array is stored as float32; a string becomes a scalar fixed-length string (as H5LTmake_dataset_string).
 * The file is written beside `path` and renamed over it once complete. Synchronous: call
 * `await hdf5Ready()` once before.
 */
export function writeHdf5DatasetsSync(path: string, datasets: Record<string, Hdf5DatasetInput>, options: WriteHdf5Options = {}): void {
  const h5 = lib(`writing HDF5 file '${path}'`);
  const abs = resolvePath(path);
  const tmp = `${abs}.tmp-${process.pid}`;
  let file: H5File;
  try {
    file = new h5.File(tmp, 'w');
  } catch (e) {
    throw new DataError(`Failed to open HDF5 file ${path} for writing: ${(e as Error).message}`, { cause: e });
  }
  let ok = false;
  try {
    const groups = new Set<string>();
    for (const [name, ds] of Object.entries(datasets)) {
      const parts = name.split('/').filter((p) => p.length > 0);
      if (parts.length === 0) throw new DataError(`${path}: a dataset needs a name`);
      for (let i = 1; i < parts.length; i++) {
        const g = parts.slice(0, i).join('/');
        if (!groups.has(g)) {
          if (!file.get(g)) file.create_group(g);
          groups.add(g);
        }
      }
      writeOne(file, path, parts.join('/'), ds, options);
    }
    file.flush();
    ok = true;
  } finally {
    file.close();
    if (!ok) rmSync(tmp, { force: true });
  }
  renameSync(tmp, abs);
}

function writeOne(file: H5File, path: string, name: string, ds: Hdf5DatasetInput, options: WriteHdf5Options): void {
  if (typeof ds.data === 'string') {
    const bytes = Math.max(1, Buffer.byteLength(ds.data, 'utf8'));
    file.create_dataset({ name, data: ds.data, dtype: `S${bytes}` });
    return;
  }
  const data: Hdf5Array = ArrayBuffer.isView(ds.data) ? (ds.data as Hdf5Array) : Float32Array.from(ds.data as readonly number[]);
  const shape = ds.shape ?? [data.length];
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new DataError(`${path}: dataset '${name}' has shape ${shape.join('×')} (${count} values) but ${data.length} values were given`);
  }
  const gzip = options.gzip && data.length > 0 && shape.length > 0 ? options.gzip : undefined;
  file.create_dataset({
    name,
    data,
    shape,
    ...(gzip ? { compression: gzip, chunks: shape.map((d) => Math.max(1, d)) } : {}),
  });
}

/** `writeHdf5DatasetsSync` after loading the library. */
export async function writeHdf5Datasets(path: string, datasets: Record<string, Hdf5DatasetInput>, options: WriteHdf5Options = {}): Promise<void> {
  await hdf5Ready();
  writeHdf5DatasetsSync(path, datasets, options);
}
