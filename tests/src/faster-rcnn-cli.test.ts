import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { decodeNetParameter, type NetParameter } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_FASTER_RCNN_TRAIN, TINY_FASTER_RCNN_YML as TINY_YML } from '../../packages/layers-contrib/src/testing/tiny-faster-rcnn-train.js';
import { caffe, messages, tempDir, withEnv } from './helpers.js';
import { writeVocDevkit } from './voc-devkit.js';

/*
 * `caffe train --roidb voc:DEVKIT:SET`: py-faster-rcnn's train_net.py as one command. A VOC devkit
 * is generated (JPEGs of coloured blocks, VOC XML with 1-based corners, an image set), the train
 * net is py-faster-rcnn's end2end layout (small), and the command reads the roidb, adds the
 * mirrored copies and hands it to the ported RoIDataLayer. The small net's settings come from a
 * yml config, as train_net.py's --cfg gives them.
 */

/** The built command, for a run in a process of its own. */
const bin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));

const SOLVER = 'net: "train.prototxt"\nmomentum: 0.9\nlr_policy: "fixed"\ndisplay: 10\naverage_loss: 10\nrandom_seed: 1701\n';

function blobsOf(file: string, layer: string): number[][] {
  const net: NetParameter = decodeNetParameter(readFileSync(file));
  return net.layer.find((l) => l.name === layer)!.blobs.map((b) => Array.from(b.data));
}

