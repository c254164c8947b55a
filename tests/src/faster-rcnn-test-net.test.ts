import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_FASTER_RCNN_TRAIN, TINY_FASTER_RCNN_TRAIN_TEST, TINY_FASTER_RCNN_YML as TINY_YML } from '../../packages/layers-contrib/src/testing/tiny-faster-rcnn-train.js';
import { caffe, messages, tempDir } from './helpers.js';
import { writeVocDevkit } from './voc-devkit.js';

/*
 * `caffe test_net`: py-faster-rcnn's test_net.py. A small Faster R-CNN trained with `caffe train
 * --roidb` on a generated devkit's trainval images is evaluated on its test images (other block
 * positions): VOC results files, then each class's AP (VOC2007's 11-point metric) and the mean.
 */

const SOLVER = 'net: "train.prototxt"\nmomentum: 0.9\nlr_policy: "fixed"\ndisplay: 0\nrandom_seed: 1701\nweight_decay: 0.0005\n';
const CLASSES = '__background__\naeroplane\nbicycle\n';

function apLines(stdout: string): Record<string, number> {
  return Object.fromEntries([...stdout.matchAll(/^(?:AP for (\w+)|(Mean AP)) = (\d\.\d{4})$/gm)].map((m) => [m[1] ?? m[2]!, Number(m[3])]));
}

describe('caffe test_net (py-faster-rcnn test_net.py on a VOC image set)', () => {
  const tmp = tempDir('caffe-frcnn-test-');
  const devkit = 'VOCdevkit/VOC2007';
  let testIds: string[] = [];
  beforeAll(async () => {
    await writeVocDevkit(join(tmp.path, devkit), { count: 4, imageSet: 'trainval' });
    testIds = await writeVocDevkit(join(tmp.path, devkit), { first: 4, count: 2, imageSet: 'test', seed: 5 });
    writeFileSync(join(tmp.path, 'train.prototxt'), TINY_FASTER_RCNN_TRAIN);
    writeFileSync(join(tmp.path, 'test.prototxt'), TINY_FASTER_RCNN_TRAIN_TEST);
    writeFileSync(join(tmp.path, 'tiny.yml'), TINY_YML);
    writeFileSync(join(tmp.path, 'classes.txt'), CLASSES);
    writeFileSync(join(tmp.path, 'solver.prototxt'), `${SOLVER}base_lr: 0.002\nmax_iter: 200\nsnapshot_prefix: "tiny"\n`);
    writeFileSync(join(tmp.path, 'untrained.prototxt'), `${SOLVER}base_lr: 0\nmax_iter: 1\nsnapshot_prefix: "untrained"\n`);
    for (const solver of ['solver.prototxt', 'untrained.prototxt']) {
      const run = await caffe(['train', '--solver', solver, '--roidb', `voc:${devkit}:trainval`, '--cfg', 'tiny.yml'], tmp.path);
      expect(run.code, run.stderr).toBe(0);
    }
  }, 120_000);
  afterAll(() => tmp.remove());

  const testNet = (weights: string, out: string, extra: string[] = []) =>
    caffe(['test_net', '--model', 'test.prototxt', '--weights', weights, '--imdb', `voc:${devkit}:test`, '--cfg', 'tiny.yml', '--labels', 'classes.txt', '--output_dir', out, ...extra], tmp.path);

  it('detects in every test image, writes the VOC results files, and scores the trained net far above the untrained one', async () => {
    const run = await testNet('tiny_iter_200.caffemodel', 'trained');
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    expect(lines.filter((l) => /^im_detect: \d\/2 \d+\.\d{3}s, \d+ detections$/.test(l))).toHaveLength(2);
    expect(lines).toContain('VOC07 metric? Yes');
    const aps = apLines(run.stdout);
    expect(Object.keys(aps)).toEqual(['aeroplane', 'bicycle', 'Mean AP']);
    expect(aps['Mean AP']).toBeCloseTo((aps.aeroplane! + aps.bicycle!) / 2, 4);
    // Each class's file: 'index score x1 y1 x2 y2', the score to 3 decimals, 1-based corners to 1.
    for (const cls of ['aeroplane', 'bicycle']) {
      const text = readFileSync(join(tmp.path, 'trained', `comp4_det_test_${cls}.txt`), 'utf8');
      const rows = text.trim().split('\n').map((l) => l.split(' '));
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.length).toBeLessThanOrEqual(2 * 100);
      for (const r of rows) {
        expect(testIds).toContain(r[0]);
        expect(r[1]).toMatch(/^0\.\d{3}$|^1\.000$/);
        for (const v of r.slice(2)) expect(v).toMatch(/^\d+\.\d$/);
        expect(Number(r[2])).toBeGreaterThanOrEqual(1);
        expect(Number(r[4])).toBeLessThanOrEqual(96);
      }
    }
    const untrained = await testNet('untrained_iter_1.caffemodel', 'untrained');
    expect(untrained.code, untrained.stderr).toBe(0);
    const before = apLines(untrained.stdout)['Mean AP']!;
    expect(aps['Mean AP']).toBeGreaterThan(0.5);
    expect(aps['Mean AP']).toBeGreaterThan(before + 0.3);
  });

  it('max_per_image and the metric flags change what is kept and how it is scored', async () => {
    const one = await testNet('tiny_iter_200.caffemodel', 'one', ['--max_per_image', '1', '--use_07_metric=false']);
    expect(one.code, one.stderr).toBe(0);
    expect(messages(one.log)).toContain('VOC07 metric? No');
    const kept = ['aeroplane', 'bicycle'].flatMap((cls) => readFileSync(join(tmp.path, 'one', `comp4_det_test_${cls}.txt`), 'utf8').trim().split('\n').filter(Boolean));
    // One detection per image (the trained net finds two objects in each), unless two tie at the cut.
    const scores = new Map<string, string[]>();
    for (const l of kept) scores.set(l.split(' ')[0]!, [...(scores.get(l.split(' ')[0]!) ?? []), l.split(' ')[1]!]);
    expect([...scores.keys()].sort()).toEqual(testIds);
    for (const s of scores.values()) expect(new Set(s).size).toBe(1);
  });

  it('refuses a net whose classes do not match, and a missing image set, in one line each', async () => {
    const voc = await caffe(['test_net', '--model', 'test.prototxt', '--weights', 'tiny_iter_200.caffemodel', '--imdb', `voc:${devkit}:test`, '--cfg', 'tiny.yml'], tmp.path);
    expect(voc.code).toBe(1);
    expect(voc.stderr).toMatch(/the net scores 3 classes \(cls_prob\) but VOC has 21 with the background \(give --labels/);
    const missing = await testNet('tiny_iter_200.caffemodel', 'x', ['--imdb', `voc:${devkit}:val`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read the image set .*val\.txt/);
  });
});
