import { type Blob, copyFloats, type FloatArray, logger } from '@caffe-ts/blob';
import { hasField, type Datum } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

const log = logger('memory_data_layer.ts');

/**
 * What `addDatumVector` needs to apply a `transform_param`: the shape of one transformed Datum
 * ([1, C, H, W]) and the transform itself into `out` at `offset`. `DataTransformer` from
 * `@caffe-ts/io-leveldb` has exactly this shape (this package cannot import it: io-leveldb
 * depends on layers).
 */
export interface DatumTransformer {
  inferBlobShape(datum: Datum): number[];
  transform(datum: Datum, out: FloatArray, offset?: number): unknown;
}

/**
 * MemoryData (Caffe's MemoryDataLayer): serves batches of `memory_data_param.batch_size` items
 * of channels × height × width values, plus their labels, from arrays the program hands over:
 * - `reset(data, labels, n)`: n items (a multiple of the batch size) from the caller's arrays,
 *   kept by reference as Caffe keeps the pointers, and served untransformed (a transform_param
 *   only draws Caffe's warning);
 * - `addDatumVector(datums, transformer?)`: Datums converted into arrays of the layer's own,
 *   through the transformer when one is given (Caffe's DataTransformer; without a
 *   `transform_param` the conversion is the identity, which this layer does itself).
 * Each forward copies the next batch into the tops (data N×C×H×W, label N×1×1×1 as Caffe's
 * forward shapes it; the set-up gives the label shape [N]) and wraps after the last batch.
 * Nothing is backpropagated.
 */