describe('caffe train --roidb (py-faster-rcnn end2end training from a VOC devkit)', () => {
  const tmp = tempDir('caffe-frcnn-');
  beforeAll(async () => {
    await writeVocDevkit(join(tmp.path, 'VOCdevkit', 'VOC2007'));
    writeFileSync(join(tmp.path, 'train.prototxt'), TINY_FASTER_RCNN_TRAIN);
    writeFileSync(join(tmp.path, 'tiny.yml'), TINY_YML);
    writeFileSync(join(tmp.path, 'no_bbox_reg.yml'), `${TINY_YML.replace('TEST:', '  BBOX_REG: False\nTEST:')}`);
    writeFileSync(join(tmp.path, 'solver.prototxt'), `${SOLVER}base_lr: 0.001\nmax_iter: 60\nsnapshot_after_train: false\n`);
    // Learning rate 0: the weights stay the seeded fillers' (the same in every run), so snapshots compare.
    writeFileSync(join(tmp.path, 'frozen.prototxt'), `${SOLVER}base_lr: 0\nmax_iter: 2\nsnapshot_prefix: "frozen"\n`);
    writeFileSync(join(tmp.path, 'frozen_more.prototxt'), `${SOLVER}base_lr: 0\nmax_iter: 4\nsnapshot_prefix: "resumed"\n`);
  });
  afterAll(() => tmp.remove());

  it('reads the config and the image set, adds the mirrored copies, and the smoothed loss falls', async () => {
    const run = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'tiny.yml'], tmp.path);
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    expect(lines).toContain(
      'Loaded config from tiny.yml: EXP_DIR, TRAIN.HAS_RPN, TRAIN.IMS_PER_BATCH, TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED, TRAIN.RPN_POSITIVE_OVERLAP, ' +
        "TRAIN.RPN_BATCHSIZE, TRAIN.PROPOSAL_METHOD, TRAIN.BG_THRESH_LO, TRAIN.SCALES, TRAIN.MAX_SIZE, TRAIN.BATCH_SIZE, TEST.HAS_RPN, TEST.SCALES, TEST.MAX_SIZE set over config.py's defaults",
    );
    expect(lines).toContain("Not read by caffe-ts (they concern py-faster-rcnn's own paths, devices and proposal files): EXP_DIR, TRAIN.PROPOSAL_METHOD");
    expect(lines).toContain('Loaded 8 roidb entries (with mirrored copies) from VOCdevkit/VOC2007 trainval');
    const losses = lines.map((l) => /^Iteration (\d+) \(.*\), loss = ([\d.e+-]+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m![2]));
    expect(losses.length).toBe(6);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(0.7 * losses[1]!);
  });

  it('on 2 workers (each its share of two image sets), snapshots hold bbox_pred unnormalized as train.py writes them; a resume normalizes them again', async () => {
    const roidb = 'voc:VOCdevkit/VOC2007:trainval+voc:VOCdevkit/VOC2007:trainval';
    const parallel = await caffe(['train', '--solver', 'frozen.prototxt', '--roidb', roidb, '--cfg', 'tiny.yml', '--workers', '2'], tmp.path);
    expect(parallel.stderr, parallel.stderr).toBe('');
    expect(parallel.code).toBe(0);
    const lines = messages(parallel.log);
    expect(lines.filter((l) => l === 'Loaded 8 roidb entries (with mirrored copies) from VOCdevkit/VOC2007 trainval')).toHaveLength(2);
    expect(lines.some((l) => l.startsWith('Data-parallel training: 2 replicas (effective batch 2 × batch_size)'))).toBe(true);
    expect(lines).toContain('Snapshots hold bbox_pred unnormalized (× BBOX_NORMALIZE_STDS, + MEANS), ready for testing, as train.py writes them');
    const unnormalized = blobsOf(join(tmp.path, 'frozen_iter_2.caffemodel'), 'bbox_pred');

    // Without bounding-box regression train.py saves the weights as they are: the same fillers.
    const plain = await caffe(['train', '--solver', 'frozen.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'no_bbox_reg.yml'], tmp.path);
    expect(plain.code, plain.stderr).toBe(0);
    const [w, b] = blobsOf(join(tmp.path, 'frozen_iter_2.caffemodel'), 'bbox_pred');
    const stds = [0.1, 0.1, 0.2, 0.2];
    const rows = b!.length;
    expect(rows).toBe(12); // 3 classes × 4 deltas
    expect(w!.some((v) => v !== 0)).toBe(true);
    const perRow = w!.length / rows;
    unnormalized[0]!.forEach((v, k) => expect(v).toBeCloseTo(w![k]! * stds[Math.floor(k / perRow) % 4]!, 7));
    unnormalized[1]!.forEach((v, i) => expect(v).toBeCloseTo(b![i]! * stds[i % 4]!, 7));
    // Resuming from the unnormalized snapshot of the plain run would be wrong; from the first one
    // (rewritten by this run), restore normalizes bbox_pred again, and the frozen weights are saved
    // unnormalized once more: the same values, not scaled twice.
    const again = await caffe(['train', '--solver', 'frozen.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'tiny.yml'], tmp.path);
    expect(again.code, again.stderr).toBe(0);
    const resumed = await caffe(['train', '--solver', 'frozen_more.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'tiny.yml', '--snapshot', 'frozen_iter_2.solverstate'], tmp.path);
    expect(resumed.code, resumed.stderr).toBe(0);
    const after = blobsOf(join(tmp.path, 'resumed_iter_4.caffemodel'), 'bbox_pred');
    after[0]!.forEach((v, k) => expect(v).toBeCloseTo(unnormalized[0]![k]!, 7));
    after[1]!.forEach((v, i) => expect(v).toBeCloseTo(unnormalized[1]![i]!, 7));
  });

  it('trains from a COCO instances file (coco.py\'s roidb: the categories\' order, crowd boxes, an image of crowds only left out)', async () => {
    // The devkit's images as COCO: category ids out of order (class i is the i-th category), boxes
    // as [x, y, w, h] from VOC's 1-based corners, and a fifth image whose only box is a crowd.
    const voc = readFileSync(join(tmp.path, 'VOCdevkit/VOC2007/ImageSets/Main/trainval.txt'), 'utf8').trim().split('\n');
    const images = [...voc, voc[0]!].map((id, i) => ({ id: 100 + i, file_name: `${id}.jpg`, width: 96, height: 64 }));
    const annotations = voc.flatMap((id, i) => {
      const xml = readFileSync(join(tmp.path, `VOCdevkit/VOC2007/Annotations/${id}.xml`), 'utf8');
      return [...xml.matchAll(/<name>(\w+)\s*<\/name>.*?<xmin>(\d+)<\/xmin><ymin>(\d+)<\/ymin><xmax>(\d+)<\/xmax><ymax>(\d+)<\/ymax>/g)].map((m, k) => {
        const [x1, y1, x2, y2] = m.slice(2, 6).map(Number) as [number, number, number, number];
        return { id: 10 * i + k, image_id: 100 + i, category_id: m[1]!.toLowerCase() === 'aeroplane' ? 7 : 3, bbox: [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1], area: 100, iscrowd: 0 };
      });
    });
    annotations.push({ id: 999, image_id: 104, category_id: 3, bbox: [0, 0, 20, 20], area: 400, iscrowd: 1 });
    const instances = { images, annotations, categories: [{ id: 7, name: 'aeroplane' }, { id: 3, name: 'bicycle' }] };
    writeFileSync(join(tmp.path, 'instances_train.json'), JSON.stringify(instances));
    const run = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'coco:instances_train.json:VOCdevkit/VOC2007/JPEGImages', '--cfg', 'tiny.yml'], tmp.path);
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    expect(lines).toContain('Loaded 8 roidb entries (with mirrored copies) from instances_train.json (images in VOCdevkit/VOC2007/JPEGImages)');
    const losses = lines.map((l) => /^Iteration (\d+) \(.*\), loss = ([\d.e+-]+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m![2]));
    expect(losses.at(-1)!).toBeLessThan(0.7 * losses[1]!);
    // VOC and COCO sets do not combine: their classes differ.
    const mixed = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval+coco:instances_train.json:VOCdevkit/VOC2007/JPEGImages', '--cfg', 'tiny.yml'], tmp.path);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/--roidb: instances_train\.json \(images in VOCdevkit\/VOC2007\/JPEGImages\) has other classes than the sets before it \(3 against 21/);
  });

  it('with the default --workers (auto, split on several cores) it trains on one thread instead of refusing', async () => {
    const run = await withEnv('CAFFE_TS_WORKERS', undefined, () =>
      caffe(['train', '--solver', 'frozen.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'tiny.yml'], tmp.path),
    );
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(messages(run.log).some((l) => l.startsWith('Data-parallel training'))).toBe(false);
  });

  it('on --backend gpu the Python layers run on the host once CAFFE_TS_GPU_CPU_FALLBACK=1 allows it, which the error says', async () => {
    const args = ['train', '--solver', 'frozen.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'tiny.yml', '--backend', 'gpu'];
    const strict = await withEnv('CAFFE_TS_GPU_CPU_FALLBACK', undefined, () => caffe(args, tmp.path));
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/no kernel for layer type 'Python' on backend 'gpu' \(set CAFFE_TS_GPU_CPU_FALLBACK=1 \(or register the backend with \{ allowCpuFallback: true \}\) to run it on the host\)/);
    // This process's 'gpu' backend is made once, strict: the allowed run is a process of its own.
    const lax = spawnSync(process.execPath, [bin, ...args], { cwd: tmp.path, env: { ...process.env, CAFFE_TS_GPU_CPU_FALLBACK: '1' }, encoding: 'utf8' });
    expect(lax.status, lax.stderr).toBe(0);
    expect(lax.stderr).toMatch(/Use backend gpu\./);
    expect(lax.stderr).toMatch(/Snapshotting to binary proto file frozen_iter_2\.caffemodel/);
  });

  it('--set KEY VALUE … applies after --cfg, as train_net.py does: SNAPSHOT_INFIX goes into the snapshot names', async () => {
    const run = await caffe(['train', '--solver', 'frozen.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'tiny.yml', '--set', 'TRAIN.SNAPSHOT_INFIX', 'seed7', 'EXP_DIR', 'x', 'TRAIN.SCALES', '(64,)'], tmp.path);
    expect(run.code, run.stderr).toBe(0);
    expect(messages(run.log)).toContain('Set from --set: TRAIN.SNAPSHOT_INFIX, EXP_DIR, TRAIN.SCALES');
    expect(blobsOf(join(tmp.path, 'frozen_seed7_iter_2.caffemodel'), 'bbox_pred')).toHaveLength(2);
    const bad = await caffe(['train', '--solver', 'frozen.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--set', 'TRAIN.SCALE', '600'], tmp.path);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--set TRAIN\.SCALE: 'TRAIN\.SCALE' is not a valid config key/);
  });

  it('refuses --split_batch, --cfg without --roidb, a malformed spec and a bad config, in one line each', async () => {
    const split = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--workers', '2', '--split_batch'], tmp.path);
    expect(split.code).toBe(1);
    expect(split.stderr).toMatch(/--roidb with --split_batch: a Faster R-CNN batch is one image/);
    const cfg = await caffe(['train', '--solver', 'solver.prototxt', '--cfg', 'tiny.yml'], tmp.path);
    expect(cfg.code).toBe(1);
    expect(cfg.stderr).toMatch(/--cfg configures py-faster-rcnn training: give --roidb too/);
    const bad = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'VOCdevkit'], tmp.path);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--roidb expects voc:DEVKIT_YEAR_DIR:IMAGE_SET \(e\.g\. voc:VOCdevkit\/VOC2007:trainval\) or coco:ANNOTATIONS_JSON:IMAGE_DIR/);
    writeFileSync(join(tmp.path, 'typo.yml'), 'TRAIN:\n  HAS_RPN: True\n  SCALE: [600]\n');
    const typo = await caffe(['train', '--solver', 'solver.prototxt', '--roidb', 'voc:VOCdevkit/VOC2007:trainval', '--cfg', 'typo.yml'], tmp.path);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/typo\.yml:3:3: 'TRAIN\.SCALE' is not a valid config key/);
  });
});
