import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@caffe-ts/blob';
import { encodeImage, writeAnnotatedDatumDb, type AnnotatedDatumInit } from '@caffe-ts/io-leveldb';
import { registerContribLayers } from '@caffe-ts/layers-contrib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinySsdNet } from '../../packages/layers-contrib/src/testing/tiny-ssd.js';
import { caffe, messages, tempDir } from './helpers.js';

/*
 * SSD training end to end through `caffe train`, as the fork's users run it: an LMDB of
 * AnnotatedDatum records (encoded PNGs with boxes), AnnotatedData in both phases, MultiBoxLoss,
 * and a test net of DetectionOutput + DetectionEvaluate scored by the solver's eval_type
 * "detection" (mAP in the `Test net output` line).
 */

const SIZE = 48;
// Per image: [class, xmin, ymin, xmax, ymax] in pixels. Class 1 is a red block, class 2 a green one.
const OBJECTS: number[][][] = [
  [[1, 4, 6, 22, 24]],
  [[2, 20, 18, 44, 42]],
  [[1, 26, 4, 44, 22], [2, 2, 26, 20, 46]],
  [[2, 6, 8, 30, 32]],
  [[1, 18, 22, 38, 42]],
  [[1, 2, 2, 16, 16], [2, 28, 28, 46, 46]],
];

async function records(): Promise<Array<readonly [string, AnnotatedDatumInit]>> {
  const rng = new Rng(3);
  const out: Array<readonly [string, AnnotatedDatumInit]> = [];
  for (const [k, objects] of OBJECTS.entries()) {
    // Interleaved BGR, as the images Caffe decodes: grey noise, then the blocks.
    const data = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < data.length; i++) data[i] = 100 + Math.floor(rng.uniformIn(0, 50));
    for (const [label, x0, y0, x1, y1] of objects) {
      for (let y = y0!; y < y1!; y++) {
        for (let x = x0!; x < x1!; x++) data.set(label === 1 ? [20, 20, 230] : [20, 230, 20], (y * SIZE + x) * 3);
      }
    }
    const png = await encodeImage({ height: SIZE, width: SIZE, channels: 3, data }, 'png');
    const groups = [1, 2]
      .map((label) => ({
        group_label: label,
        boxes: objects
          .filter((o) => o[0] === label)
          .map(([, x0, y0, x1, y1]) => ({ xmin: x0! / SIZE, ymin: y0! / SIZE, xmax: x1! / SIZE, ymax: y1! / SIZE, difficult: false })),
      }))
      .filter((g) => g.boxes.length > 0);
    out.push([`${String(k).padStart(8, '0')}_img${k}.png`, { datum: { data: png, encoded: true, label: -1 }, groups }]);
  }
  return out;
}

const data = (phase: 'TRAIN' | 'TEST', batch: number) => `
layer {
  name: "data" type: "AnnotatedData" top: "data" top: "label" include { phase: ${phase} }
  transform_param {
    scale: 0.007843 mirror: ${phase === 'TRAIN'} mean_value: 127.5 mean_value: 127.5 mean_value: 127.5
    resize_param { prob: 1 resize_mode: WARP height: ${SIZE} width: ${SIZE} interp_mode: LINEAR }
    emit_constraint { emit_type: CENTER }
  }
  data_param { source: "ssd_lmdb" batch_size: ${batch} backend: LMDB }
  annotated_data_param { batch_sampler { max_sample: 1 max_trials: 1 } }
}`;

const NET = tinySsdNet({
  data: data('TRAIN', 3) + data('TEST', 3),
  priorSizes: [
    [12, 20],
    [20, 30],
  ],
  keepTopK: 20,
  confidenceThreshold: 0.05,
  evaluate: true,
});

const SOLVER = `net: "tiny_ssd.prototxt"
test_iter: 2
test_interval: 150
test_initialization: true
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
display: 50
max_iter: 150
snapshot_after_train: false
random_seed: 1701
eval_type: "detection"
ap_version: "11point"
`;

describe('SSD through `caffe train` (AnnotatedData, MultiBoxLoss, DetectionEvaluate, eval_type "detection")', () => {
  const tmp = tempDir('caffe-ssd-');
  beforeAll(async () => {
    // What `--plugin @caffe-ts/layers-contrib/register` does in the installed command (the
    // command runs in this process here, where the plugin's own import would load a second copy).
    registerContribLayers();
    await writeAnnotatedDatumDb(join(tmp.path, 'ssd_lmdb'), await records(), { backend: 'lmdb' });
    writeFileSync(join(tmp.path, 'tiny_ssd.prototxt'), NET);
    writeFileSync(join(tmp.path, 'solver.prototxt'), SOLVER);
  });
  afterAll(() => tmp.remove());

  it('trains from the LMDB and the test mAP rises from chance to most boxes found', async () => {
    const run = await caffe(['train', '--solver', 'solver.prototxt'], tmp.path);
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    const maps = lines.map((l) => /^ {4}Test net output #0: detection_eval = ([\d.e+-]+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m![1]));
    // Iterations 0 and 150 (0.089 and 0.898 when written).
    expect(maps.length).toBe(2);
    expect(maps[0]!).toBeLessThan(0.2);
    expect(maps[1]!).toBeGreaterThan(0.6);
    const losses = lines.map((l) => /^Iteration (\d+) \(.*\), loss = ([\d.e+-]+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m![2]));
    expect(losses.length).toBe(3);
    expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]!);
  });
});
