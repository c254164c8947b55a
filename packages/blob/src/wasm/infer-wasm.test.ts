import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { INFER_GENERATED_PATH, renderInferWasm } from '../../scripts/build-infer-wasm.mjs';
import { Blob } from '../blob.js';
import { setHostAllocator } from '../host-memory.js';
import { convOutputSize } from '../math/im2col.js';
import { Rng } from '../rng.js';
import { createWasmInfer, type DepthwiseGeometry, type WasmInfer } from './infer-wasm.js';
import { shutdownThreads } from './threads.js';

const rng = new Rng(11);
const random = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
};
function kernels(): WasmInfer {
  const k = createWasmInfer();
  if (!k) throw new Error('WebAssembly SIMD is unavailable in this Node');
  return k;
}
const close = (got: Float32Array, want: Float64Array, tol = 1e-5) => {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  expect(worst).toBeLessThan(tol);
};

function rowdotRef(M: number, N: number, K: number, x: Float32Array, w: Float32Array, b: Float32Array | null): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s;
    }
  }
  return y;
}

function depthwiseRef(g: DepthwiseGeometry, num: number, x: Float32Array, w: Float32Array, b: Float32Array | null): Float64Array {
  const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
  const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  const C = g.channels, H = g.height, W = g.width;
  const y = new Float64Array(num * C * OH * OW);
  for (let n = 0; n < num; n++) {
    for (let c = 0; c < C; c++) {
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let s = b ? b[c]! : 0;
          for (let ky = 0; ky < g.kernelH; ky++) {
            for (let kx = 0; kx < g.kernelW; kx++) {
              const iy = oy * g.strideH - g.padH + ky * g.dilationH, ix = ox * g.strideW - g.padW + kx * g.dilationW;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              s += w[(c * g.kernelH + ky) * g.kernelW + kx]! * x[((n * C + c) * H + iy) * W + ix]!;
            }
          }
          y[((n * C + c) * OH + oy) * OW + ox] = s;
        }
      }
    }
  }
  return y;
}

const geometry = (p: Partial<DepthwiseGeometry> & { channels: number; height: number; width: number }): DepthwiseGeometry => ({
  kernelH: 3, kernelW: 3, padH: 1, padW: 1, strideH: 1, strideW: 1, dilationH: 1, dilationW: 1, ...p,
});

// Odd sizes reach every tail: N mod 4, K mod 4, output rows not a multiple of 4.
// The last three stage their weights in blocks of rows (over 65536 weights): a last block shorter
// than the rest (one and three input rows), and K past a block (at least 4 rows a block).
const ROWDOT_CASES: [number, number, number][] = [[1, 7, 13], [1, 8, 16], [3, 5, 9], [2, 1, 1], [4, 9, 37], [1, 77, 1001], [3, 77, 1001], [1, 6, 70001]];
const DEPTHWISE_CASES: [string, DepthwiseGeometry, number][] = [
  ['3×3 pad 1 stride 1', geometry({ channels: 3, height: 7, width: 9 }), 2],
  ['3×3 pad 1 stride 1, 8 rows (output rows in pairs), 5 wide (a tail)', geometry({ channels: 2, height: 8, width: 5 }), 1],
  ['3×3 pad 1 stride 2', geometry({ channels: 4, height: 9, width: 11, strideH: 2, strideW: 2 }), 1],
  ['3×3 row stride 2, column stride 1 (output rows one at a time)', geometry({ channels: 2, height: 9, width: 10, strideH: 2, strideW: 1 }), 1],
  ['3×3 row stride 1, column stride 2', geometry({ channels: 2, height: 6, width: 13, strideH: 1, strideW: 2 }), 1],
  ['3×3 row stride 3, column stride 1', geometry({ channels: 2, height: 11, width: 9, strideH: 3, strideW: 1 }), 1],
  ['3×3 no pad stride 2, even width', geometry({ channels: 2, height: 8, width: 12, padH: 0, padW: 0, strideH: 2, strideW: 2 }), 1],
  ['stride 3 (one output at a time)', geometry({ channels: 2, height: 10, width: 13, strideH: 3, strideW: 3 }), 2],
  ['dilation 2, pad 2', geometry({ channels: 3, height: 9, width: 10, padH: 2, padW: 2, dilationH: 2, dilationW: 2 }), 1],
  ['5×3 kernel, uneven pads and strides', geometry({ channels: 2, height: 11, width: 9, kernelH: 5, kernelW: 3, padH: 2, padW: 0, strideH: 2, strideW: 1 }), 1],
  ['1×1 plane', geometry({ channels: 5, height: 1, width: 1 }), 3],
];

