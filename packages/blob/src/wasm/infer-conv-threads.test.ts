import v8 from 'node:v8';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Rng } from '../rng.js';
import { setHostAllocator } from '../host-memory.js';
import { Blob } from '../blob.js';
import type { Conv2dGeometry } from './conv-wasm.js';
import { createWasmInferConv, defaultWasmInferConv, type ConvEpilogue, type WasmInferConv } from './infer-conv.js';
import { defaultWasmInfer } from './infer-wasm.js';
import { engine, initThreads, planThreads, setNumThreads, shutdownThreads, threadPoolInfo } from './threads.js';

// As infer-conv.test.ts: both builds, relaxed SIMD behind a flag in Node 20 (own vitest worker).
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

const rng = new Rng(11);
const random = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
};
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** A copy of `a` in a blob's memory (the kernel threads' shared memory under the 'wasm' allocator). */
const inBlob = (a: Float32Array) => {
  const d = new Blob([a.length]).mutableCpuData() as Float32Array;
  d.set(a);
  return d;
};

const geom = (p: Partial<Conv2dGeometry> & Pick<Conv2dGeometry, 'channels' | 'height' | 'width' | 'outChannels'>): Conv2dGeometry => ({
  kernelH: 3, kernelW: 3, padH: 1, padW: 1, strideH: 1, strideW: 1, dilationH: 1, dilationW: 1, group: 1, ...p,
});
const outSize = (n: number, k: number, p: number, s: number, d: number) => Math.floor((n + 2 * p - (d * (k - 1) + 1)) / s) + 1;

interface Case {
  label: string;
  g: Conv2dGeometry;
  num?: number;
  winograd?: 'off' | '2' | '4';
  relu?: number | null;
}

// Shapes above the pool's split threshold (planThreads) yet a few ms each: column blocks (wide
// outputs, a count of columns that is no multiple of the panel width), row blocks (a narrow
// output, odd channel counts: a last block shorter than the micro-kernel's rows), groups fewer
// and more than threads, 1×1, strided and dilated, and both Winograd tiles.
const cases: Case[] = [
  { label: 'direct 3×3 stride 2, 37 outputs (odd blocks)', g: geom({ channels: 20, height: 33, width: 31, outChannels: 37, strideH: 2, strideW: 2 }), winograd: 'off', relu: 0 },
  { label: 'direct 3×3 stride 2 on a 7×7 output (row blocks), 61 outputs', g: geom({ channels: 72, height: 14, width: 14, outChannels: 61, strideH: 2, strideW: 2 }), relu: 0 },
  { label: 'direct 5×5, group 2, two images', g: geom({ channels: 24, height: 21, width: 19, outChannels: 22, kernelH: 5, kernelW: 5, padH: 2, padW: 2, group: 2 }), num: 2 },
  { label: 'direct 3×3, group 3 (more groups than threads), dilation 2', g: geom({ channels: 27, height: 25, width: 23, outChannels: 33, group: 3, dilationH: 2, dilationW: 2, padH: 2, padW: 2 }), relu: 0.1 },
  { label: '1×1 flat, 45 outputs', g: geom({ channels: 64, height: 28, width: 27, outChannels: 45, kernelH: 1, kernelW: 1, padH: 0, padW: 0 }) },
  { label: 'Winograd F(2×2, 3×3), 33 channels, 37 outputs', g: geom({ channels: 33, height: 30, width: 27, outChannels: 37 }), winograd: '2', relu: 0 },
  { label: 'Winograd F(4×4, 3×3), group 2', g: geom({ channels: 48, height: 37, width: 35, outChannels: 48, group: 2 }), winograd: '4' },
];

function flopsOf(c: Case): number {
  const { g } = c;
  const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  return 2 * g.outChannels * (g.channels / g.group) * g.kernelH * g.kernelW * OH * OW;
}

