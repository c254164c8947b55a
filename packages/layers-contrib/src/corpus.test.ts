import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, parseSolverParameter, Phase } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribLayers } from './index.js';

const corpus = fileURLToPath(new URL('../../../../shared/corpus', import.meta.url));

/**
 * Deploy nets of the corpus that use fork layers, with hand-counted shapes (tests/src/contrib-oracle
 * compares every layer of these and of mobilenet_ssd/deploy.prototxt with OpenCV).
 */
const DEPLOY: Array<{ file: string; input: number[]; outputs: Record<string, number[]>; blobs?: Record<string, number[]>; forward?: boolean }> = [
  {
    file: 'weights/yufacedetectnet_open_v2/yufacedetectnet-open-v2.prototxt',
    input: [1, 3, 240, 320],
    outputs: { detection_out: [1, 1, 1, 7] },
    forward: true,
    // 30×40·3 + 15×20·2 + 8×10·2 + 4×5·3 priors.
    blobs: { mbox_priorbox: [1, 2, (3600 + 600 + 160 + 60) * 4] },
  },
  {
    file: 'nets/mobilenet_ssd/MobileNetSSD_deploy.prototxt',
    input: [1, 3, 300, 300],
    outputs: { detection_out: [1, 1, 1, 7] },
    // 19²·3 + 10²·6 + 5²·6 + 3²·6 + 2²·6 + 1·6.
    blobs: { mbox_priorbox: [1, 2, 1917 * 4], mbox_conf_flatten: [1, 1917 * 21] },
  },
  {
    file: 'nets/opencv_face_detector/deploy.prototxt',
    input: [1, 3, 300, 300],
    outputs: { detection_out: [1, 1, 1, 7] },
    // 38²·4 + 19²·6 + 10²·6 + 5²·6 + 5²·4 + 5²·4 (its last two maps stay 5×5).
    blobs: { mbox_priorbox: [1, 2, 8892 * 4] },
  },
];

describe.skipIf(!existsSync(corpus))('corpus deploy nets with fork layers', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerContribLayers(registry));

  for (const { file, input, outputs, blobs, forward } of DEPLOY) {
    it(`builds ${file}${forward ? ' and runs it forward' : ''}`, () => {
      const text = (readFileSync(join(corpus, file), 'utf8'));
      const net = new Net(parseNetParameter(text), { registry, log: false, name: file });
      expect(net.inputBlobs[0]!.shape).toEqual(input);
      for (const [name, shape] of Object.entries({ ...outputs, ...blobs })) expect([name, net.blob(name).shape]).toEqual([name, shape]);
      // The larger nets take seconds per pass on this machine: tests/src/contrib-oracle runs them.
      if (!forward) return;
      // Random weights: DetectionOutput may or may not find boxes, but the rows are well formed.
      net.forward();
      const det = net.blob('detection_out');
      expect(det.shape.slice(0, 2)).toEqual([1, 1]);
      expect(det.shape[3]).toBe(7);
    });
  }

  // The train and test nets read AnnotatedData (@caffe-ts/io-leveldb's; tests/src/ssd-pipeline
  // runs them on a generated LMDB). Here Input layers stand in for it.
  const withInputData = (file: string, labels: number) => {
    const param = parseNetParameter(readFileSync(join(corpus, file), 'utf8'), file);
    const data = param.layer[0]!;
    expect(data.type).toBe('AnnotatedData');
    param.layer[0] = parseNetParameter(
      `layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 1 dim: 3 dim: 300 dim: 300 } shape { dim: 1 dim: 1 dim: ${labels} dim: 8 } } }`,
    ).layer[0]!;
    return param;
  };
  const LABELS = [0, 15, 0, 0.1, 0.2, 0.5, 0.9, 0, 0, 7, 1, 0.55, 0.5, 0.95, 0.8, 0];

  it('trains MobileNetSSD_train.prototxt one step: MultiBoxLoss over its 1917 priors, gradients into conv0', () => {
    const net = new Net(withInputData('nets/mobilenet_ssd/MobileNetSSD_train.prototxt', 2), { registry, log: false, phase: Phase.TRAIN });
    expect(net.blob('mbox_priorbox').shape).toEqual([1, 2, 1917 * 4]);
    expect(net.blob('mbox_conf').shape).toEqual([1, 1917 * 21]);
    const data = net.blob('data').mutableCpuData();
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
    net.blob('label').mutableCpuData().set(LABELS);
    net.clearParamDiffs();
    const loss = net.forwardBackward();
    expect(Number.isFinite(loss) && loss > 0).toBe(true);
    const conv0 = net.layers[net.layerNames.indexOf('conv0')]!.blobs[0]!.cpuDiff();
    expect(Array.from(conv0).some((g) => g !== 0)).toBe(true);
  });

  it('runs MobileNetSSD_test.prototxt forward: DetectionEvaluate rows after one per class', () => {
    const net = new Net(withInputData('nets/mobilenet_ssd/MobileNetSSD_test.prototxt', 2), { registry, log: false, phase: Phase.TEST });
    net.blob('label').mutableCpuData().set(LABELS);
    net.forward();
    const out = net.blob('detection_eval');
    expect(out.shape.slice(0, 2)).toEqual([1, 1]);
    expect(out.shape[3]).toBe(5);
    const rows = out.cpuData();
    // 20 classes besides the background: [−1, class, ground-truth boxes, −1, −1].
    for (let c = 1; c <= 20; c++) expect(Array.from(rows.subarray((c - 1) * 5, c * 5))).toEqual([-1, c, c === 7 || c === 15 ? 1 : 0, -1, -1]);
  });
});

describe.skipIf(!existsSync(corpus))('every corpus prototxt with the contrib schema', () => {
  beforeAll(() => {
    registerContribLayers(new LayerRegistry());
  });

  it('parses as NetParameter or SolverParameter, fork and OpenCV fields included', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith('.prototxt')) files.push(path);
      }
    };
    walk(join(corpus, 'nets'));
    walk(join(corpus, 'weights'));
    expect(files.length).toBeGreaterThan(90);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      if (/solver/.test(file.split('/').pop()!)) parseSolverParameter(text, file);
      else parseNetParameter(text, file);
    }
  });
});
