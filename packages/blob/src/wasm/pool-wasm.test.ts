import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocHost, allocHostInt32, setHostAllocator } from '../host-memory.js';
import { Rng } from '../rng.js';
import { createWasmMaxPool, defaultWasmMaxPool, type WasmMaxPool } from './pool-wasm.js';
import { engine, initThreads, shutdownThreads } from './threads.js';
import { createWasmTrain } from './train-wasm.js';

let previous: ReturnType<typeof setHostAllocator>;
beforeAll(() => {
  previous = setHostAllocator('wasm');
});
afterAll(async () => {
  setHostAllocator(previous);
  await shutdownThreads();
});

/** A copy of `a` in the kernel threads' shared memory (as a blob of the 'wasm' allocator holds it). */
function resident<T extends Float32Array | Int32Array>(a: T): T {
  const out = (a instanceof Int32Array ? allocHostInt32(a.length) : allocHost('float32', a.length).array) as T;
  if (out.buffer instanceof ArrayBuffer) throw new Error('no shared WebAssembly memory in this Node');
  out.set(a);
  return out;
}

function pool(): WasmMaxPool {
  const p = createWasmMaxPool({ relaxed: false });
  if (!p) throw new Error('WebAssembly SIMD is unavailable in this Node');
  return p;
}

/** Windows of kernel k at stride s with padding p, clipped to the plane (as the Pooling layer builds them). */
function windows(out: number, size: number, k: number, s: number, p: number): [Int32Array, Int32Array] {
  const lo = new Int32Array(out), hi = new Int32Array(out);
  for (let i = 0; i < out; i++) {
    lo[i] = Math.max(i * s - p, 0);
    hi[i] = Math.min(i * s - p + k, size);
  }
  return [lo, hi];
}

/** The window-by-window definition: first maximum in row-major order. */
function reference(src: Float32Array, planes: number, H: number, W: number, rows: [Int32Array, Int32Array], cols: [Int32Array, Int32Array]) {
  const PH = rows[0].length, PW = cols[0].length;
  const dst: number[] = [], idx: number[] = [];
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < PH; y++) {
      for (let x = 0; x < PW; x++) {
        let best = NaN, at = -1;
        for (let h = rows[0][y]!; h < rows[1][y]!; h++) {
          for (let w = cols[0][x]!; w < cols[1][x]!; w++) {
            const v = src[p * H * W + h * W + w]!;
            if (at < 0 || v > best) [best, at] = [v, h * W + w];
          }
        }
        dst.push(best);
        idx.push(at);
      }
    }
  }
  return { dst, idx };
}

