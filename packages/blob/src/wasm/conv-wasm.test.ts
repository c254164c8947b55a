import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocHost, setHostAllocator } from '../host-memory.js';
import { MathError } from '../math/errors.js';
import { col2imBatch, convOutputSize, im2colBatch } from '../math/im2col.js';
import { Rng } from '../rng.js';
import { checkConv2dPass, createWasmConv2d, defaultWasmConv2d, installedConv2dRunner, setConv2dRunner, type Conv2dGeometry, type Conv2dRunner, type WasmConv2d } from './conv-wasm.js';
import { initThreads, shutdownThreads } from './threads.js';

function conv2d(): WasmConv2d {
  // The plain SIMD build: relaxed SIMD needs a Node flag this worker does not have.
  const c = createWasmConv2d({ relaxed: false });
  if (!c) throw new Error('WebAssembly SIMD is unavailable in this Node');
  return c;
}

function random(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

/** The pass written out in float64 with the JS im2col: what every WebAssembly pass must give. */
function reference(g: Conv2dGeometry, num: number, x: Float32Array | null, y: Float32Array | null, w: Float32Array, bias: Float32Array | null) {
  const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
  const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  const S = OH * OW, K = (g.channels / g.group) * g.kernelH * g.kernelW, m = g.outChannels / g.group;
  const N = num * S;
  const args = [g.kernelH, g.kernelW, g.padH, g.padW, g.strideH, g.strideW, g.dilationH, g.dilationW] as const;
  const out: { gemmOut?: Float64Array; weightDiff?: Float64Array; colOut?: Float64Array } = {};
  if (x) {
    const col = new Float64Array(K * g.group * N);
    im2colBatch(Float64Array.from(x), num, g.channels, g.height, g.width, ...args, col);
    const go = new Float64Array(num * g.outChannels * S);
    for (let o = 0; o < g.outChannels; o++) {
      const q = Math.floor(o / m);
      for (let j = 0; j < N; j++) {
        let s = bias ? bias[o]! : 0;
        for (let k = 0; k < K; k++) s += w[o * K + k]! * col[(q * K + k) * N + j]!;
        go[Math.floor(j / S) * g.outChannels * S + o * S + (j % S)] = s;
      }
    }
    out.gemmOut = go;
    if (y) {
      const dw = new Float64Array(g.outChannels * K);
      for (let o = 0; o < g.outChannels; o++) {
        const q = Math.floor(o / m);
        for (let k = 0; k < K; k++) {
          let s = 0;
          for (let j = 0; j < N; j++) s += y[Math.floor(j / S) * g.outChannels * S + o * S + (j % S)]! * col[(q * K + k) * N + j]!;
          dw[o * K + k] = s;
        }
      }
      out.weightDiff = dw;
    }
  }
  if (y) {
    const col = new Float64Array(K * g.group * N);
    for (let q = 0; q < g.group; q++) {
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let i = 0; i < m; i++) s += w[(q * m + i) * K + k]! * y[Math.floor(j / S) * g.outChannels * S + (q * m + i) * S + (j % S)]!;
          col[(q * K + k) * N + j] = s;
        }
      }
    }
    const back = new Float64Array(num * g.channels * g.height * g.width);
    col2imBatch(col, num, g.channels, g.height, g.width, ...args, back);
    out.colOut = back;
  }
  return { out, S, K };
}

function expectClose(got: Float32Array, want: Float64Array): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
  expect(worst).toBeLessThan(2e-5);
}

const geometry = (p: Partial<Conv2dGeometry>): Conv2dGeometry => ({
  channels: 2, height: 7, width: 6, kernelH: 3, kernelW: 3, padH: 0, padW: 0, strideH: 1, strideW: 1,
  dilationH: 1, dilationW: 1, outChannels: 3, group: 1, ...p,
});

const cases: [string, Conv2dGeometry][] = [
  ['k3 s1', geometry({})],
  ['LeNet conv2-like (5×5, 8-wide rows)', geometry({ channels: 3, height: 12, width: 12, kernelH: 5, kernelW: 5, outChannels: 5 })],
  ['padded, non-square, strided rows', geometry({ kernelH: 3, kernelW: 2, padH: 2, padW: 1, strideH: 2, strideW: 1 })],
  ['column stride 2 over wide rows (vector gather)', geometry({ width: 23, kernelW: 3, padW: 1, strideW: 2, dilationW: 2 })],
  ['dilated', geometry({ height: 9, width: 8, dilationH: 2, dilationW: 3 })],
  ['grouped', geometry({ channels: 4, outChannels: 6, group: 2, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2, padH: 1, padW: 1 })],
  ['kernel columns entirely in the padding', geometry({ height: 1, width: 1, kernelH: 1, kernelW: 3, padW: 2, strideW: 2 })],
];

