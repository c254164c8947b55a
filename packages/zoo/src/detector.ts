import type { Net } from '@caffe-ts/net';
import { imageInput, resizeFloatImage, TransformError, type FloatImage, type ImagePreprocessing, type Transformer } from './transformer.js';

/** A window as pycaffe gives it: rows ymin … ymax − 1 and columns xmin … xmax − 1 of the image. */
export type DetectionWindow = [ymin: number, xmin: number, ymax: number, xmax: number];

export interface DetectorOptions extends ImagePreprocessing {
  /**
   * R-CNN's context padding: each window is widened so that, once warped to the input, a border
   * of `contextPad` pixels around it is context from the image (mean where the image ends).
   * 0 or absent: the window alone is warped to the input.
   */
  contextPad?: number;
}

/** Windows of one image to classify. */
export interface ImageWindows {
  /** How results name the image (pycaffe: its file name). */
  name: string;
  /** H×W×K, as loadImage gives it (RGB in [0, 1]). */
  image: FloatImage;
  windows: DetectionWindow[];
}

export interface WindowDetection {
  name: string;
  window: DetectionWindow;
  /** The net's first output for this window. */
  prediction: Float32Array;
}

/** Python 3's round() (and NumPy's): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Where pycaffe's Detector.crop takes a window's context from and where it puts it: the window
 * grown by size / (size − 2·pad) about its centre (its sides counted inclusively, as pycaffe
 * does) and rounded, `box` once cut to the image (ends excluded when sliced), and the warped
 * part's size and offset in the size × size crop (where the box went past the top or left edge,
 * the offset leaves mean). Roundings are Python's (halves to even).
 */
export function contextBox(
  window: DetectionWindow, size: number, pad: number, imageHeight: number, imageWidth: number,
): { box: [number, number, number, number]; padY: number; padX: number; warpH: number; warpW: number } {
  const [y0, x0, y1, x1] = window;
  const scale = size / (size - 2 * pad);
  const halfH = (y1 - y0 + 1) / 2, halfW = (x1 - x0 + 1) / 2;
  const cy = y0 + halfH, cx = x0 + halfW;
  const grown = [cy - scale * halfH, cx - scale * halfW, cy + scale * halfH, cx + scale * halfW].map(roundHalfEven);
  const scaleH = size / (grown[2]! - grown[0]! + 1), scaleW = size / (grown[3]! - grown[1]! + 1);
  const padY = roundHalfEven(Math.max(0, -grown[0]!) * scaleH);
  const padX = roundHalfEven(Math.max(0, -grown[1]!) * scaleW);
  const limits = [imageHeight, imageWidth, imageHeight, imageWidth];
  const box = grown.map((v, i) => Math.min(Math.max(v, 0), limits[i]!)) as [number, number, number, number];
  let warpH = roundHalfEven((box[2] - box[0] + 1) * scaleH);
  let warpW = roundHalfEven((box[3] - box[1] + 1) * scaleW);
  if (padY + warpH > size) warpH = size - padY;
  if (padX + warpW > size) warpW = size - padX;
  return { box, padY, padX, warpH, warpW };
}

/**
 * caffe.Detector: windowed detection, as R-CNN feature extraction does it. Each window of an
 * image is cropped (with `contextPad` pixels of surrounding context), warped to the net input's
 * size, preprocessed with a Transformer like Classifier's, and classified; the first output of
 * the net is each window's prediction. Windows run in batches of the input's first dimension.
 */
export class Detector {
  readonly transformer: Transformer;
  readonly inputName: string;
  readonly outputName: string;
  readonly contextPad: number;
  /** The input as an H×W×K image: [height, width, channels]. */
  readonly cropDims: [number, number, number];
  /** What fills context outside the image: the mean, back in the unprocessed image's space (H×W×K, or one value per channel). */
  readonly cropMean: Float32Array;

  constructor(
    readonly net: Net,
    options: DetectorOptions = {},
  ) {
    const { inputName, outputName, shape, transformer } = imageInput(net, options, 'windows');
    this.inputName = inputName;
    this.outputName = outputName;
    this.transformer = transformer;
    const [, c, h, w] = shape;
    const pad = options.contextPad ?? 0;
    if (!(Number.isInteger(pad) && pad >= 0 && 2 * pad < w)) throw new TransformError(`contextPad must be an integer from 0 to less than half the input width ${w}, got ${pad}`);
    this.contextPad = pad;
    this.cropDims = [h, w, c];
    this.cropMean = this.meanInImageSpace(options, c, h, w);
  }

