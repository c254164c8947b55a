import { hostMemoryInfo, setHostAllocator } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { reuseActivations, zooModel } from '@caffe-ts/zoo';

function build(model: string, shape: number[]): Net {
  const param = readNetParameter(zooModel(model).files.deploy!, { log: false });
  param.layer[0]!.input_param!.shape[0]!.dim = shape;
  return new Net(param, { phase: Phase.TEST, log: false });
}

/** Same pseudo-random params in both nets. */
function randomize(...nets: Net[]): void {
  for (const net of nets) {
    let state = 42;
    for (const [name, blobs] of net.params) {
      // BatchNorm's running variance (and scale factor) must stay positive.
      const positive = net.layer(name).type === 'BatchNorm';
      for (const blob of blobs) {
        const d = blob.mutableCpuData();
        for (let i = 0; i < d.length; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
          const r = (state / 2 ** 32 - 0.5) * 0.2;
          d[i] = positive ? Math.abs(r) + 0.5 : r;
        }
      }
    }
  }
}

function run(net: Net, seed: number): Float32Array {
  const x = net.blob('data').mutableCpuData();
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.1 + seed) * 50;
  net.forward();
  return Float32Array.from(net.outputBlobs[0]!.cpuData());
}

describe('reuseActivations', () => {
  it.each([
    ['lenet', [2, 1, 28, 28]],
    // Fire modules: splits, concats and in-place ReLUs; global pooling allows a small input.
    ['squeezenet_v1.1', [1, 3, 63, 63]],
    // Residual blocks, with BatchNorm/Scale in place, at the smallest size that reaches pool5.
    ['mobilenet_v2', [1, 3, 32, 32]],
  ])('%s gives the same outputs with shared activation buffers, and uses less memory', (model, shape) => {
    const plain = build(model, shape);
    const shared = build(model, shape);
    randomize(plain, shared);
    const plan = reuseActivations(shared);
    expect(plan.bytesAfter).toBeLessThan(plan.bytesBefore);
    expect(plan.pinned).toEqual(expect.arrayContaining(['data', ...plain.outputBlobNames]));
    for (const seed of [0, 1]) {
      const a = run(plain, seed);
      const b = run(shared, seed);
      expect(a.some((v) => v !== 0)).toBe(true);
      expect(a.every(Number.isFinite)).toBe(true);
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
      expect(maxDiff).toBe(0);
    }
    expect(() => shared.backward()).toThrow(/shares activation memory/);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js').each([
    ['mobilenet_v2', [1, 3, 32, 32]],
    ['squeezenet_v1.1', [1, 3, 63, 63]],
  ])("%s: the shared buffers live in the kernels' memory under the 'wasm' host allocator (no staging copies), the same bits", (model, shape) => {
    const previous = setHostAllocator('wasm');
    try {
      const plain = build(model, shape);
      randomize(plain);
      const expected = Array.from(run(plain, 0));
      const inUse = () => hostMemoryInfo().heap!.bytesInUse;
      const before = inUse();
      const shared = build(model, shape);
      randomize(shared);
      const plan = reuseActivations(shared);
      const pooled = shared.blobNames.filter((n) => !plan.pinned.includes(n) && shared.blobs.get(n)!.count() > 0);
      expect(pooled.length).toBeGreaterThan(10);
      expect(hostMemoryInfo().active).toBe(true);
      // A plain ArrayBuffer would mean a JS array, which every kernel copies in and out.
      for (const n of pooled) expect(shared.blobs.get(n)!.cpuData().buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(Array.from(run(shared, 0))).toEqual(expected);
      // dispose() gives the shared slots back too, with the rest of the net's memory.
      shared.dispose();
      expect(inUse()).toBeLessThanOrEqual(before);
    } finally {
      setHostAllocator(previous);
    }
  });

  it('keeps requested blobs readable', () => {
    const plain = build('lenet', [1, 1, 28, 28]);
    const shared = build('lenet', [1, 1, 28, 28]);
    randomize(plain, shared);
    const plan = reuseActivations(shared, { keep: ['ip1'] });
    expect(plan.pinned).toContain('ip1');
    run(plain, 3);
    run(shared, 3);
    expect(Array.from(shared.blob('ip1').cpuData())).toEqual(Array.from(plain.blob('ip1').cpuData()));
    expect(() => reuseActivations(build('lenet', [1, 1, 28, 28]), { keep: ['nope'] })).toThrow(/has no blob 'nope'/);
  });

  it('CaffeNet batch 1: peak activation memory with and without sharing', () => {
    const net = build('caffenet', [1, 3, 227, 227]);
    const plan = reuseActivations(net);
    const mib = (b: number) => (b / 2 ** 20).toFixed(2);
    console.log(
      `CaffeNet batch 1 activation data: ${plan.bytesBefore} bytes (${mib(plan.bytesBefore)} MiB) without sharing, ` +
        `${plan.bytesAfter} bytes (${mib(plan.bytesAfter)} MiB) with reuseActivations (${plan.slots} slots for ${plan.pooled} buffers); ` +
        `Caffe's "Memory required for data": ${net.memoryBytes}`,
    );
    // Left: the input (pinned), conv1's 96×55×55 output and conv2's 256×27×27 one, which every
    // later activation fits into; the lower bound is the input plus conv1 + pool1 (both live at pool1).
    expect(plan.slots).toBe(2);
    expect(plan.bytesAfter).toBe((3 * 227 * 227 + 1000 + 96 * 55 * 55 + 256 * 27 * 27) * 4);
    expect(plan.bytesAfter).toBeLessThan(0.65 * plan.bytesBefore);
  });
});
