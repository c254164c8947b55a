/*
 * py-faster-rcnn's test_net on one image (lib/fast_rcnn/test.py): im_detect with the TEST
 * settings (the image prepared as for training, at TEST.SCALES[0] and TEST.MAX_SIZE), then every
 * class's boxes scoring above `thresh` through NMS at TEST.NMS, then at most `maxPerImage`
 * detections over all classes. These are the detections its evaluation scores.
 */
import type { Net } from '@caffe-ts/net';
import { LayerError } from '@caffe-ts/layers';
import type { Detection } from './detect.js';
import { fasterRcnnDetections } from './faster-rcnn.js';
import type { FasterRcnnConfig } from './faster-rcnn-config.js';
import { prepareTrainingImage, type RoidbImage } from './layers/roi-data-layer.js';

export interface TestNetOptions {
  /** Keep a class's box when its score is above this (test_net's 0.05). */
  thresh?: number;
  /** At most this many detections per image over all classes, the best (test_net's max_per_image, 100; ties kept). */
  maxPerImage?: number;
  /** Class names, indexed by class (0 is the background). */
  labels?: readonly string[];
}

/**
 * Detections of a Faster R-CNN test net (inputs `data` and `im_info`; blobs `rois`, `cls_prob`,
 * `bbox_pred`) on one BGR image, in its pixels with 0-based corners, best first.
 */
export function testNetImage(net: Net, image: RoidbImage, config: FasterRcnnConfig, { thresh = 0.05, maxPerImage = 100, labels }: TestNetOptions = {}): Detection[] {
  if (!config.TEST.HAS_RPN) throw new LayerError('testNetImage: TEST.HAS_RPN is false (Fast R-CNN with precomputed proposals), which is not supported');
  for (const name of ['data', 'im_info', 'rois', 'cls_prob', 'bbox_pred']) {
    if (!net.hasBlob(name)) throw new LayerError(`testNetImage: the net has no '${name}' blob; a Faster R-CNN test net has data, im_info, rois, cls_prob and bbox_pred`);
  }
  // With an RPN, im_detect takes one scale (its assertion).
  const prepared = prepareTrainingImage(image, false, config.TEST.SCALES[0]!, config.TEST.MAX_SIZE, config.PIXEL_MEANS);
  const data = net.blob('data');
  data.reshape([1, 3, prepared.height, prepared.width]);
  data.mutableCpuData().set(prepared.data);
  const info = net.blob('im_info');
  info.reshape([1, 3]);
  info.mutableCpuData().set([prepared.height, prepared.width, prepared.scale]);
  net.reshape();
  net.forward();
  const scores = net.blob('cls_prob');
  const dets = fasterRcnnDetections(
    net.blob('rois').cpuData(), scores.cpuData(), net.blob('bbox_pred').cpuData(), scores.count(1),
    { height: image.height, width: image.width, scale: prepared.scale },
    { confidence: thresh, nmsThresh: config.TEST.NMS, ...(labels ? { labels } : {}) },
  );
  if (dets.length <= maxPerImage) return dets;
  // The max_per_image-th best score is the cut; every detection at or above it stays.
  const cut = dets[maxPerImage - 1]!.score;
  return dets.filter((d) => d.score >= cut);
}
