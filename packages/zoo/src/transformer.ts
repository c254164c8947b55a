import { readFile } from 'node:fs/promises';
import { Blob } from '@caffe-ts/blob';
import { decodeImage } from '@caffe-ts/io-leveldb';
import { CaffeError, decodeBlobProto } from '@caffe-ts/proto';
import { readFileSync } from 'node:fs';
import { readNpy } from './npy.js';

/** A mistake in preprocessing settings or inputs (shapes that do not fit, unknown input names). */
export class TransformError extends CaffeError {
  override readonly name = 'TransformError';
}

/**
 * A float image laid out as NumPy's H×W×K arrays that pycaffe works on: rows of interleaved
 * pixels. `loadImage` gives RGB in [0, 1], as caffe.io.load_image does.
 */
export interface FloatImage {
  height: number;
  width: number;
  channels: number;
  data: Float32Array;
}

/**
 * Read an image file as caffe.io.load_image: RGB (or one gray channel when `color` is false),
 * floats in [0, 1]. Decoding goes through @caffe-ts/io-leveldb (OpenCV's decoder semantics).
 */
export async function loadImage(path: string, { color = true }: { color?: boolean } = {}): Promise<FloatImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new TransformError(`Cannot read image ${path}: ${(e as Error).message}`, { cause: e });
  }
  const img = await decodeImage(bytes, color ? 'color' : 'gray', path);
  const out = new Float32Array(img.height * img.width * img.channels);
  const k = img.channels;
  for (let p = 0; p < img.height * img.width; p++) {
    // decodeImage gives BGR like OpenCV; load_image gives RGB.
    for (let c = 0; c < k; c++) out[p * k + c] = img.data[p * k + (k === 3 ? 2 - c : c)]! / 255;
  }
  return { height: img.height, width: img.width, channels: k, data: out };
}

/**
 * Bilinear resize of a float image (caffe.io.resize_image, interp order 1): pixel centres
 * aligned, edges replicated, no rounding.
 */
export function resizeFloatImage(img: FloatImage, height: number, width: number): FloatImage {
  if (!(height > 0 && width > 0) || !Number.isInteger(height) || !Number.isInteger(width)) {
    throw new TransformError(`cannot resize to ${height}×${width}: both sides must be positive integers`);
  }
  const { height: sh, width: sw, channels: k, data: src } = img;
  if (sh === height && sw === width) return { ...img, data: src.slice() };
  const out = new Float32Array(height * width * k);
  const taps = (n: number, sn: number) => {
    const i0 = new Int32Array(n);
    const i1 = new Int32Array(n);
    const f = new Float32Array(n);
    const scale = sn / n;
    for (let d = 0; d < n; d++) {
      let s = (d + 0.5) * scale - 0.5;
      if (s < 0) s = 0;
      const lo = Math.min(Math.floor(s), sn - 1);
      i0[d] = lo;
      i1[d] = Math.min(lo + 1, sn - 1);
      f[d] = s - lo;
    }
    return { i0, i1, f };
  };
  const ys = taps(height, sh);
  const xs = taps(width, sw);
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y]! * sw * k;
    const r1 = ys.i1[y]! * sw * k;
    const fy = ys.f[y]!;
    for (let x = 0; x < width; x++) {
      const c0 = xs.i0[x]! * k;
      const c1 = xs.i1[x]! * k;
      const fx = xs.f[x]!;
      for (let c = 0; c < k; c++) {
        const top = src[r0 + c0 + c]! * (1 - fx) + src[r0 + c1 + c]! * fx;
        const bottom = src[r1 + c0 + c]! * (1 - fx) + src[r1 + c1 + c]! * fx;
        out[(y * width + x) * k + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return { height, width, channels: k, data: out };
}

/** The window [y0, y1) × [x0, x1) of `img`, optionally mirrored left-right. */
export function cropFloatImage(img: FloatImage, y0: number, x0: number, h: number, w: number, mirror = false): FloatImage {
  if (y0 < 0 || x0 < 0 || y0 + h > img.height || x0 + w > img.width) {
    throw new TransformError(`crop ${h}×${w} at (${y0}, ${x0}) does not fit in a ${img.height}×${img.width} image`);
  }
  const k = img.channels;
  const out = new Float32Array(h * w * k);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = mirror ? x0 + w - 1 - x : x0 + x;
      const s = ((y0 + y) * img.width + sx) * k;
      out.set(img.data.subarray(s, s + k), (y * w + x) * k);
    }
  }
  return { height: h, width: w, channels: k, data: out };
}

/** Where pycaffe puts the centre crop: image centre ± half the crop, truncated to integers. */
function centerOrigin(size: number, crop: number): number {
  return Math.trunc(size / 2 - crop / 2);
}

