import { activeGemmKernelName, customGemmKernelInstalled, installedConv2dRunner, installedInferConvRunner, Rng, type Conv2dRunner } from '@caffe-ts/blob';
import { defaultLayerRegistry } from '@caffe-ts/layers';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nativeAvailability } from './addon.js';
import { stopNativeKernels, useNativeKernels } from './use.js';

const { available } = nativeAvailability();

afterEach(() => stopNativeKernels());

// LeNet's layers at a smaller size: a strided 3×3 convolution, a 5×5 one (whose forward stays on
// the packed Winograd path), MAX and AVE pooling (the AVE one padded: its divisors count the
// padding), two inner products.
const NET = `
layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 16 dim: 2 dim: 14 dim: 14 } shape { dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 16 kernel_size: 3 stride: 2 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 24 kernel_size: 5 pad: 2 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv2" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ave" type: "Pooling" bottom: "pool" top: "ave" pooling_param { pool: AVE kernel_size: 2 stride: 1 pad: 1 } }
layer { name: "ip1" type: "InnerProduct" bottom: "ave" top: "ip1" inner_product_param { num_output: 40 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }`;

/** Ten plain SGD steps (lr 0.2) from the same start: the losses, and the gradients of the first step. */
async function train(): Promise<{ losses: number[]; grads: Float32Array[] }> {
  const net = await Net.create(parseNetParameter(NET), { phase: Phase.TRAIN, registry: defaultLayerRegistry(), log: false, rng: new Rng(9) });
  const rng = new Rng(10);
  const data = net.blobs.get('data')!.mutableCpuData(), label = net.blobs.get('label')!.mutableCpuData();
  for (let n = 0; n < 16; n++) {
    label[n] = n % 10;
    // Each class lights up its own rows, so the net can learn something in ten steps.
    for (let i = 0; i < 392; i++) data[n * 392 + i] = (Math.floor((i % 196) / 14) === label[n]! ? 1 : 0) + 0.3 * rng.uniform();
  }
  const losses: number[] = [];
  let grads: Float32Array[] = [];
  for (let step = 0; step < 10; step++) {
    net.clearParamDiffs();
    losses.push(net.forward());
    net.backward();
    if (step === 0) grads = net.learnableParams.map((p) => Float32Array.from(p.cpuDiff()));
    for (const p of net.learnableParams) {
      const w = p.mutableCpuData(), dw = p.cpuDiff();
      for (let i = 0; i < w.length; i++) w[i]! -= 0.2 * dw[i]!;
    }
  }
  net.dispose();
  return { losses, grads };
}

// A residual block and a depthwise stage at inference: Net's fusion folds BatchNorm, Scale, ReLU
// and the Eltwise SUM into the convolutions, which then run on the inference runner.
const INFER_NET = `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 8 dim: 20 dim: 20 } } }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false weight_filler { type: "msra" } } }
layer { name: "a_bn" type: "BatchNorm" bottom: "a" top: "a" }
layer { name: "a_scale" type: "Scale" bottom: "a" top: "a" scale_param { bias_term: true filler { value: 1.5 } bias_filler { value: 0.1 } } }
layer { name: "a_relu" type: "ReLU" bottom: "a" top: "a" }
layer { name: "b" type: "Convolution" bottom: "a" top: "b" convolution_param { num_output: 8 kernel_size: 1 weight_filler { type: "msra" } bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "sum" type: "Eltwise" bottom: "b" bottom: "data" top: "sum" }
layer { name: "sum_relu" type: "ReLU" bottom: "sum" top: "sum" }
layer { name: "dw" type: "Convolution" bottom: "sum" top: "dw" convolution_param { num_output: 8 group: 8 kernel_size: 3 stride: 2 pad: 1 weight_filler { type: "msra" } } }
layer { name: "dw_relu" type: "ReLU" bottom: "dw" top: "dw" }
layer { name: "c" type: "Convolution" bottom: "dw" top: "c" convolution_param { num_output: 16 kernel_size: 3 stride: 2 weight_filler { type: "msra" } } }
layer { name: "pool" type: "Pooling" bottom: "c" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }`;

