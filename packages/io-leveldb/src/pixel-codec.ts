import { readFile } from 'node:fs/promises';
import type { OutputInfo } from 'sharp';

/*
 * The pixel work of image reading, shared by the main thread (image-io.ts) and the decode workers
 * (decode-worker.ts). It imports nothing from @caffe-ts so that a worker starts with sharp alone;
 * failures are PixelErrors, which image-io.ts turns into DataErrors with the same message.
 * See image-io.ts for how the numbers follow OpenCV's.
 */

/** An 8-bit image laid out as a cv::Mat: rows of interleaved pixels, colour channels in BGR(A) order. */
export interface PixelImage {
  height: number;
  width: number;
  /** 1 (gray), 3 (BGR) or, when decoded 'unchanged', 2 (gray+alpha) or 4 (BGRA). */
  channels: number;
  /** height·width·channels bytes. */
  data: Uint8Array;
}

/**
 * How to decode, as OpenCV's read flags: `color` (IMREAD_COLOR: always 3 channels, BGR), `gray`
 * (IMREAD_GRAYSCALE: 1 channel) or `unchanged` (the file's own channels, what Caffe's
 * DecodeDatumToCVMatNative asks for).
 */
export type ImreadMode = 'color' | 'gray' | 'unchanged';

/** A failure of the pixel code; image-io.ts rethrows it as a DataError with the same message. */
export class PixelError extends Error {
  override readonly name: string = 'PixelError';
}

type SharpFn = typeof import('sharp').default;
let sharpLoading: Promise<SharpFn> | null = null;

/**
 * sharp, imported on first use: its native binary is an optional install (npm's
 * `--omit=optional`, a platform it has no build for), and without it only image reading and
 * writing should fail, with this message, not every import of this package.
 */
