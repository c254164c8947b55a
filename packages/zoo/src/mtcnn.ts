import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '@caffe-ts/blob';
import { registerBuiltinLayers, type LayerRegistry } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { CaffeError, Phase } from '@caffe-ts/proto';
import { resizeFloatImage, type FloatImage } from './transformer.js';

/*
 * MTCNN face detection (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task
 * Cascaded Convolutional Networks") with the authors' Caffe models det1–det4.
 *
 * The cascade follows the authors' MATLAB detect_face.m (MTCNNv2) step by step, so boxes and
 * landmarks are the numbers that code (and the Python ports that mirror it) produces:
 * - The models were trained through matcaffe, which hands Caffe MATLAB's column-major H×W×C
 *   arrays as C×W×H: every net input here is the RGB image transposed (blob axis 2 runs along the
 *   image's x), pixels scaled as (v − 127.5) / 128. Net outputs are read back the same way.
 * - Coordinates are MATLAB's: the image's first pixel is (1, 1) and a box [x1, x2] covers pixels
 *   x1..x2 inclusive (width x2 − x1 + 1). Subtract 1 for 0-based pixel indices. Landmarks carry
 *   the reference's own `− 1`.
 */

/** Bad MTCNN settings, nets without the expected blobs, images the cascade cannot take. */
export class MtcnnError extends CaffeError {
  override readonly name = 'MtcnnError';
}

/** An 8-bit image as @caffe-ts/io-leveldb's PixelImage: interleaved rows, BGR(A) or gray. */
export interface MtcnnImage {
  height: number;
  width: number;
  /** 1 or 2 (gray, alpha ignored), 3 (BGR) or 4 (BGRA). */
  channels: number;
  data: ArrayLike<number>;
}

/** The MTCNN nets: P-Net (det1), R-Net (det2), O-Net (det3) and optionally L-Net (det4). */
export interface MtcnnNets {
  pnet: Net;
  rnet: Net;
  onet: Net;
  /** The landmark-refinement net; when given, O-Net's landmarks are refined as in MTCNNv2. */
  lnet?: Net;
}

export interface MtcnnOptions extends MtcnnNets {
  /** Smallest face to look for, in pixels (default 20): the pyramid starts at 12 / minSize. */
  minSize?: number;
  /** Score thresholds of P-Net, R-Net and O-Net (default [0.6, 0.7, 0.7], the authors' demo). */
  thresholds?: readonly [number, number, number];
  /** Pyramid scale step (default 0.709 ≈ 1/√2). */
  factor?: number;
  /** Called after each stage with the number of boxes it kept. */
  onStage?: (stage: 'pnet' | 'rnet' | 'onet' | 'lnet', boxes: number) => void;
}

/** One face: box and landmarks in the reference's (MATLAB, 1-based) pixel coordinates. */
export interface FaceDetection {
  box: { x1: number; y1: number; x2: number; y2: number };
  /** O-Net's face probability. */
  score: number;
  /** Left eye, right eye, nose, left and right mouth corners (as seen in the image). */
  landmarks: { x: number; y: number }[];
}

/** A box with a score, as the NMS and the cascade's helpers take it. */
export interface ScoredBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
}

interface Candidate extends ScoredBox {
  /** Regression offsets (dx1, dy1, dx2, dy2) in units of the box size. */
  reg: [number, number, number, number];
}

export type NmsMethod = 'Union' | 'Min';

/** Stride and receptive field of P-Net's output cells in the input. */
const PNET_STRIDE = 2;
const PNET_CELL = 12;

/**
 * Greedy non-maximum suppression as the MTCNN reference: boxes in ascending score order
 * (stable), repeatedly keep the last one and drop the others overlapping it by more than
 * `threshold`, overlap being intersection over union ('Union') or over the smaller box ('Min').
 * Areas count pixels inclusively ((x2 − x1 + 1)·(y2 − y1 + 1)). Returns the kept indices, best first.
 */
