import type { Net } from '@caffe-ts/net';
import { cropFloatImage, imageInput, oversample, resizeFloatImage, type FloatImage, type ImagePreprocessing, type Transformer } from './transformer.js';

export interface ClassifierOptions extends ImagePreprocessing {
  /** Size images are resized to before cropping (pycaffe's image_dims); default: the input's crop size. */
  imageDims?: [number, number];
}

/**
 * caffe.Classifier: resize images to `imageDims`, take the centre crop (or 10 crops with
 * `oversample`) at the net input's size, preprocess with a Transformer, forward, and return the
 * first output's scores per image (averaged over the 10 crops when oversampling).
 */
export class Classifier {
  readonly transformer: Transformer;
  readonly inputName: string;
  readonly outputName: string;
  readonly imageDims: [number, number];
  readonly cropDims: [number, number];

  constructor(
    readonly net: Net,
    options: ClassifierOptions = {},
  ) {
    const { inputName, outputName, shape, transformer } = imageInput(net, options, 'images');
    this.inputName = inputName;
    this.outputName = outputName;
    this.transformer = transformer;
    this.cropDims = [shape[2], shape[3]];
    this.imageDims = options.imageDims ?? this.cropDims;
  }

  /** The net-sized crops `predict` feeds for these images. */
  crops(images: readonly FloatImage[], oversampleCrops = true): FloatImage[] {
    const [ih, iw] = this.imageDims;
    const [ch, cw] = this.cropDims;
    const resized = images.map((img) => resizeFloatImage(img, ih, iw));
    if (oversampleCrops) return oversample(resized, ch, cw);
    const y = Math.trunc(ih / 2 - ch / 2);
    const x = Math.trunc(iw / 2 - cw / 2);
    return resized.map((img) => cropFloatImage(img, y, x, ch, cw));
  }

  /** Class scores (the net's first output) per image. */
  predict(images: readonly FloatImage[], oversampleCrops = true): Float32Array[] {
    if (images.length === 0) return [];
    const crops = this.crops(images, oversampleCrops);
    const input = this.net.blob(this.inputName);
    const [, c, h, w] = input.shape as [number, number, number, number];
    input.reshape([crops.length, c, h, w]);
    this.net.reshape();
    const data = input.mutableCpuData();
    const size = c * h * w;
    crops.forEach((crop, i) => data.set(this.transformer.preprocess(this.inputName, crop), i * size));
    this.net.forward();
    const out = this.net.blob(this.outputName);
    const scores = out.cpuData();
    const classes = out.count(1);
    const per = oversampleCrops ? 10 : 1;
    return images.map((_, i) => {
      const avg = new Float32Array(classes);
      for (let k = 0; k < per; k++) {
        const base = (i * per + k) * classes;
        for (let j = 0; j < classes; j++) avg[j]! += scores[base + j]! / per;
      }
      return avg;
    });
  }
}

/** Indices of the `k` highest scores, highest first (ties: lower index first). */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k);
}