describe('createWasmConv2d', () => {
  for (const [name, g] of cases) {
    it(`${name}: every pass equals the float64 definition, in chunks of 1, 2 and all images`, () => {
      const conv = conv2d();
      const rng = new Rng(name.length);
      const num = 5;
      const K = (g.channels / g.group) * g.kernelH * g.kernelW;
      const x = random(rng, num * g.channels * g.height * g.width);
      const w = random(rng, g.outChannels * K);
      const bias = random(rng, g.outChannels);
      const { out, S } = reference(g, num, x, null, w, bias);
      const y = random(rng, num * g.outChannels * S);
      const ref = reference(g, num, x, y, w, null).out;
      const dw0 = random(rng, g.outChannels * K);
      for (const chunk of [1, 2, num]) {
        // Convolution forward: gemmOut = W·im2col(x) + bias.
        const gemmOut = new Float32Array(num * g.outChannels * S).fill(NaN);
        conv.run(g, num, chunk, { colIn: x, weights: w, bias, gemmOut });
        expectClose(gemmOut, out.gemmOut!);
        // Convolution backward: weightDiff and biasDiff accumulate, colOut overwrites.
        const weightDiff = dw0.slice();
        const biasDiff = bias.slice();
        const colOut = new Float32Array(x.length).fill(NaN);
        conv.run(g, num, chunk, { colIn: x, gemmIn: y, weights: w, weightDiff, biasDiff, colOut });
        expectClose(weightDiff, ref.weightDiff!.map((v, i) => v + dw0[i]!));
        expectClose(colOut, ref.colOut!);
        const sums = new Float64Array(g.outChannels);
        for (let i = 0; i < y.length; i++) sums[Math.floor(i / S) % g.outChannels] += y[i]!;
        expectClose(biasDiff, sums.map((v, o) => v + bias[o]!));
        // Deconvolution backward: weightDiff and gemmOut from one unfolding.
        const wd = new Float32Array(dw0.length);
        const gemmOut2 = new Float32Array(gemmOut.length);
        conv.run(g, num, chunk, { colIn: x, gemmIn: y, weights: w, weightDiff: wd, gemmOut: gemmOut2 });
        expectClose(wd, ref.weightDiff!);
        expectClose(gemmOut2, ref.gemmOut!);
      }
    });
  }

  it('rejects inconsistent passes and short arrays', () => {
    const conv = conv2d();
    const g = geometry({});
    const w = new Float32Array(3 * 18);
    const x = new Float32Array(2 * 2 * 7 * 6);
    expect(() => conv.run(g, 2, 2, { weights: w, gemmOut: new Float32Array(2 * 3 * 20) })).toThrow(/gemmOut needs colIn/);
    expect(() => conv.run(g, 2, 2, { colIn: x, weights: w, biasDiff: new Float32Array(3) })).toThrow(/biasDiff need gemmIn/);
    expect(() => conv.run(g, 2, 2, { colIn: x, weights: w, gemmOut: new Float32Array(10) })).toThrow(MathError);
    expect(() => conv.run(g, 2, 2, { colIn: x, weights: w, gemmOut: new Float32Array(10) })).toThrow(/gemmOut has 10 elements, needs 120/);
    expect(() => conv.run({ ...g, group: 4 }, 2, 2, { colIn: x, weights: w })).toThrow(/multiples of group/);
  });

  it('defaultWasmConv2d follows CAFFE_TS_GEMM', () => {
    const conv = defaultWasmConv2d();
    expect(conv === null ? process.env.CAFFE_TS_GEMM : conv.name).toMatch(/^(js|wasm-simd|wasm-relaxed-simd)$/);
  });
});