export function nms(boxes: readonly ScoredBox[], threshold: number, method: NmsMethod = 'Union'): number[] {
  const area = boxes.map((b) => (b.x2 - b.x1 + 1) * (b.y2 - b.y1 + 1));
  let order = boxes.map((_, i) => i).sort((a, b) => boxes[a]!.score - boxes[b]!.score || a - b);
  const pick: number[] = [];
  while (order.length > 0) {
    const i = order[order.length - 1]!;
    const bi = boxes[i]!;
    pick.push(i);
    const rest: number[] = [];
    for (let k = 0; k < order.length - 1; k++) {
      const j = order[k]!;
      const bj = boxes[j]!;
      const w = Math.max(0, Math.min(bi.x2, bj.x2) - Math.max(bi.x1, bj.x1) + 1);
      const h = Math.max(0, Math.min(bi.y2, bj.y2) - Math.max(bi.y1, bj.y1) + 1);
      const inter = w * h;
      const o = method === 'Min' ? inter / Math.min(area[i]!, area[j]!) : inter / (area[i]! + area[j]! - inter);
      // NaN (two empty boxes) is not <= threshold: dropped, as in the reference.
      if (o <= threshold) rest.push(j);
    }
    order = rest;
  }
  return pick;
}

/** The pyramid's scales: 12/minSize, then ×factor while the short side stays ≥ 12 pixels. */
export function pyramidScales(height: number, width: number, minSize = 20, factor = 0.709): number[] {
  const m = PNET_CELL / minSize;
  let minl = Math.min(height, width) * m;
  const scales: number[] = [];
  for (let count = 0; minl >= PNET_CELL; count++) {
    scales.push(m * Math.pow(factor, count));
    minl *= factor;
  }
  return scales;
}

/** Make boxes square around their centres, on the longer side (the reference's rerec). */
export function rerec<T extends ScoredBox>(box: T): T {
  const w = box.x2 - box.x1;
  const h = box.y2 - box.y1;
  const l = Math.max(w, h);
  const x1 = box.x1 + w * 0.5 - l * 0.5;
  const y1 = box.y1 + h * 0.5 - l * 0.5;
  return { ...box, x1, y1, x2: x1 + l, y2: y1 + l };
}

/** Apply regression offsets in units of the inclusive box size (the reference's bbreg). */
export function bbreg<T extends ScoredBox>(box: T, reg: readonly number[]): T {
  const w = box.x2 - box.x1 + 1;
  const h = box.y2 - box.y1 + 1;
  return { ...box, x1: box.x1 + reg[0]! * w, y1: box.y1 + reg[1]! * h, x2: box.x2 + reg[2]! * w, y2: box.y2 + reg[3]! * h };
}

/**
 * Boxes from P-Net's maps. `prob` is the face-probability plane and `reg` the 4 regression
 * planes, each laid out as the blob: [a][b] with a along the image's x (A values) and b along y
 * (B values). Cells scoring ≥ threshold become 12×12 windows at stride 2 mapped back through
 * `scale`, in the reference's order (y outer, x inner).
 */
export function generateBoundingBoxes(prob: ArrayLike<number>, reg: ArrayLike<number>, A: number, B: number, scale: number, threshold: number): Candidate[] {
  const plane = A * B;
  const out: Candidate[] = [];
  for (let b = 0; b < B; b++) {
    for (let a = 0; a < A; a++) {
      const i = a * B + b;
      const score = prob[i]!;
      if (!(score >= threshold)) continue;
      out.push({
        x1: Math.trunc((PNET_STRIDE * a + 1) / scale),
        y1: Math.trunc((PNET_STRIDE * b + 1) / scale),
        x2: Math.trunc((PNET_STRIDE * a + PNET_CELL) / scale),
        y2: Math.trunc((PNET_STRIDE * b + PNET_CELL) / scale),
        score,
        reg: [reg[i]!, reg[plane + i]!, reg[2 * plane + i]!, reg[3 * plane + i]!],
      });
    }
  }
  return out;
}

