/**
 * Caffe's HDF5 snapshot layout (Node only), on the npm package h5wasm:
 *
 * - weights (`<prefix>_iter_N.caffemodel.h5`, Net::ToHDF5): group `data` with one group per
 *   layer (every layer, in net order, even those without params) holding datasets `0`, `1`, …
 *   for the params the layer owns; with snapshot_diff also a group `diff` with every param's
 *   diff, shared ones included.
 * - solver state (`.solverstate.h5`, SGDSolver::SnapshotSolverStateToHDF5): int datasets `iter`
 *   and `current_step` (shape [1]), the string dataset `learned_net`, and group `history` with
 *   datasets `0` … `n-1`.
 *
 * h5wasm loads its WebAssembly asynchronously (about half a second), so it is imported only when
 * an HDF5 file is actually written or read: `loadH5wasm()` once, then everything is synchronous.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Blob, logger, maxBlobBytes } from '@caffe-ts/blob';
import { NetError, type Net } from '@caffe-ts/net';
import { CaffeError, CaffeFileError, createMessage, type BlobProto, type SolverState } from '@caffe-ts/proto';
import { SolverStateError } from './errors.js';

type H5wasm = typeof import('h5wasm/node');
type H5Group = InstanceType<H5wasm['Group']>;
type H5Dataset = InstanceType<H5wasm['Dataset']>;
type H5File = InstanceType<H5wasm['File']>;

let loading: Promise<H5wasm> | undefined;
let loaded: H5wasm | undefined;

/** Import h5wasm and wait for its WebAssembly (once per process). */
export function loadH5wasm(): Promise<H5wasm> {
  loading ??= import('h5wasm/node').then(async (mod) => {
    await mod.ready;
    loaded = mod;
    return mod;
  });
  return loading;
}

/** h5wasm if `loadH5wasm()` has finished, else undefined (for synchronous callers). */
export function h5wasmIfLoaded(): H5wasm | undefined {
  return loaded;
}

function requireH5(): H5wasm {
  if (!loaded) throw new Error('h5wasm is not loaded yet: await loadH5wasm() (or enableHdf5()) first');
  return loaded;
}

/** Caffe decides by the name: a state or weights file ending in `.h5` is HDF5. */
export function isHdf5Path(path: string): boolean {
  return path.endsWith('.h5');
}

const HDF5_SIGNATURE = Uint8Array.of(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a);