export class MemoryDataLayer extends Layer {
  readonly type = 'MemoryData';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, exactNumTopBlobs: 2 };

  private batch = 0;
  private ch = 0;
  private h = 0;
  private w = 0;
  /** Values per item: channels × height × width. */
  private size = 0;
  private data: FloatArray | null = null;
  private labels: FloatArray | null = null;
  private n = 0;
  private pos = 0;
  private newData = false;

  get batchSize(): number {
    return this.batch;
  }

  get channels(): number {
    return this.ch;
  }

  get height(): number {
    return this.h;
  }

  get width(): number {
    return this.w;
  }

  /** True from addDatumVector until its items have all been served once (Caffe's has_new_data_). */
  get hasNewData(): boolean {
    return this.newData;
  }

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const p = this.param.memory_data_param;
    this.batch = p?.batch_size ?? 0;
    this.ch = p?.channels ?? 0;
    this.h = p?.height ?? 0;
    this.w = p?.width ?? 0;
    this.size = this.ch * this.h * this.w;
    this.check(
      this.batch * this.size > 0,
      () =>
        'batch_size, channels, height, and width must be specified and positive in memory_data_param ' +
        `(got batch_size ${this.batch}, channels ${this.ch}, height ${this.h}, width ${this.w})`,
    );
    top[0]!.reshape([this.batch, this.ch, this.h, this.w]);
    top[1]!.reshape([this.batch]);
    this.data = null;
    this.labels = null;
  }

  /**
   * Serve `n` items from `data` (n·C·H·W values) and `labels` (n values), from the first batch.
   * The arrays are kept, not copied: later writes to them reach the batches served after.
   */
  reset(data: FloatArray, labels: FloatArray, n: number): void {
    if (hasField(this.param, 'transform_param')) log.warn(`${this.type} does not transform array data on Reset()`);
    this.serve(data, labels, n);
  }

  private serve(data: FloatArray, labels: FloatArray, n: number): void {
    this.check(Number.isInteger(n) && n > 0, () => `reset needs a positive whole number of items (got n = ${n})`);
    this.check(n % this.batch === 0, () => `n must be a multiple of batch size (n = ${n}, batch_size = ${this.batch})`);
    this.check(
      data.length >= n * this.size,
      () => `reset: data holds ${data.length} values; ${n} items of ${this.ch}×${this.h}×${this.w} need ${n * this.size}`,
    );
    this.check(labels.length >= n, () => `reset: labels holds ${labels.length} values; ${n} items need ${n}`);
    this.data = data;
    this.labels = labels;
    this.n = n;
    this.pos = 0;
  }

  /**
   * Serve these Datums (a multiple of the batch size) with their labels. Each Datum must be
   * channels × height × width once transformed. A layer with a `transform_param` needs the
   * `transformer` that applies it, e.g. `new DataTransformer(layer.param.transform_param,
   * layer.phase, layer.rng)` from @caffe-ts/io-leveldb.
   */
  addDatumVector(datums: readonly Datum[], transformer?: DatumTransformer): void {
    this.check(!this.newData, () => "Can't add data until current data has been consumed.");
    const num = datums.length;
    this.check(num > 0, () => 'There is no datum to add.');
    this.check(
      num % this.batch === 0,
      () => `The added data must be a multiple of the batch size (${num} datums, batch_size ${this.batch}).`,
    );
    if (!transformer && hasField(this.param, 'transform_param')) {
      this.fail(
        'has a transform_param: pass the DataTransformer that applies it to addDatumVector(datums, transformer) ' +
          '(new DataTransformer(layer.param.transform_param, layer.phase, layer.rng) from @caffe-ts/io-leveldb)',
      );
    }
    const data = this.dtype === 'float64' ? new Float64Array(num * this.size) : new Float32Array(num * this.size);
    const labels = this.dtype === 'float64' ? new Float64Array(num) : new Float32Array(num);
    datums.forEach((d, i) => {
      if (transformer) {
        const [, c, h, w] = transformer.inferBlobShape(d);
        this.check(
          c === this.ch && h === this.h && w === this.w,
          () => `datum ${i} transforms to ${c}×${h}×${w}; memory_data_param says ${this.ch}×${this.h}×${this.w}`,
        );
        transformer.transform(d, data, i * this.size);
      } else {
        this.copyDatum(d, i, data);
      }
      labels[i] = d.label;
    });
    // Caffe goes through Reset here and warns about transform_param; this data is transformed.
    this.serve(data, labels, num);
    this.newData = true;
  }

  /** Change the batch size (Caffe's set_batch_size); the tops take it at the next forward. */
  setBatchSize(newSize: number): void {
    this.check(!this.newData, () => "Can't change batch_size until current data has been consumed.");
    this.check(Number.isInteger(newSize) && newSize > 0, () => `batch_size must be a positive integer (got ${newSize})`);
    // Caffe would read past the items here; refuse instead.
    if (this.data) {
      this.check(
        this.n % newSize === 0 && this.pos % newSize === 0,
        () => `batch_size ${newSize} does not divide the ${this.n} items set by reset (next item ${this.pos}); reset first`,
      );
    }
    this.batch = newSize;
  }

  /** Tops are shaped at set-up and by each forward (Caffe's data layers have an empty Reshape). */
  override reshape(_bottom: Blob[], _top: Blob[]): void {}

  protected override forwardCpu(_bottom: Blob[], top: Blob[]): void {
    const data = this.data;
    const labels = this.labels;
    if (!data || !labels) {
      this.fail('MemoryDataLayer needs to be initialized by calling Reset (reset(data, labels, n) or addDatumVector(datums))');
    }
    const b = this.batch;
    top[0]!.reshape([b, this.ch, this.h, this.w]);
    top[1]!.reshape([b, 1, 1, 1]);
    copyFloats(top[0]!.mutableCpuData(), data.subarray(this.pos * this.size, (this.pos + b) * this.size));
    top[1]!.mutableCpuData().set(labels.subarray(this.pos, this.pos + b));
    this.pos = (this.pos + b) % this.n;
    if (this.pos === 0) this.newData = false;
  }

  /** Data layers have nothing to backpropagate to. */
  protected override backwardCpu(_top: Blob[], _propagateDown: boolean[], _bottom: Blob[]): void {}

  /** The identity DataTransformer: uint8 pixels or float_data, same C×H×W as the layer. */
  private copyDatum(d: Datum, i: number, out: FloatArray): void {
    this.check(!d.encoded, () => `datum ${i} is encoded (a JPEG/PNG file); caffe-ts cannot decode images`);
    this.check(
      d.channels === this.ch && d.height === this.h && d.width === this.w,
      () => `datum ${i} is ${d.channels}×${d.height}×${d.width}; memory_data_param says ${this.ch}×${this.h}×${this.w}`,
    );
    const src: ArrayLike<number> = d.data.length > 0 ? d.data : d.float_data;
    this.check(
      src.length === this.size,
      () => `datum ${i} holds ${src.length} ${d.data.length > 0 ? 'data bytes' : 'float_data values'}; ${this.ch}×${this.h}×${this.w} needs ${this.size}`,
    );
    const base = i * this.size;
    for (let k = 0; k < this.size; k++) out[base + k] = src[k]!;
  }
}

export const memoryDataLayerDef: LayerDef<MemoryDataLayer> = { type: 'MemoryData', create: (p, ctx) => new MemoryDataLayer(p, ctx) };