/** The image as RGB floats in 0..255, H×W×3 (MATLAB's imread order). */
function toRgbFloat(image: MtcnnImage): FloatImage {
  const { height, width, channels: cn, data } = image;
  if (!(height > 0 && width > 0)) throw new MtcnnError(`image is ${width}x${height}: both sides must be positive`);
  if (cn < 1 || cn > 4) throw new MtcnnError(`image has ${cn} channels; expected 1 or 2 (gray), 3 (BGR) or 4 (BGRA)`);
  if (data.length !== height * width * cn) throw new MtcnnError(`image of ${width}x${height}x${cn} holds ${data.length} values`);
  const out = new Float32Array(height * width * 3);
  for (let p = 0; p < height * width; p++) {
    const s = p * cn;
    if (cn >= 3) {
      out[p * 3] = data[s + 2]!;
      out[p * 3 + 1] = data[s + 1]!;
      out[p * 3 + 2] = data[s]!;
    } else {
      out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = data[s]!;
    }
  }
  return { height, width, channels: 3, data: out };
}

/**
 * The window x1..x2 × y1..y2 (1-based, inclusive, integers) of the image, zero outside it (the
 * reference's pad + copy), resized bilinearly to size×size.
 */
function cropWindow(img: FloatImage, x1: number, y1: number, x2: number, y2: number, size: number): FloatImage {
  const w = x2 - x1 + 1;
  const h = y2 - y1 + 1;
  const data = new Float32Array(h * w * 3);
  const { width: iw, height: ih } = img;
  for (let r = 0; r < h; r++) {
    const sy = y1 - 1 + r;
    if (sy < 0 || sy >= ih) continue;
    const c0 = Math.max(0, 1 - x1);
    const c1 = Math.min(w, iw - x1 + 1);
    if (c1 <= c0) continue;
    const src = (sy * iw + x1 - 1 + c0) * 3;
    data.set(img.data.subarray(src, src + (c1 - c0) * 3), (r * w + c0) * 3);
  }
  return resizeFloatImage({ height: h, width: w, channels: 3, data }, size, size);
}

/** Write an H×W×3 image into a blob's C×W×H slot (transposed, as matcaffe did), scaled to [-1, 1). */
function writeTransposed(dst: Float32Array | Float64Array, offset: number, img: FloatImage, channelOffset = 0): void {
  const { height: H, width: W, data } = img;
  const plane = W * H;
  for (let c = 0; c < 3; c++) {
    const base = offset + (channelOffset + c) * plane;
    for (let x = 0; x < W; x++) {
      const row = base + x * H;
      for (let y = 0; y < H; y++) dst[row + y] = (data[(y * W + x) * 3 + c]! - 127.5) * 0.0078125;
    }
  }
}

function requireBlobs(net: Net, what: string, names: readonly string[]): void {
  for (const name of names) {
    if (!net.hasBlob(name)) {
      throw new MtcnnError(`${what} '${net.name}' has no blob '${name}' (outputs: ${net.outputBlobNames.join(', ')}); is it the right MTCNN model?`);
    }
  }
}

function inputOf(net: Net, what: string, channels: number, size: number): string {
  const name = net.inputBlobNames[0];
  if (!name) throw new MtcnnError(`${what} '${net.name}' declares no input`);
  const shape = net.blob(name).shape;
  if (shape.length !== 4 || shape[1] !== channels || (size > 0 && (shape[2] !== size || shape[3] !== size))) {
    throw new MtcnnError(`${what} '${net.name}' takes ${net.blob(name).shapeString()}; expected N×${channels}×${size > 0 ? `${size}×${size}` : 'H×W'}`);
  }
  return name;
}

/** Run a fixed-size stage net on windows: returns the net after forward. */
function runPatches(net: Net, input: string, patches: FloatImage[], size: number): void {
  const blob = net.blob(input);
  blob.reshape([patches.length, 3, size, size]);
  net.reshape();
  const data = blob.mutableCpuData();
  patches.forEach((p, n) => writeTransposed(data, n * 3 * size * size, p));
  net.forward();
}

