import { BlobProto_RawType as RawType, CaffeError, createMessage, hasField, type BlobProto } from '@caffe-ts/proto';
import type { DeviceAllocator } from './device.js';
import { BYTES_PER_ELEMENT, type DType, type FloatArray } from './dtype.js';
import { SyncedMemory } from './synced-memory.js';
import { copyFloats } from './host-memory.js';

/** Caffe limits blobs to 32 axes (Blob::kMaxBlobAxes). */
export const MAX_BLOB_AXES = 32;

export class BlobError extends CaffeError {
  override readonly name: string = 'BlobError';
}

/** A shape whose data would exceed the blob byte limit (see `maxBlobBytes`); thrown before allocating. */
export class BlobSizeError extends BlobError {
  override readonly name: string = 'BlobSizeError';
}

const DEFAULT_MAX_BLOB_BYTES = 4 * 2 ** 30;
let maxBlobBytesOverride: number | undefined;

/**
 * Bytes one blob's data may take: `setMaxBlobBytes`, else the CAFFE_TS_MAX_BLOB_BYTES environment
 * variable, else 4 GiB. A corrupt file claiming a huge shape then fails with a typed error
 * instead of exhausting memory.
 */
export function maxBlobBytes(): number {
  if (maxBlobBytesOverride !== undefined) return maxBlobBytesOverride;
  const env = typeof process === 'undefined' ? undefined : process.env?.['CAFFE_TS_MAX_BLOB_BYTES'];
  const n = env === undefined || env === '' ? NaN : Number(env);
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_MAX_BLOB_BYTES;
}

/** Set (or, with undefined, clear) the per-blob byte limit; returns the previous override. */
export function setMaxBlobBytes(bytes: number | undefined): number | undefined {
  if (bytes !== undefined && !(bytes > 0)) throw new BlobError(`setMaxBlobBytes: expected a positive byte count, got ${bytes}`);
  const prev = maxBlobBytesOverride;
  maxBlobBytesOverride = bytes;
  return prev;
}

export interface BlobOptions {
  dtype?: DType;
  /** Device allocator of the backend that owns this blob's device copy, if any. */
  device?: DeviceAllocator | null;
}

/**
 * An N-d array with data and diff (gradient), each a SyncedMemory. Reshaping reallocates
 * only when the new count exceeds the capacity, as in Caffe.
 */
export class Blob {
  readonly dtype: DType;
  readonly device: DeviceAllocator | null;
  private _shape: number[] = [];
  private _count = 0;
  private _capacity = 0;
  private _data: SyncedMemory | null = null;
  private _diff: SyncedMemory | null = null;

  constructor(shape: readonly number[] = [], options: BlobOptions = {}) {
    this.dtype = options.dtype ?? 'float32';
    this.device = options.device ?? null;
    this.reshape(shape);
  }

  get shape(): readonly number[] {
    return this._shape;
  }

  get numAxes(): number {
    return this._shape.length;
  }

  /** Product of the dims in [start, end) (all axes by default). */
  count(start = 0, end = this._shape.length): number {
    if (start === 0 && end === this._shape.length) return this._count;
    if (!(start >= 0 && start <= end && end <= this._shape.length)) {
      throw new BlobError(`count(${start}, ${end}) out of range for ${this._shape.length}-D blob with shape ${this.shapeString()}`);
    }
    let n = 1;
    for (let i = start; i < end; i++) n *= this._shape[i]!;
    return n;
  }

  /** Negative indices count from the end (-1 is the last axis). */
  canonicalAxisIndex(axis: number): number {
    const n = this._shape.length;
    if (axis < -n || axis >= Math.max(n, 1)) {
      throw new BlobError(`axis ${axis} out of range for ${n}-D blob with shape ${this.shapeString()}`);
    }
    return axis < 0 ? axis + n : axis;
  }

  shapeAt(axis: number): number {
    return this._shape[this.canonicalAxisIndex(axis)]!;
  }

  /**
   * Caffe's LegacyShape(index): the dim at `index` (negative from the end) of a blob of at most
   * four axes, 1 for an axis it does not have. Behind num/channels/height/width.
   */
  legacyShape(index: number): number {
    const n = this._shape.length;
    if (n > 4) throw new BlobError(`Cannot use legacy accessors on Blobs with > 4 axes (shape ${this.shapeString()})`);
    if (!Number.isInteger(index) || index >= 4 || index < -4) throw new BlobError(`legacy shape index ${index} is not in [-4, 4)`);
    if (index >= n || index < -n) return 1;
    return this.shapeAt(index);
  }