export function loadSharp(): Promise<SharpFn> {
  sharpLoading ??= import('sharp').then(
    (m) => m.default,
    (e: unknown) => {
      sharpLoading = null;
      throw new PixelError(
        `reading or writing images needs the 'sharp' package and its native build for ${process.platform}-${process.arch}, ` +
          `which could not be loaded (reinstall without --omit=optional): ${describe(e).split('\n')[0]}`,
        { cause: e },
      );
    },
  );
  return sharpLoading;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

export function isPng(bytes: Uint8Array): boolean {
  return PNG_MAGIC.every((b, i) => bytes[i] === b);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Bytes a decoded image may take: CAFFE_TS_MAX_BLOB_BYTES (the per-blob limit), else 4 GiB. */
function defaultMaxImageBytes(): number {
  const n = Number(process.env['CAFFE_TS_MAX_BLOB_BYTES'] || NaN);
  return Number.isFinite(n) && n > 0 ? n : 4 * 2 ** 30;
}

/** libvips gives up on a decode running longer than this (a guard against a file that stalls it). */
const DECODE_TIMEOUT_SECONDS = 120;

/**
 * Decode a JPEG, PNG (or any format libvips reads) into a PixelImage as OpenCV's imdecode would.
 * `what` names the image in errors (a file path, a record key). A file whose header claims more
 * pixels than `maxBytes` holds at 4 bytes a pixel (default: the per-blob limit,
 * CAFFE_TS_MAX_BLOB_BYTES) is refused before anything is decoded: a few hundred bytes of JPEG can
 * claim 65535×65535 pixels.
 */
export async function decodePixels(bytes: Uint8Array, mode: ImreadMode = 'color', what = 'image', maxBytes = defaultMaxImageBytes()): Promise<PixelImage> {
  if (bytes.length === 0) throw new PixelError(`cannot decode ${what}: it is empty`);
  const maxPixels = Math.max(1, Math.floor(maxBytes / 4));
  let raw: { data: Buffer; info: OutputInfo };
  const sharp = await loadSharp();
  try {
    // ignoreIcc: OpenCV takes the stored samples as they are; autoOrient: imread/imdecode apply
    // the EXIF orientation except when reading 'unchanged' (IMREAD_UNCHANGED ignores it).
    const pipeline = sharp(bytes, { ignoreIcc: true, autoOrient: mode !== 'unchanged', failOn: 'error', limitInputPixels: maxPixels });
    pipeline.timeout({ seconds: DECODE_TIMEOUT_SECONDS });
    // sharp turns a gray file into three sRGB bands unless asked to keep it gray. The header says
    // which for PNG and JPEG; other formats ask libvips (a second call, so only when needed).
    const channels = fileChannelsFromHeader(bytes) ?? (await pipeline.metadata()).channels;
    if (channels === 1 || channels === 2) pipeline.toColourspace('b-w');
    raw = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (/pixel limit/i.test(describe(e))) {
      throw new PixelError(
        `cannot decode ${what} (${bytes.length} bytes): its header claims more than ${maxPixels} pixels, over the ${maxBytes}-byte ` +
          'limit at 4 bytes a pixel (set CAFFE_TS_MAX_BLOB_BYTES to raise it)',
        { cause: e },
      );
    }
    throw new PixelError(`cannot decode ${what} (${bytes.length} bytes): ${describe(e)}`, { cause: e });
  }
  return samplesToImage(raw.data, raw.info, mode, isPng(bytes));
}

/** libvips's raw output (RGB(A) or gray(+alpha), 8 or 16 bits) → the image OpenCV would read in `mode`. */
function samplesToImage(samples: Buffer, info: OutputInfo, mode: ImreadMode, png: boolean): PixelImage {
  const { width, height } = info;
  const bands = info.channels as number;
  // libvips hands 16-bit PNGs over as 16-bit samples; OpenCV's 8-bit read keeps the high byte.
  const wide = (info as { depth?: string }).depth === 'ushort';
  const n = width * height;
  const src: Uint8Array | Uint16Array = wide ? narrowSamples(samples, n * bands) : samples;
  const hasAlpha = bands === 2 || bands === 4;
  const colour = bands >= 3;

  if (mode === 'unchanged') {
    const out = new Uint8Array(n * bands);
    if (!colour) {
      out.set(src);
    } else {
      for (let s = 0; s < n * bands; s += bands) {
        out[s] = src[s + 2]!;
        out[s + 1] = src[s + 1]!;
        out[s + 2] = src[s]!;
        if (hasAlpha) out[s + 3] = src[s + 3]!;
      }
    }
    return { height, width, channels: bands, data: out };
  }
  if (mode === 'gray') {
    const out = new Uint8Array(n);
    if (!colour) {
      for (let p = 0; p < n; p++) out[p] = src[p * bands]!;
    } else {
      const toGray = png ? pngRgbToGray : rgbToGray;
      for (let p = 0; p < n; p++) {
        const s = p * bands;
        out[p] = toGray(src[s]!, src[s + 1]!, src[s + 2]!);
      }
    }
    return { height, width, channels: 1, data: out };
  }
  const out = new Uint8Array(n * 3);
  for (let p = 0, s = 0, d = 0; p < n; p++, s += bands, d += 3) {
    if (colour) {
      out[d] = src[s + 2]!;
      out[d + 1] = src[s + 1]!;
      out[d + 2] = src[s]!;
    } else {
      const g = src[s]!;
      out[d] = g;
      out[d + 1] = g;
      out[d + 2] = g;
    }
  }
  return { height, width, channels: 3, data: out };
}

/** The high bytes of little-endian 16-bit samples. */
function narrowSamples(samples: Buffer, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = samples.readUInt16LE(i * 2) >> 8;
  return out;
}

/**
 * The channel count a PNG or JPEG file declares in its header (PNG IHDR colour type, JPEG frame
 * component count), or undefined for other formats and palette PNGs (whose transparency decides).
 */
export function fileChannelsFromHeader(bytes: Uint8Array): number | undefined {
  if (isPng(bytes) && bytes.length >= 26) {
    const colourType = bytes[25];
    return colourType === 0 ? 1 : colourType === 2 ? 3 : colourType === 4 ? 2 : colourType === 6 ? 4 : undefined;
  }
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) {
      at += 2; // markers without a segment
      continue;
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) return at + 9 < bytes.length ? bytes[at + 9] : undefined;
    at += 2 + length;
  }
  return undefined;
}

