import type { Rng } from '@caffe-ts/blob';
import { cropImage, resizeImage, rgbToGray, type PixelImage } from './image-io.js';
import { clipBox, makeBox, RESIZE_FIT_LARGE_SIZE_AND_PAD, RESIZE_FIT_SMALL_SIZE, type NormBox, type ResizePolicy } from './ssd-bbox.js';

/*
 * The SSD fork's image transforms (util/im_transforms.cpp and the cv::Mat half of
 * data_transformer.cpp) on 8-bit interleaved images (PixelImage, BGR like a cv::Mat):
 * resize policies with their interpolations and padding, photometric distortions through
 * OpenCV's 8-bit HSV conversion, zoom-out on a mean-filled canvas, crops to normalised boxes, and
 * the noise options that need no OpenCV-only algorithm.
 *
 * Resamplers: LINEAR is resizeImage (OpenCV's INTER_LINEAR bit for bit, see pixel-codec.ts);
 * NEAREST is OpenCV's INTER_NEAREST index rule (exact); AREA is OpenCV's rule (box averaging
 * with fractional coverage when shrinking, its two-tap "area" interpolation otherwise); CUBIC
 * (a = −0.75, 4 taps) and LANCZOS4 (8 taps, normalised) are OpenCV's kernels on centre-aligned
 * coordinates with replicated edges. AREA, CUBIC and LANCZOS4 are computed in floating point and
 * rounded once, where OpenCV uses fixed-point weights, so their pixels may differ from OpenCV's by
 * a unit or so; the geometry is the same.
 */

const f = Math.fround;

/** saturate_cast<uchar>(x): round half to even (cvRound), clamp to [0, 255]. */
export function saturateU8(x: number): number {
  if (!(x > 0)) return 0; // NaN too
  if (x >= 255) return 255;
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 === 1 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------
// Resizing

/** ResizeParameter.Interp_mode (OpenCV's names). */
export const INTERP_LINEAR = 1;
export const INTERP_AREA = 2;
export const INTERP_NEAREST = 3;
export const INTERP_CUBIC = 4;
export const INTERP_LANCZOS4 = 5;

/** ResizeParameter.Pad_mode. */
export const PAD_CONSTANT = 1;
export const PAD_MIRRORED = 2;
export const PAD_REPEAT_NEAREST = 3;

interface AxisTaps {
  idx: Int32Array[];
  w: Float64Array[];
}

const clampIndex = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);

function cubicWeights(x: number): number[] {
  const A = -0.75;
  const w0 = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  const w1 = ((A + 2) * x - (A + 3)) * x * x + 1;
  const w2 = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  return [w0, w1, w2, 1 - w0 - w1 - w2];
}

function lanczos4Weights(x: number): number[] {
  const out: number[] = [];
  if (x < 1e-7) return [0, 0, 0, 1, 0, 0, 0, 0];
  let sum = 0;
  for (let k = 0; k < 8; k++) {
    const t = Math.PI * (x + 3 - k);
    const v = (Math.sin(t) * Math.sin(t / 4)) / ((t * t) / 4);
    out.push(v);
    sum += v;
  }
  return out.map((v) => v / sum);
}

/** For each output coordinate along one axis: the source indices it reads and their weights. */
function axisTaps(src: number, dst: number, interp: number, areaShrink: boolean): AxisTaps {
  const scale = src / dst;
  const idx: Int32Array[] = [];
  const w: Float64Array[] = [];
  for (let d = 0; d < dst; d++) {
    let taps: number[];
    let weights: number[];
    if (interp === INTERP_NEAREST) {
      taps = [Math.min(Math.floor(d * scale), src - 1)];
      weights = [1];
    } else if (interp === INTERP_AREA && areaShrink) {
      // Average of the source cells [d·scale, (d+1)·scale), partly covered cells weighted by coverage.
      const a = d * scale;
      const b = a + scale;
      taps = [];
      weights = [];
      for (let s = Math.floor(a); s < Math.min(Math.ceil(b), src); s++) {
        const cover = Math.min(b, s + 1) - Math.max(a, s);
        if (cover > 1e-12) {
          taps.push(s);
          weights.push(cover / scale);
        }
      }
    } else if (interp === INTERP_AREA) {
      // OpenCV's INTER_AREA when enlarging: two taps, the fraction measured from the cell edge.
      const s = Math.floor(d * scale);
      let fx = d + 1 - (s + 1) / scale;
      fx = fx <= 0 ? 0 : fx - Math.floor(fx);
      taps = [clampIndex(s, src), clampIndex(s + 1, src)];
      weights = [1 - fx, fx];
    } else {
      const x = (d + 0.5) * scale - 0.5;
      const s = Math.floor(x);
      const fx = x - s;
      if (interp === INTERP_CUBIC) {
        taps = [s - 1, s, s + 1, s + 2].map((i) => clampIndex(i, src));
        weights = cubicWeights(fx);
      } else {
        taps = Array.from({ length: 8 }, (_, k) => clampIndex(s - 3 + k, src));
        weights = lanczos4Weights(fx);
      }
    }
    idx.push(Int32Array.from(taps));
    w.push(Float64Array.from(weights));
  }
  return { idx, w };
}