/** The top-left corners (y, x) of caffe.io.oversample's crops: 4 corners then the centre. */
export function oversampleOrigins(height: number, width: number, cropH: number, cropW: number): [number, number][] {
  const origins: [number, number][] = [];
  for (const y of [0, height - cropH]) for (const x of [0, width - cropW]) origins.push([y, x]);
  origins.push([centerOrigin(height, cropH), centerOrigin(width, cropW)]);
  return origins;
}

/**
 * caffe.io.oversample: for each image, the 4 corner crops and the centre crop, then the same 5
 * mirrored left-right — 10 crops per image, in that order.
 */
export function oversample(images: readonly FloatImage[], cropH: number, cropW: number): FloatImage[] {
  const out: FloatImage[] = [];
  const plain: FloatImage[][] = images.map((img) =>
    oversampleOrigins(img.height, img.width, cropH, cropW).map(([y, x]) => cropFloatImage(img, y, x, cropH, cropW)),
  );
  const mirrored = images.map((img) =>
    oversampleOrigins(img.height, img.width, cropH, cropW).map(([y, x]) => cropFloatImage(img, y, x, cropH, cropW, true)),
  );
  // As pycaffe: each image's 10 crops are consecutive (the groups Classifier averages over).
  images.forEach((_, i) => out.push(...plain[i]!, ...mirrored[i]!));
  return out;
}

/** A mean: one value per channel, or a full C×H×W array. */
export type Mean = number[] | { shape: number[]; data: Float32Array | Float64Array };

/**
 * A mean image from a `.binaryproto` (compute_image_mean's output, 1×C×H×W) or a `.npy`
 * (C×H×W), returned as C×H×W.
 */
export function loadMean(path: string): { shape: number[]; data: Float32Array | Float64Array } {
  if (path.endsWith('.npy')) {
    const a = readNpy(path);
    return a.shape.length === 4 && a.shape[0] === 1 ? { shape: a.shape.slice(1), data: a.data } : a;
  }
  const proto = decodeBlobProto(readFileSync(path));
  const blob = new Blob([]);
  blob.fromProto(proto, { what: `mean file ${path}` });
  const shape = blob.shape.length === 4 ? blob.shape.slice(1) : [...blob.shape];
  return { shape, data: Float32Array.from(blob.cpuData()) };
}

/** Per-channel average of a C×H×W mean (what to use when the mean's size differs from the input). */
export function channelMean(mean: { shape: number[]; data: Float32Array | Float64Array }): number[] {
  const [c, ...rest] = mean.shape;
  const plane = rest.reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let i = 0; i < c!; i++) {
    let s = 0;
    for (let j = 0; j < plane; j++) s += mean.data[i * plane + j]!;
    out.push(s / plane);
  }
  return out;
}

interface InputSettings {
  transpose?: number[];
  channelSwap?: number[];
  rawScale?: number;
  mean?: Mean;
  inputScale?: number;
}

/**
 * caffe.io.Transformer: turns H×W×K float images into a net's C×H×W input and back. Steps of
 * `preprocess`, in pycaffe's order: resize to the input's spatial size, transpose (usually
 * `[2, 0, 1]`: H×W×K → K×H×W), channel swap (e.g. `[2, 1, 0]`: RGB → BGR), ×raw_scale, −mean,
 * ×input_scale.
 */
export class Transformer {
  private readonly inputs: Map<string, number[]>;
  private readonly settings = new Map<string, InputSettings>();

  /** `inputs`: input name → its blob shape (N×C×H×W). */
  constructor(inputs: Record<string, readonly number[]>) {
    this.inputs = new Map(Object.entries(inputs).map(([k, v]) => [k, [...v]]));
  }

  private get(name: string): InputSettings {
    if (!this.inputs.has(name)) throw new TransformError(`${name} is not one of the net inputs: ${[...this.inputs.keys()].join(', ')}`);
    let s = this.settings.get(name);
    if (!s) this.settings.set(name, (s = {}));
    return s;
  }

  setTranspose(name: string, order: number[]): void {
    const shape = this.inputs.get(name);
    if (shape && order.length !== shape.length - 1) throw new TransformError(`Transpose order needs to have the same number of dimensions as the input (${shape.length - 1}), got ${order.length}`);
    this.get(name).transpose = [...order];
  }

  setChannelSwap(name: string, order: number[]): void {
    const shape = this.inputs.get(name);
    if (shape && order.length !== shape[1]) throw new TransformError(`Channel swap needs to have the same number of dimensions as the input channels (${shape[1]}), got ${order.length}`);
    this.get(name).channelSwap = [...order];
  }

  setRawScale(name: string, scale: number): void {
    this.get(name).rawScale = scale;
  }

  setInputScale(name: string, scale: number): void {
    this.get(name).inputScale = scale;
  }

