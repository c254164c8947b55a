import { readFile } from 'node:fs/promises';
import { createMessage, type Datum } from '@caffe-ts/proto';
import sharp, { type OutputInfo } from 'sharp';
import { DataError } from './errors.js';

/*
 * Images as Caffe reads them through OpenCV
 * -----------------------------------------
 * Caffe decodes with cv::imread / cv::imdecode and resizes with cv::resize (INTER_LINEAR). Here
 * sharp (libvips with libjpeg-turbo and libpng) decodes the file to raw pixels, and everything
 * OpenCV does afterwards is done in this file so that the numbers are OpenCV's, not libvips's:
 * channel order BGR, colour→gray conversion, alpha dropped without compositing, 16-bit samples
 * truncated to their high byte, and the bilinear resize with OpenCV's fixed-point arithmetic.
 * Images are interleaved (height × width × channels, like a cv::Mat); `imageToDatum` turns them
 * into Caffe's planar Datum layout.
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

/** The formats `encodeImage` writes (Caffe's `encode_type`; 'jpeg' is taken as 'jpg'). */
export type ImageEncoding = 'jpg' | 'png';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

function isPng(bytes: Uint8Array): boolean {
  return PNG_MAGIC.every((b, i) => bytes[i] === b);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Decode a JPEG, PNG (or any format libvips reads) into a PixelImage as OpenCV's imdecode would.
 * `what` names the image in errors (a file path, a record key).
 */
export async function decodeImage(bytes: Uint8Array, mode: ImreadMode = 'color', what = 'image'): Promise<PixelImage> {
  if (bytes.length === 0) throw new DataError(`cannot decode ${what}: it is empty`);
  let raw: { data: Buffer; info: OutputInfo };
  try {
    // ignoreIcc: OpenCV takes the stored samples as they are; autoOrient: imread/imdecode apply
    // the EXIF orientation except when reading 'unchanged' (IMREAD_UNCHANGED ignores it).
    const pipeline = sharp(bytes, { ignoreIcc: true, autoOrient: mode !== 'unchanged', failOn: 'error', limitInputPixels: false });
    // sharp turns a gray file into three sRGB bands unless asked to keep it gray. The header says
    // which for PNG and JPEG; other formats ask libvips (a second call, so only when needed).
    const channels = fileChannelsFromHeader(bytes) ?? (await pipeline.metadata()).channels;
    if (channels === 1 || channels === 2) pipeline.toColourspace('b-w');
    raw = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DataError(`cannot decode ${what} (${bytes.length} bytes): ${describe(e)}`, { cause: e });
  }
  const { width, height } = raw.info;
  const bands = raw.info.channels as number;
  const samples = raw.data;
  // libvips hands 16-bit PNGs over as 16-bit samples; OpenCV's 8-bit read keeps the high byte.
  const wide = (raw.info as { depth?: string }).depth === 'ushort';
  const n = width * height;
  const at = wide ? (i: number) => samples.readUInt16LE(i * 2) >> 8 : (i: number) => samples[i]!;
  const hasAlpha = bands === 2 || bands === 4;
  const colour = bands >= 3;

  if (mode === 'unchanged') {
    const out = new Uint8Array(n * bands);
    for (let p = 0; p < n; p++) {
      const s = p * bands;
      if (colour) {
        out[s] = at(s + 2);
        out[s + 1] = at(s + 1);
        out[s + 2] = at(s);
        if (hasAlpha) out[s + 3] = at(s + 3);
      } else {
        out[s] = at(s);
        if (hasAlpha) out[s + 1] = at(s + 1);
      }
    }
    return { height, width, channels: bands, data: out };
  }
  if (mode === 'gray') {
    const out = new Uint8Array(n);
    if (!colour) {
      for (let p = 0; p < n; p++) out[p] = at(p * bands);
    } else {
      const toGray = isPng(bytes) ? pngRgbToGray : rgbToGray;
      for (let p = 0; p < n; p++) {
        const s = p * bands;
        out[p] = toGray(at(s), at(s + 1), at(s + 2));
      }
    }
    return { height, width, channels: 1, data: out };
  }
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    const s = p * bands;
    const d = p * 3;
    if (colour) {
      out[d] = at(s + 2);
      out[d + 1] = at(s + 1);
      out[d + 2] = at(s);
    } else {
      const g = at(s);
      out[d] = g;
      out[d + 1] = g;
      out[d + 2] = g;
    }
  }
  return { height, width, channels: 3, data: out };
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

/** A file's bytes; a missing or unreadable file is a DataError saying so as OpenCV's readers do. */
async function readImageFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DataError(`Could not open or find file ${path}${code === 'ENOENT' ? '' : `: ${describe(e)}`}`, { cause: e });
  }
}