/** A separable resize with per-output-pixel taps, in floating point, rounded once. */
function separableResize(img: PixelImage, height: number, width: number, interp: number): PixelImage {
  const { height: sh, width: sw, channels: cn, data } = img;
  const shrink = interp === INTERP_AREA && sh >= height && sw >= width;
  const xt = axisTaps(sw, width, interp, shrink);
  const yt = axisTaps(sh, height, interp, shrink);
  const rows = new Float64Array(sh * width * cn);
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < width; x++) {
      const ti = xt.idx[x]!;
      const tw = xt.w[x]!;
      for (let c = 0; c < cn; c++) {
        let acc = 0;
        for (let k = 0; k < ti.length; k++) acc += tw[k]! * data[(y * sw + ti[k]!) * cn + c]!;
        rows[(y * width + x) * cn + c] = acc;
      }
    }
  }
  const out = new Uint8Array(height * width * cn);
  for (let y = 0; y < height; y++) {
    const ti = yt.idx[y]!;
    const tw = yt.w[y]!;
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < cn; c++) {
        let acc = 0;
        for (let k = 0; k < ti.length; k++) acc += tw[k]! * rows[(ti[k]! * width + x) * cn + c]!;
        out[(y * width + x) * cn + c] = saturateU8(acc);
      }
    }
  }
  return { height, width, channels: cn, data: out };
}

/** cv::resize(img, Size(width, height), interp) for the interpolations ResizeParameter names. */
export function resizeWith(img: PixelImage, height: number, width: number, interp: number = INTERP_LINEAR): PixelImage {
  if (interp === INTERP_LINEAR) return resizeImage(img, height, width);
  if (!(height > 0 && width > 0)) throw new Error(`cannot resize to ${height}×${width}: both sides must be positive`);
  if (height === img.height && width === img.width) return { ...img, data: img.data.slice() };
  return separableResize(img, height, width, interp);
}

/** The source index a border pixel copies (cv::borderInterpolate for REFLECT_101 and REPLICATE). */
function borderIndex(p: number, n: number, mode: number): number {
  if (p >= 0 && p < n) return p;
  if (mode === PAD_REPEAT_NEAREST || n === 1) return clampIndex(p, n);
  // REFLECT_101: gfedcb|abcdefgh|gfedcba
  let q = p;
  while (q < 0 || q >= n) q = q < 0 ? -q : 2 * n - q - 2;
  return q;
}

/**
 * cv::copyMakeBorder: `top`/`bottom` rows and `left`/`right` columns added around the image,
 * filled with `value` (per channel, CONSTANT), mirrored (MIRRORED = BORDER_REFLECT_101) or
 * repeated from the edge (REPEAT_NEAREST = BORDER_REPLICATE).
 */
export function padImage(img: PixelImage, top: number, bottom: number, left: number, right: number, mode: number, value: readonly number[]): PixelImage {
  const { height: h, width: w, channels: cn, data } = img;
  const H = h + top + bottom;
  const W = w + left + right;
  const out = new Uint8Array(H * W * cn);
  const fill = Array.from({ length: cn }, (_, c) => saturateU8(value[c] ?? value[0] ?? 0));
  for (let y = 0; y < H; y++) {
    const sy = y - top;
    const rowInside = sy >= 0 && sy < h;
    for (let x = 0; x < W; x++) {
      const sx = x - left;
      const o = (y * W + x) * cn;
      if (rowInside && sx >= 0 && sx < w) {
        const s = (sy * w + sx) * cn;
        for (let c = 0; c < cn; c++) out[o + c] = data[s + c]!;
      } else if (mode === PAD_CONSTANT) {
        for (let c = 0; c < cn; c++) out[o + c] = fill[c]!;
      } else {
        const s = (borderIndex(sy, h, mode) * w + borderIndex(sx, w, mode)) * cn;
        for (let c = 0; c < cn; c++) out[o + c] = data[s + c]!;
      }
    }
  }
  return { height: H, width: W, channels: cn, data: out };
}