  /** A per-channel mean (length C) or an elementwise C×H×W mean matching the input's spatial size. */
  setMean(name: string, mean: Mean): void {
    const shape = this.inputs.get(name);
    this.get(name);
    if (Array.isArray(mean)) {
      if (mean.length !== shape![1]) throw new TransformError(`Mean channels incompatible with input: ${mean.length} values for ${shape![1]} channels`);
    } else {
      const [c, h, w] = mean.shape;
      if (mean.shape.length !== 3 || c !== shape![1] || h !== shape![2] || w !== shape![3]) {
        throw new TransformError(`Mean shape (${mean.shape.join(', ')}) incompatible with input shape (${shape!.slice(1).join(', ')})`);
      }
    }
    this.get(name).mean = Array.isArray(mean) ? [...mean] : mean;
  }

  /** Preprocess one H×W×K image into the net's C×H×W layout. */
  preprocess(name: string, image: FloatImage): Float32Array {
    const s = this.get(name);
    const shape = this.inputs.get(name)!;
    const [, C, H, W] = shape as [number, number, number, number];
    let img = image;
    if (img.height !== H || img.width !== W) img = resizeFloatImage(img, H, W);
    const k = img.channels;
    if (k !== C) throw new TransformError(`image has ${k} channels, input ${name} takes ${C}`);
    // Transpose: the image's axes are (H, W, K) = (0, 1, 2); the output's axis i is input axis order[i].
    const order = s.transpose ?? [2, 0, 1];
    if (order.join() !== '2,0,1') {
      throw new TransformError(`only the H×W×K → K×H×W transpose [2, 0, 1] is supported for images, got [${order.join(', ')}]`);
    }
    const out = new Float32Array(C * H * W);
    const plane = H * W;
    const swap = s.channelSwap;
    const raw = s.rawScale ?? 1;
    const inScale = s.inputScale ?? 1;
    const mean = s.mean;
    for (let c = 0; c < C; c++) {
      const srcC = swap ? swap[c]! : c;
      for (let p = 0; p < plane; p++) {
        let v = img.data[p * k + srcC]! * raw;
        if (mean) v -= Array.isArray(mean) ? mean[c]! : mean.data[c * plane + p]!;
        out[c * plane + p] = v * inScale;
      }
    }
    return out;
  }

  /** Invert `preprocess`: C×H×W net data back to an H×W×K image. */
  deprocess(name: string, data: Float32Array | Float64Array): FloatImage {
    const s = this.get(name);
    const [, C, H, W] = this.inputs.get(name)! as [number, number, number, number];
    const plane = H * W;
    const out = new Float32Array(C * plane);
    const swap = s.channelSwap;
    const raw = s.rawScale ?? 1;
    const inScale = s.inputScale ?? 1;
    const mean = s.mean;
    for (let c = 0; c < C; c++) {
      const dstC = swap ? swap[c]! : c;
      for (let p = 0; p < plane; p++) {
        let v = data[c * plane + p]! / inScale;
        if (mean) v += Array.isArray(mean) ? mean[c]! : mean.data[c * plane + p]!;
        out[p * C + dstC] = v / raw;
      }
    }
    return { height: H, width: W, channels: C, data: out };
  }
}

/** The preprocessing options pycaffe's Classifier and Detector take. */
export interface ImagePreprocessing {
  mean?: Mean;
  inputScale?: number;
  rawScale?: number;
  channelSwap?: number[];
}

/**
 * A net's first input (N×C×H×W) and first output, with a Transformer set up for images as
 * pycaffe's Classifier and Detector set theirs: H×W×K → K×H×W, then `options`. `what` says what
 * the input is fed (for messages).
 */
export function imageInput(
  net: { name: string; inputBlobNames: readonly string[]; outputBlobNames: readonly string[]; blob(name: string): { shape: readonly number[] } },
  options: ImagePreprocessing,
  what: string,
): { inputName: string; outputName: string; shape: [number, number, number, number]; transformer: Transformer } {
  if (net.inputBlobNames.length === 0) throw new TransformError(`net '${net.name}' has no Input layer to feed ${what} to`);
  const inputName = net.inputBlobNames[0]!;
  const shape = net.blob(inputName).shape;
  if (shape.length !== 4) throw new TransformError(`input ${inputName} is ${shape.length}-D; ${what} need N×C×H×W`);
  const transformer = new Transformer({ [inputName]: shape });
  transformer.setTranspose(inputName, [2, 0, 1]);
  if (options.mean !== undefined) transformer.setMean(inputName, options.mean);
  if (options.inputScale !== undefined) transformer.setInputScale(inputName, options.inputScale);
  if (options.rawScale !== undefined) transformer.setRawScale(inputName, options.rawScale);
  if (options.channelSwap !== undefined) transformer.setChannelSwap(inputName, options.channelSwap);
  return { inputName, outputName: net.outputBlobNames[0]!, shape: [...shape] as [number, number, number, number], transformer };
}
