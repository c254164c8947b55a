/*
 * The arithmetic of Caffe's DataTransformer, shared by DataTransformer (main thread) and the
 * decode workers. Like pixel-codec.ts it imports nothing from @caffe-ts, so workers start light.
 *
 * Determinism across threads: the random choices (mirror, crop offsets) are drawn on the main
 * thread, in record order, as uniforms (`TransformDraws`); the crop offset is then
 * floor(u · (size − crop + 1)), which is exactly what Rng.int(size − crop + 1) would have returned
 * with that draw. So a batch is bit-identical whichever thread transforms which image.
 */

/** What a DataTransformer applies, as plain data (structured-cloneable for workers). */
export interface TransformSpec {
  cropSize: number;
  scale: number;
  /** TRAIN crops at random offsets; otherwise the crop is centred. */
  train: boolean;
  /** The mean image (C·H·W values) of mean_file, or null. */
  meanImage: Float32Array | null;
  meanShape: number[] | null;
  /** mean_file as written in transform_param, for messages. */
  meanFile: string;
  meanValues: number[];
}

/**
 * The random choices for one image, drawn in Caffe's order (mirror if `mirror` is set, then the
 * two crop offsets if cropping in TRAIN): `mirrored` and the two uniforms in [0, 1) that place the
 * crop (0 when not drawn).
 */
export interface TransformDraws {
  mirrored: boolean;
  hU: number;
  wU: number;
}

/** Where `transform` took its crop from and whether it mirrored (Caffe's crop_bbox/do_mirror). */
export interface TransformInfo {
  hOff: number;
  wOff: number;
  mirrored: boolean;
}

/** The pixels of one image in Caffe's planar Datum layout: uint8 `pixels`, else `floats`. */
export interface PlanarSource {
  channels: number;
  height: number;
  width: number;
  pixels: Uint8Array;
  floats: ArrayLike<number>;
}

/** [C, h, w] after cropping, or a message saying why the image cannot be transformed. */
export function transformedShape(spec: TransformSpec, channels: number, height: number, width: number): [number, number, number] | string {
  if (!(channels > 0)) return `Datum has ${channels} channels; expected at least 1`;
  const c = spec.cropSize;
  if (height < c || width < c) return `crop_size ${c} is larger than the Datum (${height}×${width})`;
  return [channels, c > 0 ? c : height, c > 0 ? c : width];
}

/** Why the mean (image or values) cannot apply to a C×H×W image, or null when it can. */
export function meanProblem(spec: TransformSpec, channels: number, height: number, width: number): string | null {
  if (spec.meanImage) {
    const s = spec.meanShape!;
    const tail = s.length >= 3 ? s.slice(-3) : s;
    const fits =
      spec.meanImage.length === channels * height * width && (s.length < 3 || (tail[0] === channels && tail[1] === height && tail[2] === width));
    if (!fits) return `mean_file '${spec.meanFile}' has shape ${s.join(' ')}, which does not match the Datum's ${channels} ${height} ${width}`;
  }
  const n = spec.meanValues.length;
  if (n > 0 && n !== 1 && n !== channels) return `Specify either 1 mean_value or as many as channels: ${channels} (got ${n})`;
  return null;
}

/** The crop offsets and mirror decision for an image of height × width. */
export function placeCrop(spec: TransformSpec, draws: TransformDraws, height: number, width: number): TransformInfo {
  const c = spec.cropSize;
  let hOff = 0;
  let wOff = 0;
  if (c > 0) {
    if (spec.train) {
      hOff = Math.floor(draws.hU * (height - c + 1));
      wOff = Math.floor(draws.wU * (width - c + 1));
    } else {
      hOff = Math.floor((height - c) / 2);
      wOff = Math.floor((width - c) / 2);
    }
  }
  return { hOff, wOff, mirrored: draws.mirrored };
}

/**
 * Write `(pixel − mean) · scale` of the crop at `place` into out[offset …] (C·h·w values, planar,
 * mirrored left to right when asked). The caller has checked the shape, the mean and the room in
 * `out` (transformedShape, meanProblem).
 */
export function transformPlanar(
  spec: TransformSpec,
  src: PlanarSource,
  place: TransformInfo,
  out: Float32Array | Float64Array,
  offset: number,
): void {
  const { channels, height: dh, width: dw, pixels, floats } = src;
  const hasUint8 = pixels.length > 0;
  const c = spec.cropSize;
  const height = c > 0 ? c : dh;
  const width = c > 0 ? c : dw;
  const { hOff, wOff, mirrored } = place;
  const mean = spec.meanImage;
  const mvs = spec.meanValues;
  const scale = spec.scale;
  if (hasUint8 && !mean && !mirrored && out instanceof Float32Array) {
    // The common case (bytes, at most a mean value per channel, no mirror) without the choices
    // in the loop over pixels: a training batch of MNIST digits is read on the main thread.
    for (let ch = 0; ch < channels; ch++) {
      const mv = mvs.length === 0 ? 0 : mvs.length === 1 ? mvs[0]! : mvs[ch]!;
      for (let h = 0; h < height; h++) {
        const srcRow = (ch * dh + hOff + h) * dw + wOff;
        const dstRow = offset + (ch * height + h) * width;
        for (let w = 0; w < width; w++) out[dstRow + w] = (pixels[srcRow + w]! - mv) * scale;
      }
    }
    return;
  }
  for (let ch = 0; ch < channels; ch++) {
    const mv = mvs.length === 0 ? 0 : mvs.length === 1 ? mvs[0]! : mvs[ch]!;
    for (let h = 0; h < height; h++) {
      const srcRow = (ch * dh + hOff + h) * dw + wOff;
      const dstRow = offset + (ch * height + h) * width;
      for (let w = 0; w < width; w++) {
        const s = srcRow + w;
        const v = hasUint8 ? pixels[s]! : floats[s]!;
        const m = mean ? mean[s]! : mv;
        out[mirrored ? dstRow + width - 1 - w : dstRow + w] = (v - m) * scale;
      }
    }
  }
}