  /** The first of the four legacy axes (Caffe's num(); pycaffe's blob.num). */
  get num(): number {
    return this.legacyShape(0);
  }

  get channels(): number {
    return this.legacyShape(1);
  }

  get height(): number {
    return this.legacyShape(2);
  }

  get width(): number {
    return this.legacyShape(3);
  }

  /** "2 3 4 5 (120)", Caffe's shape_string(). */
  shapeString(): string {
    return `${this._shape.join(' ')}${this._shape.length ? ' ' : ''}(${this._count})`;
  }

  reshape(shape: readonly number[]): void {
    // A layer reshapes its tops on every forward, mostly to the shape they have: nothing to check
    // or change then (reading the byte limit's environment variable each time cost LeNet's
    // training step 0.15 ms). A new blob (no memory yet) runs the whole reshape, even to [].
    if (this._data !== null && this.hasShape(shape)) return;
    if (shape.length > MAX_BLOB_AXES) {
      throw new BlobError(`blob has ${shape.length} axes; at most ${MAX_BLOB_AXES} are supported`);
    }
    let count = 1;
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new BlobError(`invalid blob dimension ${d} in shape [${shape.join(', ')}]`);
      count *= d;
    }
    if (count > 2 ** 31 - 1) throw new BlobSizeError(`blob size ${count} exceeds the 2^31-1 element limit (shape [${shape.join(', ')}])`);
    const bytes = count * BYTES_PER_ELEMENT[this.dtype];
    if (bytes > maxBlobBytes()) {
      throw new BlobSizeError(
        `blob shape [${shape.join(', ')}] (${count} ${this.dtype} elements, ${bytes} bytes) exceeds the ${maxBlobBytes()}-byte limit per blob ` +
          '(set CAFFE_TS_MAX_BLOB_BYTES to raise it)',
      );
    }
    this._shape = shape.slice();
    this._count = count;
    if (count > this._capacity) {
      this._capacity = count;
      // The old memory is dead unless another blob shares it (then it stays theirs).
      this._data?.release();
      this._diff?.release();
      this._data = new SyncedMemory(count, this.dtype, this.device);
      this._diff = new SyncedMemory(count, this.dtype, this.device);
    }
  }
  private hasShape(shape: readonly number[]): boolean {
    const own = this._shape;
    if (shape.length !== own.length) return false;
    for (let i = 0; i < shape.length; i++) if (shape[i] !== own[i]) return false;
    return true;
  }

  reshapeLike(other: Blob): void {
    this.reshape(other.shape);
  }

  shapeEquals(other: Blob | readonly number[]): boolean {
    const s = Array.isArray(other) ? other : (other as Blob).shape;
    return s.length === this._shape.length && s.every((d, i) => d === this._shape[i]);
  }

  /** Flat index of the element at `indices` (missing trailing indices are 0). */
  offset(...indices: number[]): number {
    let off = 0;
    for (let i = 0; i < this._shape.length; i++) off = off * this._shape[i]! + (indices[i] ?? 0);
    return off;
  }

  get data(): SyncedMemory {
    return this.mem('data');
  }

  get diff(): SyncedMemory {
    return this.mem('diff');
  }

  /** The data memory's version (SyncedMemory.version): changes with every mutable access or re-sharing. */
  get dataVersion(): number {
    return this.data.version;
  }

  cpuData(): FloatArray {
    return this.data.cpuData(this._count);
  }
  mutableCpuData(): FloatArray {
    return this.data.mutableCpuData(this._count);
  }
  cpuDiff(): FloatArray {
    return this.diff.cpuData(this._count);
  }
  mutableCpuDiff(): FloatArray {
    return this.diff.mutableCpuData(this._count);
  }
  gpuData(): unknown {
    return this.data.gpuData();
  }
  mutableGpuData(): unknown {
    return this.data.mutableGpuData();
  }
  gpuDiff(): unknown {
    return this.diff.gpuData();
  }
  mutableGpuDiff(): unknown {
    return this.diff.mutableGpuData();
  }

  /** Make this blob use `other`'s data memory (views, as for in-place or shared params). */
  shareData(other: Blob): void {
    if (other.count() !== this._count) {
      throw new BlobError(`shareData: count mismatch (${other.shapeString()} vs ${this.shapeString()})`);
    }
    const mem = other.data;
    mem.retain();
    this._data?.release();
    this._data = mem;
  }

  shareDiff(other: Blob): void {
    if (other.count() !== this._count) {
      throw new BlobError(`shareDiff: count mismatch (${other.shapeString()} vs ${this.shapeString()})`);
    }
    const mem = other.diff;
    mem.retain();
    this._diff?.release();
    this._diff = mem;
  }

  /**
   * Let go of this blob's memory (device copies are freed once no other blob shares them); the
   * blob is left empty (shape [0]). For device backends, whose memory the garbage collector
   * cannot see.
   */
  dispose(): void {
    this._data?.release();
    this._diff?.release();
    this._data = null;
    this._diff = null;
    this._capacity = 0;
    this.reshape([0]);
  }

  /** data -= diff, the step Net::Update applies to every learnable param. */
  update(): void {
    const d = this.mutableCpuData();
    const g = this.cpuDiff();
    for (let i = 0; i < d.length; i++) d[i] = d[i]! - g[i]!;
  }

  asumData(): number {
    return asum(this.cpuData());
  }
  asumDiff(): number {
    return asum(this.cpuDiff());
  }
  sumsqData(): number {
    return sumsq(this.cpuData());
  }
  sumsqDiff(): number {
    return sumsq(this.cpuDiff());
  }
  scaleData(s: number): void {
    scaleInPlace(this.mutableCpuData(), s);
  }
  scaleDiff(s: number): void {
    scaleInPlace(this.mutableCpuDiff(), s);
  }

  /** Copy data (or diff) from `source`, reshaping when asked, as Caffe's CopyFrom. */
  copyFrom(source: Blob, { copyDiff = false, reshape = false } = {}): void {
    if (source.count() !== this._count || !this.shapeEquals(source)) {
      if (!reshape) throw new BlobError(`copyFrom: shape mismatch (${source.shapeString()} into ${this.shapeString()})`);
      this.reshapeLike(source);
    }
    if (copyDiff) copyFloats(this.mutableCpuDiff(), source.cpuDiff());
    else copyFloats(this.mutableCpuData(), source.cpuData());
  }

  /** Load shape and values from a BlobProto (new `shape` or legacy num/channels/height/width). */
  fromProto(proto: BlobProto, { reshape = true, what = 'blob' }: { reshape?: boolean; what?: string } = {}): void {
    const shape = blobProtoShape(proto, what);
    if (reshape) {
      try {
        this.reshape(shape);
      } catch (e) {
        if (e instanceof BlobSizeError) throw new BlobSizeError(`${what}: ${e.message}`, { cause: e });
        if (e instanceof BlobError) throw new BlobError(`${what}: ${e.message}`, { cause: e });
        throw e;
      }
    }
    else if (!this.shapeEqualsProto(proto)) {
      throw new BlobError(
        `${what}: shape mismatch; expected ${this.shapeString()}, file has ${shape.join(' ')} (${shape.reduce((a, b) => a * b, 1)})`,
      );
    }
    const n = this._count;
    const fill = (src: ArrayLike<number>, target: () => FloatArray, field: string) => {
      if (src.length === 0) return false;
      if (src.length !== n) throw new BlobError(`${what}: ${field} has ${src.length} values, shape ${this.shapeString()} needs ${n}`);
      target().set(src);
      return true;
    };
    fill(blobProtoData(proto, what), () => this.mutableCpuData(), 'data');
    fill(blobProtoDiff(proto, what), () => this.mutableCpuDiff(), 'diff');
  }

  /**
   * Caffe's ShapeEquals(BlobProto): a proto with legacy num/channels/height/width matches a blob
   * of at most 4 axes whose shape, left-padded with 1s to 4-D, is equal (old models store an
   * InnerProduct weight as 1 1 M N and a bias as 1 1 1 N).
   */
  shapeEqualsProto(proto: BlobProto): boolean {
    if (!hasLegacyShape(proto)) return this.shapeEquals(blobProtoShape(proto));
    if (this._shape.length > 4) return false;
    const padded = [1, 1, 1, 1, ...this._shape].slice(-4);
    return padded[0] === proto.num && padded[1] === proto.channels && padded[2] === proto.height && padded[3] === proto.width;
  }

  toProto(writeDiff = false): BlobProto {
    const dbl = this.dtype === 'float64';
    const props: Record<string, unknown> = { shape: { dim: this._shape.slice() } };
    // Typed copies (a snapshot, not a view): the codec writes them as packed bytes in one go.
    props[dbl ? 'double_data' : 'data'] = this.cpuData().slice();
    if (writeDiff) props[dbl ? 'double_diff' : 'diff'] = this.cpuDiff().slice();
    return createMessage<BlobProto>('BlobProto', props);
  }

  private mem(which: 'data' | 'diff'): SyncedMemory {
    const m = which === 'data' ? this._data : this._diff;
    if (m) return m;
    // A 0-element blob still hands out (empty) memory.
    const fresh = new SyncedMemory(0, this.dtype, this.device);
    if (which === 'data') this._data = fresh;
    else this._diff = fresh;
    return fresh;
  }
}