// The implicit im2col (the GEMMs pack their B panels from the images, transB = 2 and 3) must
// give the very floats of the explicit path: same products, same summation order.
describe('implicit im2col', () => {
  const implicitCases: [string, Conv2dGeometry, number][] = [
    ...cases.map(([name, g]): [string, Conv2dGeometry, number] => [name, g, 5]),
    ['CIFAR conv1-like: 5×5 pad 2, rows of 32 (contiguous panels, padded edges)', geometry({ channels: 3, height: 32, width: 32, kernelH: 5, kernelW: 5, padH: 2, padW: 2, outChannels: 4 }), 2],
    ['rows of 5: panels straddle rows and images', geometry({ channels: 3, height: 7, width: 5, kernelH: 3, kernelW: 3, padH: 1, padW: 1, outChannels: 5 }), 3],
    ['stride 2 both ways, padding, dilation 2', geometry({ channels: 2, height: 19, width: 21, kernelH: 3, kernelW: 3, padH: 2, padW: 1, strideH: 2, strideW: 2, dilationH: 2, dilationW: 2, outChannels: 3 }), 3],
    ['3 groups, 1×1', geometry({ channels: 6, height: 9, width: 16, kernelH: 1, kernelW: 1, outChannels: 9, group: 3 }), 2],
    ['K past one k block (rows start mid-window), 2 groups', geometry({ channels: 48, height: 10, width: 12, kernelH: 5, kernelW: 5, padH: 1, padW: 2, outChannels: 4, group: 2 }), 2],
    ['N past one column block (4096)', geometry({ channels: 1, height: 40, width: 40, kernelH: 3, kernelW: 3, padH: 1, padW: 1, outChannels: 2 }), 3],
  ];
  const sameBits = (a: Float32Array, b: Float32Array, what: string) => {
    const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) expect.fail(`${what}[${i}]: explicit ${b[i]}, implicit ${a[i]}`);
  };
  const setup = (name: string, g: Conv2dGeometry, num: number) => {
    const rng = new Rng(name.length * 7 + num);
    const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
    const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
    const K = (g.channels / g.group) * g.kernelH * g.kernelW;
    const x = random(rng, num * g.channels * g.height * g.width);
    x[3] = -0; // signed zeros are copied as they are
    const outN = num * g.outChannels * OH * OW;
    return { x, w: random(rng, g.outChannels * K), bias: random(rng, g.outChannels), outN, dy: random(rng, outN), dw0: random(rng, g.outChannels * K) };
  };
  type Case = ReturnType<typeof setup>;
  /** Convolution forward, Convolution backward (accumulating gradients), Deconvolution backward. */
  const passes = (conv: WasmConv2d, g: Conv2dGeometry, num: number, chunk: number, c: Case, arr: (a: Float32Array) => Float32Array) => {
    const y = arr(new Float32Array(c.outN).fill(NaN));
    conv.run(g, num, chunk, { colIn: c.x, weights: c.w, bias: c.bias, gemmOut: y });
    const dw = arr(c.dw0.slice()), db = arr(c.bias.slice()), dx = arr(new Float32Array(c.x.length).fill(NaN));
    conv.run(g, num, chunk, { colIn: c.x, gemmIn: c.dy, weights: c.w, weightDiff: dw, biasDiff: db, colOut: dx });
    const dw2 = arr(new Float32Array(c.dw0.length)), y2 = arr(new Float32Array(c.outN).fill(NaN));
    conv.run(g, num, chunk, { colIn: c.x, gemmIn: c.dy, weights: c.w, weightDiff: dw2, gemmOut: y2 });
    return { y, dw, db, dx, dw2, y2 };
  };
  const sameAll = (a: ReturnType<typeof passes>, b: ReturnType<typeof passes>, what: string) => {
    for (const key of ['y', 'dw', 'db', 'dx', 'dw2', 'y2'] as const) sameBits(a[key], b[key], `${what} ${key}`);
  };

  for (const [name, g, num] of implicitCases) {
    it(`${name}: every pass bit-identical to the explicit im2col, chunks of 1 and all images`, () => {
      const implicit = createWasmConv2d({ relaxed: false, threads: 1, implicit: 'all' })!;
      const explicit = createWasmConv2d({ relaxed: false, threads: 1, implicit: 'off' })!;
      const c = setup(name, g, num);
      // 'auto': the forward product, the weight gradient only where there is no data gradient.
      const auto = createWasmConv2d({ relaxed: false, threads: 1, implicit: 'auto' })!;
      for (const chunk of [1, num]) {
        const want = passes(explicit, g, num, chunk, c, (a) => a);
        sameAll(passes(implicit, g, num, chunk, c, (a) => a), want, `all, chunk ${chunk}`);
        sameAll(passes(auto, g, num, chunk, c, (a) => a), want, `auto, chunk ${chunk}`);
      }
    });
  }

  describe.skipIf(process.env.CAFFE_TS_GEMM === 'js')('in the kernel threads\' shared memory, on 1 and 2 threads', () => {
    beforeAll(async () => {
      setHostAllocator('wasm');
      expect(await initThreads(2)).toBe(2);
    });
    afterAll(async () => {
      await shutdownThreads();
      setHostAllocator(undefined);
    });
    const shared = (a: Float32Array): Float32Array => {
      const { array, lease } = allocHost('float32', a.length);
      expect(lease).not.toBeNull();
      (array as Float32Array).set(a);
      return array as Float32Array;
    };
    for (const [name, g, num] of implicitCases.slice(-5)) {
      it(`${name}: every pass bit-identical to the explicit im2col on the same threads`, () => {
        const c = setup(name, g, num);
        const cs: Case = { ...c, x: shared(c.x), w: shared(c.w), bias: shared(c.bias), dy: shared(c.dy) };
        for (const threads of [1, 'auto'] as const) {
          // Gradients split over threads are summed per thread: compare like with like.
          const implicit = createWasmConv2d({ relaxed: false, threads, minFlopsPerThread: 1, implicit: 'all' })!;
          const explicit = createWasmConv2d({ relaxed: false, threads, minFlopsPerThread: 1, implicit: 'off' })!;
          for (const chunk of [1, num]) {
            const want = passes(explicit, g, num, chunk, c, (a) => a);
            sameAll(passes(implicit, g, num, chunk, cs, shared), want, `threads ${threads}, chunk ${chunk}, in place`);
            // Staged (plain) arrays.
            sameAll(passes(implicit, g, num, chunk, c, (a) => a), want, `threads ${threads}, chunk ${chunk}, staged`);
          }
        }
      });
    }
  });
});

