import { maxBlobBytes } from '@caffe-ts/blob';
import { createMessage, type Datum } from '@caffe-ts/proto';
import { DataError } from './errors.js';
import {
  decodeAndResize,
  decodePixels,
  fileChannelsFromHeader,
  PixelError,
  loadSharp,
  planarPixels,
  readImageFile as readPixelFile,
  resizePixels,
  type ImreadMode,
  type PixelImage,
  type ReadImageOptions,
} from './pixel-codec.js';

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

export type { PixelImage, ImreadMode } from './pixel-codec.js';
export { fileChannelsFromHeader, rgbToGray } from './pixel-codec.js';

/** The formats `encodeImage` writes (Caffe's `encode_type`; 'jpeg' is taken as 'jpg'). */
export type ImageEncoding = 'jpg' | 'png';

/** A PixelError of the shared pixel code as this package's DataError, with the same message. */
function asDataError(e: unknown): unknown {
  return e instanceof PixelError ? new DataError(e.message, { cause: e.cause ?? e }) : e;
}

async function rethrowing<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    throw asDataError(e);
  }
}

/**
 * Decode a JPEG, PNG (or any format libvips reads) into a PixelImage as OpenCV's imdecode would.
 * `what` names the image in errors (a file path, a record key).
 */
export async function decodeImage(bytes: Uint8Array, mode: ImreadMode = 'color', what = 'image'): Promise<PixelImage> {
  // Refused before decoding when the header claims more than the per-blob memory limit holds.
  return rethrowing(decodePixels(bytes, mode, what, maxBlobBytes()));
}

/** A file's bytes; a missing or unreadable file is a DataError saying so as OpenCV's readers do. */
async function readImageFile(path: string): Promise<Uint8Array> {
  return rethrowing(readPixelFile(path));
}

/**
 * Read an image file as Caffe's ReadImageToCVMat(filename, height, width, is_color): decode in
 * colour (BGR) or gray, then, when both height and width are positive, resize with INTER_LINEAR.
 */
export async function readImage(path: string, options: ReadImageOptions = {}): Promise<PixelImage> {
  return rethrowing(readPixelFile(path).then((bytes) => decodeAndResize(bytes, path, { maxBytes: maxBlobBytes(), ...options })));
}

/**
 * Resize as OpenCV's cv::resize(src, dst, Size(width, height)) with INTER_LINEAR on 8-bit images
 * (see resizePixels in pixel-codec.ts); both sides must be positive integers. `scale` (source
 * pixels per destination pixel) samples as cv::resize called with factors fx, fy does: 1/fx, 1/fy.
 */
export function resizeImage(img: PixelImage, height: number, width: number, scale?: { x: number; y: number }): PixelImage {
  if (!(height > 0 && width > 0) || !Number.isInteger(height) || !Number.isInteger(width)) {
    throw new DataError(`cannot resize to ${height}×${width}: both sides must be positive integers`);
  }
  return resizePixels(img, height, width, scale);
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
  const sharp = await rethrowing(loadSharp());
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
  const { height, width, channels: cn } = img;
  return createMessage<Datum>('Datum', { channels: cn, height, width, data: planarPixels(img), label });
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
  const img = await rethrowing(decodeAndResize(bytes, path, { height: h, width: w, isColor, maxBytes: maxBlobBytes() }));
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
      const sharp = await rethrowing(loadSharp());
      channels = (await sharp(bytes).metadata()).channels;
    } catch {
      return false;
    }
  }
  return channels === 1 || channels === 2;
}
