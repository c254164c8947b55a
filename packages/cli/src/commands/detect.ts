import { writeFileSync } from 'node:fs';
import { logger } from '@caffe-ts/blob';
import { readImage, resizeImage } from '@caffe-ts/io-leveldb';
import { registerContribLayers } from '@caffe-ts/layers-contrib';
import { detect, detectFasterRcnn, drawDetections, isFasterRcnnNet, readLabels } from '@caffe-ts/layers-contrib/detect';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { UsageError, type Flags } from '../args.js';
import { userPath } from '../paths.js';
import { backendFromFlags, cliRegistry, numberList } from './common.js';
import type { Command } from './index.js';

const log = logger('detect.cpp');

function float(flags: Flags, name: string, fallback: number): number {
  const s = flags.string(name);
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isFinite(v)) throw new UsageError(`flag --${name} expects a number, got '${s}'`);
  return v;
}

/**
 * `caffe detect`: run a detector on one image: an SSD-style net (ending in DetectionOutput), or a
 * Faster R-CNN test net (an im_info input; cls_prob and bbox_pred out), which is run as
 * py-faster-rcnn's test code runs it.
 */
export const detectCommand: Command = {
  summary: 'detect objects in an image with an SSD-style or Faster R-CNN net and draw them',
  usage:
    '--model M --weights W --image in.jpg [--output out.png] [--mean_values 104,117,123] [--scale 1] ' +
    '[--input_size 300x300] [--confidence 0.5] [--labels file] [--backend cpu|gpu]; ' +
    'Faster R-CNN nets: [--shorter_side 600] [--max_size 1000] [--nms 0.3] (means default to py-faster-rcnn\'s)',
  async run({ flags }) {
    const model = flags.string('model');
    const weights = flags.string('weights');
    const image = flags.string('image');
    const output = flags.string('output');
    const mean = numberList(flags, 'mean_values');
    const scale = float(flags, 'scale', 1);
    const confidence = float(flags, 'confidence', 0.5);
    const labelsFile = flags.string('labels');
    const size = flags.string('input_size');
    let inputSize: { height: number; width: number } | undefined;
    if (size !== undefined) {
      const m = /^(\d+)x(\d+)$/.exec(size);
      if (!m || Number(m[1]) === 0 || Number(m[2]) === 0) throw new UsageError(`flag --input_size expects WIDTHxHEIGHT, got '${size}'`);
      inputSize = { width: Number(m[1]), height: Number(m[2]) };
    }
    const shorterSide = float(flags, 'shorter_side', 600);
    const maxSide = float(flags, 'max_size', 1000);
    const nmsThresh = float(flags, 'nms', 0.3);
    const backend = await backendFromFlags(flags);
    flags.checkAllUsed();
    if (!model) throw new UsageError('Need a model definition (--model) to detect with.');
    if (!weights) throw new UsageError('Need model weights (--weights) to detect with.');
    if (!image) throw new UsageError('Need an image (--image) to detect in.');

    const registry = registerContribLayers(cliRegistry());
    const labels = labelsFile ? readLabels(userPath(labelsFile)) : undefined;
    const img = await readImage(userPath(image));
    log.info(`Image ${image}: ${img.width}x${img.height}`);
    const net = await Net.create(readNetParameter(userPath(model)), { phase: Phase.TEST, registry, backend, name: userPath(model) });
    try {
      copyTrainedLayersFromFile(net, userPath(weights));
      const fasterRcnn = isFasterRcnnNet(net);
      if (fasterRcnn) log.info(`Faster R-CNN net: shorter side ${shorterSide}, longer side at most ${maxSide}, NMS ${nmsThresh}`);
      const result = fasterRcnn
        ? detectFasterRcnn(net, img, {
          confidence,
          shorterSide,
          maxSide,
          nmsThresh,
          resize: resizeImage,
          ...(mean ? { mean } : {}),
          ...(labels ? { labels } : {}),
        })
        : detect(net, img, {
          confidence,
          scale,
          resize: resizeImage,
          ...(mean ? { mean } : {}),
          ...(inputSize ? { inputSize } : {}),
          ...(labels ? { labels } : {}),
        });
      log.info(`Input ${result.inputSize.width}x${result.inputSize.height}; ${result.detections.length} detection(s) with confidence >= ${confidence}`);
      for (const d of result.detections) {
        const b = d.box;
        log.info(`${d.name} ${d.score.toFixed(4)} [${b.xmin.toFixed(1)}, ${b.ymin.toFixed(1)}, ${b.xmax.toFixed(1)}, ${b.ymax.toFixed(1)}]`);
      }
      if (output) {
        const png = await drawDetections(img, result.detections);
        writeFileSync(userPath(output), png);
        log.info(`Wrote ${output}`);
      }
    } finally {
      await net.close();
    }
  },
};