function checkOptions(o: MtcnnOptions): { minSize: number; thresholds: readonly [number, number, number]; factor: number } {
  const minSize = o.minSize ?? 20;
  const factor = o.factor ?? 0.709;
  const thresholds = o.thresholds ?? [0.6, 0.7, 0.7];
  if (!(minSize > 0)) throw new MtcnnError(`minSize must be positive, got ${minSize}`);
  if (!(factor > 0 && factor < 1)) throw new MtcnnError(`factor must be in (0, 1), got ${factor}`);
  if (thresholds.length !== 3 || thresholds.some((t) => !(t >= 0 && t <= 1))) {
    throw new MtcnnError(`thresholds must be three probabilities (P-Net, R-Net, O-Net), got [${thresholds.join(', ')}]`);
  }
  return { minSize, thresholds, factor };
}

/**
 * Detect faces with the MTCNN cascade. P-Net runs fully convolutionally on each pyramid level
 * (its input reshaped per scale); its cells above threshold become boxes, suppressed per scale
 * (NMS 0.5) and across scales (0.7), regressed and squared. R-Net rescores 24×24 crops (NMS 0.7,
 * regression, squaring), O-Net 48×48 crops, giving boxes, scores and 5 landmarks (regression,
 * then NMS 0.7 over the smaller box). With `lnet`, landmarks are refined on 24×24 patches around
 * each. Returns the faces best first; coordinates as the reference (see FaceDetection).
 */