/** A ResizeParameter as plain data. */
export interface ResizeSpec extends ResizePolicy {
  padMode: number;
  padValue: number[];
  /** The interpolations to choose from, uniformly (empty: LINEAR). */
  interpModes: number[];
}

/**
 * Pick one of n equally likely interpolations as the fork's roll_weighted_die: one uniform draw
 * in [0, Σp) against the float cumulative sums.
 */
export function rollDie(n: number, rng: Rng): number {
  const p = f(1 / n);
  const cum: number[] = [];
  let acc = 0;
  for (let i = 0; i < n; i++) cum.push((acc = f(acc + p)));
  const v = f(rng.uniformIn(0, cum[n - 1]!));
  const i = cum.findIndex((c) => c >= v);
  return i < 0 ? n - 1 : i;
}

/**
 * The fork's ApplyResize: the interpolation drawn among `interpModes` (one draw when any are
 * listed), then WARP (to height × width), FIT_SMALL_SIZE (the smaller side to the policy's, aspect
 * kept) or FIT_LARGE_SIZE_AND_PAD (the larger side to the policy's, aspect kept, then padded
 * equally on both sides to height × width).
 */
export function applyResize(img: PixelImage, spec: ResizeSpec, rng: Rng): PixelImage {
  const interp = spec.interpModes.length > 0 ? spec.interpModes[rollDie(spec.interpModes.length, rng)]! : INTERP_LINEAR;
  const { height: newH, width: newW } = spec;
  const origAspect = f(img.width / img.height);
  const newAspect = f(newW / newH);
  if (spec.mode === RESIZE_FIT_LARGE_SIZE_AND_PAD) {
    if (origAspect > newAspect) {
      const h = Math.floor(f(newW / origAspect));
      const resized = resizeWith(img, h, newW, interp);
      const pad = Math.floor((newH - h) / 2);
      return padImage(resized, pad, newH - h - pad, 0, 0, spec.padMode, spec.padValue);
    }
    const w = Math.floor(f(origAspect * newH));
    const resized = resizeWith(img, newH, w, interp);
    const pad = Math.floor((newW - w) / 2);
    return padImage(resized, 0, 0, pad, newW - w - pad, spec.padMode, spec.padValue);
  }
  if (spec.mode === RESIZE_FIT_SMALL_SIZE) {
    if (origAspect < newAspect) return resizeWith(img, Math.floor(f(newW / origAspect)), newW, interp);
    return resizeWith(img, newH, Math.floor(f(origAspect * newH)), interp);
  }
  return resizeWith(img, newH, newW, interp);
}

// ---------------------------------------------------------------------------------------------
// HSV (OpenCV's 8-bit conversions, hue in [0, 180))

const HSV_SHIFT = 12;
const roundInt = (x: number) => saturateU8Int(x);
function saturateU8Int(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const SDIV = Int32Array.from({ length: 256 }, (_, i) => (i === 0 ? 0 : roundInt((255 << HSV_SHIFT) / i)));
const HDIV = Int32Array.from({ length: 256 }, (_, i) => (i === 0 ? 0 : roundInt((180 << HSV_SHIFT) / (6 * i))));

/** cvtColor(BGR2HSV) on 8-bit pixels: a new interleaved image of H (0–179), S, V. */
export function bgrToHsv(img: PixelImage): PixelImage {
  const { data } = img;
  const out = new Uint8Array(data.length);
  const half = 1 << (HSV_SHIFT - 1);
  for (let p = 0; p < data.length; p += 3) {
    const b = data[p]!;
    const g = data[p + 1]!;
    const r = data[p + 2]!;
    const v = Math.max(b, g, r);
    const diff = v - Math.min(b, g, r);
    const s = (diff * SDIV[v]! + half) >> HSV_SHIFT;
    let h = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * HDIV[diff]! + half) >> HSV_SHIFT;
    if (h < 0) h += 180;
    out[p] = h > 255 ? 255 : h;
    out[p + 1] = s;
    out[p + 2] = v;
  }
  return { ...img, data: out };
}

const SECTORS = [
  [1, 3, 0],
  [1, 0, 2],
  [3, 0, 1],
  [0, 2, 1],
  [0, 1, 3],
  [2, 1, 0],
] as const;

