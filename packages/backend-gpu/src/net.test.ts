import { Blob, cpuBackend, Rng, type Backend } from '@caffe-ts/blob';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { backendFor, relErr, testModes } from './test-modes.js';
import type { GpuBackend } from './backend.js';

const BATCH = 2;
/** LeNet's train net (examples/mnist/lenet_train_test.prototxt) with Input layers in place of the LMDB Data layers. */
const LENET = `
name: "LeNet"
layer { name: "mnist" type: "Input" top: "data" input_param { shape { dim: ${BATCH} dim: 1 dim: 28 dim: 28 } } }
layer { name: "labels" type: "Input" top: "label" input_param { shape { dim: ${BATCH} } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 50 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 500 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
`;

function lenet(backend: Backend): Net {
  return new Net(parseNetParameter(LENET), { backend, phase: Phase.TRAIN, log: false, rng: new Rng(1701) });
}

function feed(net: Net, step: number): void {
  const rng = new Rng(100 + step);
  const d = net.blob('data').mutableCpuData();
  for (let i = 0; i < d.length; i++) d[i] = rng.uniform();
  const l = net.blob('label').mutableCpuData();
  for (let i = 0; i < l.length; i++) l[i] = rng.int(10);
}

function copyParams(from: Net, to: Net): void {
  from.learnableParams.forEach((p, i) => to.learnableParams[i]!.mutableCpuData().set(p.cpuData()));
}

/** Caffe's SGD with momentum on the host, the reference for the device update. */
function hostSgd(net: Net, history: Float32Array[], lr: number, momentum: number): void {
  net.learnableParams.forEach((p, i) => {
    const rate = lr * (net.paramsLr[i] ?? 1);
    const g = p.mutableCpuDiff();
    const h = history[i]!;
    for (let j = 0; j < g.length; j++) {
      h[j] = rate * g[j]! + momentum * h[j]!;
      g[j] = h[j]!;
    }
    p.update();
  });
}

// gpu.js's 'cpu' mode runs the same kernel sources as 'wasm' ~3x slower (kernels.test.ts checks
// it layer by layer); the whole net runs in wasm when it loads, and in headless GL when available.
const modes = testModes().filter((m) => m.mode !== 'cpu' || testModes().find((w) => w.mode === 'wasm')!.skip !== null);
for (const { mode, skip } of modes) {
  describe.skipIf(skip !== null)(`LeNet on the gpu backend (gpu.js ${mode}${skip ? `: skipped, ${skip}` : ''})`, () => {
    it('matches the CPU backend forward and backward; one step reads back only the loss', () => {
      const backend = backendFor(mode);
      const ref = lenet(cpuBackend());
      const net = lenet(backend);
      copyParams(ref, net);
      feed(ref, 0);
      feed(net, 0);
      const lossRef = ref.forwardBackward();
      const before = { ...backend.stats() };
      const loss = net.forwardBackward();
      const after = backend.stats();
      expect(Math.abs(loss - lossRef)).toBeLessThan(1e-4 * Math.max(1, Math.abs(lossRef)));
      // The first step uploads data, label, the 8 params and the loss weight (the loss top's diff,
      // set on the host at set-up); it reads back the loss and nothing else.
      expect(after.readbacks - before.readbacks).toBe(1);
      expect(after.uploads - before.uploads).toBe(2 + 8 + 1);
      expect(after.cpuFallbacks).toEqual({});
      ref.learnableParams.forEach((p, i) => {
        expect(relErr(net.learnableParams[i]!.cpuDiff(), p.cpuDiff(), 1e-3), `param ${i} diff`).toBeLessThan(1e-4);
      });
      expect(relErr(net.blob('conv1').cpuData(), ref.blob('conv1').cpuData(), 1e-3)).toBeLessThan(1e-4);
    });

    it('trains with the device SGD update: 1 readback and 2 uploads per iteration, live textures flat, same weights as host SGD', () => {
      const backend = backendFor(mode) as GpuBackend;
      const ref = lenet(cpuBackend());
      const net = lenet(backend);
      copyParams(ref, net);
      const history = net.learnableParams.map((p) => new Blob(p.shape, { dtype: 'float32', device: backend.device }));
      const hostHistory = ref.learnableParams.map((p) => new Float32Array(p.count()));
      const lr = 0.01;
      const momentum = 0.9;
      const live: number[] = [];
      const perStep: { uploads: number; readbacks: number }[] = [];
      for (let step = 0; step < 4; step++) {
        feed(ref, step);
        ref.clearParamDiffs();
        ref.forwardBackward();
        hostSgd(ref, hostHistory, lr, momentum);

        const s0 = { ...backend.stats() };
        feed(net, step);
        for (const p of net.learnableParams) backend.ops.clearDiff(p);
        net.forwardBackward();
        net.learnableParams.forEach((p, i) => backend.ops.sgdUpdate(p, history[i]!, lr * (net.paramsLr[i] ?? 1), momentum));
        const s1 = backend.stats();
        perStep.push({ uploads: s1.uploads - s0.uploads, readbacks: s1.readbacks - s0.readbacks });
        live.push(s1.liveBuffers);
      }
      // Step 0 also uploads the 8 params (they were written on the host); later steps only the inputs.
      expect(perStep.slice(1)).toEqual([
        { uploads: 2, readbacks: 1 },
        { uploads: 2, readbacks: 1 },
        { uploads: 2, readbacks: 1 },
      ]);
      expect(live[3]).toBe(live[1]);
      expect(live[2]).toBe(live[1]);
      ref.learnableParams.forEach((p, i) => {
        expect(relErr(net.learnableParams[i]!.cpuData(), p.cpuData(), 1e-3), `param ${i} after 4 SGD steps`).toBeLessThan(1e-4);
      });
    });
  });
}
