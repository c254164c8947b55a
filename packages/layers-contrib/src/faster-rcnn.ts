/*
 * Faster R-CNN detection on one image, as py-faster-rcnn's test code (im_detect, then per-class
 * thresholding and NMS) runs a test net whose outputs are `rois`, `cls_prob` and `bbox_pred`.
 */
import type { Net } from '@caffe-ts/net';
import { DetectError, resizeBilinear, type Detection, type DetectImage, type DetectResult } from './detect.js';
import { applyBoxDeltas, nmsPixelBoxes } from './proposals.js';

/** py-faster-rcnn's PIXEL_MEANS, subtracted from the BGR pixels. */
export const FASTER_RCNN_PIXEL_MEANS: readonly number[] = Object.freeze([102.9801, 115.9465, 122.7717]);

export interface FasterRcnnOptions {
  /** BGR means subtracted from the pixels (default FASTER_RCNN_PIXEL_MEANS). */
  mean?: readonly number[];
  /** The image's shorter side is scaled to this (TEST.SCALES: 600)… */
  shorterSide?: number;
  /** …unless its longer side would then pass this (TEST.MAX_SIZE: 1000). */
  maxSide?: number;
  /** Keep detections scoring above this (py-faster-rcnn's demo: 0.8; its evaluation: 0.05). Default 0.5. */
  confidence?: number;
  /** Per-class NMS threshold (TEST.NMS: 0.3). */
  nmsThresh?: number;
  /** Class names, indexed by class (0 is the background). */
  labels?: readonly string[];
  /** Blob names: the image, im_info, and the outputs. */
  blobs?: { data?: string; imInfo?: string; rois?: string; scores?: string; deltas?: string };
  /** Resize function (default: a plain bilinear resize); pass @caffe-ts/io-leveldb's resizeImage for OpenCV's numbers. */
  resize?: (img: DetectImage, height: number, width: number) => DetectImage;
}

/** Whether `net` looks like a Faster R-CNN test net: an `im_info` input and `cls_prob` and `bbox_pred` blobs. */
export function isFasterRcnnNet(net: Net, blobs: FasterRcnnOptions['blobs'] = {}): boolean {
  return net.inputBlobNames.includes(blobs.imInfo ?? 'im_info') && net.hasBlob(blobs.scores ?? 'cls_prob') && net.hasBlob(blobs.deltas ?? 'bbox_pred');
}

/**
 * Detections from a Faster R-CNN net's outputs for one image: each region (rows [batch, x1, y1,
 * x2, y2] of `rois`, in network-input pixels) is divided by the image's scale, moved by each
 * class's box deltas (dx, dy, dw, dh; widths count both corners), clipped to the image; then, per
 * class but the background (0), the boxes scoring above `confidence` go through NMS. Best first.
 * With 8 deltas per region (R-FCN's class-agnostic regression), the object's 4 serve every class.
 */
export function fasterRcnnDetections(
  rois: ArrayLike<number>,
  scores: ArrayLike<number>,
  deltas: ArrayLike<number>,
  classes: number,
  image: { height: number; width: number; scale: number },
  { confidence = 0.5, nmsThresh = 0.3, labels }: Pick<FasterRcnnOptions, 'confidence' | 'nmsThresh' | 'labels'> = {},
): Detection[] {
  const R = Math.floor(rois.length / 5);
  // R-FCN's nets regress one box per region whatever the class (background, then object): 8 deltas.
  const agnostic = deltas.length === R * 8 && classes !== 2;
  if (scores.length !== R * classes || (deltas.length !== R * 4 * classes && !agnostic)) {
    throw new DetectError(
      `${R} regions need ${R} × ${classes} class scores and ${R} × ${4 * classes} box deltas, or ${R} × 8 for class-agnostic boxes (got ${scores.length} and ${deltas.length})`,
    );
  }
  const detections: Detection[] = [];
  for (let c = 1; c < classes; c++) {
    const boxes: number[] = [];
    const order: number[] = [];
    for (let r = 0; r < R; r++) {
      const score = scores[r * classes + c]!;
      if (!(score > confidence)) continue;
      const region = [1, 2, 3, 4].map((j) => rois[5 * r + j]! / image.scale) as [number, number, number, number];
      const d = agnostic ? 8 * r + 4 : 4 * (r * classes + c);
      boxes.push(...applyBoxDeltas(region, deltas[d]!, deltas[d + 1]!, deltas[d + 2]!, deltas[d + 3]!, image.width, image.height));
      order.push(r);
    }
    const ranked = order.map((_, k) => k).sort((a, b) => scores[order[b]! * classes + c]! - scores[order[a]! * classes + c]! || a - b);
    for (const k of nmsPixelBoxes(boxes, ranked, nmsThresh)) {
      const [xmin, ymin, xmax, ymax] = boxes.slice(4 * k, 4 * k + 4) as [number, number, number, number];
      detections.push({
        label: c,
        name: labels?.[c] ?? String(c),
        score: scores[order[k]! * classes + c]!,
        box: { xmin, ymin, xmax, ymax },
        normalized: { xmin: xmin / image.width, ymin: ymin / image.height, xmax: xmax / image.width, ymax: ymax / image.height },
      });
    }
  }
  return detections.sort((a, b) => b.score - a.score);
}

