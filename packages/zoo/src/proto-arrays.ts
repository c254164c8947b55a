/**
 * pycaffe's caffe.io conversions between arrays and Caffe's messages: BlobProto (binaryproto
 * files, caffemodel params), BlobProtoVector and Datum (database records). An array is a shape and
 * its row-major data, as NumPy arrays are to pycaffe (and NpyArray here).
 */
import { createMessage, decodeBlobProtoVector, encodeBlobProtoVector, hasField, type BlobProto, type Datum } from '@caffe-ts/proto';
import { blobProtoData } from '@caffe-ts/blob';
import { TransformError } from './transformer.js';

/** A row-major N-d array. */
export interface ProtoArray<T extends Float32Array | Float64Array | Uint8Array = Float32Array | Float64Array | Uint8Array> {
  shape: number[];
  data: T;
}

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * caffe.io.blobproto_to_array: a BlobProto's values (its diff with `diff: true`) shaped by the
 * legacy num/channels/height/width when any of them is set, else by `shape`. Float values come
 * from `data` (`diff`), or from `double_data` (`double_diff`) where only those are stored, or
 * from NVIDIA Caffe's `raw_data`.
 */
export function blobProtoToArray(blob: BlobProto, options: { diff?: boolean } = {}): ProtoArray<Float32Array | Float64Array> {
  const floats = options.diff ? blob.diff : blob.data;
  const doubles = options.diff ? blob.double_diff : blob.double_data;
  // NVIDIA Caffe's raw_data (half floats and others) where data and double_data are empty.
  const raw = !options.diff && floats.length === 0 && doubles.length === 0 ? blobProtoData(blob) : null;
  const data = raw ? (raw instanceof Float64Array ? raw : Float32Array.from(raw)) : floats.length > 0 || doubles.length === 0 ? Float32Array.from(floats) : Float64Array.from(doubles);
  const legacy = ['num', 'channels', 'height', 'width'].some((f) => hasField(blob, f));
  const shape = legacy ? [blob.num, blob.channels, blob.height, blob.width] : (blob.shape?.dim ?? []).map(Number);
  if (count(shape) !== data.length) {
    throw new TransformError(`BlobProto holds ${data.length} ${options.diff ? 'diff' : 'data'} values, but its shape ${shape.join('×') || '(none)'} needs ${count(shape)}`);
  }
  return { shape, data };
}

/** caffe.io.array_to_blobproto: `shape` and float `data` (and `diff`, when given, of the same shape). */
export function arrayToBlobProto(array: ProtoArray, diff?: ProtoArray): BlobProto {
  const check = (a: ProtoArray, what: string) => {
    if (count(a.shape) !== a.data.length) throw new TransformError(`${what} has ${a.data.length} values for shape ${a.shape.join('×')}`);
  };
  check(array, 'array');
  if (diff) {
    check(diff, 'diff');
    if (diff.shape.join() !== array.shape.join()) throw new TransformError(`diff shape ${diff.shape.join('×')} differs from the array's ${array.shape.join('×')}`);
  }
  return createMessage<BlobProto>('BlobProto', {
    shape: { dim: [...array.shape] },
    data: Float32Array.from(array.data),
    ...(diff ? { diff: Float32Array.from(diff.data) } : {}),
  });
}

/** caffe.io.arraylist_to_blobprotovector_str: a serialized BlobProtoVector of the arrays. */
export function arraysToBlobProtoVector(arrays: readonly ProtoArray[]): Uint8Array {
  return encodeBlobProtoVector(createMessage('BlobProtoVector', { blobs: arrays.map((a) => arrayToBlobProto(a)) }));
}

/** caffe.io.blobprotovector_str_to_arraylist: the arrays of a serialized BlobProtoVector. */
export function blobProtoVectorToArrays(bytes: Uint8Array): ProtoArray<Float32Array | Float64Array>[] {
  return decodeBlobProtoVector(bytes).blobs.map((b) => blobProtoToArray(b));
}

/**
 * caffe.io.array_to_datum: a C×H×W array as a Datum, uint8 arrays as `data` bytes, any other as
 * `float_data`; with `label` when given.
 */
export function arrayToDatum(array: ProtoArray, label?: number): Datum {
  if (array.shape.length !== 3) throw new TransformError(`Incorrect array shape: a Datum holds C×H×W, got ${array.shape.join('×') || 'a scalar'}`);
  if (count(array.shape) !== array.data.length) throw new TransformError(`array has ${array.data.length} values for shape ${array.shape.join('×')}`);
  const [channels, height, width] = array.shape as [number, number, number];
  return createMessage<Datum>('Datum', {
    channels,
    height,
    width,
    ...(array.data instanceof Uint8Array ? { data: array.data.slice() } : { float_data: Array.from(array.data) }),
    ...(label !== undefined ? { label } : {}),
  });
}

/** caffe.io.datum_to_array: a Datum's pixels as C×H×W, uint8 from `data` or floats from `float_data` (not the label). */
export function datumToArray(datum: Datum): ProtoArray<Uint8Array | Float32Array> {
  if (datum.encoded) throw new TransformError('datum_to_array: the Datum holds an encoded image; decode it first (decodeDatumImage)');
  const shape = [datum.channels, datum.height, datum.width];
  const data = datum.data.length > 0 ? datum.data.slice() : Float32Array.from(datum.float_data);
  if (data.length !== count(shape)) throw new TransformError(`Datum holds ${data.length} values, but ${shape.join('×')} needs ${count(shape)}`);
  return { shape, data };
}