/** cvtColor(HSV2BGR) on 8-bit pixels (float arithmetic as OpenCV's; hue wraps modulo 180). */
export function hsvToBgr(img: PixelImage): PixelImage {
  const { data } = img;
  const out = new Uint8Array(data.length);
  const inv255 = f(1 / 255);
  const hscale = f(6 / 180);
  const tab = [0, 0, 0, 0];
  for (let p = 0; p < data.length; p += 3) {
    let h = f(data[p]! * hscale);
    const s = f(data[p + 1]! * inv255);
    const v = f(data[p + 2]! * inv255);
    let b: number;
    let g: number;
    let r: number;
    if (s === 0) {
      b = g = r = v;
    } else {
      while (h >= 6) h = f(h - 6);
      let sector = Math.floor(h);
      h = f(h - sector);
      if (sector < 0 || sector >= 6) {
        sector = 0;
        h = 0;
      }
      tab[0] = v;
      tab[1] = f(v * f(1 - s));
      tab[2] = f(v * f(1 - f(s * h)));
      tab[3] = f(v * f(1 - f(s * f(1 - h))));
      const sd = SECTORS[sector]!;
      b = tab[sd[0]]!;
      g = tab[sd[1]]!;
      r = tab[sd[2]]!;
    }
    out[p] = saturateU8(f(b * 255));
    out[p + 1] = saturateU8(f(g * 255));
    out[p + 2] = saturateU8(f(r * 255));
  }
  return { ...img, data: out };
}

// ---------------------------------------------------------------------------------------------
// Photometric distortions (DistortionParameter)

export interface DistortSpec {
  brightnessProb: number;
  brightnessDelta: number;
  contrastProb: number;
  contrastLower: number;
  contrastUpper: number;
  hueProb: number;
  hueDelta: number;
  saturationProb: number;
  saturationLower: number;
  saturationUpper: number;
  randomOrderProb: number;
}

/** Why a DistortionParameter cannot be used (the fork's CHECKs), or null. */
export function distortProblem(d: DistortSpec): string | null {
  if (!(d.brightnessDelta >= 0)) return `distort_param brightness_delta must be non-negative (got ${d.brightnessDelta})`;
  if (!(d.contrastUpper >= d.contrastLower)) return `distort_param contrast_upper ${d.contrastUpper} is below contrast_lower ${d.contrastLower}`;
  if (!(d.contrastLower >= 0)) return `distort_param contrast_lower must be non-negative (got ${d.contrastLower})`;
  if (!(d.saturationUpper >= d.saturationLower)) {
    return `distort_param saturation_upper ${d.saturationUpper} is below saturation_lower ${d.saturationLower}`;
  }
  if (!(d.saturationLower >= 0)) return `distort_param saturation_lower must be non-negative (got ${d.saturationLower})`;
  if (!(d.hueDelta >= 0)) return `distort_param hue_delta must be non-negative (got ${d.hueDelta})`;
  return null;
}

/** Every value → saturate(v·alpha + beta) (Mat::convertTo on 8-bit data, float arithmetic). */
function convertScale(data: Uint8Array, alpha: number, beta: number): Uint8Array {
  const a = f(alpha);
  const b = f(beta);
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = saturateU8(f(f(v * a) + b));
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = lut[data[i]!]!;
  return out;
}

/** Add `delta` to every value (AdjustBrightness); 0 leaves the image as it is. */
export function adjustBrightness(img: PixelImage, delta: number): PixelImage {
  return Math.abs(delta) > 0 ? { ...img, data: convertScale(img.data, 1, delta) } : img;
}

/** Multiply every value by `factor` (AdjustContrast); within 1e-3 of 1 leaves it as it is. */
export function adjustContrast(img: PixelImage, factor: number): PixelImage {
  return Math.abs(f(factor - 1)) > f(1e-3) ? { ...img, data: convertScale(img.data, factor, 0) } : img;
}

function needsColor(img: PixelImage, what: string): void {
  if (img.channels !== 3) throw new Error(`${what} needs a 3-channel BGR image (got ${img.channels} channels)`);
}

/**
 * Multiply the HSV saturation by `factor` (AdjustSaturation). The fork's test for skipping a factor
 * of 1 (`fabs(delta - 1) != 1e-3`) always passes, so it always converts, and so does this.
 */
export function adjustSaturation(img: PixelImage, factor: number): PixelImage {
  needsColor(img, 'saturation distortion');
  const hsv = bgrToHsv(img);
  const d = hsv.data;
  const a = f(factor);
  for (let p = 1; p < d.length; p += 3) d[p] = saturateU8(f(d[p]! * a));
  return hsvToBgr(hsv);
}