function runCase(r: WasmInferConv, c: Case, x: Float32Array, w: Float32Array, ep: ConvEpilogue, version: number | undefined): Float32Array {
  const { g } = c;
  const num = c.num ?? 1;
  const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  const y = new Float32Array(num * g.outChannels * OH * OW).fill(NaN);
  const env = process.env;
  const before = env.CAFFE_TS_WINOGRAD;
  if (c.winograd) env.CAFFE_TS_WINOGRAD = c.winograd;
  try {
    expect(r.conv2d(g, num, x, w, version, ep, y)).toBe(true);
  } finally {
    if (before === undefined) delete env.CAFFE_TS_WINOGRAD;
    else env.CAFFE_TS_WINOGRAD = before;
  }
  return y;
}

/** Random inputs, weights and epilogue for `c`, and the one-thread runner's output on them. */
function inputsAndReference(one: WasmInferConv, c: Case) {
  const { g } = c;
  const num = c.num ?? 1;
  const x = random(num * g.channels * g.height * g.width);
  const w = random(g.outChannels * (g.channels / g.group) * g.kernelH * g.kernelW);
  const ep: ConvEpilogue = { scale: random(g.outChannels), shift: random(g.outChannels), relu: c.relu ?? null };
  const ref = runCase(one, c, x, w, ep, 1);
  expect(ref.some(Number.isNaN)).toBe(false);
  return { x, w, ep, ref };
}