/**
 * RGB → gray as OpenCV's cvtColor for 8-bit images: Y = 0.299 R + 0.587 G + 0.114 B in 14-bit
 * fixed point, rounded. (A colour JPEG read as gray by OpenCV gets libjpeg's own Y channel, which
 * can differ from this by ±1.)
 */
export function rgbToGray(r: number, g: number, b: number): number {
  return (r * 4899 + g * 9617 + b * 1868 + 8192) >> 14;
}

/**
 * RGB → gray as libpng's png_set_rgb_to_gray(0.299, 0.587), which OpenCV's PNG reader asks for:
 * 15-bit weights (truncated; blue takes the rest), and the sum truncated too.
 */
function pngRgbToGray(r: number, g: number, b: number): number {
  return (r * 9797 + g * 19234 + b * 3737) >> 15;
}

/** A file's bytes; a missing or unreadable file is a PixelError saying so as OpenCV's readers do. */
export async function readImageFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new PixelError(`Could not open or find file ${path}${code === 'ENOENT' ? '' : `: ${describe(e)}`}`, { cause: e });
  }
}

/** Read options as Caffe's ReadImageToCVMat(filename, height, width, is_color). */
export interface ReadImageOptions {
  height?: number;
  width?: number;
  isColor?: boolean;
  /** Bytes the decoded image may take (see decodePixels); default CAFFE_TS_MAX_BLOB_BYTES or 4 GiB. */
  maxBytes?: number;
}

/** Decode in colour (BGR) or gray, then, when both height and width are positive, resize with INTER_LINEAR. */
export async function decodeAndResize(bytes: Uint8Array, path: string, options: ReadImageOptions): Promise<PixelImage> {
  const img = await decodePixels(bytes, options.isColor === false ? 'gray' : 'color', path, options.maxBytes);
  const h = options.height ?? 0;
  const w = options.width ?? 0;
  return h > 0 && w > 0 ? resizePixels(img, h, w) : img;
}

// ---------------------------------------------------------------------------------------------
// Resizing

/** OpenCV's INTER_RESIZE_COEF_BITS: interpolation weights are integers out of 2^11. */
const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

/** Source index and the two fixed-point weights of each destination coordinate (OpenCV's xofs/alpha). */
function linearTaps(dst: number, src: number, clampLow: boolean, scale: number): { index: Int32Array; w0: Int32Array; w1: Int32Array } {
  const index = new Int32Array(dst);
  const w0 = new Int32Array(dst);
  const w1 = new Int32Array(dst);
  for (let d = 0; d < dst; d++) {
    // OpenCV computes the source position in single precision.
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampLow) {
      // Columns outside the image take the edge pixel with full weight.
      if (s < 0) {
        f = 0;
        s = 0;
      }
      if (s >= src - 1) {
        f = 0;
        s = src - 1;
      }
    }
    index[d] = s;
    w0[d] = roundHalfEven(Math.fround(Math.fround(1 - f) * COEF_SCALE));
    w1[d] = roundHalfEven(Math.fround(f * COEF_SCALE));
  }
  return { index, w0, w1 };
}

/** cvRound: to nearest, ties to even (lrint), as OpenCV's saturate_cast from float. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

const clampIndex = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);

/**
 * cv::resize with INTER_LINEAR on 8-bit images to a positive integer size (image-io.ts's
 * resizeImage checks the size): pixel centres aligned ((d + 0.5)·scale − 0.5), edge pixels
 * replicated, weights in 11-bit fixed point, a horizontal then a vertical pass, the result
 * rounded. As in OpenCV, an unchanged size is a copy and an exact halving in both directions
 * averages 2×2 blocks (its INTER_AREA shortcut).
 * `scale`: source pixels per destination pixel, as cv::resize derives them from its fx/fy
 * arguments (1/fx, 1/fy) when it is called with factors instead of a size; by default
 * source size / destination size, as with a size.
 */