describe.skipIf(process.env.CAFFE_TS_GEMM === 'js')('createWasmMaxPool', () => {
  const cases: [string, number, number, number, number, number, number][] = [
    // name, planes, H, W, kernel, stride, pad
    ['2×2 s2, 4-wide vector steps and a scalar tail (LeNet pool1/pool2)', 7, 12, 14, 2, 2, 0],
    ['2×2 s2 with an odd plane (CEIL edge windows take the generic loop)', 3, 7, 9, 2, 2, 0],
    ['3×3 s2 (CIFAR-10)', 5, 9, 10, 3, 2, 0],
    ['3×3 s1 p1', 2, 5, 6, 3, 1, 1],
    ['3×3 s1 p1 on wider rows (SIMD steps between padded edges)', 3, 6, 13, 3, 1, 1],
    ['3×3 s2 on 32×32 (CIFAR-10 pool1; the last window is clipped)', 4, 32, 32, 3, 2, 0],
    ['3×3 s2 p1 (rows clipped, SIMD between the edges)', 3, 8, 21, 3, 2, 1],
    ['planes split into several chunks', 300, 16, 16, 2, 2, 0],
  ];
  for (const [name, planes, H, W, k, s, p] of cases) {
    it(`${name}: values and argmax equal the definition, ties to the first`, () => {
      const rng = new Rng(planes * H);
      const src = new Float32Array(planes * H * W);
      // Few distinct values, so windows hold ties; a NaN or two.
      for (let i = 0; i < src.length; i++) src[i] = rng.int(4) - 1;
      src[5] = NaN;
      src[src.length - 3] = NaN;
      const ceil = (n: number) => Math.ceil((n + 2 * p - k) / s) + 1;
      let PH = ceil(H), PW = ceil(W);
      if (p > 0 && (PH - 1) * s >= H + p) PH--;
      if (p > 0 && (PW - 1) * s >= W + p) PW--;
      const rows = windows(PH, H, k, s, p), cols = windows(PW, W, k, s, p);
      const dst = new Float32Array(planes * PH * PW).fill(-7);
      const idx = new Int32Array(planes * PH * PW).fill(-7);
      pool().maxPool(src, planes, H, W, PH, PW, rows[0], rows[1], cols[0], cols[1], dst, idx);
      const want = reference(src, planes, H, W, rows, cols);
      expect(Array.from(dst)).toEqual(want.dst);
      expect(Array.from(idx)).toEqual(want.idx);
      // With the column geometry, whole windows go four at a time (stride 1 or 2): same result.
      const dstV = new Float32Array(dst.length).fill(-7), idxV = new Int32Array(idx.length).fill(-7);
      pool().maxPool(src, planes, H, W, PH, PW, rows[0], rows[1], cols[0], cols[1], dstV, idxV, { kernel: k, stride: s, pad: p });
      expect(Array.from(dstV)).toEqual(want.dst);
      expect(Array.from(idxV)).toEqual(want.idx);
      // Backward: each top diff added at its argmax (overlapping windows accumulate, in output
      // order, so fractional diffs give the training kernels' float32 sums bit for bit).
      const top = Float32Array.from({ length: dst.length }, (_, i) => ((i % 13) - 6) / 3);
      const expected = new Float32Array(src.length);
      for (let i = 0; i < top.length; i++) expected[Math.floor(i / (PH * PW)) * H * W + idx[i]!]! += top[i]!;
      const train = new Float32Array(src.length).fill(NaN);
      createWasmTrain({ relaxed: false })!.maxUnpool(top, idx, planes, H * W, PH * PW, train);
      expect(Array.from(train)).toEqual(Array.from(expected));
      // Plain arrays are the training kernels' job: nothing done.
      const plain = new Float32Array(src.length).fill(NaN);
      expect(pool().maxUnpool(top, idx, planes, H * W, PH * PW, plain)).toBe(false);
      expect(plain.every((v) => Number.isNaN(v))).toBe(true);
      // In the shared memory: argmax and bottom in place, or staged through the scratch block.
      for (const [idxIn, bottomIn] of [[true, true], [false, true], [true, false], [false, false]]) {
        const bottom = new Float32Array(src.length).fill(NaN);
        const b = bottomIn ? resident(bottom) : bottom;
        expect(pool().maxUnpool(resident(top), idxIn ? resident(idx) : idx, planes, H * W, PH * PW, b)).toBe(true);
        expect(Array.from(b)).toEqual(Array.from(expected));
      }
    });
  }

  it('rejects empty windows and short arrays', () => {
    const one = Int32Array.of(0), two = Int32Array.of(2);
    expect(() => pool().maxPool(new Float32Array(4), 1, 2, 2, 1, 1, one, two, two, two, new Float32Array(1), new Int32Array(1)))
      .toThrow(/columns \[2, 2\) of output column 0/);
    expect(() => pool().maxPool(new Float32Array(3), 1, 2, 2, 1, 1, one, two, one, two, new Float32Array(1), new Int32Array(1)))
      .toThrow(/need src, dst, idx of 4, 1, 1 elements, got 3, 1, 1/);
  });

  it('maxUnpool refuses an argmax outside the plane and short arrays', () => {
    const top = resident(new Float32Array(2));
    expect(() => pool().maxUnpool(top, Int32Array.of(0, 4), 1, 4, 2, resident(new Float32Array(4))))
      .toThrow(/maxUnpool: an argmax is outside the plane of 4 elements/);
    expect(() => pool().maxUnpool(top, resident(Int32Array.of(0, -1)), 1, 4, 2, resident(new Float32Array(4)))).toThrow(/outside the plane/);
    expect(() => pool().maxUnpool(top, Int32Array.of(0, 1), 1, 4, 2, new Float32Array(3))).toThrow(/need topDiff, idx, bottomDiff of 2, 2, 4 elements, got 2, 2, 3/);
  });

  it('maxPool writes an argmax and output in the shared memory in place, equal to the staged run', () => {
    const planes = 6, H = 12, W = 14, PH = 6, PW = 7;
    const rng = new Rng(3);
    const src = Float32Array.from({ length: planes * H * W }, () => rng.int(5) - 2);
    const lo = (n: number) => Int32Array.from({ length: n }, (_, i) => 2 * i);
    const hi = (n: number) => Int32Array.from({ length: n }, (_, i) => 2 * i + 2);
    const run = (srcIn: boolean, outIn: boolean) => {
      const dst = new Float32Array(planes * PH * PW), idx = new Int32Array(planes * PH * PW);
      const d = outIn ? resident(dst) : dst, x = outIn ? resident(idx) : idx;
      pool().maxPool(srcIn ? resident(src) : src, planes, H, W, PH, PW, lo(PH), hi(PH), lo(PW), hi(PW), d, x);
      return [Array.from(d), Array.from(x)];
    };
    const staged = run(false, false);
    expect(run(true, true)).toEqual(staged);
    expect(run(true, false)).toEqual(staged);
  });

  it('on two kernel threads, 2×2 pooling and unpooling in the shared memory split the planes and give the one-thread bits', async () => {
    // LeNet pool1 at batch 36: 720 planes of 24×24 (415k window taps, two threads' worth).
    const planes = 720, H = 24, W = 24, PH = 12, PW = 12;
    const rng = new Rng(9);
    const src = resident(Float32Array.from({ length: planes * H * W }, () => rng.int(7) - 3));
    const top = resident(Float32Array.from({ length: planes * PH * PW }, () => rng.uniform() - 0.5));
    const lo = Int32Array.from({ length: PH }, (_, i) => 2 * i), hi = Int32Array.from({ length: PH }, (_, i) => 2 * i + 2);
    const run = () => {
      const dst = resident(new Float32Array(planes * PH * PW)), idx = resident(new Int32Array(planes * PH * PW));
      const bottom = resident(new Float32Array(planes * H * W).fill(NaN));
      pool().maxPool(src, planes, H, W, PH, PW, lo, hi, lo, hi, dst, idx);
      expect(pool().maxUnpool(top, idx, planes, H * W, PH * PW, bottom)).toBe(true);
      return [Array.from(dst), Array.from(idx), Array.from(bottom)];
    };
    await initThreads(1);
    const one = run();
    await initThreads(2);
    const e = engine()!, runLists = e.run.bind(e);
    const split: string[] = [];
    e.run = (lists, what, hooks) => (split.push(`${what} ${lists.length}`), runLists(lists, what, hooks));
    // The first differing element of each output (-1: none), not a diff of 400k-element arrays.
    const firstDiff = (a: number[][], b: number[][]) => a.map((x, k) => x.findIndex((v, i) => !Object.is(v, b[k]![i])));
    try {
      expect(firstDiff(run(), one)).toEqual([-1, -1, -1]);
    } finally {
      e.run = runLists;
      await initThreads(1);
    }
    expect(split).toEqual(['wasm-simd maxPool 2', 'wasm-simd maxUnpool 2']);
    expect(one[0]).toEqual(reference(src, planes, H, W, [lo, hi], [lo, hi]).dst);
  });

  it('defaultWasmMaxPool follows CAFFE_TS_GEMM', () => {
    const p = defaultWasmMaxPool();
    expect(p === null ? process.env.CAFFE_TS_GEMM : p.name).toMatch(/^(js|wasm-simd|wasm-relaxed-simd)$/);
  });
});