async function infer(): Promise<Float32Array> {
  const net = await Net.create(parseNetParameter(INFER_NET), { phase: Phase.TEST, registry: defaultLayerRegistry(), log: false, rng: new Rng(4) });
  // BatchNorm's running statistics (mean, variance, scale factor), as a trained net has them.
  const bn = net.layers[net.layerNames.indexOf('a_bn')]!.blobs;
  bn[0]!.mutableCpuData().forEach((_, i, a) => { a[i] = 0.1 * (i - 4); });
  bn[1]!.mutableCpuData().forEach((_, i, a) => { a[i] = 0.5 + 0.2 * i; });
  bn[2]!.mutableCpuData()[0] = 1;
  const rng = new Rng(6), data = net.blobs.get('data')!.mutableCpuData();
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform() * 2 - 1;
  net.forward();
  const out = Float32Array.from(net.blobs.get('pool')!.cpuData());
  net.dispose();
  return out;
}

describe.skipIf(!available)('useNativeKernels', () => {
  it('installs the native GEMM and convolution runner, and stopNativeKernels takes them out', () => {
    const { core } = useNativeKernels();
    expect(core.length).toBeGreaterThan(0);
    expect(activeGemmKernelName()).toBe('native-openblas');
    expect(installedConv2dRunner()?.name).toBe('native-openblas');
    expect(installedInferConvRunner()?.name).toBe('native-openblas');
    expect(customGemmKernelInstalled()).toBe(true);
    stopNativeKernels();
    expect(installedConv2dRunner()).toBeNull();
    expect(installedInferConvRunner()).toBeNull();
    useNativeKernels({ inference: false });
    expect(installedInferConvRunner()).toBeNull();
    stopNativeKernels();
    expect(customGemmKernelInstalled()).toBe(false);
  });

  it('runs a fused inference net (BatchNorm, Scale, ReLU, Eltwise, depthwise, MAX pooling) as the WebAssembly kernels do (1e-5)', async () => {
    const wasm = await infer();
    for (const threads of [1, 2]) {
      useNativeKernels({ threads });
      const native = await infer();
      stopNativeKernels();
      let scale = 0, diff = 0;
      for (let i = 0; i < wasm.length; i++) {
        scale = Math.max(scale, Math.abs(wasm[i]!));
        diff = Math.max(diff, Math.abs(native[i]! - wasm[i]!));
      }
      expect(scale).toBeGreaterThan(0.1);
      expect(diff / scale, `${threads} thread(s)`).toBeLessThan(1e-5);
    }
  });

  it('trains a small conv net as the WebAssembly kernels do (gradients to 1e-4, ten steps\' losses to 1e-4)', async () => {
    const wasm = await train();
    useNativeKernels({ threads: 2 });
    // The pooling layers hand their passes to the native runner.
    const runner = installedConv2dRunner() as Required<Conv2dRunner>;
    const passes = { maxPool: vi.spyOn(runner, 'maxPool'), maxUnpool: vi.spyOn(runner, 'maxUnpool'), avePool: vi.spyOn(runner, 'avePool'), aveUnpool: vi.spyOn(runner, 'aveUnpool') };
    const native = await train();
    stopNativeKernels();
    for (const [name, spy] of Object.entries(passes)) expect(spy.mock.results.filter((r) => r.value === true).length, name).toBe(10);
    expect(wasm.losses[9]).toBeLessThan(wasm.losses[0]! * 0.7);
    native.losses.forEach((l, i) => expect(Math.abs(l - wasm.losses[i]!) / wasm.losses[i]!).toBeLessThan(1e-4));
    native.grads.forEach((g, i) => {
      const ref = wasm.grads[i]!;
      let scale = 0, diff = 0;
      for (let j = 0; j < g.length; j++) {
        scale = Math.max(scale, Math.abs(ref[j]!));
        diff = Math.max(diff, Math.abs(g[j]! - ref[j]!));
      }
      expect(diff / scale, `param ${i}`).toBeLessThan(1e-4);
    });
  });
});