/**
 * Run a Faster R-CNN test net (built, with its weights) on one image, as py-faster-rcnn does: the
 * image scaled so its shorter side is `shorterSide` (its longer side at most `maxSide`), the means
 * subtracted, `im_info` set to [height, width, scale], one forward, then fasterRcnnDetections.
 */
export function detectFasterRcnn(net: Net, image: DetectImage, options: FasterRcnnOptions = {}): DetectResult {
  const names = { data: 'data', imInfo: 'im_info', rois: 'rois', scores: 'cls_prob', deltas: 'bbox_pred', ...options.blobs };
  for (const [what, name] of Object.entries(names)) {
    if (!net.hasBlob(name)) throw new DetectError(`the net has no '${name}' blob (${what}); a Faster R-CNN test net has data, im_info, rois, cls_prob and bbox_pred`);
  }
  const input = net.blob(names.data);
  if (input.numAxes !== 4 || input.shape[1] !== 3) throw new DetectError(`input blob '${names.data}' must be N × 3 × H × W (got ${input.shapeString()})`);
  if (Math.min(image.channels, 3) !== 3) throw new DetectError(`a Faster R-CNN net takes colour images (this one has ${image.channels} channel(s))`);
  const shorter = options.shorterSide ?? 600, longest = options.maxSide ?? 1000;
  if (!(shorter > 0 && longest > 0)) throw new DetectError(`shorterSide and maxSide must be positive (got ${shorter} and ${longest})`);
  let scale = shorter / Math.min(image.height, image.width);
  if (Math.round(scale * Math.max(image.height, image.width)) > longest) scale = longest / Math.max(image.height, image.width);
  const height = Math.round(image.height * scale), width = Math.round(image.width * scale);
  const mean = options.mean ?? FASTER_RCNN_PIXEL_MEANS;
  if (mean.length !== 1 && mean.length !== 3) throw new DetectError(`give 1 or 3 mean values (got ${mean.length})`);
  const resized = (options.resize ?? resizeBilinear)(image, height, width);
  input.reshape([1, 3, height, width]);
  const info = net.blob(names.imInfo);
  if (info.count() < 3) throw new DetectError(`blob '${names.imInfo}' must hold [height, width, scale] (got ${info.shapeString()})`);
  net.reshape();
  const x = input.mutableCpuData(), plane = height * width;
  for (let c = 0; c < 3; c++) {
    const m = mean.length === 1 ? mean[0]! : mean[c]!;
    for (let i = 0; i < plane; i++) x[c * plane + i] = resized.data[i * resized.channels + c]! - m;
  }
  info.mutableCpuData().set([height, width, scale]);
  net.forward();
  const scores = net.blob(names.scores);
  const classes = scores.count(1);
  const detections = fasterRcnnDetections(
    net.blob(names.rois).cpuData(), scores.cpuData(), net.blob(names.deltas).cpuData(), classes,
    { height: image.height, width: image.width, scale }, options,
  );
  return { detections, inputSize: { height, width } };
}