/**
 * Add `delta` to the HSV hue (AdjustHue). As in the fork the shifted hue saturates to [0, 255]
 * (it is an 8-bit channel) and the conversion back wraps it modulo 180.
 */
export function adjustHue(img: PixelImage, delta: number): PixelImage {
  if (!(Math.abs(delta) > 0)) return img;
  needsColor(img, 'hue distortion');
  const hsv = bgrToHsv(img);
  const d = hsv.data;
  const b = f(delta);
  for (let p = 0; p < d.length; p += 3) d[p] = saturateU8(f(d[p]! + b));
  return hsvToBgr(hsv);
}

/**
 * The fork's ApplyDistort. Draws, in order: one uniform choosing the order (> 0.5: brightness,
 * contrast, saturation, hue; else brightness, saturation, hue, contrast), then for each
 * distortion a uniform against its probability and, when it applies, its value uniformly in its
 * range (brightness in [−delta, delta], contrast and saturation in [lower, upper], hue in
 * [−delta, delta]); last a uniform against random_order_prob and, when it applies, a shuffle of
 * the channels.
 */
export function applyDistort(img: PixelImage, d: DistortSpec, rng: Rng): PixelImage {
  const u = () => f(rng.uniform());
  const brightness = (im: PixelImage) => (u() < d.brightnessProb ? adjustBrightness(im, f(rng.uniformIn(-d.brightnessDelta, d.brightnessDelta))) : im);
  const contrast = (im: PixelImage) => (u() < d.contrastProb ? adjustContrast(im, f(rng.uniformIn(d.contrastLower, d.contrastUpper))) : im);
  const saturation = (im: PixelImage) =>
    u() < d.saturationProb ? adjustSaturation(im, f(rng.uniformIn(d.saturationLower, d.saturationUpper))) : im;
  const hue = (im: PixelImage) => (u() < d.hueProb ? adjustHue(im, f(rng.uniformIn(-d.hueDelta, d.hueDelta))) : im);
  let out = img;
  if (u() > 0.5) {
    out = hue(saturation(contrast(brightness(out))));
  } else {
    out = contrast(hue(saturation(brightness(out))));
  }
  if (u() < d.randomOrderProb) out = shuffleChannels(out, rng);
  return out;
}

