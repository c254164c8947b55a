/**
 * @caffe-ts/layers-contrib/detect: run an SSD-style detection net (one ending in
 * DetectionOutput) or a Faster R-CNN test net (faster-rcnn.ts) on an image, and draw the boxes
 * it finds.
 */
import { readFileSync } from 'node:fs';
import type { Net } from '@caffe-ts/net';
import { CaffeError, parseText, registerSsdForkSchema } from '@caffe-ts/proto';
import { loadSharp } from './load-sharp.js';

/** An 8-bit image as @caffe-ts/io-leveldb's PixelImage: interleaved rows, colour channels BGR. */
export interface DetectImage {
  height: number;
  width: number;
  /** 1 (gray) or 3 (BGR); a 4th (alpha) channel is ignored. */
  channels: number;
  data: Uint8Array;
}

export class DetectError extends CaffeError {
  override readonly name = 'DetectError';
}

export interface DetectOptions {
  /** The input blob to fill (default: the net's first input). */
  input?: string;
  /** Network input size; the input blob is reshaped to it (default: the blob's current H×W). */
  inputSize?: { height: number; width: number };
  /** Per-channel values subtracted from the BGR pixels (default 0). */
  mean?: readonly number[];
  /** Multiplier applied after the mean is subtracted (default 1). */
  scale?: number;
  /** Keep detections scoring at least this (default 0.5). */
  confidence?: number;
  /** Class names, indexed by label. */
  labels?: readonly string[];
  /** The [1, 1, N, 7] detection blob (default: the first net output shaped so). */
  output?: string;
  /**
   * Resize function (height, width) for the image; defaults to a plain bilinear resize. Pass
   * @caffe-ts/io-leveldb's resizeImage for OpenCV's exact INTER_LINEAR numbers.
   */
  resize?: (img: DetectImage, height: number, width: number) => DetectImage;
}

export interface Detection {
  label: number;
  /** labels[label] when given, else the number as a string. */
  name: string;
  score: number;
  /** In pixels of the original image, clipped to it. */
  box: { xmin: number; ymin: number; xmax: number; ymax: number };
  /** As the net output it: normalised, unclipped. */
  normalized: { xmin: number; ymin: number; xmax: number; ymax: number };
}

export interface DetectResult {
  detections: Detection[];
  /** The size the image was resized to for the net. */
  inputSize: { height: number; width: number };
}

/** Bilinear resize with pixel centres aligned (as OpenCV's INTER_LINEAR, in floating point). */
export function resizeBilinear(img: DetectImage, height: number, width: number): DetectImage {
  const { height: sh, width: sw, channels: cn, data } = img;
  if (sh === height && sw === width) return { ...img, data: data.slice() };
  const out = new Uint8Array(height * width * cn);
  const sy = sh / height;
  const sx = sw / width;
  for (let y = 0; y < height; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    fy = Math.min(Math.max(fy, 0), sh - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, sh - 1);
    const ly = fy - y0;
    for (let x = 0; x < width; x++) {
      let fx = (x + 0.5) * sx - 0.5;
      fx = Math.min(Math.max(fx, 0), sw - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, sw - 1);
      const lx = fx - x0;
      for (let c = 0; c < cn; c++) {
        const p = (yy: number, xx: number) => data[(yy * sw + xx) * cn + c]!;
        const v = (1 - ly) * ((1 - lx) * p(y0, x0) + lx * p(y0, x1)) + ly * ((1 - lx) * p(y1, x0) + lx * p(y1, x1));
        out[(y * width + x) * cn + c] = Math.round(v);
      }
    }
  }
  return { height, width, channels: cn, data: out };
}

/**
 * Run `net` (already built, with its weights) on one image and return the detections scoring at
 * least `confidence`, best first. The image is resized to the input size, mean-subtracted and
 * scaled per channel, laid out as [1, C, H, W], and the net run forward once.
 */