export function resizePixels(img: PixelImage, height: number, width: number, scale?: { x: number; y: number }): PixelImage {
  const { channels: cn, height: sh, width: sw, data: src } = img;
  const sx = scale?.x ?? sw / width;
  const sy = scale?.y ?? sh / height;
  if (sh === height && sw === width && sx === 1 && sy === 1) return { height, width, channels: cn, data: src.slice() };
  if (sh === height * 2 && sw === width * 2 && sx === 2 && sy === 2) return halve(img);

  const xs = linearTaps(width, sw, true, sx);
  const ys = linearTaps(height, sh, false, sy);
  const rowLen = width * cn;
  // Horizontally resampled source rows, cached as OpenCV keeps its two ring-buffer rows.
  const rows = new Map<number, Int32Array>();
  const hRow = (sy: number): Int32Array => {
    let r = rows.get(sy);
    if (r) return r;
    r = new Int32Array(rowLen);
    const base = sy * sw * cn;
    for (let x = 0; x < width; x++) {
      const s0 = base + xs.index[x]! * cn;
      const s1 = base + Math.min(xs.index[x]! + 1, sw - 1) * cn;
      const a0 = xs.w0[x]!;
      const a1 = xs.w1[x]!;
      for (let c = 0; c < cn; c++) r[x * cn + c] = src[s0 + c]! * a0 + src[s1 + c]! * a1;
    }
    if (rows.size > 4) rows.clear();
    rows.set(sy, r);
    return r;
  };
  const out = new Uint8Array(height * rowLen);
  for (let y = 0; y < height; y++) {
    const sy = ys.index[y]!;
    const r0 = hRow(clampIndex(sy, sh));
    const r1 = hRow(clampIndex(sy + 1, sh));
    const b0 = ys.w0[y]!;
    const b1 = ys.w1[y]!;
    const o = y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      // OpenCV's vectorised vertical pass: each row term pre-shifted by 4, high 16 bits of the
      // product, then rounded by 2 bits (what x86 builds run for 8-bit images).
      const v = (((b0 * (r0[i]! >> 4)) >> 16) + ((b1 * (r1[i]! >> 4)) >> 16) + 2) >> 2;
      out[o + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { height, width, channels: cn, data: out };
}

/** Exact 2× reduction: each output pixel is the rounded mean of a 2×2 block (OpenCV's fast INTER_AREA). */
function halve(img: PixelImage): PixelImage {
  const { channels: cn, width: sw, data: src } = img;
  const height = img.height / 2;
  const width = sw / 2;
  const out = new Uint8Array(height * width * cn);
  for (let y = 0; y < height; y++) {
    const a = 2 * y * sw * cn;
    const b = a + sw * cn;
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < cn; c++) {
        const i = 2 * x * cn + c;
        out[(y * width + x) * cn + c] = (src[a + i]! + src[a + i + cn]! + src[b + i]! + src[b + i + cn]! + 2) >> 2;
      }
    }
  }
  return { height, width, channels: cn, data: out };
}

/** Caffe's CVMatToDatum layout: interleaved pixels → planar bytes (channel planes of height × width). */
export function planarPixels(img: PixelImage): Uint8Array {
  const { height, width, channels: cn, data } = img;
  const planar = new Uint8Array(data.length);
  const plane = height * width;
  if (cn === 1) {
    planar.set(data);
    return planar;
  }
  for (let c = 0; c < cn; c++) {
    const base = c * plane;
    for (let p = 0, s = c; p < plane; p++, s += cn) planar[base + p] = data[s]!;
  }
  return planar;
}
