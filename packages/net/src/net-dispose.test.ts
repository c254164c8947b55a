import { hostMemoryInfo, setHostAllocator, setRandomSeed, shutdownThreads } from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetError } from './errors.js';
import { Net } from './net.js';
import { net, testRegistry } from './test-helpers.js';

const definition = (batch: number, side: number, outputs: number) => `
  layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: ${batch} dim: 1 dim: ${side} dim: ${side} } shape { dim: ${batch} } } }
  layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
          convolution_param { num_output: ${outputs} kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
  layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
`;

function build(batch: number, side: number, outputs: number): Net {
  setRandomSeed(5);
  const n = new Net(net(`name: "b${batch}"\n${definition(batch, side, outputs)}`), { phase: Phase.TRAIN, registry: testRegistry(), log: false });
  n.blobs.get('data')!.mutableCpuData().fill(0.5);
  n.forwardBackward();
  return n;
}

let previous: ReturnType<typeof setHostAllocator>;
beforeAll(() => {
  previous = setHostAllocator('wasm');
});
afterAll(async () => {
  setHostAllocator(previous);
  await shutdownThreads();
});

describe('Net.dispose', () => {
  it('stops the net from running, with an error naming it', () => {
    const n = build(2, 12, 3);
    n.dispose();
    n.dispose(); // a second call does nothing
    expect(n.isDisposed).toBe(true);
    expect(() => n.forward()).toThrow(NetError);
    expect(() => n.forward()).toThrow("forwardFromTo(0, 4): net 'b2' was disposed (its blobs hold no memory any more)");
    expect(() => n.backward()).toThrow(/backwardFromTo\(4, 0\): net 'b2' was disposed/);
    expect(() => n.reshape()).toThrow(/reshape\(\): net 'b2' was disposed/);
    expect(() => n.toProto()).toThrow(/toProto\(\): net 'b2' was disposed/);
  });

  it('leaves params it shares with another net to that net', () => {
    const train = build(2, 12, 3);
    const weights = Array.from(train.params.get('conv1')![0]!.cpuData());
    setRandomSeed(6);
    const test = new Net(net(definition(1, 12, 3)), { phase: Phase.TEST, registry: testRegistry(), log: false });
    test.shareTrainedLayersWith(train);
    test.dispose();
    expect(Array.from(train.params.get('conv1')![0]!.cpuData())).toEqual(weights);
    expect(Number.isFinite(train.forwardBackward())).toBe(true);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')("gives the kernel heap back at once, and the next net reuses it ('wasm' host allocator)", () => {
    const heap = () => hostMemoryInfo().heap!;
    const first = build(16, 28, 8);
    const blobBytes = [...first.blobList, ...first.learnableParams].reduce((acc, b) => acc + 4 * (b.cpuData().length + b.cpuDiff().length), 0);
    const inUse = heap().bytesInUse;
    const top = heap().top;
    const memory = heap().memoryBytes;
    first.dispose();
    // Every blob of the net went back (at least its activations' and params' data and diffs).
    expect(inUse - heap().bytesInUse).toBeGreaterThanOrEqual(blobBytes);
    // The same net again fits in that memory (up to a little fragmentation around the kernels'
    // scratch blocks, which stay); a third one, with the second still live, cannot.
    const second = build(16, 28, 8);
    const grown = heap().top - top;
    expect(grown).toBeLessThan(0.1 * blobBytes);
    expect(heap().memoryBytes).toBe(memory);
    const third = build(16, 28, 8);
    expect(heap().top - top - grown).toBeGreaterThan(0.5 * blobBytes);
    second.dispose();
    third.dispose();
  });
});