  /**
   * The mean as the transformer subtracts it, mapped back to where crops are made (before the
   * channel swap and the raw scale): per pixel H×W×K for a mean image, else K values.
   */
  private meanInImageSpace(options: DetectorOptions, c: number, h: number, w: number): Float32Array {
    const mean = options.mean;
    if (mean === undefined) return new Float32Array(c);
    const raw = options.rawScale ?? 1;
    // Net channel j holds image channel swap[j]: image channel i comes from net channel swap⁻¹(i).
    const swap = options.channelSwap;
    const fromNet = (i: number) => (swap ? swap.indexOf(i) : i);
    if (Array.isArray(mean)) return Float32Array.from({ length: c }, (_, i) => mean[fromNet(i)]! / raw);
    const out = new Float32Array(h * w * c);
    for (let p = 0; p < h * w; p++) for (let i = 0; i < c; i++) out[p * c + i] = mean.data[fromNet(i) * h * w + p]! / raw;
    return out;
  }

  /**
   * pycaffe's Detector.crop: the window of `image` (exclusive ends), or with context padding the
   * window grown by the input's size / (size − 2·pad), cut to the image, warped into its place
   * on a canvas of the input's size filled with the mean.
   */
  crop(image: FloatImage, window: DetectionWindow): FloatImage {
    const [y0, x0, y1, x1] = window;
    const k = image.channels;
    const sub = (top: number, left: number, bottom: number, right: number): FloatImage => {
      const hh = bottom - top, ww = right - left;
      if (!(hh > 0 && ww > 0)) throw new TransformError(`window (${window.join(', ')}) is empty in a ${image.height}×${image.width} image`);
      const out = new Float32Array(hh * ww * k);
      for (let y = 0; y < hh; y++) {
        const s = ((top + y) * image.width + left) * k;
        out.set(image.data.subarray(s, s + ww * k), y * ww * k);
      }
      return { height: hh, width: ww, channels: k, data: out };
    };
    if (!window.every(Number.isInteger) || y0 < 0 || x0 < 0 || y1 > image.height || x1 > image.width) {
      throw new TransformError(`window (${window.join(', ')}) is not inside the ${image.height}×${image.width} image (ymin, xmin, ymax, xmax)`);
    }
    if (!this.contextPad) return sub(y0, x0, y1, x1);

    const [cropH, cropW] = this.cropDims;
    // pycaffe assumes a square input and takes its width.
    const { box, padY, padX, warpH, warpW } = contextBox(window, cropW, this.contextPad, image.height, image.width);
    const context = resizeFloatImage(sub(box[0], box[1], box[2], box[3]), warpH, warpW);
    const out = new Float32Array(cropH * cropW * k);
    const perPixel = this.cropMean.length !== k;
    for (let p = 0; p < cropH * cropW; p++) for (let i = 0; i < k; i++) out[p * k + i] = this.cropMean[perPixel ? p * k + i : i]!;
    for (let y = 0; y < warpH && padY + y < cropH; y++) {
      for (let x = 0; x < warpW && padX + x < cropW; x++) {
        out.set(context.data.subarray((y * warpW + x) * k, (y * warpW + x + 1) * k), ((padY + y) * cropW + padX + x) * k);
      }
    }
    return { height: cropH, width: cropW, channels: k, data: out };
  }

  /** pycaffe's Detector.detect_windows: a prediction for every window of every image, in order. */
  detectWindows(images: readonly ImageWindows[]): WindowDetection[] {
    const jobs: { name: string; window: DetectionWindow; crop: FloatImage }[] = [];
    for (const { name, image, windows } of images) {
      if (image.channels !== this.cropDims[2]) throw new TransformError(`image ${name} has ${image.channels} channels, input ${this.inputName} takes ${this.cropDims[2]}`);
      for (const window of windows) jobs.push({ name, window, crop: this.crop(image, window) });
    }
    const input = this.net.blob(this.inputName);
    const [batch, c, h, w] = input.shape as [number, number, number, number];
    const size = c * h * w;
    const out: WindowDetection[] = [];
    for (let start = 0; start < jobs.length; start += batch) {
      const part = jobs.slice(start, start + batch);
      if (input.shape[0] !== part.length) {
        input.reshape([part.length, c, h, w]);
        this.net.reshape();
      }
      const data = input.mutableCpuData();
      part.forEach((job, i) => data.set(this.transformer.preprocess(this.inputName, job.crop), i * size));
      this.net.forward();
      const result = this.net.blob(this.outputName);
      const per = result.count(1);
      const scores = result.cpuData();
      part.forEach((job, i) => out.push({ name: job.name, window: job.window, prediction: Float32Array.from(scores.subarray(i * per, (i + 1) * per)) }));
    }
    if (input.shape[0] !== batch) {
      input.reshape([batch, c, h, w]);
      this.net.reshape();
    }
    return out;
  }
}