export function detectFaces(image: MtcnnImage, options: MtcnnOptions): FaceDetection[] {
  const { minSize, thresholds, factor } = checkOptions(options);
  const { pnet, rnet, onet, lnet } = options;
  const pIn = inputOf(pnet, 'P-Net', 3, 0);
  const rIn = inputOf(rnet, 'R-Net', 3, 24);
  const oIn = inputOf(onet, 'O-Net', 3, 48);
  const lIn = lnet ? inputOf(lnet, 'L-Net', 15, 24) : '';
  // Output blobs by name (matcaffe handed them back in Caffe's sorted output order).
  requireBlobs(pnet, 'P-Net', ['prob1', 'conv4-2']);
  requireBlobs(rnet, 'R-Net', ['prob1', 'conv5-2']);
  requireBlobs(onet, 'O-Net', ['prob1', 'conv6-2', 'conv6-3']);
  if (lnet) requireBlobs(lnet, 'L-Net', [1, 2, 3, 4, 5].map((k) => `fc5_${k}`));
  const img = toRgbFloat(image);
  const { height: h, width: w } = img;

  // Stage 1: P-Net over the pyramid.
  let boxes: ScoredBox[] = [];
  {
    const all: Candidate[] = [];
    for (const scale of pyramidScales(h, w, minSize, factor)) {
      const hs = Math.ceil(h * scale);
      const ws = Math.ceil(w * scale);
      const level = resizeFloatImage(img, hs, ws);
      const blob = pnet.blob(pIn);
      blob.reshape([1, 3, ws, hs]);
      pnet.reshape();
      writeTransposed(blob.mutableCpuData(), 0, level);
      pnet.forward();
      const probBlob = pnet.blob('prob1');
      const prob = pnet.blob('prob1').cpuData();
      const reg = pnet.blob('conv4-2').cpuData();
      const [, , A, B] = probBlob.shape as [number, number, number, number];
      // Channel 1 of prob1 is the face probability.
      const found = generateBoundingBoxes(prob.subarray(A * B, 2 * A * B), reg, A, B, scale, thresholds[0]);
      for (const i of nms(found, 0.5, 'Union')) all.push(found[i]!);
    }
    const kept = nms(all, 0.7, 'Union').map((i) => all[i]!);
    boxes = kept.map((b) => {
      // The reference regresses P-Net boxes by x2 − x1 (no +1), unlike the later stages.
      const bw = b.x2 - b.x1;
      const bh = b.y2 - b.y1;
      const r = rerec({ x1: b.x1 + b.reg[0] * bw, y1: b.y1 + b.reg[1] * bh, x2: b.x2 + b.reg[2] * bw, y2: b.y2 + b.reg[3] * bh, score: b.score });
      return { x1: Math.trunc(r.x1), y1: Math.trunc(r.y1), x2: Math.trunc(r.x2), y2: Math.trunc(r.y2), score: r.score };
    });
    // A window must cover at least one pixel to be cropped.
    boxes = boxes.filter((b) => b.x2 >= b.x1 && b.y2 >= b.y1);
    options.onStage?.('pnet', boxes.length);
  }
  if (boxes.length === 0) return [];

  // Stage 2: R-Net on 24×24 crops.
  {
    runPatches(rnet, rIn, boxes.map((b) => cropWindow(img, b.x1, b.y1, b.x2, b.y2, 24)), 24);
    const prob = rnet.blob('prob1').cpuData();
    const reg = rnet.blob('conv5-2').cpuData();
    const passed: Candidate[] = [];
    boxes.forEach((b, n) => {
      const score = prob[n * 2 + 1]!;
      if (score > thresholds[1]) passed.push({ ...b, score, reg: [reg[n * 4]!, reg[n * 4 + 1]!, reg[n * 4 + 2]!, reg[n * 4 + 3]!] });
    });
    boxes = nms(passed, 0.7, 'Union').map((i) => {
      const c = passed[i]!;
      return rerec(bbreg({ x1: c.x1, y1: c.y1, x2: c.x2, y2: c.y2, score: c.score }, c.reg));
    });
    // The reference truncates the boxes before cropping for O-Net.
    boxes = boxes
      .map((b) => ({ x1: Math.trunc(b.x1), y1: Math.trunc(b.y1), x2: Math.trunc(b.x2), y2: Math.trunc(b.y2), score: b.score }))
      .filter((b) => b.x2 >= b.x1 && b.y2 >= b.y1);
    options.onStage?.('rnet', boxes.length);
  }
  if (boxes.length === 0) return [];

  // Stage 3: O-Net on 48×48 crops: scores, box regression, landmarks.
  let faces: FaceDetection[];
  {
    runPatches(onet, oIn, boxes.map((b) => cropWindow(img, b.x1, b.y1, b.x2, b.y2, 48)), 48);
    const prob = onet.blob('prob1').cpuData();
    const reg = onet.blob('conv6-2').cpuData();
    const pts = onet.blob('conv6-3').cpuData();
    const passed: (ScoredBox & { landmarks: { x: number; y: number }[] })[] = [];
    boxes.forEach((b, n) => {
      const score = prob[n * 2 + 1]!;
      if (!(score > thresholds[2])) return;
      const bw = b.x2 - b.x1 + 1;
      const bh = b.y2 - b.y1 + 1;
      const landmarks = Array.from({ length: 5 }, (_, k) => ({ x: bw * pts[n * 10 + k]! + b.x1 - 1, y: bh * pts[n * 10 + 5 + k]! + b.y1 - 1 }));
      passed.push({ ...bbreg({ ...b, score }, [reg[n * 4]!, reg[n * 4 + 1]!, reg[n * 4 + 2]!, reg[n * 4 + 3]!]), landmarks });
    });
    faces = nms(passed, 0.7, 'Min').map((i) => {
      const p = passed[i]!;
      return { box: { x1: p.x1, y1: p.y1, x2: p.x2, y2: p.y2 }, score: p.score, landmarks: p.landmarks };
    });
    options.onStage?.('onet', faces.length);
  }
  if (faces.length === 0 || !lnet) return faces;

  // Stage 4 (MTCNNv2): L-Net refines each landmark on a patch a quarter of the face wide.
  {
    const n = faces.length;
    const patchw = faces.map((f) => {
      const p = Math.trunc(0.25 * Math.max(f.box.x2 - f.box.x1 + 1, f.box.y2 - f.box.y1 + 1));
      return p % 2 === 0 ? p : p + 1;
    });
    const blob = lnet.blob(lIn);
    blob.reshape([n, 15, 24, 24]);
    lnet.reshape();
    const data = blob.mutableCpuData();
    faces.forEach((f, j) => {
      const pw = patchw[j]!;
      f.landmarks.forEach((pt, k) => {
        const x = Math.trunc(pt.x - 0.5 * pw);
        const y = Math.trunc(pt.y - 0.5 * pw);
        writeTransposed(data, j * 15 * 24 * 24, cropWindow(img, x, y, x + pw, y + pw, 24), k * 3);
      });
    });
    lnet.forward();
    faces = faces.map((f, j) => {
      const pw = patchw[j]!;
      const landmarks = f.landmarks.map((pt, k) => {
        const o = lnet.blob(`fc5_${k + 1}`).cpuData();
        let ox = o[j * 2]!;
        let oy = o[j * 2 + 1]!;
        // Refinements moving a point by more than 0.35 of the patch are ignored (reference).
        if (Math.abs(ox - 0.5) > 0.35) ox = oy = 0.5;
        if (Math.abs(oy - 0.5) > 0.35) ox = oy = 0.5;
        return { x: pt.x - 0.5 * pw + ox * pw, y: pt.y - 0.5 * pw + oy * pw };
      });
      return { ...f, landmarks };
    });
    options.onStage?.('lnet', faces.length);
  }
  return faces;
}

