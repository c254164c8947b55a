import { hostMemoryInfo, setHostAllocator, setRandomSeed, shutdownThreads, type HostAllocatorKind } from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { Net } from './net.js';
import { net, testRegistry } from './test-helpers.js';

// Under the 'wasm' host allocator blob memory lives in the kernel threads' shared memory and the
// kernels run on it in place (pooling argmax, training kernels, memory.copy copies); under 'js'
// the same kernels get staged copies. A training step must come out the same bit for bit.
const lenetLike = `
  layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 1 dim: 16 dim: 16 } shape { dim: 4 } } }
  layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
          convolution_param { num_output: 4 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
  layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
          convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
  layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
  layer { name: "split" type: "Split" bottom: "pool2" top: "a" top: "b" }
  layer { name: "ave" type: "Pooling" bottom: "b" top: "ave" pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 } }
  layer { name: "cat" type: "Concat" bottom: "a" bottom: "ave" top: "cat" concat_param { axis: 1 } }
  layer { name: "ip1" type: "InnerProduct" bottom: "cat" top: "ip1" inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
  layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
  layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
`;

afterAll(async () => {
  await shutdownThreads();
});

function steps(kind: HostAllocatorKind) {
  const prev = setHostAllocator(kind);
  try {
    setRandomSeed(1701);
    const n = new Net(net(lenetLike), { phase: Phase.TRAIN, registry: testRegistry(), log: false });
    const data = n.blobs.get('data')!.mutableCpuData();
    for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 23) / 23 - 0.3;
    const label = n.blobs.get('label')!.mutableCpuData();
    for (let i = 0; i < label.length; i++) label[i] = i % 3;
    const losses: number[] = [];
    for (let it = 0; it < 2; it++) {
      n.clearParamDiffs();
      losses.push(n.forward());
      n.backward();
      // A plain gradient step between iterations, so the second runs on changed weights.
      for (const p of n.learnableParams) {
        const w = p.mutableCpuData(), g = p.cpuDiff();
        for (let i = 0; i < w.length; i++) w[i] = w[i]! - 0.1 * g[i]!;
      }
    }
    const shared = [...n.blobs.values()].every((b) => !(b.cpuData().buffer instanceof ArrayBuffer) && !(b.cpuDiff().buffer instanceof ArrayBuffer));
    const values = [...n.blobs.values(), ...n.learnableParams].map((b) => [Array.from(b.cpuData()), Array.from(b.cpuDiff())]);
    return { active: hostMemoryInfo().active, shared, losses, values };
  } finally {
    setHostAllocator(prev);
  }
}

describe("Net under the 'wasm' host allocator", () => {
  it("trains bit-identically to the 'js' allocator (conv, MAX/AVE pooling, split, concat, ReLU, softmax loss)", () => {
    const js = steps('js');
    const wasm = steps('wasm');
    expect(js.shared).toBe(false);
    // (CAFFE_TS_GEMM=js turns the kernels and the 'wasm' allocator off: plain arrays both times.)
    expect(wasm.shared).toBe(process.env.CAFFE_TS_GEMM !== 'js');
    expect(wasm.shared).toBe(wasm.active);
    expect(wasm.losses).toEqual(js.losses);
    expect(wasm.losses[1]).not.toBe(wasm.losses[0]);
    expect(wasm.values).toEqual(js.values);
  });
});
