import { Rng } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { jaccardOverlap } from './bbox.js';
import { registerContribLayers } from './index.js';
import { tinySsdNet } from './testing/tiny-ssd.js';

// The small SSD of testing/tiny-ssd.ts, fed by Input blobs: the ground truth laid out as
// AnnotatedData writes it.
const NET = tinySsdNet({
  data: `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 32 dim: 32 } } }
layer { name: "label" type: "Input" top: "label" include { phase: TRAIN } input_param { shape { dim: 1 dim: 1 dim: 3 dim: 8 } } }`,
  priorSizes: [
    [6, 12],
    [12, 24],
  ],
  keepTopK: 10,
  confidenceThreshold: 0.2,
});

// Ground truth: image 0 holds a class-1 box, image 1 a class-2 box and a second class-1 box.
const GT = [
  [0, 1, 0, 0.1, 0.15, 0.45, 0.5, 0],
  [1, 2, 0, 0.5, 0.4, 0.9, 0.85, 0],
  [1, 1, 0, 0.05, 0.6, 0.3, 0.95, 0],
];

describe('training a small SSD with MultiBoxLoss', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  it('the loss falls, and the test net then finds each ground-truth box with its class', () => {
    const param = parseNetParameter(NET, 'tiny_ssd.prototxt');
    const train = new Net(param, { phase: Phase.TRAIN, registry, log: false, rng: new Rng(5) });
    expect(train.blob('mbox_priorbox').shape).toEqual([1, 2, (16 * 16 + 8 * 8) * 2 * 4]);
    const rng = new Rng(21);
    const data = train.blob('data').mutableCpuData();
    for (let i = 0; i < data.length; i++) data[i] = rng.uniformIn(-1, 1);
    train.blob('label').mutableCpuData().set(GT.flat());

    const losses: number[] = [];
    for (let step = 0; step < 100; step++) {
      train.clearParamDiffs();
      losses.push(train.forwardBackward());
      for (const p of train.learnableParams) {
        const w = p.mutableCpuData(), g = p.cpuDiff();
        for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.05 * g[i]!;
      }
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[99]!).toBeLessThan(0.2 * losses[0]!);

    const test = new Net(param, { phase: Phase.TEST, registry, log: false });
    test.shareTrainedLayersWith(train);
    test.blob('data').mutableCpuData().set(train.blob('data').cpuData());
    test.forward();
    const det = test.blob('detection_out');
    const rows = Array.from({ length: det.shape[2]! }, (_, r) => Array.from(det.cpuData().subarray(r * 7, r * 7 + 7)));
    for (const [item, label, , xmin, ymin, xmax, ymax] of GT) {
      const box = { xmin: xmin!, ymin: ymin!, xmax: xmax!, ymax: ymax! };
      const best = rows
        .filter((r) => r[0] === item && r[1] === label)
        .map((r) => ({ score: r[2]!, iou: jaccardOverlap({ xmin: r[3]!, ymin: r[4]!, xmax: r[5]!, ymax: r[6]! }, box) }))
        .sort((a, b) => b.score - a.score)[0];
      expect(best, `image ${item} class ${label}`).toBeDefined();
      expect(best!.iou, `image ${item} class ${label}`).toBeGreaterThan(0.7);
    }
  });
});
