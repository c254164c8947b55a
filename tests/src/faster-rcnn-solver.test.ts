import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@caffe-ts/blob';
import { encodeImage } from '@caffe-ts/io-leveldb';
import { defaultPythonLayerRegistry, LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { getTrainingRoidb, registerContribLayers, registerFasterRcnnPythonLayers, setRoidb, type RoidbEntry } from '@caffe-ts/layers-contrib';
import { createMessage, parseNetParameter, type SolverParameter } from '@caffe-ts/proto';
import { createSolver } from '@caffe-ts/solver';
import { afterAll, describe, expect, it } from 'vitest';
import { TINY_FASTER_RCNN_TRAIN, TINY_FASTER_RCNN_TRAIN_CONFIG } from '../../packages/layers-contrib/src/testing/tiny-faster-rcnn-train.js';
import { tempDir } from './helpers.js';

/*
 * Faster R-CNN trained by the Solver, as py-faster-rcnn's train.py does it: the net from its
 * end2end layout (RoIDataLayer, anchor and proposal target layers as Python layers), the roidb
 * handed to the data layer (set_roidb), and SGD steps, each of which awaits the data layer's
 * prepare() (reading the next image) before the forward pass.
 */

const H = 64, W = 96;

/** Gray-noise PNGs with a red (class 1) and a green (class 2) block each, and their roidb entries. */
async function blockImages(dir: string, count: number): Promise<RoidbEntry[]> {
  const rng = new Rng(29);
  const entries: RoidbEntry[] = [];
  for (let n = 0; n < count; n++) {
    const bgr = new Uint8Array(H * W * 3);
    for (let i = 0; i < H * W; i++) bgr.fill(110 + rng.int(30), 3 * i, 3 * i + 3);
    // Fixed, non-overlapping blocks that move from image to image; boxes are inclusive pixel corners.
    const red = [4 + 6 * n, 6, 4 + 6 * n + 29, 6 + 27];
    const green = [60 - 4 * n, 30, 60 - 4 * n + 31, 30 + 29];
    for (const [box, colour] of [[red, [30, 30, 220]], [green, [40, 200, 30]]] as const) {
      for (let y = box[1]!; y <= box[3]!; y++) for (let x = box[0]!; x <= box[2]!; x++) bgr.set(colour, 3 * (y * W + x));
    }
    const path = join(dir, `blocks-${n}.png`);
    writeFileSync(path, await encodeImage({ height: H, width: W, channels: 3, data: bgr }, 'png'));
    entries.push({ image: path, width: W, height: H, boxes: [red, green], gt_classes: [1, 2], flipped: false });
  }
  return entries;
}

describe('Faster R-CNN through the Solver (py-faster-rcnn end2end layout)', () => {
  const tmp = tempDir('faster-rcnn-solver-');
  afterAll(() => tmp.remove());

  it('SGD lowers the total loss, the data layer reading a new image before each step', async () => {
    // The ports with the small net's settings (64-pixel images, 64 RoIs), in the process-wide
    // registry the "Python" layer type reads.
    registerFasterRcnnPythonLayers(defaultPythonLayerRegistry(), TINY_FASTER_RCNN_TRAIN_CONFIG);
    const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
    const param = createMessage<SolverParameter>('SolverParameter', {
      net_param: parseNetParameter(TINY_FASTER_RCNN_TRAIN, 'train.prototxt'),
      base_lr: 0.001,
      momentum: 0.9,
      lr_policy: 'fixed',
      max_iter: 80,
      display: 0,
      random_seed: 1701,
      snapshot_after_train: false,
    });
    const solver = createSolver(param, { registry, log: false });
    try {
      setRoidb(solver.net, getTrainingRoidb(await blockImages(tmp.path, 4)));
      const losses: number[] = [];
      solver.addCallback({ onIteration: (info) => void losses.push(info.loss) });
      await solver.step(80);
      expect(losses.length).toBe(80);
      expect(losses.every(Number.isFinite)).toBe(true);
      const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
      // 2.318 → 0.508 when written (seeded).
      const [first, last] = [mean(losses.slice(0, 10)), mean(losses.slice(-10))];
      expect(last, `${first} → ${last}`).toBeLessThan(0.6 * first);
    } finally {
      await solver.close();
    }
  });
});