describe.skipIf(process.env.CAFFE_TS_GEMM === 'js')('packed inference convolution on two kernel threads', () => {
  beforeAll(async () => {
    expect(await initThreads(2)).toBe(2);
  });
  afterAll(async () => {
    setNumThreads(1);
    await shutdownThreads();
  });

  for (const relaxed of [false, true]) {
    const label = relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
    for (const c of cases) {
      it(`${label}: ${c.label}: bit-identical to one thread`, () => {
        // The case must be big enough that the pool really splits it.
        expect(planThreads(flopsOf(c), 2)).toBe(2);
        const one = createWasmInferConv({ relaxed })!;
        const two = createWasmInferConv({ relaxed, threads: true })!;
        expect(two.name).toBe(one.name);
        const num = c.num ?? 1;
        const { x, w, ep, ref } = inputsAndReference(one, c);
        // Cached weights (twice: the second call reuses the packed blocks) and uncached ones.
        const jobs = vi.spyOn(engine()!, 'run');
        try {
          for (const version of [1, 1, undefined]) expect(bytes(runCase(two, c, x, w, ep, version)).equals(bytes(ref))).toBe(true);
          // Every image (or Winograd group) was a pool job; several images split as whole images.
          if (num === 1) expect(jobs.mock.calls.length).toBeGreaterThanOrEqual(3);
          else expect(jobs.mock.calls.every((call) => call[1].endsWith('(images)'))).toBe(true);
        } finally {
          jobs.mockRestore();
        }
        expect(two.stats().cachedEntries).toBe(1);
        two.clear();
        expect(two.stats().cachedEntries).toBe(0);
      });
    }
  }

  // Batches split between the threads by whole images (each thread the full per-image chain in
  // its own scratch): bit-identical to one thread, for an even batch (whole images only) and an
  // odd one (the last image split within itself), with and without cached weights.
  const batchCases: Case[] = [
    { label: 'direct 5×5, group 2, padded', g: geom({ channels: 12, height: 17, width: 15, outChannels: 14, kernelH: 5, kernelW: 5, padH: 2, padW: 2, group: 2 }), relu: 0 },
    { label: 'direct 3×3 stride 2 on a narrow output (row blocks)', g: geom({ channels: 40, height: 12, width: 12, outChannels: 37, strideH: 2, strideW: 2 }), winograd: 'off', relu: 0.1 },
    { label: 'direct 3×3, a wide output (column blocks)', g: geom({ channels: 8, height: 30, width: 29, outChannels: 19 }), winograd: 'off' },
    { label: '1×1 flat', g: geom({ channels: 48, height: 20, width: 19, outChannels: 33, kernelH: 1, kernelW: 1, padH: 0, padW: 0 }) },
    { label: 'Winograd F(2×2, 3×3)', g: geom({ channels: 23, height: 20, width: 19, outChannels: 26 }), winograd: '2', relu: 0 },
    { label: 'Winograd F(4×4, 3×3), group 2', g: geom({ channels: 32, height: 15, width: 17, outChannels: 32, group: 2 }), winograd: '4', relu: 0.25 },
    // Over 1e7 flops an image: one image per thread and job (two jobs for four images).
    { label: 'direct 3×3, jobs of one image per thread', g: geom({ channels: 32, height: 32, width: 30, outChannels: 40 }), winograd: 'off' },
  ];
  for (const relaxed of [false, true]) {
    const label = relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
    it(`${label}: batches of 4 and 5 images split by images, bit-identical to one thread`, () => {
      const one = createWasmInferConv({ relaxed })!;
      const two = createWasmInferConv({ relaxed, threads: true })!;
      for (const base of batchCases) {
        for (const num of [4, 5]) {
          const c = { ...base, num };
          expect(planThreads(flopsOf(c) * num, num)).toBe(2);
          const { x, w, ep, ref } = inputsAndReference(one, c);
          const jobs = vi.spyOn(engine()!, 'run');
          try {
            for (const version of [1, 1, undefined]) {
              expect(bytes(runCase(two, c, x, w, ep, version)).equals(bytes(ref)), `${c.label}, ${num} images, version ${version}`).toBe(true);
            }
            // Jobs of whole images (4 images, or the first 4 of 5; the fifth runs as at batch 1).
            const names = jobs.mock.calls.map((call) => call[1]);
            expect(names.filter((n) => n.endsWith('(images)')).length, c.label).toBeGreaterThanOrEqual(3);
            if (num === 4) expect(names.every((n) => n.endsWith('(images)')), c.label).toBe(true);
            if (flopsOf(c) > 1e7) expect(names.filter((n) => n.endsWith('(images)')).length, c.label).toBe(3 * 2);
          } finally {
            jobs.mockRestore();
          }
          two.clear();
        }
      }
    });
  }

  it('a batch split with a fused sum, depthwise, and operands in the shared memory: bit-identical to one thread', () => {
    const one = createWasmInferConv()!;
    const two = createWasmInferConv({ threads: true })!;
    const num = 4;
    const gd = geom({ channels: 24, height: 22, width: 21, outChannels: 20, strideH: 2, strideW: 2 });
    const gw = geom({ channels: 24, height: 20, width: 19, outChannels: 24 });
    const gdw = geom({ channels: 32, height: 40, width: 38, outChannels: 32, group: 32 });
    const S = 20 * 19;
    const xd = random(num * 24 * 22 * 21), wd = random(20 * 24 * 9), xw = random(num * 24 * S), ww = random(24 * 24 * 9), other = random(num * 24 * S);
    const xdw = random(num * 32 * 40 * 38), wdw = random(32 * 9), ep: ConvEpilogue = { shift: random(32), scale: random(32), relu: 0 };
    const epw: ConvEpilogue = { shift: random(24), relu: null };
    const refD = new Float32Array(num * 20 * 11 * 11), refW = new Float32Array(num * 24 * S), refZ = new Float32Array(num * 24 * S);
    const refDw = new Float32Array(num * 32 * 40 * 38), refDwLeaky = new Float32Array(num * 32 * 40 * 38);
    const sumOf = (o: Float32Array, z: Float32Array) => ({ other: o, convFirst: true, c0: 1, c1: -0.5, relu: 0, z });
    expect(one.conv2d(gd, num, xd, wd, 1, { relu: 0 }, refD)).toBe(true);
    expect(one.conv2d(gw, num, xw, ww, 1, epw, refW, undefined, sumOf(other, refZ))).toBe(true);
    expect(one.depthwise(gdw, num, xdw, wdw, ep, refDw)).toBe(true);
    expect(one.depthwise(gdw, num, xdw, wdw, { ...ep, relu: 0.2 }, refDwLeaky)).toBe(true);
    const check = (label: string, shared: (n: number, from?: Float32Array) => Float32Array) => {
      const yd = shared(refD.length), yw = shared(refW.length), z = shared(refZ.length), ydw = shared(refDw.length), ydw2 = shared(refDw.length);
      const jobs = vi.spyOn(engine()!, 'run');
      try {
        expect(two.conv2d(gd, num, shared(xd.length, xd), wd, 1, { relu: 0 }, yd)).toBe(true);
        expect(two.conv2d(gw, num, shared(xw.length, xw), ww, 1, epw, yw, undefined, sumOf(shared(other.length, other), z))).toBe(true);
        expect(two.depthwise(gdw, num, shared(xdw.length, xdw), wdw, ep, ydw)).toBe(true);
        expect(two.depthwise(gdw, num, shared(xdw.length, xdw), wdw, { ...ep, relu: 0.2 }, ydw2)).toBe(true);
        const names = jobs.mock.calls.map((call) => call[1]);
        expect(names.length, label).toBeGreaterThanOrEqual(4);
        expect(names.every((n) => n.endsWith('(images)')), label).toBe(true);
      } finally {
        jobs.mockRestore();
      }
      for (const [what, got, want] of [['direct', yd, refD], ['winograd', yw, refW], ['sum', z, refZ], ['depthwise', ydw, refDw], ['leaky depthwise', ydw2, refDwLeaky]] as const) {
        expect(bytes(got).equals(bytes(want)), `${label}: ${what}`).toBe(true);
      }
    };
    check('copied', (n, from) => (from ? from.slice() : new Float32Array(n).fill(NaN)));
    const prev = setHostAllocator('wasm');
    try {
      check('in the shared memory', (n, from) => {
        const d = new Blob([n]).mutableCpuData() as Float32Array;
        expect(engine()!.offsetOf(d)).toBeGreaterThanOrEqual(0);
        if (from) d.set(from);
        else d.fill(NaN);
        return d;
      });
    } finally {
      setHostAllocator(prev);
    }
  });

  it('depthwise and inner product through the threaded runner agree with one thread', () => {
    const one = createWasmInferConv()!;
    const two = createWasmInferConv({ threads: true })!;
    const g = geom({ channels: 24, height: 17, width: 15, outChannels: 24, group: 24, strideH: 2, strideW: 2 });
    const x = random(24 * 17 * 15), w = random(24 * 9), shift = random(24), scale = random(24);
    const y1 = new Float32Array(24 * 9 * 8), y2 = new Float32Array(24 * 9 * 8);
    expect(one.depthwise(g, 1, x, w, { scale, shift, relu: 0 }, y1)).toBe(true);
    expect(two.depthwise(g, 1, x, w, { scale, shift, relu: 0 }, y2)).toBe(true);
    expect(bytes(y2).equals(bytes(y1))).toBe(true);
    const a = random(3 * 70), b = random(33 * 70), bias = random(33), z1 = new Float32Array(99), z2 = new Float32Array(99);
    expect(one.innerProduct(3, 33, 70, a, b, 4, bias, z1)).toBe(true);
    expect(two.innerProduct(3, 33, 70, a, b, 4, bias, z2)).toBe(true);
    expect(bytes(z2).equals(bytes(z1))).toBe(true);
  });

  it('a large depthwise convolution splits its channels between the threads, bit-identical to one thread', () => {
    const one = createWasmInferConv()!;
    const two = createWasmInferConv({ threads: true })!;
    // An odd channel count and stride 2; then stride 1 with a leaky ReLU and no scale.
    for (const [C, H, W, S, relu, withScale] of [[145, 113, 111, 2, 0, true], [96, 56, 56, 1, 0.25, false]] as const) {
      const g = geom({ channels: C, height: H, width: W, outChannels: C, group: C, strideH: S, strideW: S });
      const OH = outSize(H, 3, 1, S, 1), OW = outSize(W, 3, 1, S, 1);
      expect(planThreads(2 * C * 9 * OH * OW, 2)).toBe(2);
      const x = random(C * H * W), w = random(C * 9), ep: ConvEpilogue = { scale: withScale ? random(C) : null, shift: random(C), relu };
      const y1 = new Float32Array(C * OH * OW), y2 = new Float32Array(C * OH * OW).fill(NaN);
      expect(one.depthwise(g, 1, x, w, ep, y1)).toBe(true);
      const jobs = vi.spyOn(engine()!, 'run');
      try {
        expect(two.depthwise(g, 1, x, w, ep, y2)).toBe(true);
        expect(jobs).toHaveBeenCalledTimes(1);
      } finally {
        jobs.mockRestore();
      }
      expect(bytes(y2).equals(bytes(y1))).toBe(true);
    }
  });

  it('a large inner product splits its outputs between the threads, bit-identical to one thread', () => {
    const one = createWasmInferConv()!;
    const two = createWasmInferConv({ threads: true })!;
    // 1003 outputs: no multiple of the four rows rowdot takes at a time.
    for (const [M, N, K] of [[1, 1003, 2000], [2, 517, 3001]] as const) {
      expect(planThreads(2 * M * N * K, 2)).toBe(2);
      const a = random(M * K), b = random(N * K), bias = random(N), z1 = new Float32Array(M * N), z2 = new Float32Array(M * N).fill(NaN);
      expect(one.innerProduct(M, N, K, a, b, 1, bias, z1)).toBe(true);
      const jobs = vi.spyOn(engine()!, 'run');
      try {
        expect(two.innerProduct(M, N, K, a, b, 1, bias, z2)).toBe(true);
        expect(jobs).toHaveBeenCalledTimes(1);
      } finally {
        jobs.mockRestore();
      }
      expect(bytes(z2).equals(bytes(z1))).toBe(true);
      expect(two.innerProduct(M, N, K, a, b, 1, null, z2)).toBe(true);
      expect(one.innerProduct(M, N, K, a, b, 1, null, z1)).toBe(true);
      expect(bytes(z2).equals(bytes(z1))).toBe(true);
    }
  });

  it('operands in the shared memory (wasm host allocator) are read and written in place, bit-identical to copied ones, at 1 and 2 threads', () => {
    const one = createWasmInferConv()!;
    const r = defaultWasmInferConv()!;
    const prev = setHostAllocator('wasm');
    try {
      const shared = (n: number, from?: Float32Array) => {
        const d = new Blob([n]).mutableCpuData() as Float32Array;
        expect(engine()!.offsetOf(d)).toBeGreaterThanOrEqual(0);
        if (from) d.set(from);
        else d.fill(NaN);
        return d;
      };
      // Direct (3×3 stride 2, two images), Winograd, 1×1 with a fused sum; depthwise; inner product.
      const gd = geom({ channels: 6, height: 15, width: 13, outChannels: 10, strideH: 2, strideW: 2 });
      const gw = geom({ channels: 16, height: 12, width: 11, outChannels: 16 });
      const g1 = geom({ channels: 16, height: 12, width: 11, outChannels: 16, kernelH: 1, kernelW: 1, padH: 0, padW: 0 });
      const gdw = geom({ channels: 16, height: 12, width: 11, outChannels: 16, group: 16 });
      const xd = random(2 * 6 * 15 * 13), wd = random(10 * 6 * 9), xw = random(16 * 132), ww = random(16 * 16 * 9), w1 = random(16 * 16);
      const wdw = random(16 * 9), other = random(16 * 132), ep: ConvEpilogue = { shift: random(16), relu: 0 };
      const a = random(2 * 50), b = random(7 * 50), bias = random(7);
      const refD = new Float32Array(2 * 10 * 8 * 7), refW = new Float32Array(16 * 132), ref1 = new Float32Array(16 * 132), refZ = new Float32Array(16 * 132);
      const refDw = new Float32Array(16 * 132), refIp = new Float32Array(14);
      expect(one.conv2d(gd, 2, xd, wd, 1, { relu: 0 }, refD)).toBe(true);
      expect(one.conv2d(gw, 1, xw, ww, 1, ep, refW)).toBe(true);
      expect(one.conv2d(g1, 1, refW, w1, 1, {}, ref1, undefined, { other, convFirst: false, c0: 1, c1: 2, relu: 0, z: refZ })).toBe(true);
      expect(one.depthwise(gdw, 1, xw, wdw, ep, refDw)).toBe(true);
      expect(one.innerProduct(2, 7, 50, a, b, 1, bias, refIp)).toBe(true);
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        const yd = shared(refD.length), yw = shared(refW.length), y1 = shared(ref1.length), z = shared(refZ.length), ydw = shared(refDw.length), yip = shared(14);
        expect(r.conv2d(gd, 2, shared(xd.length, xd), wd, 1, { relu: 0 }, yd)).toBe(true);
        expect(r.conv2d(gw, 1, shared(xw.length, xw), ww, 1, ep, yw, { x: 1, y: 2 })).toBe(true);
        expect(r.conv2d(g1, 1, yw, w1, 1, {}, y1, { x: 2, y: 3 }, { other: shared(other.length, other), convFirst: false, c0: 1, c1: 2, relu: 0, z, zVersion: 4 })).toBe(true);
        expect(r.depthwise(gdw, 1, shared(xw.length, xw), wdw, ep, ydw)).toBe(true);
        expect(r.innerProduct(2, 7, 50, shared(100, a), b, 1, bias, yip)).toBe(true);
        for (const [got, want] of [[yd, refD], [yw, refW], [y1, ref1], [z, refZ], [ydw, refDw], [yip, refIp]] as const) {
          expect(bytes(got).equals(bytes(want))).toBe(true);
        }
      }
    } finally {
      setHostAllocator(prev);
      setNumThreads(2);
    }
  });

  it("a disposed weights blob takes the default runner's packed copy with it", () => {
    const r = defaultWasmInferConv()!;
    const prev = setHostAllocator('wasm');
    try {
      const g = geom({ channels: 16, height: 12, width: 11, outChannels: 16 });
      const wb = new Blob([16 * 16 * 9]);
      (wb.mutableCpuData() as Float32Array).set(random(16 * 16 * 9));
      const entries = r.stats().cachedEntries;
      expect(r.conv2d(g, 1, random(16 * 132), wb.cpuData() as Float32Array, wb.dataVersion, {}, new Float32Array(16 * 132))).toBe(true);
      expect(r.stats().cachedEntries).toBe(entries + 1);
      wb.dispose();
      expect(r.stats().cachedEntries).toBe(entries);
    } finally {
      setHostAllocator(prev);
    }
  });

  it('inner product weights in the shared memory are read in place: no cached copy, the same bits', () => {
    const one = createWasmInferConv()!;
    const r = defaultWasmInferConv()!;
    const prev = setHostAllocator('wasm');
    try {
      const M = 3, N = 37, K = 300;
      const x = random(M * K), w = random(N * K), bias = random(N), ref = new Float32Array(M * N);
      expect(one.innerProduct(M, N, K, x, w, 1, bias, ref)).toBe(true);
      const wb = new Blob([N, K]);
      const wd = wb.mutableCpuData() as Float32Array;
      wd.set(w);
      expect(engine()!.offsetOf(wd)).toBeGreaterThanOrEqual(0);
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        const cached = r.stats().cachedBytes;
        const y = new Float32Array(M * N);
        expect(r.innerProduct(M, N, K, x, wd, wb.dataVersion, bias, y)).toBe(true);
        expect(bytes(y).equals(bytes(ref))).toBe(true);
        expect(r.stats().cachedBytes).toBe(cached);
      }
      // Changed weights are read as they are now (no stale copy to refresh).
      wd[5] = wd[5]! + 1;
      const y = new Float32Array(M * N);
      expect(r.innerProduct(M, N, K, x, wd, wb.dataVersion + 1, bias, y)).toBe(true);
      expect(y[0]).toBeCloseTo(ref[0]! + x[5]!, 4);
    } finally {
      setHostAllocator(prev);
      setNumThreads(2);
    }
  });

  it.each([
    // SqueezeNet's pool1 (no padding: read in place) and GoogLeNet's inception pools (padded).
    ['3×3 stride 2, no padding', 16, 113, 113, 3, 2, 0],
    ['3×3 stride 1, pad 1', 64, 28, 28, 3, 1, 1],
    ['2×2 stride 2, an odd plane count', 131, 56, 56, 2, 2, 0],
  ] as [string, number, number, number, number, number, number][])('max pooling in the shared memory splits its planes between the threads, bit-identical to one thread (%s)', (_label, planes, H, W, K, S, P) => {
    const OH = Math.ceil((H + 2 * P - K) / S) + 1, OW = Math.ceil((W + 2 * P - K) / S) + 1;
    expect(planThreads(planes * OH * OW * K * K, planes, 2e5)).toBe(2);
    const x = random(planes * H * W);
    x[5] = NaN;
    // One thread: the runner's own memory (the operands copied in).
    const want = new Float32Array(planes * OH * OW);
    defaultWasmInfer()!.maxPool(planes, H, W, OH, OW, K, K, S, S, P, P, x, want);
    const prev = setHostAllocator('wasm');
    try {
      const xs = inBlob(x), ys = inBlob(new Float32Array(want.length).fill(7));
      const jobs = vi.spyOn(engine()!, 'run');
      try {
        defaultWasmInfer()!.maxPool(planes, H, W, OH, OW, K, K, S, S, P, P, xs, ys);
        expect(jobs.mock.calls.map((call) => call[1])).toEqual(['wasm maxPool']);
      } finally {
        jobs.mockRestore();
      }
      expect(bytes(ys).equals(bytes(want))).toBe(true);
    } finally {
      setHostAllocator(prev);
    }
  });

  it.each([
    // CaffeNet's norm1 at two images (a plane of 27 × 27: the last share is not a multiple of 4)
    // and GoogLeNet's norm2 shape at one.
    [2, 96, 27 * 27, 5, 0.75], [1, 192, 56 * 56, 5, 0.75], [1, 128, 33 * 35, 3, 1],
  ])('LRN across channels in the shared memory splits each plane between the threads, bit-identical to one thread (%i × %i × %i, size %i, beta %s)', (num, C, P, size, beta) => {
    const n = num * C * P;
    expect(planThreads(n * size, Math.floor(P / 4), 2e5)).toBe(2);
    const x = random(n);
    const s1 = new Float32Array(n), y1 = new Float32Array(n);
    defaultWasmInfer()!.lrnAcross(x, s1, y1, num, C, P, size, 2, 1e-4 / size, beta);
    const prev = setHostAllocator('wasm');
    try {
      const xs = inBlob(x), ss = inBlob(new Float32Array(n).fill(7)), ys = inBlob(new Float32Array(n).fill(7));
      const jobs = vi.spyOn(engine()!, 'run');
      try {
        defaultWasmInfer()!.lrnAcross(xs, ss, ys, num, C, P, size, 2, 1e-4 / size, beta);
        expect(jobs.mock.calls.map((call) => call[1])).toEqual(['wasm lrn']);
      } finally {
        jobs.mockRestore();
      }
      expect(bytes(ss).equals(bytes(s1))).toBe(true);
      expect(bytes(ys).equals(bytes(y1))).toBe(true);
    } finally {
      setHostAllocator(prev);
    }
  });

  it('defaultWasmInferConv gives the same bits at 1 and 2 threads, and a resident output chains between calls', () => {
    const r = defaultWasmInferConv()!;
    expect(threadPoolInfo().active).toBe(2);
    const g1 = geom({ channels: 20, height: 24, width: 22, outChannels: 32 });
    const g2 = geom({ channels: 32, height: 24, width: 22, outChannels: 19, kernelH: 1, kernelW: 1, padH: 0, padW: 0 });
    const x = random(20 * 24 * 22), w1 = random(32 * 20 * 9), w2 = random(19 * 32);
    const run = () => {
      const h = new Float32Array(32 * 24 * 22), y = new Float32Array(19 * 24 * 22);
      expect(r.conv2d(g1, 1, x, w1, 1, { relu: 0 }, h, { x: 1, y: 5 })).toBe(true);
      expect(r.conv2d(g2, 1, h, w2, 1, {}, y, { x: 5, y: 6 })).toBe(true);
      return y;
    };
    setNumThreads(2);
    const a = run();
    setNumThreads(1);
    const b = run();
    setNumThreads(2);
    const c = run();
    expect(bytes(a).equals(bytes(b))).toBe(true);
    expect(bytes(c).equals(bytes(b))).toBe(true);
    r.clear();
  });
});