/**
 * Read an image file as Caffe's ReadImageToCVMat(filename, height, width, is_color): decode in
 * colour (BGR) or gray, then, when both height and width are positive, resize with INTER_LINEAR.
 */
export async function readImage(path: string, options: { height?: number; width?: number; isColor?: boolean } = {}): Promise<PixelImage> {
  return decodeAndResize(await readImageFile(path), path, options);
}

async function decodeAndResize(bytes: Uint8Array, path: string, options: { height?: number; width?: number; isColor?: boolean }): Promise<PixelImage> {
  const img = await decodeImage(bytes, options.isColor === false ? 'gray' : 'color', path);
  const h = options.height ?? 0;
  const w = options.width ?? 0;
  return h > 0 && w > 0 ? resizeImage(img, h, w) : img;
}

// ---------------------------------------------------------------------------------------------
// Resizing

/** OpenCV's INTER_RESIZE_COEF_BITS: interpolation weights are integers out of 2^11. */
const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

/** Source index and the two fixed-point weights of each destination coordinate (OpenCV's xofs/alpha). */
function linearTaps(dst: number, src: number, clampLow: boolean): { index: Int32Array; w0: Int32Array; w1: Int32Array } {
  const scale = src / dst;
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
 * Resize as OpenCV's cv::resize(src, dst, Size(width, height)) with INTER_LINEAR on 8-bit images:
 * pixel centres aligned ((d + 0.5)·scale − 0.5), edge pixels replicated, weights in 11-bit fixed
 * point, a horizontal then a vertical pass, the result rounded. As in OpenCV, an unchanged size is
 * a copy and an exact halving in both directions averages 2×2 blocks (its INTER_AREA shortcut).
 */
export function resizeImage(img: PixelImage, height: number, width: number): PixelImage {
  if (!(height > 0 && width > 0) || !Number.isInteger(height) || !Number.isInteger(width)) {
    throw new DataError(`cannot resize to ${height}×${width}: both sides must be positive integers`);
  }
  const { channels: cn, height: sh, width: sw, data: src } = img;
  if (sh === height && sw === width) return { height, width, channels: cn, data: src.slice() };
  if (sh === height * 2 && sw === width * 2) return halve(img);

  const xs = linearTaps(width, sw, true);
  const ys = linearTaps(height, sh, false);
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

/** Mirror an image left to right (cv::flip(img, img, 1)). */
export function flipImage(img: PixelImage): PixelImage {
  const { height, width, channels: cn, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * cn;
      const d = (y * width + width - 1 - x) * cn;
      for (let c = 0; c < cn; c++) out[d + c] = data[s + c]!;
    }
  }
  return { height, width, channels: cn, data: out };
}

/** The rectangle [x, x + w) × [y, y + h) of an image (a cv::Mat roi, copied). */
export function cropImage(img: PixelImage, x: number, y: number, w: number, h: number): PixelImage {
  if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > img.width || y + h > img.height) {
    throw new DataError(`crop ${w}×${h} at (${x}, ${y}) does not fit the ${img.width}×${img.height} image`);
  }
  const cn = img.channels;
  const out = new Uint8Array(w * h * cn);
  for (let r = 0; r < h; r++) {
    const s = ((y + r) * img.width + x) * cn;
    out.set(img.data.subarray(s, s + w * cn), r * w * cn);
  }
  return { height: h, width: w, channels: cn, data: out };
}

// ---------------------------------------------------------------------------------------------
// Encoding and Datums

/** 'jpg', 'jpeg' or 'png' (any case) → the encoding; anything else is a DataError. */
export function parseImageEncoding(name: string): ImageEncoding {
  const e = name.toLowerCase().replace(/^\./, '');
  if (e === 'jpg' || e === 'jpeg') return 'jpg';
  if (e === 'png') return 'png';
  throw new DataError(`cannot encode images as '${name}' (supported: jpg, png)`);
}

/**
 * Encode as OpenCV's imencode does by default: JPEG at quality 95, PNG at compression level 1.
 * The image is BGR(A) or gray, as decodeImage returns it.
 */