function hasLegacyShape(proto: BlobProto): boolean {
  return hasField(proto, 'num') || hasField(proto, 'channels') || hasField(proto, 'height') || hasField(proto, 'width');
}

/**
 * Shape stored in a BlobProto: the legacy 4-D num/channels/height/width when any of them is set
 * (Caffe checks those first), else `shape.dim`, else a flat shape of its values. `what` names the
 * blob in errors.
 */
export function blobProtoShape(proto: BlobProto, what = 'blob'): number[] {
  if (hasLegacyShape(proto)) return [proto.num, proto.channels, proto.height, proto.width];
  if (proto.shape) return proto.shape.dim.map(Number);
  const n = blobProtoData(proto, what).length;
  return n > 0 ? [n] : [];
}

/**
 * A BlobProto's values: `double_data` where stored, else `data`, else NVIDIA Caffe's `raw_data`
 * (little-endian half floats, floats or doubles, as `raw_data_type` says; half floats widen
 * exactly to float32). `what` names the blob in errors.
 */
export function blobProtoData(proto: BlobProto, what = 'blob'): ArrayLike<number> {
  if (proto.double_data.length > 0) return proto.double_data;
  if (proto.data.length > 0 || !proto.raw_data || proto.raw_data.length === 0) return proto.data;
  return rawValues(proto.raw_data, proto.raw_data_type, 'raw_data', what);
}