/** Whether the file starts with HDF5's signature (at 0, or after a user block of 512·2^k bytes). */
export function hasHdf5Signature(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const buf = new Uint8Array(8);
    for (let offset = 0; offset + 8 <= size; offset = offset === 0 ? 512 : offset * 2) {
      if (readSync(fd, buf, 0, 8, offset) === 8 && buf.every((b, i) => b === HDF5_SIGNATURE[i])) return true;
      if (offset >= 1 << 20) break;
    }
    return false;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function openForReading(path: string, what: string): H5File {
  // Checked first: h5wasm does not throw on a bad file (it fails later), and HDF5 prints its
  // own diagnostics to stderr.
  if (!existsSync(path)) throw new CaffeFileError(`cannot read ${what} '${path}': no such file`, { path, code: 'ENOENT' });
  if (!hasHdf5Signature(path)) throw new CaffeFileError(`cannot read ${what} '${path}': not an HDF5 file (no HDF5 signature)`, { path });
  let file: H5File;
  try {
    file = new (requireH5().File)(path, 'r');
  } catch (err) {
    throw new CaffeFileError(`cannot read ${what} '${path}': ${(err as Error).message}`, { path, cause: err });
  }
  // libhdf5 refusing the file (truncated, corrupt superblock) shows as a negative id, not a throw.
  if (Number(file.file_id) < 0) throw new CaffeFileError(`cannot read ${what} '${path}': the HDF5 library cannot open it (truncated or corrupt)`, { path });
  return file;
}

/**
 * Runs `read` on the open file and closes it. h5wasm throws plain Errors on a corrupt file
 * (a broken object header, a bad B-tree): those become CaffeFileErrors naming the file.
 */
function reading<T>(path: string, what: string, read: (file: H5File) => T): T {
  const file = openForReading(path, what);
  try {
    return read(file);
  } catch (err) {
    if (CaffeError.isInstance(err)) throw err;
    throw new CaffeFileError(`cannot read ${what} '${path}': ${err instanceof Error ? err.message : String(err)}`, { path, cause: err });
  } finally {
    try {
      file.close();
    } catch {
      // the read's outcome is what matters
    }
  }
}

/**
 * Write an HDF5 file atomically: into a temp file in the same folder, renamed over `path` once
 * closed. Objects are created with the earliest file-format versions so that HDF5 1.8 (which
 * C++ Caffe was commonly built with) reads them.
 */
function writeAtomically(path: string, fill: (file: H5File) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let file: H5File | undefined;
  try {
    file = new (requireH5().File)(tmp, 'w', { libver: ['earliest', 'v108'] });
    fill(file);
    file.close();
    file = undefined;
    renameSync(tmp, path);
  } catch (err) {
    try {
      file?.close();
    } catch {
      // already failing; the original error matters
    }
    rmSync(tmp, { force: true });
    if (err instanceof CaffeFileError) throw err;
    throw new CaffeFileError(`cannot write '${path}': ${(err as Error).message}`, { path, cause: err });
  }
}

/** A group for `name`, creating intermediate groups for names with '/' (GoogLeNet's "inception_3a/1x1"). */
function ensureGroup(parent: H5Group, name: string): H5Group {
  let g = parent;
  for (const part of name.split('/')) {
    if (part === '') continue;
    const existing = g.keys().includes(part) ? g.get(part) : null;
    g = existing instanceof requireH5().Group ? existing : g.create_group(part);
  }
  return g;
}

function saveBlob(group: H5Group, name: string, blob: Blob, diff = false): void {
  const values = diff ? blob.cpuDiff() : blob.cpuData();
  group.create_dataset({
    name,
    data: values.slice(),
    shape: [...blob.shape],
    dtype: blob.dtype === 'float64' ? '<d' : '<f',
  });
}

/** Write the net's params as Caffe's Net::ToHDF5 does (owned params' data; with `writeDiff` every diff). */
export function writeNetHdf5(net: Net, path: string, writeDiff = false): void {
  writeAtomically(path, (file) => {
    const data = file.create_group('data');
    const diff = writeDiff ? file.create_group('diff') : undefined;
    net.layers.forEach((layer, layerId) => {
      const name = net.layerNames[layerId]!;
      const layerData = ensureGroup(data, name);
      const layerDiff = diff ? ensureGroup(diff, name) : undefined;
      layer.blobs.forEach((blob, j) => {
        const netParamId = net.paramIdVecs[layerId]![j]!;
        // Shared params are stored once, by their owner.
        if (net.paramOwners[netParamId] === -1) saveBlob(layerData, String(j), blob);
        if (layerDiff) saveBlob(layerDiff, String(j), blob, true);
      });
    });
  });
}

/**
 * The layer groups under `data`, by layer name: a group holding datasets (or nothing) is a layer;
 * its subgroups are layers whose names continue with "/" ("inception_3a" → "1x1").
 */
function layerGroups(group: H5Group, prefix = '', out = new Map<string, H5Group>()): Map<string, H5Group> {
  const H5 = requireH5();
  for (const key of group.keys()) {
    const child = group.get(key);
    if (!(child instanceof H5.Group)) continue;
    const name = prefix + key;
    const kids = child.keys().map((k) => child.get(k));
    if (kids.length === 0 || kids.some((k) => k instanceof H5.Dataset)) out.set(name, child);
    layerGroups(child, `${name}/`, out);
  }
  return out;
}

function datasetValues(ds: H5Dataset, what: string, file: string): { shape: number[]; values: ArrayLike<number> } {
  const meta = ds.metadata;
  // h5wasm's type classes: 0 integer, 1 float.
  if (meta.type !== 0 && meta.type !== 1) {
    throw new CaffeFileError(`${file}: ${what} is not a numeric dataset (HDF5 type class ${meta.type}); Caffe reads float or integer data`, {
      path: file,
    });
  }
  // Shape × type size from the file, checked before h5wasm allocates room for the values.
  const bytes = Number(meta.total_size) * Number(meta.size);
  if (!(bytes <= maxBlobBytes())) {
    throw new CaffeFileError(
      `${file}: ${what} claims shape ${(meta.shape ?? []).join(' ')} of ${meta.size}-byte values (${bytes} bytes), over the ` +
        `${maxBlobBytes()}-byte limit per blob (set CAFFE_TS_MAX_BLOB_BYTES to raise it)`,
      { path: file },
    );
  }
  const value = ds.value;
  if (value === null || typeof value !== 'object' || !('length' in value)) {
    throw new CaffeFileError(`${file}: ${what} has no readable values`, { path: file });
  }
  const shape = ds.shape ?? [];
  // Typed arrays of numbers are used as they are (weights can be large); 64-bit integers convert.
  const numeric = value instanceof BigInt64Array || value instanceof BigUint64Array ? Array.from(value, Number) : value;
  return { shape, values: numeric as ArrayLike<number> };
}

/**
 * Caffe's Net::CopyTrainedLayersFromHDF5: for each layer group in `data` whose name the net has,
 * load datasets `0…` into the layer's params (shapes must match exactly). A missing dataset is
 * fine only for a param the net shares from another layer; layers the net lacks are skipped.
 */
export function copyTrainedLayersFromHdf5(net: Net, path: string, { log = true }: { log?: boolean } = {}): void {
  reading(path, 'HDF5 weights', (file) => {
    const H5 = requireH5();
    const data = file.keys().includes('data') ? file.get('data') : null;
    if (!(data instanceof H5.Group)) {
      throw new NetError(`Error reading weights from ${path}: it has no group 'data' (not a Caffe .caffemodel.h5)`);
    }
    for (const [layerName, group] of layerGroups(data)) {
      const targetId = net.layerNames.indexOf(layerName);
      if (targetId < 0) {
        if (log) logger('net.cpp').info(`Ignoring source layer ${layerName}`);
        continue;
      }
      const targets = net.layers[targetId]!.blobs;
      const keys = group.keys();
      if (keys.length > targets.length) {
        throw new NetError(
          `Incompatible number of blobs for layer ${layerName}: the net's layer has ${targets.length}, ${path} has ${keys.length}`,
        );
      }
      targets.forEach((target, j) => {
        if (!keys.includes(String(j))) {
          if (net.paramOwners[net.paramIdVecs[targetId]![j]!] !== -1) return; // shared: its owner loads it
          throw new NetError(`Incompatible number of blobs for layer ${layerName}: ${path} has no dataset ${j} for it`);
        }
        const ds = group.get(String(j)) as H5Dataset;
        const { shape, values } = datasetValues(ds, `data/${layerName}/${j}`, path);
        const same = shape.length === target.shape.length && shape.every((d, k) => d === target.shape[k]);
        if (!same) {
          const count = shape.reduce((a, b) => a * b, 1);
          throw new NetError(
            `Cannot load blob from hdf5; shape mismatch. Source shape is ${shape.join(' ')} (${count}) target shape is ` +
              `${target.shapeString()} (layer '${layerName}' param ${j}, weights file ${path})`,
          );
        }
        target.mutableCpuData().set(values);
      });
    }
  });
}

/** Write a solver state as SGDSolver::SnapshotSolverStateToHDF5 does. */
export function writeSolverStateHdf5(path: string, state: SolverState): void {
  const history = state.history.map((proto, i) => {
    const blob = new Blob([], { dtype: proto.double_data.length > 0 ? 'float64' : 'float32' });
    blob.fromProto(proto, { reshape: true, what: `history blob ${i}` });
    return blob;
  });
  writeAtomically(path, (file) => {
    file.create_dataset({ name: 'iter', data: new Int32Array([state.iter]), shape: [1], dtype: '<i' });
    // H5LTmake_dataset_string: a scalar fixed-length ASCII string with its terminating NUL (UTF-8
    // only when the path needs it).
    const learned = new TextEncoder().encode(state.learned_net);
    const cset = learned.length === state.learned_net.length ? 'A' : 'S';
    file.create_dataset({ name: 'learned_net', data: state.learned_net, shape: [], dtype: `${cset}${learned.length + 1}` });
    file.create_dataset({ name: 'current_step', data: new Int32Array([state.current_step]), shape: [1], dtype: '<i' });
    const group = file.create_group('history');
    history.forEach((h, i) => saveBlob(group, String(i), h));
  });
}

function readInt(file: H5File, name: string, path: string): number {
  const ds = file.keys().includes(name) ? file.get(name) : null;
  if (!(ds instanceof requireH5().Dataset)) {
    throw new SolverStateError(`${path}: the solver state has no dataset '${name}' (not a Caffe .solverstate.h5)`);
  }
  const { values } = datasetValues(ds, name, path);
  if (values.length !== 1) throw new SolverStateError(`${path}: '${name}' should hold one integer, it holds ${values.length}`);
  return values[0]!;
}

/**
 * Read a `.solverstate.h5` into a SolverState message (history as BlobProtos with their shapes),
 * so both formats restore through the same path.
 */
export function readSolverStateHdf5(path: string): SolverState {
  return reading(path, 'solver state', (file) => {
    const H5 = requireH5();
    const iter = readInt(file, 'iter', path);
    const currentStep = readInt(file, 'current_step', path);
    const props: Record<string, unknown> = { iter, current_step: currentStep };
    if (file.keys().includes('learned_net')) {
      const v = (file.get('learned_net') as H5Dataset).value;
      const s = typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;
      if (s === undefined) throw new SolverStateError(`${path}: 'learned_net' is not a string dataset`);
      const nul = s.indexOf('\0');
      props.learned_net = nul >= 0 ? s.slice(0, nul) : s;
    }
    const group = file.keys().includes('history') ? file.get('history') : null;
    if (!(group instanceof H5.Group)) throw new SolverStateError(`Error reading history from ${path}: no group 'history'`);
    const n = group.keys().length;
    const history: BlobProto[] = [];
    for (let i = 0; i < n; i++) {
      const ds = group.keys().includes(String(i)) ? group.get(String(i)) : null;
      if (!(ds instanceof H5.Dataset)) throw new SolverStateError(`${path}: history has ${n} entries but no dataset '${i}'`);
      const { shape, values } = datasetValues(ds, `history/${i}`, path);
      const blob = new Blob(shape, { dtype: ds.metadata.size === 8 ? 'float64' : 'float32' });
      blob.mutableCpuData().set(values);
      history.push(blob.toProto());
    }
    props.history = history;
    return createMessage<SolverState>('SolverState', props);
  });
}