export function detect(net: Net, image: DetectImage, options: DetectOptions = {}): DetectResult {
  const inputName = options.input ?? net.inputBlobNames[0];
  if (!inputName || !net.hasBlob(inputName)) {
    throw new DetectError(`the net has no input blob ${inputName ? `'${inputName}'` : '(it declares no inputs)'}`);
  }
  const input = net.blob(inputName);
  if (input.numAxes !== 4) throw new DetectError(`input blob '${inputName}' must have 4 axes (got ${input.shapeString()})`);
  const channels = input.shape[1]!;
  const height = options.inputSize?.height ?? input.shape[2]!;
  const width = options.inputSize?.width ?? input.shape[3]!;
  if (!(height > 0 && width > 0)) throw new DetectError(`input size must be positive (got ${height}x${width})`);
  const imgChannels = Math.min(image.channels, 3);
  if (imgChannels !== channels) {
    throw new DetectError(`the net's input '${inputName}' takes ${channels} channel(s) but the image has ${imgChannels}`);
  }
  const mean = options.mean ?? [];
  if (mean.length !== 0 && mean.length !== 1 && mean.length !== channels) {
    throw new DetectError(`give 1 or ${channels} mean values (got ${mean.length})`);
  }
  const scale = options.scale ?? 1;
  const resized = (options.resize ?? resizeBilinear)(image, height, width);
  if (input.shape[0] !== 1 || input.shape[2] !== height || input.shape[3] !== width) {
    input.reshape([1, channels, height, width]);
    net.reshape();
  }
  const x = input.mutableCpuData();
  const plane = height * width;
  for (let c = 0; c < channels; c++) {
    const m = mean.length === 0 ? 0 : mean.length === 1 ? mean[0]! : mean[c]!;
    for (let i = 0; i < plane; i++) x[c * plane + i] = (resized.data[i * resized.channels + c]! - m) * scale;
  }
  net.forward();
  const out = options.output !== undefined ? net.blob(options.output) : net.outputBlobs.find((b) => b.shape[b.numAxes - 1] === 7);
  if (!out || out.shape[out.numAxes - 1] !== 7) {
    throw new DetectError(
      `${options.output ? `blob '${options.output}'` : 'no net output'} is a detection blob [1, 1, N, 7] (outputs: ${net.outputBlobNames.map((n) => `${n} ${net.blob(n).shapeString()}`).join(', ')})`,
    );
  }
  const d = out.cpuData();
  const confidence = options.confidence ?? 0.5;
  const detections: Detection[] = [];
  const clip = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  for (let r = 0; r + 7 <= d.length; r += 7) {
    const label = d[r + 1]!;
    const score = d[r + 2]!;
    if (label < 0 || score < confidence) continue;
    const normalized = { xmin: d[r + 3]!, ymin: d[r + 4]!, xmax: d[r + 5]!, ymax: d[r + 6]! };
    detections.push({
      label,
      name: options.labels?.[label] ?? String(label),
      score,
      normalized,
      box: {
        xmin: clip(normalized.xmin * image.width, image.width),
        ymin: clip(normalized.ymin * image.height, image.height),
        xmax: clip(normalized.xmax * image.width, image.width),
        ymax: clip(normalized.ymax * image.height, image.height),
      },
    });
  }
  detections.sort((a, b) => b.score - a.score);
  return { detections, inputSize: { height, width } };
}

/**
 * Class names from a file: an SSD LabelMap prototxt (`item { name label display_name }`, the
 * display_name or name at each label) or plain text, one name per line (line i is label i).
 */
export function readLabels(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DetectError(`cannot read labels file ${path}: ${(e as Error).message}`);
  }
  if (/^\s*item\s*\{/m.test(text)) {
    registerSsdForkSchema();
    const map = parseText<{ item: { name: string; label: number; display_name: string }[] }>('LabelMap', text, { file: path });
    const labels: string[] = [];
    for (const it of map.item) labels[it.label] = it.display_name || it.name;
    return Array.from(labels, (l, i) => l ?? String(i));
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l, i, all) => l !== '' || i < all.length - 1);
}

const COLOURS = ['#00ff00', '#ff3030', '#30a0ff', '#ffd700', '#ff00ff', '#00ffff', '#ff8c00', '#7fff00'];

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** The image with each detection's box and "name score" drawn on it, as PNG bytes. */
export async function drawDetections(image: DetectImage, detections: readonly Detection[]): Promise<Uint8Array> {
  const { width, height } = image;
  const cn = image.channels;
  // sharp takes RGB; the image is BGR (or gray).
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    if (cn >= 3) {
      rgb[i * 3] = image.data[i * cn + 2]!;
      rgb[i * 3 + 1] = image.data[i * cn + 1]!;
      rgb[i * 3 + 2] = image.data[i * cn]!;
    } else rgb.fill(image.data[i * cn]!, i * 3, i * 3 + 3);
  }
  const stroke = Math.max(2, Math.round(Math.min(width, height) / 200));
  const font = Math.max(12, Math.round(Math.min(width, height) / 30));
  const shapes = detections.map((d) => {
    const colour = COLOURS[d.label % COLOURS.length]!;
    const { xmin, ymin, xmax, ymax } = d.box;
    const text = escapeXml(`${d.name} ${d.score.toFixed(2)}`);
    const ty = ymin > font + 4 ? ymin - 4 : ymin + font + 2;
    return (
      `<rect x="${xmin.toFixed(1)}" y="${ymin.toFixed(1)}" width="${(xmax - xmin).toFixed(1)}" height="${(ymax - ymin).toFixed(1)}" ` +
      `fill="none" stroke="${colour}" stroke-width="${stroke}"/>` +
      `<text x="${(xmin + 2).toFixed(1)}" y="${ty.toFixed(1)}" font-family="sans-serif" font-size="${font}" fill="${colour}" ` +
      `stroke="black" stroke-width="0.6" paint-order="stroke">${text}</text>`
    );
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`;
  const sharp = await loadSharp('drawing detections', (message, cause) => new DetectError(message, { cause }));
  const png = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

export { detectFasterRcnn, fasterRcnnDetections, isFasterRcnnNet, FASTER_RCNN_PIXEL_MEANS, type FasterRcnnOptions } from './faster-rcnn.js';
