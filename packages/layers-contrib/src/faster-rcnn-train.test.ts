import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, PythonLayerRegistry, pythonLayerDefFor, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerContribLayers, registerFasterRcnnPythonLayers } from './index.js';
import { getTrainingRoidb, setRoidb, type RoidbEntry } from './layers/roi-data-layer.js';
import { TINY_FASTER_RCNN_TRAIN, TINY_FASTER_RCNN_TRAIN_CONFIG } from './testing/tiny-faster-rcnn-train.js';

const LOSSES = ['rpn_cls_loss', 'rpn_loss_bbox', 'loss_cls', 'loss_bbox'] as const;
const H = 64, W = 96;

/**
 * Images of coloured blocks on a noisy grey ground, written as PNG files: a red block (class 1)
 * and a green one (class 2) per image, 24 to 40 pixels a side, not overlapping.
 */
async function writeBlockImages(dir: string, count: number, rng: Rng): Promise<RoidbEntry[]> {
  const entries: RoidbEntry[] = [];
  for (let n = 0; n < count; n++) {
    const rgb = new Uint8Array(H * W * 3);
    for (let i = 0; i < H * W; i++) rgb.fill(110 + rng.int(30), 3 * i, 3 * i + 3);
    const boxes: number[][] = [];
    const classes: number[] = [];
    for (const [cls, colour] of [[1, [220, 30, 30]], [2, [30, 200, 40]]] as const) {
      for (;;) {
        const w = 24 + rng.int(17), h = 24 + rng.int(17);
        const x1 = rng.int(W - w + 1), y1 = rng.int(H - h + 1);
        const box = [x1, y1, x1 + w - 1, y1 + h - 1];
        if (boxes.some((b) => box[0]! <= b[2]! && b[0]! <= box[2]! && box[1]! <= b[3]! && b[1]! <= box[3]!)) continue;
        for (let y = box[1]!; y <= box[3]!; y++) for (let x = box[0]!; x <= box[2]!; x++) rgb.set(colour, 3 * (y * W + x));
        boxes.push(box);
        classes.push(cls);
        break;
      }
    }
    const path = join(dir, `blocks-${n}.png`);
    await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).png().toFile(path);
    entries.push({ image: path, width: W, height: H, boxes, gt_classes: classes, flipped: false });
  }
  return entries;
}

function buildNet(text: string, seed: number): Net {
  const python = registerFasterRcnnPythonLayers(new PythonLayerRegistry(), TINY_FASTER_RCNN_TRAIN_CONFIG);
  const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
  registry.register(pythonLayerDefFor(python), { override: true });
  return new Net(parseNetParameter(text, 'train.prototxt'), { phase: Phase.TRAIN, registry, log: false, rng: new Rng(seed) });
}

const mean = (a: readonly number[]) => a.reduce((s, v) => s + v, 0) / a.length;

describe('training a small Faster R-CNN end to end (py-faster-rcnn layout, Python layers ported)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'faster-rcnn-train-'));
  let roidb: RoidbEntry[] = [];
  beforeAll(async () => {
    roidb = getTrainingRoidb(await writeBlockImages(dir, 4, new Rng(17)));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // 100 iterations of SGD (lr 0.001, momentum 0.9; lr_mult 2 for biases) over 4 images and their
  // mirrors. Mean of the first 20 iterations → mean of the last 20 (seeded, so the same each run):
  //   rpn_cls_loss 0.568 → 0.043, rpn_loss_bbox 0.0117 → 0.0062, loss_cls 0.929 → 0.266,
  //   loss_bbox 0.541 → 0.279.
  it('every loss falls under SGD', async () => {
    const net = buildNet(TINY_FASTER_RCNN_TRAIN, 3);
    setRoidb(net, roidb);
    const params = net.learnableParams;
    const velocity = params.map((p) => new Float64Array(p.count()));
    const history: Record<string, number[]> = Object.fromEntries(LOSSES.map((l) => [l, []]));
    const lr = 0.001, momentum = 0.9;
    for (let it = 0; it < 100; it++) {
      await net.prepare(); // the RoIDataLayer port reads the next image
      net.clearParamDiffs();
      net.forwardBackward();
      for (const l of LOSSES) history[l]!.push(net.blob(l).cpuData()[0]!);
      params.forEach((p, i) => {
        const w = p.mutableCpuData(), g = p.cpuDiff(), v = velocity[i]!, rate = lr * (net.paramsLr[i] ?? 1);
        for (let j = 0; j < w.length; j++) {
          v[j] = momentum * v[j]! - rate * g[j]!;
          w[j] = w[j]! + v[j]!;
        }
      });
    }
    // The RoIs really vary: the proposal and target layers' counts follow the data.
    expect(net.blob('rois').shape[0]).toBeGreaterThan(8);
    expect(net.blob('rois').shape[0]).toBeLessThanOrEqual(64);
    for (const l of LOSSES) {
      const h = history[l]!;
      expect(h.every(Number.isFinite), l).toBe(true);
      const [first, last] = [mean(h.slice(0, 20)), mean(h.slice(-20))];
      expect(last, `${l}: ${first} → ${last}`).toBeLessThan((l === 'rpn_loss_bbox' ? 0.75 : 0.6) * first);
    }
  });

  it("each loss's gradient reaches the first convolution; the proposals pass none back to the RPN", async () => {
    const grad = (net: Net, layer: string) => Array.from(net.layer(layer).blobs[0]!.cpuDiff(), Math.abs).reduce((s, v) => s + v, 0);
    for (const loss of LOSSES) {
      // Only `loss` keeps its weight: the net leaves the others out of backward, as Caffe does.
      const text = TINY_FASTER_RCNN_TRAIN.replace(/top: "(\w+)" loss_weight: 1/g, (m, top: string) => (top === loss ? m : `top: "${top}" loss_weight: 0`));
      const net = buildNet(text, 3);
      setRoidb(net, roidb);
      await net.prepare();
      net.clearParamDiffs();
      net.forwardBackward();
      expect(grad(net, 'conv1'), loss).toBeGreaterThan(0);
      expect(grad(net, 'conv3'), loss).toBeGreaterThan(0);
      const rpn = loss.startsWith('rpn');
      // The RPN losses train the RPN heads only; the detection losses the heads after ROIPooling,
      // and reach the convolutions through ROIPooling alone (the proposals are constants).
      expect(grad(net, rpn ? 'rpn_cls_score' : 'cls_score') + grad(net, rpn ? 'rpn_bbox_pred' : 'bbox_pred'), loss).toBeGreaterThan(0);
      expect(grad(net, rpn ? 'fc6' : 'rpn_conv/3x3'), loss).toBe(0);
    }
  });
});
