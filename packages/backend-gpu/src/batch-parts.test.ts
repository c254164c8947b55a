import { Blob, cpuBackend, Rng, type Backend } from '@caffe-ts/blob';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import type { GpuBackend } from './backend.js';
import type { GpuBuffer } from './device.js';
import { backendFor, relErr, testModes } from './test-modes.js';

/**
 * Activations over the exact-index limit, at a forced limit of 1,000 floats: the input (1,200
 * floats) and conv1's top (3,200) are held in parts of one image (800 floats of conv1 per image);
 * Convolution, ReLU (in place), LRN, Pooling and Sigmoid run part by part; InnerProduct reads
 * pool1 (800 floats) joined back into one buffer.
 */
const LIMIT = 1000;
const NET = `
name: "parts"
layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 3 dim: 10 dim: 10 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "sig1" type: "Sigmoid" bottom: "pool1" top: "sig1" }
layer { name: "ip1" type: "InnerProduct" bottom: "sig1" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
`;

/**
 * The other layers whose images are independent, at the same limit: conv1's top (400 floats per
 * image) feeds BatchNorm (global statistics) and Scale in place (the in-place Scale keeps its input
 * per part), a Split into ReLU and Dropout (one mask per part, drawn in image order as on the CPU),
 * Eltwise MAX (an argmax mask per part), Concat across channels (800 floats per image), Softmax
 * across channels and Eltwise SUM.
 */
const NET2 = `
name: "parts2"
layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 3 dim: 10 dim: 10 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1"
  scale_param { bias_term: true filler { type: "gaussian" mean: 1 std: 0.2 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "r1" }
layer { name: "drop1" type: "Dropout" bottom: "conv1" top: "d1" dropout_param { dropout_ratio: 0.3 } }
layer { name: "emax" type: "Eltwise" bottom: "r1" bottom: "d1" top: "emax" eltwise_param { operation: MAX } }
layer { name: "cat" type: "Concat" bottom: "emax" bottom: "r1" top: "cat" }
layer { name: "prob" type: "Softmax" bottom: "cat" top: "prob" }
layer { name: "esum" type: "Eltwise" bottom: "prob" bottom: "cat" top: "esum" eltwise_param { operation: SUM coeff: 2 coeff: -0.5 } }
layer { name: "pool1" type: "Pooling" bottom: "esum" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
`;

const build = (backend: Backend, text = NET): Net => new Net(parseNetParameter(text), { backend, phase: Phase.TRAIN, log: false, rng: new Rng(5) });

function feed(net: Net, step: number): void {
  const rng = new Rng(40 + step);
  const d = net.blob('data').mutableCpuData();
  for (let i = 0; i < d.length; i++) d[i] = rng.gaussian(0, 1);
  const l = net.blob('label').mutableCpuData();
  for (let i = 0; i < l.length; i++) l[i] = rng.int(5);
}

for (const { mode, skip } of testModes()) {
  describe.skipIf(skip !== null)(`activations held in parts of whole images (gpu.js ${mode}${skip ? `: skipped, ${skip}` : ''})`, () => {
    const cases = [
      { title: 'convolution, neurons, LRN and pooling', text: NET, split: { conv1: 4, data: 4 }, checked: ['conv1', 'norm1', 'pool1', 'sig1', 'ip1'] },
      {
        title: 'BatchNorm, Scale in place, Split, Dropout, Eltwise, Concat and Softmax',
        text: NET2,
        split: { cat: 4, esum: 4, conv1: 2, r1: 2 },
        checked: ['conv1', 'r1', 'd1', 'emax', 'cat', 'prob', 'esum', 'pool1', 'ip1'],
      },
    ];
    it.each(cases)('$title: forward, backward (tops, bottom and param diffs) and 3 SGD steps match the CPU backend at a forced 1,000-float limit; live buffers flat', ({ text, split, checked }) => {
      const backend = backendFor(mode, false, LIMIT) as GpuBackend;
      const ref = build(cpuBackend(), text);
      const net = build(backend, text);
      // Global statistics that normalise to a useful range (fresh ones are all zero).
      for (const layer of ref.layers.filter((l) => l.type === 'BatchNorm')) {
        const [mean, variance, factor] = layer.blobs;
        const rng = new Rng(9);
        mean!.mutableCpuData().forEach((_, i, a) => (a[i] = rng.gaussian(0, 0.2)));
        variance!.mutableCpuData().forEach((_, i, a) => (a[i] = 0.5 + rng.uniform()));
        factor!.mutableCpuData()[0] = 1;
      }
      net.learnableParams.forEach((p, i) => p.mutableCpuData().set(ref.learnableParams[i]!.cpuData()));
      ref.layers.forEach((l, i) => l.blobs.forEach((b, j) => net.layers[i]!.blobs[j]!.mutableCpuData().set(b.cpuData())));
      const history = net.learnableParams.map((p) => new Blob(p.shape, { dtype: 'float32', device: backend.device }));
      const hostHistory = ref.learnableParams.map((p) => new Float32Array(p.count()));
      const live: number[] = [];
      for (let step = 0; step < 3; step++) {
        feed(ref, step);
        feed(net, step);
        ref.clearParamDiffs();
        net.clearParamDiffs();
        const lossRef = ref.forwardBackward();
        const loss = net.forwardBackward();
        expect(Math.abs(loss - lossRef), `loss at step ${step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(lossRef)));
        // The split paths were taken: these blobs are held in parts of whole images.
        for (const [name, parts] of Object.entries(split)) expect((net.blob(name).gpuData() as GpuBuffer).parts?.length, `${name} parts`).toBe(parts);
        for (const name of checked) {
          expect(relErr(net.blob(name).cpuData(), ref.blob(name).cpuData(), 1e-6), `${name} data, step ${step}`).toBeLessThan(1e-4);
          expect(relErr(net.blob(name).cpuDiff(), ref.blob(name).cpuDiff(), 1e-6), `${name} diff, step ${step}`).toBeLessThan(1e-4);
        }
        ref.learnableParams.forEach((p, i) => expect(relErr(net.learnableParams[i]!.cpuDiff(), p.cpuDiff(), 1e-6), `param ${i} diff, step ${step}`).toBeLessThan(1e-4));
        ref.learnableParams.forEach((p, i) => {
          const g = p.mutableCpuDiff();
          const h = hostHistory[i]!;
          for (let j = 0; j < g.length; j++) g[j] = h[j] = 0.05 * g[j]! + 0.9 * h[j]!;
          p.update();
        });
        net.learnableParams.forEach((p, i) => backend.ops.sgdUpdate(p, history[i]!, 0.05, 0.9));
        live.push(backend.stats().liveBuffers);
      }
      expect(live[2]).toBe(live[1]);
      ref.learnableParams.forEach((p, i) => expect(relErr(net.learnableParams[i]!.cpuData(), p.cpuData(), 1e-6), `param ${i} after 3 steps`).toBeLessThan(1e-4));
    });
  });
}
