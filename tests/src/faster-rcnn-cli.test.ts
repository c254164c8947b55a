import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@caffe-ts/blob';
import { encodeImage } from '@caffe-ts/io-leveldb';
import { defaultPythonLayerRegistry } from '@caffe-ts/layers';
import { registerFasterRcnnPythonLayers } from '@caffe-ts/layers-contrib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_FASTER_RCNN_TRAIN, TINY_FASTER_RCNN_TRAIN_CONFIG } from '../../packages/layers-contrib/src/testing/tiny-faster-rcnn-train.js';
import { caffe, messages, tempDir } from './helpers.js';

/*
 * `caffe train --roidb voc:DEVKIT:SET`: py-faster-rcnn's train_net.py as one command. A VOC devkit
 * is generated (JPEGs of coloured blocks, VOC XML with 1-based corners, an image set), the train
 * net is py-faster-rcnn's end2end layout (small), and the command reads the roidb, adds the
 * mirrored copies and hands it to the ported RoIDataLayer.
 */

const H = 64, W = 96;
// The small net has 3 classes: VOC's first two, aeroplane (1) and bicycle (2), with the background.

async function writeDevkit(dir: string): Promise<void> {
  for (const sub of ['JPEGImages', 'Annotations', 'ImageSets/Main']) mkdirSync(join(dir, sub), { recursive: true });
  const rng = new Rng(31);
  const ids: string[] = [];
  for (let n = 0; n < 4; n++) {
    const id = String(n + 1).padStart(6, '0');
    ids.push(id);
    const bgr = new Uint8Array(H * W * 3);
    for (let i = 0; i < H * W; i++) bgr.fill(110 + rng.int(30), 3 * i, 3 * i + 3);
    // 1-based inclusive corners, as VOC writes them.
    const cat = [5 + 6 * n, 7, 5 + 6 * n + 29, 7 + 27];
    const dog = [61 - 4 * n, 31, 61 - 4 * n + 31, 31 + 29];
    for (const [box, colour] of [[cat, [30, 30, 220]], [dog, [40, 200, 30]]] as const) {
      for (let y = box[1]! - 1; y < box[3]!; y++) for (let x = box[0]! - 1; x < box[2]!; x++) bgr.set(colour, 3 * (y * W + x));
    }
    writeFileSync(join(dir, 'JPEGImages', `${id}.jpg`), await encodeImage({ height: H, width: W, channels: 3, data: bgr }, 'jpg'));
    const object = (name: string, b: readonly number[]) =>
      `<object><name>${name}</name><difficult>0</difficult><bndbox><xmin>${b[0]}</xmin><ymin>${b[1]}</ymin><xmax>${b[2]}</xmax><ymax>${b[3]}</ymax></bndbox></object>`;
    writeFileSync(
      join(dir, 'Annotations', `${id}.xml`),
      `<annotation><size><width>${W}</width><height>${H}</height><depth>3</depth></size>${object('aeroplane', cat)}${object('Bicycle ', dog)}</annotation>`,
    );
  }
  writeFileSync(join(dir, 'ImageSets/Main/trainval.txt'), `${ids.join('\n')}\n`);
}

describe('caffe train --roidb (py-faster-rcnn end2end training from a VOC devkit)', () => {
  const tmp = tempDir('caffe-frcnn-');
  beforeAll(async () => {
    await writeDevkit(join(tmp.path, 'VOCdevkit', 'VOC2007'));
    writeFileSync(join(tmp.path, 'train.prototxt'), TINY_FASTER_RCNN_TRAIN);
    writeFileSync(
      join(tmp.path, 'solver.prototxt'),
      'net: "train.prototxt"\nbase_lr: 0.001\nmomentum: 0.9\nlr_policy: "fixed"\ndisplay: 10\naverage_loss: 10\nmax_iter: 60\nsnapshot_after_train: false\nrandom_seed: 1701\n',
    );
    // The small net's settings (64-pixel images, 64 RoIs), where py-faster-rcnn would take --cfg.
    registerFasterRcnnPythonLayers(defaultPythonLayerRegistry(), TINY_FASTER_RCNN_TRAIN_CONFIG);
  });
  afterAll(() => tmp.remove());

  it('reads the image set, adds the mirrored copies, and the smoothed loss falls', async () => {
    const run = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval'], tmp.path);
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    expect(lines).toContain('Loaded 8 roidb entries (with mirrored copies) from VOCdevkit/VOC2007 trainval');
    const losses = lines.map((l) => /^Iteration (\d+) \(.*\), loss = ([\d.e+-]+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m![2]));
    expect(losses.length).toBe(6);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(0.7 * losses[1]!);
  });

  it('refuses --workers and a malformed spec, in one line each', async () => {
    const workers = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--workers', '2'], tmp.path);
    expect(workers.code).toBe(1);
    expect(workers.stderr).toMatch(/--roidb trains on one thread/);
    const bad = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'VOCdevkit'], tmp.path);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--roidb expects voc:DEVKIT_YEAR_DIR:IMAGE_SET/);
  });
});