export async function encodeImage(img: PixelImage, encoding: ImageEncoding | string, options: { quality?: number } = {}): Promise<Uint8Array> {
  const enc = parseImageEncoding(encoding);
  const { height, width, channels: cn, data } = img;
  if (data.length !== height * width * cn) throw new DataError(`image of ${height}×${width}×${cn} holds ${data.length} bytes`);
  const rgb = new Uint8Array(data.length);
  for (let p = 0; p < height * width; p++) {
    const s = p * cn;
    if (cn >= 3) {
      rgb[s] = data[s + 2]!;
      rgb[s + 1] = data[s + 1]!;
      rgb[s + 2] = data[s]!;
      if (cn === 4) rgb[s + 3] = data[s + 3]!;
    } else {
      for (let c = 0; c < cn; c++) rgb[s + c] = data[s + c]!;
    }
  }
  const pipeline = sharp(rgb, { raw: { width, height, channels: cn as 1 | 2 | 3 | 4 } });
  if (cn <= 2) pipeline.toColourspace('b-w'); // else sharp writes gray pixels as RGB
  const out =
    enc === 'jpg'
      ? await pipeline.jpeg({ quality: options.quality ?? 95, chromaSubsampling: '4:2:0' }).toBuffer()
      : await pipeline.png({ compressionLevel: 1 }).toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Caffe's CVMatToDatum: interleaved pixels → a planar uint8 Datum (channels, height, width, data). */
export function imageToDatum(img: PixelImage, label = 0): Datum {
  const { height, width, channels: cn, data } = img;
  const planar = new Uint8Array(data.length);
  const plane = height * width;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < cn; c++) planar[c * plane + p] = data[p * cn + c]!;
  }
  return createMessage<Datum>('Datum', { channels: cn, height, width, data: planar, label });
}

/** The decode mode of an encoded Datum under transform_param's force_color / force_gray (Caffe's DataTransformer). */
export function datumDecodeMode(forceColor: boolean, forceGray: boolean): ImreadMode {
  if (forceColor && forceGray) throw new DataError('cannot set both force_color and force_gray');
  return forceColor ? 'color' : forceGray ? 'gray' : 'unchanged';
}

/**
 * Decode an encoded Datum (JPEG/PNG bytes, `encoded: true`) into a raw uint8 Datum with its label,
 * as Caffe's DecodeDatum / DecodeDatumNative; a raw Datum is returned as it is.
 */
export async function decodeDatumImage(datum: Datum, mode: ImreadMode = 'unchanged', what = 'encoded Datum'): Promise<Datum> {
  if (!datum.encoded) return datum;
  const img = await decodeImage(datum.data, mode, what);
  return imageToDatum(img, datum.label);
}

export interface ImageDatumOptions {
  /** Resize to height × width when both are positive (Caffe's resize_height/resize_width). */
  height?: number;
  width?: number;
  /** Default true; false reads the image as gray (convert_imageset's --gray). */
  isColor?: boolean;
  /**
   * Store the image encoded in this format ('' for raw pixels). As Caffe's ReadImageToDatum, the
   * file's own bytes are stored when no resize is asked for, the file already has this format
   * (by its extension) and its channel count is the one asked for; otherwise it is re-encoded.
   */
  encoding?: string;
}

function extensionMatches(path: string, encoding: string): boolean {
  const dot = path.lastIndexOf('.');
  const ext = (dot >= 0 ? path.slice(dot + 1) : path).toLowerCase();
  const enc = encoding.toLowerCase();
  return ext === enc || (enc === 'jpg' && ext === 'jpeg');
}

/** Caffe's ReadImageToDatum: an image file → a Datum, raw (planar BGR) or encoded. */
export async function imageFileToDatum(path: string, label: number, options: ImageDatumOptions = {}): Promise<Datum> {
  const isColor = options.isColor !== false;
  const h = options.height ?? 0;
  const w = options.width ?? 0;
  const bytes = await readImageFile(path);
  const img = await decodeAndResize(bytes, path, { height: h, width: w, isColor });
  const encoding = options.encoding ?? '';
  if (!encoding) return imageToDatum(img, label);
  // Caffe keeps the file's bytes when no resize is asked for and the file already has the
  // encoding; here the file must also be gray exactly when a gray read is asked for (Caffe checks
  // the decoded image, which the read already forced), so that decoding the Datum later gives
  // the channels asked for.
  const keep = !(h > 0 && w > 0) && extensionMatches(path, encoding) && (await isGrayFile(bytes)) === !isColor;
  const data = keep ? bytes : await encodeImage(img, encoding);
  return createMessage<Datum>('Datum', { data, label, encoded: true });
}

/** Whether an image file stores gray pixels (with or without alpha). */
async function isGrayFile(bytes: Uint8Array): Promise<boolean> {
  let channels = fileChannelsFromHeader(bytes);
  if (channels === undefined) {
    try {
      channels = (await sharp(bytes).metadata()).channels;
    } catch {
      return false;
    }
  }
  return channels === 1 || channels === 2;
}