export interface LoadMtcnnOptions {
  /** Load det4 (L-Net) too when the folder has it (default true). */
  lnet?: boolean;
  registry?: LayerRegistry;
  backend?: Backend;
  /** Caffe's net construction log lines (default false). */
  log?: boolean;
}

/**
 * Build the MTCNN nets from a folder holding the authors' det1–det3 (and optionally det4)
 * `.prototxt` + `.caffemodel` files, TEST phase, weights loaded.
 */
export function loadMtcnn(dir: string, options: LoadMtcnnOptions = {}): MtcnnNets {
  const registry = registerBuiltinLayers(options.registry);
  const load = (name: string): Net => {
    const proto = join(dir, `${name}.prototxt`);
    const weights = join(dir, `${name}.caffemodel`);
    for (const f of [proto, weights]) {
      if (!existsSync(f)) throw new MtcnnError(`MTCNN folder ${dir} lacks ${name}.prototxt/.caffemodel (no ${f})`);
    }
    const net = new Net(readNetParameter(proto, { log: options.log ?? false }), {
      phase: Phase.TEST,
      registry,
      log: options.log ?? false,
      name: proto,
      ...(options.backend ? { backend: options.backend } : {}),
    });
    copyTrainedLayersFromFile(net, weights);
    return net;
  };
  const nets: MtcnnNets = { pnet: load('det1'), rnet: load('det2'), onet: load('det3') };
  if ((options.lnet ?? true) && existsSync(join(dir, 'det4.prototxt')) && existsSync(join(dir, 'det4.caffemodel'))) nets.lnet = load('det4');
  return nets;
}

/**
 * A copy of the image with each face's box (green) and landmarks (red dots) drawn in, for
 * `encodeImage(…, 'png')`. Boxes are drawn at 0-based pixels (reference coordinates − 1), clipped.
 */
export function drawFaces<T extends MtcnnImage>(image: T, faces: readonly FaceDetection[]): T & { data: Uint8Array } {
  const { width: W, height: H, channels: cn } = image;
  const data = Uint8Array.from(image.data);
  const put = (x: number, y: number, bgr: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    const s = (y * W + x) * cn;
    if (cn >= 3) {
      data[s] = bgr[0];
      data[s + 1] = bgr[1];
      data[s + 2] = bgr[2];
    } else data[s] = Math.round(0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]);
  };
  const thick = Math.max(1, Math.round(Math.min(W, H) / 200));
  const green: [number, number, number] = [0, 255, 0];
  const red: [number, number, number] = [0, 0, 255];
  for (const f of faces) {
    const x1 = Math.round(f.box.x1 - 1);
    const y1 = Math.round(f.box.y1 - 1);
    const x2 = Math.round(f.box.x2 - 1);
    const y2 = Math.round(f.box.y2 - 1);
    for (let t = 0; t < thick; t++) {
      for (let x = x1; x <= x2; x++) {
        put(x, y1 + t, green);
        put(x, y2 - t, green);
      }
      for (let y = y1; y <= y2; y++) {
        put(x1 + t, y, green);
        put(x2 - t, y, green);
      }
    }
    const r = thick + 1;
    for (const p of f.landmarks) {
      const cx = Math.round(p.x);
      const cy = Math.round(p.y);
      for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) if (dx * dx + dy * dy <= r * r) put(cx + dx, cy + dy, red);
    }
  }
  return { ...image, data };
}