describe('WebAssembly inference kernels', () => {
  afterAll(async () => {
    await shutdownThreads();
  });

  it('the generated module is in sync with scripts/infer-wat.mjs (else run node packages/blob/scripts/build-infer-wasm.mjs)', async () => {
    expect(readFileSync(INFER_GENERATED_PATH, 'utf8') === (await renderInferWasm()), `${INFER_GENERATED_PATH} is stale`).toBe(true);
  });

  it.each(ROWDOT_CASES)('rowdot M=%i N=%i K=%i matches the definition, with and without bias', (M, N, K) => {
    const k = kernels();
    const x = random(M * K), w = random(N * K), b = random(N);
    const y = new Float32Array(M * N).fill(NaN);
    // Float32 sums of K products: the error grows with K.
    const tol = 1e-5 * Math.max(1, K / 1000);
    k.rowdot(M, N, K, x, w, b, y);
    close(y, rowdotRef(M, N, K, x, w, b), tol);
    k.rowdot(M, N, K, x, w, null, y);
    close(y, rowdotRef(M, N, K, x, w, null), tol);
  });

  it.each(DEPTHWISE_CASES)('depthwise %s matches the definition', (_name, g, num) => {
    const k = kernels();
    const x = random(num * g.channels * g.height * g.width), w = random(g.channels * g.kernelH * g.kernelW), b = random(g.channels);
    const want = depthwiseRef(g, num, x, w, b);
    const y = new Float32Array(want.length).fill(NaN);
    k.depthwise(g, num, x, w, b, y);
    close(y, want);
    k.depthwise(g, num, x, w, null, y);
    close(y, depthwiseRef(g, num, x, w, null));
  });

  it.each([0, 0.125])('relu with slope %s is exactly max(x, 0) + slope·min(x, 0), in place too, odd lengths', (slope) => {
    const k = kernels();
    for (const n of [1, 7, 64, 1001]) {
      const x = random(n);
      x[0] = -0;
      if (n > 1) x[1] = NaN;
      const want = Float32Array.from(x, (v) => Math.max(v, 0) + slope * Math.min(v, 0));
      const y = new Float32Array(n);
      k.relu(x, y, n, slope);
      expect(Array.from(y)).toEqual(Array.from(want));
      k.relu(x, x, n, slope);
      expect(Array.from(x)).toEqual(Array.from(want));
    }
  });

  it.each([null, 0, 0.25])('affine per channel, then relu %s', (relu) => {
    const k = kernels();
    const [outer, C, S] = [2, 3, 13];
    const x = random(outer * C * S), a = random(C), b = random(C);
    const want = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const c = Math.floor(i / S) % C;
      const v = a[c]! * x[i]! + b[c]!;
      want[i] = relu === null ? v : Math.max(v, 0) + relu * Math.min(v, 0);
    }
    const y = new Float32Array(x.length);
    k.affine(x, y, outer, C, S, a, b, relu);
    close(y, want, 1e-6);
    k.affine(x, x, outer, C, S, a, b, relu);
    close(x, want, 1e-6);
  });

  it.each([null, 0, 0.5])('sum2 of two arrays with coefficients, then relu %s', (relu) => {
    const k = kernels();
    const n = 37;
    const a = random(n), b = random(n);
    const want = Float64Array.from(a, (v, i) => {
      const s = 1.5 * v - 0.75 * b[i]!;
      return relu === null ? s : Math.max(s, 0) + relu * Math.min(s, 0);
    });
    const y = new Float32Array(n);
    k.sum2(a, b, y, n, 1.5, -0.75, relu);
    close(y, want, 1e-6);
    k.sum2(a, b, a, n, 1.5, -0.75, relu);
    close(a, want, 1e-6);
  });

  it.each([
    [0.75, 5, 2, 7, 9], [0.5, 3, 1, 4, 5], [1, 1, 1, 3, 4], [0.75, 7, 1, 3, 30],
  ])('lrnAcross beta %s size %i (%i images, %i channels, plane %i) matches the definition', (beta, size, num, C, P) => {
    const k = kernels();
    const n = num * C * P;
    const x = random(n);
    const [kk, an] = [2, 1e-1 / size];
    const wantS = new Float64Array(n), wantY = new Float64Array(n);
    const pre = (size - 1) / 2;
    for (let i = 0; i < n; i++) {
      const img = Math.floor(i / (C * P)), c = Math.floor(i / P) % C, q = i % P;
      let sum = 0;
      for (let cc = Math.max(0, c - pre); cc <= Math.min(C - 1, c + pre); cc++) sum += x[(img * C + cc) * P + q]! ** 2;
      wantS[i] = kk + an * sum;
      wantY[i] = x[i]! * wantS[i]! ** -beta;
    }
    const s = new Float32Array(n), y = new Float32Array(n);
    k.lrnAcross(x, s, y, num, C, P, size, kk, an, beta);
    close(s, wantS, 1e-6);
    close(y, wantY, 1e-6);
    expect(() => k.lrnAcross(x, s, y, num, C, P, size, kk, an, 0.6)).toThrow(/beta must be one of 0.75, 0.5, 1, got 0.6/);
  });

  // [planes, H, W, K (h, w), stride (h, w), pad (h, w)], pooled sizes in Caffe's ceil mode.
  it.each([
    [2, 7, 9, [3, 3], [2, 2], [0, 0]], [3, 8, 8, [3, 3], [1, 1], [1, 1]], [1, 13, 13, [3, 3], [2, 2], [1, 1]],
    [2, 6, 11, [2, 3], [3, 3], [1, 0]], [1, 5, 5, [5, 5], [1, 1], [0, 0]], [4, 14, 14, [2, 2], [2, 2], [0, 0]],
    // 3×3 (unrolled taps) with 1-, 2- and 3-output row tails, and a stride-2 height with stride-1 width.
    [2, 9, 37, [3, 3], [2, 2], [0, 0]], [1, 6, 23, [3, 3], [1, 1], [1, 1]], [2, 5, 20, [3, 3], [1, 1], [0, 0]], [1, 9, 10, [3, 3], [2, 1], [1, 1]],
    // No padding (read in place): every vector path with windows that overhang the bottom and
    // right edges (ceil mode) or fit exactly, rows whose last vector step would read past the
    // row, and strides the vector steps do not cover.
    [3, 24, 24, [2, 2], [2, 2], [0, 0]], [2, 25, 27, [2, 2], [2, 2], [0, 0]], [2, 17, 19, [2, 2], [2, 2], [0, 0]],
    [2, 113, 113, [3, 3], [2, 2], [0, 0]], [2, 56, 56, [3, 3], [2, 2], [0, 0]], [1, 28, 29, [3, 3], [2, 2], [0, 0]],
    [2, 14, 31, [3, 3], [1, 1], [0, 0]], [1, 13, 18, [3, 3], [3, 3], [0, 0]], [2, 16, 40, [5, 5], [2, 2], [0, 0]],
    [2, 11, 33, [2, 4], [1, 1], [0, 0]], [1, 9, 26, [4, 2], [2, 2], [0, 0]], [1, 7, 7, [7, 7], [1, 1], [0, 0]], [2, 12, 30, [3, 2], [3, 2], [0, 0]],
  ] as [number, number, number, number[], number[], number[]][])('maxPool %i planes %i×%i kernel %j stride %j pad %j matches the definition', (planes, H, W, k2, s2, p2) => {
    const k = kernels();
    const [KH, KW] = k2 as [number, number], [SH, SW] = s2 as [number, number], [PH, PW] = p2 as [number, number];
    let OH = Math.ceil((H + 2 * PH - KH) / SH) + 1, OW = Math.ceil((W + 2 * PW - KW) / SW) + 1;
    if ((OH - 1) * SH >= H + PH) OH--;
    if ((OW - 1) * SW >= W + PW) OW--;
    const x = random(planes * H * W);
    x[3] = NaN;
    x[x.length - 1] = NaN;
    x[W + 5] = -Infinity;
    const want = new Float64Array(planes * OH * OW);
    for (let p = 0; p < planes; p++) {
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let best = -Infinity;
          for (let h = Math.max(oy * SH - PH, 0); h < Math.min(oy * SH - PH + KH, H); h++) {
            for (let w = Math.max(ox * SW - PW, 0); w < Math.min(ox * SW - PW + KW, W); w++) {
              const v = x[(p * H + h) * W + w]!;
              if (v > best) best = v;
            }
          }
          want[(p * OH + oy) * OW + ox] = best;
        }
      }
    }
    const y = new Float32Array(want.length).fill(7);
    k.maxPool(planes, H, W, OH, OW, KH, KW, SH, SW, PH, PW, x, y);
    expect(Array.from(y)).toEqual(Array.from(want));
  });

  it.each([
    [1, 1], [3, 4], [4, 169], [5, 49], [9, 7], [16, 5], [1000, 13 * 13],
  ])('aveGlobal over %i planes of %i values: float32 sums in order, then the division', (planes, size) => {
    const k = kernels();
    const x = random(planes * size);
    x[0] = -0;
    if (x.length > 7) x[7] = Infinity;
    if (x.length > 20) x[20] = NaN;
    const div = size + 0;
    const want = new Float32Array(planes);
    for (let p = 0; p < planes; p++) {
      let s = 0;
      for (let t = 0; t < size; t++) s = Math.fround(s + x[p * size + t]!);
      want[p] = Math.fround(s / div);
    }
    const y = new Float32Array(planes).fill(7);
    k.aveGlobal(planes, size, div, x, y);
    expect(Array.from(y)).toEqual(Array.from(want));
    expect(() => k.aveGlobal(planes, size, div, x.subarray(1), y)).toThrow(/wasm aveGlobal: x has \d+ elements/);
  });

  it('runs in place on blobs of the wasm host allocator (same results as staged copies)', () => {
    const prev = setHostAllocator('wasm');
    try {
      const k = kernels();
      const resident = (a: Float32Array) => {
        const blob = new Blob([a.length]);
        const d = blob.mutableCpuData() as Float32Array;
        d.set(a);
        return d;
      };
      const [M, N, K] = [2, 6, 11];
      const x = random(M * K), w = random(N * K), b = random(N);
      const y = resident(new Float32Array(M * N));
      k.rowdot(M, N, K, resident(x), resident(w), resident(b), y);
      close(y, rowdotRef(M, N, K, x, w, b));
      const g = DEPTHWISE_CASES[1]![1];
      const xi = random(g.channels * g.height * g.width), wi = random(g.channels * 9), bi = random(g.channels);
      const want = depthwiseRef(g, 1, xi, wi, bi);
      const yi = resident(new Float32Array(want.length));
      k.depthwise(g, 1, resident(xi), resident(wi), resident(bi), yi);
      close(yi, want);
      const r = resident(Float32Array.from([-1, 2, -3, 4, 5]));
      k.relu(r, r, 5, 0);
      expect(Array.from(r)).toEqual([0, 2, 0, 4, 5]);
      const s = resident(Float32Array.from([1, -2, 3]));
      k.affine(s, s, 1, 3, 1, resident(Float32Array.from([2, 2, 2])), resident(Float32Array.from([0, 1, -7])), 0);
      expect(Array.from(s)).toEqual([2, 0, 0]);
      const t = resident(new Float32Array(3));
      k.sum2(resident(Float32Array.from([1, 2, 3])), resident(Float32Array.from([1, -5, 1])), t, 3, 1, 1, 0);
      expect(Array.from(t)).toEqual([2, 0, 4]);
      const px = resident(Float32Array.from([1, 5, 2, 3, 9, 4, 0, 8, 6])), py = resident(new Float32Array(4));
      k.maxPool(1, 3, 3, 2, 2, 2, 2, 1, 1, 0, 0, px, py);
      expect(Array.from(py)).toEqual([9, 9, 9, 9]);
      const gy = resident(new Float32Array(1));
      k.aveGlobal(1, 9, 9, px, gy);
      expect(Array.from(gy)).toEqual([Math.fround(38 / 9)]);
      const lx = resident(Float32Array.from([1, 2, 3, 4])), ls = resident(new Float32Array(4)), ly = resident(new Float32Array(4));
      k.lrnAcross(lx, ls, ly, 1, 2, 2, 3, 1, 1, 1);
      expect(Array.from(ls)).toEqual([11, 21, 11, 21]);
      expect(Array.from(ly)).toEqual([1 / 11, 2 / 21, 3 / 11, 4 / 21].map(Math.fround));
    } finally {
      setHostAllocator(prev);
    }
  });

  it('rejects bad shapes and short operands, naming them', () => {
    const k = kernels();
    expect(() => k.rowdot(0, 1, 1, new Float32Array(1), new Float32Array(1), null, new Float32Array(1))).toThrow(/M must be a positive integer, got 0/);
    expect(() => k.rowdot(1, 2, 3, new Float32Array(3), new Float32Array(5), null, new Float32Array(2))).toThrow(/operands too short.*w 5/);
    expect(() => k.depthwise(geometry({ channels: 1, height: 1, width: 1, padH: 0, padW: 0 }), 1, new Float32Array(1), new Float32Array(9), null, new Float32Array(1)))
      .toThrow(/OH must be an integer ≥ 1/);
  });
});