/** A BlobProto's diffs, as blobProtoData reads its values (`double_diff`, `diff`, `raw_diff`). */
export function blobProtoDiff(proto: BlobProto, what = 'blob'): ArrayLike<number> {
  if (proto.double_diff.length > 0) return proto.double_diff;
  if (proto.diff.length > 0 || !proto.raw_diff || proto.raw_diff.length === 0) return proto.diff;
  return rawValues(proto.raw_diff, proto.raw_diff_type, 'raw_diff', what);
}

/** The numbers in NVIDIA Caffe's raw bytes of `type`. */
function rawValues(bytes: Uint8Array, type: RawType, field: string, what: string): ArrayLike<number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = type === RawType.FLOAT16 ? 2 : type === RawType.FLOAT ? 4 : type === RawType.DOUBLE ? 8 : 0;
  if (size === 0) throw new BlobError(`${what}: ${field} of type ${RawType[type] ?? type} (integers) cannot be read as blob values`);
  if (bytes.length % size !== 0) throw new BlobError(`${what}: ${field} holds ${bytes.length} bytes, not a whole number of ${RawType[type]} values (${size} bytes each)`);
  const n = bytes.length / size;
  if (type === RawType.DOUBLE) return Float64Array.from({ length: n }, (_, i) => view.getFloat64(8 * i, true));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = size === 4 ? view.getFloat32(4 * i, true) : halfToFloat(view.getUint16(2 * i, true));
  return out;
}

/** An IEEE 754 half float's value from its 16 bits. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? Number.NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function asum(a: FloatArray): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]!);
  return s;
}

function sumsq(a: FloatArray): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
}

function scaleInPlace(a: FloatArray, s: number): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * s;
}