/** The image's channels in a random order (Fisher–Yates with `rng`). */
export function shuffleChannels(img: PixelImage, rng: Rng): PixelImage {
  const cn = img.channels;
  const order = Array.from({ length: cn }, (_, i) => i);
  for (let i = cn - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const out = new Uint8Array(img.data.length);
  for (let p = 0; p < img.data.length; p += cn) for (let c = 0; c < cn; c++) out[p + c] = img.data[p + order[c]!]!;
  return { ...img, data: out };
}

// ---------------------------------------------------------------------------------------------
// Geometry: crop to a box, zoom out

/**
 * The part of the image inside a normalised box (clipped to the image), as the fork's CropImage:
 * the corners are scaled to pixels and truncated, the size is the truncated difference (at least
 * one pixel here; the fork would fail on an empty crop).
 */
export function cropToBox(img: PixelImage, box: NormBox): PixelImage {
  const c = clipBox(box);
  const x0 = f(c.xmin * img.width);
  const y0 = f(c.ymin * img.height);
  const x1 = f(c.xmax * img.width);
  const y1 = f(c.ymax * img.height);
  const x = Math.min(Math.trunc(x0), img.width - 1);
  const y = Math.min(Math.trunc(y0), img.height - 1);
  const w = Math.max(1, Math.min(Math.trunc(f(x1 - x0)), img.width - x));
  const h = Math.max(1, Math.min(Math.trunc(f(y1 - y0)), img.height - y));
  return cropImage(img, x, y, w, h);
}

/**
 * Zoom out (the fork's ExpandImage): a canvas `ratio` times the image's size (truncated), filled
 * with `fill` (the mean values, rounded to bytes; zeros without), with the image placed at an
 * offset drawn uniformly (first y, then x, each floored). Returns the canvas and where the whole
 * canvas lies in the original image's normalised coordinates (the box boxes are projected into).
 */
export function expandImage(img: PixelImage, ratio: number, fill: readonly number[], rng: Rng): { image: PixelImage; box: NormBox } {
  const { height: ih, width: iw, channels: cn } = img;
  const H = Math.trunc(f(ih * ratio));
  const W = Math.trunc(f(iw * ratio));
  const hOff = Math.floor(f(rng.uniformIn(0, H - ih)));
  const wOff = Math.floor(f(rng.uniformIn(0, W - iw)));
  const box = makeBox(-wOff / iw, -hOff / ih, (W - wOff) / iw, (H - hOff) / ih);
  const out = new Uint8Array(H * W * cn);
  if (fill.length > 0) {
    const px = Array.from({ length: cn }, (_, c) => saturateU8(fill[c] ?? fill[0]!));
    for (let p = 0; p < out.length; p += cn) for (let c = 0; c < cn; c++) out[p + c] = px[c]!;
  }
  for (let r = 0; r < ih; r++) out.set(img.data.subarray(r * iw * cn, (r + 1) * iw * cn), ((hOff + r) * W + wOff) * cn);
  return { image: { height: H, width: W, channels: cn, data: out }, box };
}

// ---------------------------------------------------------------------------------------------
// Noise (NoiseParameter)

/** The NoiseParameter options this package implements; the others need OpenCV's own algorithms. */
export interface NoiseSpec {
  decolorize: boolean;
  erode: boolean;
  posterize: boolean;
  inverse: boolean;
  saltpepper: boolean;
  saltpepperFraction: number;
  saltpepperValues: number[];
  convertToHsv: boolean;
}

/** NoiseParameter options that are refused (they need OpenCV-only algorithms). */
export const UNSUPPORTED_NOISE_OPTIONS = ['gauss_blur', 'hist_eq', 'clahe', 'jpeg', 'convert_to_lab'] as const;

/** 3×3 erosion with OpenCV's 3×3 MORPH_ELLIPSE (a cross), pixels outside the image ignored. */
function erode(img: PixelImage): PixelImage {
  const { height: h, width: w, channels: cn, data } = img;
  const out = new Uint8Array(data.length);
  const offs = [
    [0, 0],
    [-1, 0],
    [1, 0],
    [0, -1],
    [0, 1],
  ] as const;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < cn; c++) {
        let m = 255;
        for (const [dy, dx] of offs) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          m = Math.min(m, data[(yy * w + xx) * cn + c]!);
        }
        out[(y * w + x) * cn + c] = m;
      }
    }
  }
  return { ...img, data: out };
}

/**
 * The fork's ApplyNoise for the supported options, in its order: decolorize (gray, back to
 * BGR), erode, posterize (colorReduce with div 64), inverse, salt-and-pepper (⌊fraction·w·h⌋
 * pixels at random positions set to the values), convert_to_hsv. As in the fork, `prob` is not
 * consulted: the options apply to every image.
 */
export function applyNoise(img: PixelImage, n: NoiseSpec, rng: Rng): PixelImage {
  let out = img;
  const cn = img.channels;
  if (n.decolorize) {
    needsColor(out, 'noise_param decolorize');
    const d = new Uint8Array(out.data.length);
    for (let p = 0; p < d.length; p += 3) {
      const g = rgbToGray(out.data[p + 2]!, out.data[p + 1]!, out.data[p]!);
      d[p] = d[p + 1] = d[p + 2] = g;
    }
    out = { ...out, data: d };
  }
  if (n.erode) out = erode(out);
  if (n.posterize) {
    const d = new Uint8Array(out.data.length);
    for (let i = 0; i < d.length; i++) d[i] = Math.floor(out.data[i]! / 64) * 64 + 32;
    out = { ...out, data: d };
  }
  if (n.inverse) out = { ...out, data: out.data.map((v) => 255 - v) };
  if (n.saltpepper) {
    if (n.saltpepperValues.length !== 1 && n.saltpepperValues.length !== cn) {
      throw new Error(`noise_param saltpepper needs 1 saltpepper_param value or as many as channels (${cn}); got ${n.saltpepperValues.length}`);
    }
    const vals = Array.from({ length: cn }, (_, c) => (n.saltpepperValues[c] ?? n.saltpepperValues[0]!) & 255);
    const count = Math.floor(f(f(n.saltpepperFraction) * out.width * out.height));
    const d = out.data.slice();
    for (let k = 0; k < count; k++) {
      const i = rng.int(out.width);
      const j = rng.int(out.height);
      for (let c = 0; c < cn; c++) d[(j * out.width + i) * cn + c] = vals[c]!;
    }
    out = { ...out, data: d };
  }
  if (n.convertToHsv) {
    needsColor(out, 'noise_param convert_to_hsv');
    out = bgrToHsv(out);
  }
  return out;
}
