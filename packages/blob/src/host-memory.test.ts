import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blob } from './blob.js';
import { gemmJs } from './math/gemm.js';
import { Rng } from './rng.js';
import { SyncedMemory } from './synced-memory.js';
import { allocHostInt32, copyFloats, hostAllocator, hostMemoryInfo, releaseHostInt32, setHostAllocator, zeroFill } from './host-memory.js';
import { sizeClass } from './wasm/kernel-heap.js';
import { createWasmConv2d, type Conv2dGeometry, type Conv2dPass } from './wasm/conv-wasm.js';
import { createWasmGemmKernel } from './wasm/gemm-wasm.js';
import { createWasmMaxPool } from './wasm/pool-wasm.js';
import { createWasmTrain } from './wasm/train-wasm.js';
import { engine, initThreads, setNumThreads, shutdownThreads } from './wasm/threads.js';

const rng = new Rng(7);
const random = (a: Float32Array) => {
  for (let i = 0; i < a.length; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
};
/** A float32 array from the 'wasm' allocator (a blob's data), filled like `from`. */
const resident = (from: Float32Array): Float32Array => {
  const b = new Blob([from.length]);
  const d = b.mutableCpuData() as Float32Array;
  d.set(from);
  keep.push(b);
  return d;
};
const keep: Blob[] = [];
const e = () => engine()!;
let previous: ReturnType<typeof setHostAllocator>;

beforeAll(() => {
  previous = setHostAllocator('wasm');
});
afterAll(async () => {
  setHostAllocator(previous);
  await shutdownThreads();
});

describe("the 'wasm' host allocator", () => {
  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('places float32 blob memory in the kernels\' shared memory; float64 stays plain', () => {
    expect(hostAllocator()).toBe('wasm');
    const b = new Blob([2, 3]);
    const d = b.mutableCpuData();
    expect(d).toBeInstanceOf(Float32Array);
    expect(d.length).toBe(6);
    expect(e().offsetOf(d as Float32Array)).toBeGreaterThan(0);
    expect(Array.from(d)).toEqual([0, 0, 0, 0, 0, 0]);
    // A smaller reshape hands out a view of the same block.
    b.reshape([4]);
    expect(e().offsetOf(b.cpuData() as Float32Array)).toBe(e().offsetOf(d as Float32Array));
    const info = hostMemoryInfo();
    expect(info).toMatchObject({ allocator: 'wasm', active: true, reason: null });
    expect(info.heap!.bytesInUse).toBeGreaterThan(0);
    const f64 = new Blob([3], { dtype: 'float64' });
    expect(f64.cpuData()).toBeInstanceOf(Float64Array);
    expect(f64.cpuData().buffer).toBeInstanceOf(ArrayBuffer);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('frees on release, so reshaping and disposing in a loop keeps the heap flat', () => {
    const run = () => {
      for (let i = 0; i < 200; i++) {
        const b = new Blob([64, 50]);
        b.mutableCpuData()[0] = i;
        b.mutableCpuDiff()[1] = i;
        b.reshape([64, 100]); // past capacity: the old blocks go back
        b.mutableCpuData()[0] = 1;
        b.dispose();
      }
    };
    run();
    const top = hostMemoryInfo().heap!.top;
    run();
    expect(hostMemoryInfo().heap!.top).toBe(top);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('releaseHostInt32 gives an int32 block back at once; twice, or on a plain array, it does nothing', () => {
    const inUse = () => hostMemoryInfo().heap!.bytesInUse;
    const before = inUse();
    const idx = allocHostInt32(5000);
    expect(e().offsetOf(new Float32Array(idx.buffer, idx.byteOffset, 1))).toBeGreaterThan(0);
    expect(inUse()).toBe(before + sizeClass(4 * 5000));
    releaseHostInt32(idx);
    expect(inUse()).toBe(before);
    releaseHostInt32(idx);
    releaseHostInt32(new Int32Array(10));
    expect(inUse()).toBe(before);
  });

  it('a shared memory (shareData) is freed only when its last blob lets go; reused blocks read zero', () => {
    const a = new Blob([1000]);
    const b = new Blob([1000]);
    a.mutableCpuData().fill(2);
    b.shareData(a);
    a.dispose();
    expect(b.cpuData()[999]).toBe(2);
    b.dispose();
    const c = new Blob([1000]);
    expect(c.cpuData().every((x) => x === 0)).toBe(true);
  });

  it('memory given from outside (setCpuData with a SharedArrayBuffer arena, as data-parallel replicas do) keeps working', () => {
    const M = 33, N = 41, K = 29;
    const arena = new SharedArrayBuffer(4 * (M * K + 16));
    const w = new Blob([M, K]);
    w.data.setCpuData(new Float32Array(arena, 64, M * K));
    random(w.mutableCpuData() as Float32Array);
    const x = new Blob([K, N]);
    random(x.mutableCpuData() as Float32Array);
    const y = new Blob([M, N]);
    const k = createWasmGemmKernel({ relaxed: false, threads: 1 })!;
    k(false, false, M, N, K, 1, w.cpuData() as Float32Array, x.cpuData() as Float32Array, 0, y.mutableCpuData() as Float32Array);
    const want = new Float32Array(M * N);
    gemmJs(false, false, M, N, K, 1, w.cpuData(), x.cpuData(), 0, want);
    expect(maxDiff(y.cpuData() as Float32Array, want)).toBeLessThan(1e-4);
    expect(w.cpuData().buffer).toBe(arena);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('views taken before the memory grows stay valid and are still used in place', () => {
    const b = new Blob([1000]);
    const held = b.mutableCpuData() as Float32Array;
    held.fill(1.5);
    const heldBuffer = held.buffer;
    // Enough new blobs to grow the memory by more than its current size.
    const size = hostMemoryInfo().heap!.memoryBytes;
    const big = new Blob([Math.ceil(size / 4) + 1000]);
    big.mutableCpuData()[0] = 1;
    expect(e().memory.buffer).not.toBe(heldBuffer);
    expect(held[999]).toBe(1.5);
    expect(b.cpuData()[999]).toBe(1.5);
    held[3] = 7;
    expect(b.cpuData()[3]).toBe(7);
    expect(e().offsetOf(held)).toBeGreaterThan(0);
    big.dispose();
  });
});

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('kernels on blob memory in place', () => {
  const shapes: [boolean, boolean, number, number, number][] = [
    [false, false, 37, 45, 23], [true, false, 64, 100, 50], [false, true, 20, 130, 70], [true, true, 9, 17, 300],
  ];

  for (const threads of [1, 2]) {
    it(`gemm (${threads} thread(s)): every mix of resident and plain operands equals the JS path, beta 0 and 0.5`, async () => {
      if (threads > 1) await initThreads(2);
      else setNumThreads(1);
      const k = createWasmGemmKernel({ relaxed: false, minFlopsPerThread: 1 })!;
      for (const [tA, tB, M, N, K] of shapes) {
        const A0 = random(new Float32Array(M * K)), B0 = random(new Float32Array(K * N)), C0 = random(new Float32Array(M * N));
        for (let mask = 0; mask < 8; mask++) {
          for (const beta of [0, 0.5]) {
            const A = mask & 1 ? resident(A0) : A0.slice();
            const B = mask & 2 ? resident(B0) : B0.slice();
            const C = mask & 4 ? resident(C0) : C0.slice();
            const want = C0.slice();
            gemmJs(tA, tB, M, N, K, 0.75, A0, B0, beta, want);
            k(tA, tB, M, N, K, 0.75, A, B, beta, C);
            expect(maxDiff(C, want)).toBeLessThan(1e-4);
            expect(Array.from(A)).toEqual(Array.from(A0));
          }
        }
      }
    });
  }

  it('gemm whose resident C overlaps a resident input is still right (C staged)', () => {
    setNumThreads(1);
    const k = createWasmGemmKernel({ relaxed: false })!;
    const M = 16, N = 16, K = 16;
    const buf = resident(random(new Float32Array(M * K + M * N)));
    const A = buf.subarray(0, M * K), C = buf.subarray(M * K / 2, M * K / 2 + M * N);
    const B = random(new Float32Array(K * N));
    const A0 = A.slice(), want = C.slice();
    gemmJs(false, false, M, N, K, 1, A0, B, 0, want);
    k(false, false, M, N, K, 1, A, B, 0, C);
    expect(maxDiff(C, want)).toBeLessThan(1e-4);
  });

  const g: Conv2dGeometry = {
    channels: 4, height: 9, width: 8, kernelH: 3, kernelW: 3, padH: 1, padW: 0, strideH: 1, strideW: 2,
    dilationH: 1, dilationW: 1, outChannels: 6, group: 2,
  };
  const num = 5, imgIn = 4 * 9 * 8, OH = 9, OW = 3, imgOut = 6 * OH * OW, K = 2 * 9;

  for (const threads of [1, 2]) {
    it(`convolution passes (${threads} thread(s)): resident blobs give exactly what staged arrays give`, async () => {
      if (threads > 1) await initThreads(2);
      else setNumThreads(1);
      const conv = createWasmConv2d({ relaxed: false, minFlopsPerThread: 1 })!;
      const x = random(new Float32Array(num * imgIn)), dy = random(new Float32Array(num * imgOut));
      const w = random(new Float32Array(6 * K)), bias = random(new Float32Array(6));
      const dw0 = random(new Float32Array(6 * K)), db0 = random(new Float32Array(6));
      const run = (place: (a: Float32Array) => Float32Array) => {
        const fwd = { colIn: place(x), weights: place(w), bias: place(bias), gemmOut: place(new Float32Array(num * imgOut)) };
        conv.run(g, num, 2, fwd as Conv2dPass);
        const bwd = {
          colIn: place(x), gemmIn: place(dy), weights: place(w), weightDiff: place(dw0), biasDiff: place(db0),
          colOut: place(new Float32Array(num * imgIn)),
        };
        conv.run(g, num, 2, bwd as Conv2dPass);
        return [fwd.gemmOut, bwd.weightDiff, bwd.biasDiff, bwd.colOut].map((a) => Array.from(a));
      };
      const staged = run((a) => a.slice());
      expect(run(resident)).toEqual(staged);
      // Images resident, parameters plain (and the reverse): the same.
      let i = 0;
      expect(run((a) => (i++ % 2 ? resident(a) : a.slice()))).toEqual(staged);
    });
  }

  it('max pooling forward and backward in place equal the staged runs', () => {
    const pool = createWasmMaxPool({ relaxed: false })!;
    const planes = 7, H = 10, W = 9, PH = 5, PW = 4;
    const src = random(new Float32Array(planes * H * W));
    const lo = (n: number) => Int32Array.from({ length: n }, (_, i) => 2 * i);
    const hi = (n: number, max: number) => Int32Array.from({ length: n }, (_, i) => Math.min(2 * i + 3, max));
    const run = (place: (a: Float32Array) => Float32Array) => {
      const dst = place(new Float32Array(planes * PH * PW));
      const idx = new Int32Array(planes * PH * PW);
      pool.maxPool(place(src), planes, H, W, PH, PW, lo(PH), hi(PH, H), lo(PW), hi(PW, W), dst, idx, { kernel: 3, stride: 2, pad: 0 });
      const bottom = place(random(new Float32Array(planes * H * W)));
      // Plain arrays go to the training kernels (as the Pooling layer does), resident ones in place.
      if (!pool.maxUnpool(place(dst), idx, planes, H * W, PH * PW, bottom)) train.maxUnpool(dst, idx, planes, H * W, PH * PW, bottom);
      return [Array.from(dst), Array.from(idx), Array.from(bottom)];
    };
    const train = createWasmTrain({ relaxed: false })!;
    const staged = run((a) => a.slice());
    expect(run(resident)).toEqual(staged);
    // 2×2 windows (the SIMD 2×2 path), resident source, plain destination.
    const run2 = (place: (a: Float32Array) => Float32Array) => {
      const dst = new Float32Array(planes * 5 * 4), idx = new Int32Array(planes * 5 * 4);
      pool.maxPool(place(src), planes, H, W, 5, 4, lo(5), Int32Array.from(lo(5), (v) => v + 2), lo(4), Int32Array.from(lo(4), (v) => v + 2), dst, idx);
      return [Array.from(dst), Array.from(idx)];
    };
    expect(run2(resident)).toEqual(run2((a) => a.slice()));
  });
});

describe('zeroFill', () => {
  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('zeroes exactly [start, end) of blob memory in the kernel heap and of plain arrays, leaving the neighbours', () => {
    for (const inHeap of [true, false]) {
      const n = 5003;
      const a = inHeap ? resident(random(new Float32Array(n))) : random(new Float32Array(n));
      expect(e().offsetOf(a) >= 0).toBe(inHeap);
      const before = Float32Array.from(a);
      // Odd bounds: the vector loop's tail and an unaligned start.
      zeroFill(a, 7, 4998);
      for (let i = 0; i < n; i++) expect(a[i], `element ${i}`).toBe(i >= 7 && i < 4998 ? 0 : before[i]);
      zeroFill(a);
      expect(a.every((v) => v === 0)).toBe(true);
    }
    // A view into the middle of a blob's block: its own offset is used.
    const whole = resident(random(new Float32Array(4096)));
    const view = whole.subarray(1000, 3000);
    zeroFill(view);
    expect(whole.subarray(1000, 3000).every((v) => v === 0)).toBe(true);
    expect(whole[999]).not.toBe(0);
    expect(whole[3000]).not.toBe(0);
    // float64 and short arrays take the plain fill.
    const d = new Float64Array([1, 2, 3]);
    zeroFill(d, 1);
    expect(Array.from(d)).toEqual([1, 0, 0]);
  });
});

describe('copyFloats', () => {
  it('copies as TypedArray.set does between kernel-heap views, plain arrays and mixes, at offsets', () => {
    const n = 3001;
    for (const [dstHeap, srcHeap] of [[true, true], [true, false], [false, true], [false, false]] as const) {
      const src = srcHeap ? resident(random(new Float32Array(n))) : random(new Float32Array(n));
      const dst = dstHeap ? resident(random(new Float32Array(n + 600))) : random(new Float32Array(n + 600));
      const want = Float32Array.from(dst);
      want.set(src, 599);
      copyFloats(dst, src, 599);
      expect(Array.from(dst)).toEqual(Array.from(want));
    }
    // Sub-views of blocks: their own offsets; the neighbours stay.
    const a = resident(random(new Float32Array(4096)));
    const b = resident(random(new Float32Array(4096)));
    const before = Float32Array.from(b);
    copyFloats(b.subarray(1000, 3000), a.subarray(5, 1005), 3);
    for (let i = 0; i < 4096; i++) expect(b[i], `element ${i}`).toBe(i >= 1003 && i < 2003 ? a[i - 998] : before[i]);
  });

  it('moves overlapping ranges of one block as set does, copies Int32Array views and float64, and throws set\'s RangeError', () => {
    const a = resident(random(new Float32Array(4000)));
    const want = Float32Array.from(a);
    want.set(want.subarray(0, 3000), 700);
    copyFloats(a, a.subarray(0, 3000), 700);
    expect(Array.from(a)).toEqual(Array.from(want));
    const blk = resident(new Float32Array(2048));
    const i32 = new Int32Array(blk.buffer, blk.byteOffset, 2048);
    const srcI = new Int32Array(blk.buffer, blk.byteOffset, 1024);
    for (let i = 0; i < 1024; i++) srcI[i] = i * 7 - 3;
    copyFloats(i32, srcI, 1024);
    for (let i = 0; i < 1024; i++) expect(i32[1024 + i]).toBe(i * 7 - 3);
    const d = new Float64Array(4);
    copyFloats(d, Float64Array.of(1.5, 2.5), 1);
    expect(Array.from(d)).toEqual([0, 1.5, 2.5, 0]);
    expect(() => copyFloats(resident(new Float32Array(1000)), resident(new Float32Array(900)), 200)).toThrow(RangeError);
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('copies long runs between heap views with memory.copy, not TypedArray.set (short runs: set)', () => {
    const src = resident(random(new Float32Array(2048)));
    const dst = resident(new Float32Array(2048));
    const orig = Float32Array.prototype.set;
    let sets = 0;
    Float32Array.prototype.set = function (this: Float32Array, ...args: Parameters<Float32Array['set']>) {
      sets++;
      return orig.apply(this, args);
    };
    try {
      copyFloats(dst, src);
      copyFloats(dst.subarray(0, 100), src.subarray(0, 100));
    } finally {
      Float32Array.prototype.set = orig;
    }
    expect(Array.from(dst)).toEqual(Array.from(src));
    expect(sets).toBe(1);
  });
});
