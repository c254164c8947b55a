import { activeGemmKernelName, customGemmKernelInstalled, installedConv2dRunner, Rng } from '@caffe-ts/blob';
import { defaultLayerRegistry } from '@caffe-ts/layers';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAvailability } from './addon.js';
import { stopNativeKernels, useNativeKernels } from './use.js';

const { available } = nativeAvailability();

afterEach(() => stopNativeKernels());

// LeNet's layers at a smaller size: a strided 3×3 convolution, a 5×5 one (whose forward stays on
// the packed Winograd path), pooling, two inner products.
const NET = `
layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 16 dim: 2 dim: 14 dim: 14 } shape { dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 16 kernel_size: 3 stride: 2 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 24 kernel_size: 5 pad: 2 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv2" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool" top: "ip1" inner_product_param { num_output: 40 weight_filler { type: "xavier" } } }
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

describe.skipIf(!available)('useNativeKernels', () => {
  it('installs the native GEMM and convolution runner, and stopNativeKernels takes them out', () => {
    const { core } = useNativeKernels();
    expect(core.length).toBeGreaterThan(0);
    expect(activeGemmKernelName()).toBe('native-openblas');
    expect(installedConv2dRunner()?.name).toBe('native-openblas');
    expect(customGemmKernelInstalled()).toBe(true);
    stopNativeKernels();
    expect(installedConv2dRunner()).toBeNull();
    expect(customGemmKernelInstalled()).toBe(false);
  });

  it('trains a small conv net as the WebAssembly kernels do (gradients to 1e-4, ten steps\' losses to 1e-4)', async () => {
    const wasm = await train();
    useNativeKernels({ threads: 2 });
    const native = await train();
    stopNativeKernels();
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