describe('setConv2dRunner', () => {
  it('puts another runner where defaultWasmConv2d hands out the WebAssembly one, until set back to null', () => {
    const wasm = defaultWasmConv2d();
    const other: Conv2dRunner = { name: 'other', run: () => {} };
    expect(installedConv2dRunner()).toBeNull();
    setConv2dRunner(other);
    try {
      expect(installedConv2dRunner()).toBe(other);
      expect(defaultWasmConv2d()).toBe(other);
    } finally {
      setConv2dRunner(null);
    }
    expect(installedConv2dRunner()).toBeNull();
    expect(defaultWasmConv2d()).toBe(wasm);
  });

  it('checkConv2dPass: the checks every runner makes, and the output plane', () => {
    const g: Conv2dGeometry = { channels: 2, height: 5, width: 4, kernelH: 3, kernelW: 2, padH: 1, padW: 0, strideH: 2, strideW: 1, dilationH: 1, dilationW: 1, outChannels: 4, group: 2 };
    const w = new Float32Array(4 * 6);
    expect(checkConv2dPass('x', g, 2, 1, { colIn: new Float32Array(80), weights: w, gemmOut: new Float32Array(2 * 4 * 9) })).toEqual({ OH: 3, OW: 3 });
    expect(() => checkConv2dPass('x', g, 2, 1, { colIn: new Float32Array(80), weights: w, gemmOut: new Float32Array(71) })).toThrow(new MathError('x: gemmOut has 71 elements, needs 72'));
    expect(() => checkConv2dPass('x', g, 2, 1, { colIn: new Float32Array(80), weights: new Float32Array(23) })).toThrow(new MathError('x: weights has 23 elements, needs 24'));
    expect(() => checkConv2dPass('x', { ...g, group: 3 }, 1, 1, { colIn: new Float32Array(40), weights: w })).toThrow(/x: channels 2 and outChannels 4 must be multiples of group 3/);
    expect(() => checkConv2dPass('x', g, 0, 1, { weights: w })).toThrow(/x: num must be a positive integer, got 0/);
    expect(() => checkConv2dPass('x', g, 1, 1, { gemmIn: new Float32Array(36), weights: w, gemmOut: new Float32Array(36), colOut: new Float32Array(40) })).toThrow(/a pass writes gemmOut or colOut, not both/);
  });
});
