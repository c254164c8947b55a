import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { Blob } from '../blob.js';
import { convOutputSize } from '../math/im2col.js';
import { Rng } from '../rng.js';
import type { Conv2dGeometry } from './conv-wasm.js';
import { createWasmInferConv, type WasmInferConv } from './infer-conv.js';
import { DIRECT_MAX_ROWS } from '../../scripts/infer-wat.mjs';

// Relaxed SIMD is behind a flag in Node 20; this file runs in its own vitest worker, so turning it
// on here (before anything compiles the relaxed build) lets both builds be checked.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

const rng = new Rng(7);
const random = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
};

function runners(): [string, WasmInferConv][] {
  const out: [string, WasmInferConv][] = [];
  for (const relaxed of [false, true]) {
    const r = createWasmInferConv({ relaxed });
    if (r) out.push([r.name, r]);
  }
  if (out.length !== 2) throw new Error(`expected the SIMD and relaxed-SIMD builds, got ${out.map(([n]) => n).join(', ')}`);
  return out;
}

/** Direct convolution in float64 (the definition), then scale·v + shift and the ReLU. */
function convRef(
  g: Conv2dGeometry, num: number, x: Float32Array, w: Float32Array,
  scale: Float32Array | null, shift: Float32Array | null, relu: number | null,
): Float64Array {
  const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, outChannels: O, group: G } = g;
  const OH = convOutputSize(H, KH, g.padH, g.strideH, g.dilationH), OW = convOutputSize(W, KW, g.padW, g.strideW, g.dilationW);
  const Cg = C / G, m = O / G;
  const y = new Float64Array(num * O * OH * OW);
  for (let n = 0; n < num; n++) {
    for (let o = 0; o < O; o++) {
      const q = Math.floor(o / m);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let s = 0;
          for (let c = 0; c < Cg; c++) {
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * g.strideH - g.padH + kh * g.dilationH;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * g.strideW - g.padW + kw * g.dilationW;
                if (iw < 0 || iw >= W) continue;
                s += w[((o * Cg + c) * KH + kh) * KW + kw]! * x[((n * C + q * Cg + c) * H + ih) * W + iw]!;
              }
            }
          }
          let v = (scale ? scale[o]! : 1) * s + (shift ? shift[o]! : 0);
          if (relu !== null) v = Math.max(v, 0) + relu * Math.min(v, 0);
          y[((n * O + o) * OH + oh) * OW + ow] = v;
        }
      }
    }
  }
  return y;
}

function worstError(got: Float32Array, want: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return worst;
}

const geom = (
  C: number, H: number, W: number, O: number, K: [number, number], pad: [number, number] = [0, 0],
  stride: [number, number] = [1, 1], dil: [number, number] = [1, 1], group = 1,
): Conv2dGeometry => ({
  channels: C, height: H, width: W, kernelH: K[0], kernelW: K[1], padH: pad[0], padW: pad[1],
  strideH: stride[0], strideW: stride[1], dilationH: dil[0], dilationW: dil[1], outChannels: O, group,
});

// Odd shapes: tails in M (MR = 4) and N (NR = 8), K past one k block (KC = 512), N past one
// column block (NC = 1024), panels straddling output rows, padding, strides 1/2/3/4, dilation,
// groups, 1×1 (the flat path) with and without stride.
const CASES: [string, Conv2dGeometry, number][] = [
  ['3x3 pad 1', geom(3, 9, 11, 5, [3, 3], [1, 1]), 2],
  ['3x3 pad 1, 16 wide rows', geom(8, 16, 16, 12, [3, 3], [1, 1]), 1],
  ['1x1 flat', geom(7, 5, 13, 9, [1, 1]), 2],
  ['1x1 stride 2', geom(6, 9, 19, 10, [1, 1], [0, 0], [2, 2]), 1],
  ['3x3 stride 2 pad 1', geom(5, 23, 37, 7, [3, 3], [1, 1], [2, 2]), 1],
  ['5x5 stride 3 pad 2', geom(3, 40, 41, 6, [5, 5], [2, 2], [3, 3]), 1],
  ['11x11 stride 4', geom(3, 47, 47, 9, [11, 11], [0, 0], [4, 4]), 1],
  ['3x3 dilation 2 pad 2', geom(4, 12, 17, 5, [3, 3], [2, 2], [1, 1], [2, 2]), 1],
  ['3x5 rect, pads 1x2, strides 1x2', geom(4, 10, 21, 6, [3, 5], [1, 2], [1, 2]), 1],
  ['groups 2', geom(6, 9, 10, 10, [3, 3], [1, 1], [1, 1], [1, 1], 2), 2],
  ['groups 3 odd rows', geom(9, 8, 8, 15, [3, 3], [1, 1], [1, 1], [1, 1], 3), 1],
  ['K past one k block (15 outputs: not Winograd)', geom(70, 7, 7, 15, [3, 3], [1, 1]), 1],
  ['N past one column block', geom(3, 40, 41, 5, [3, 3], [1, 1]), 1],
  ['7x7 output (every panel straddles)', geom(12, 7, 7, 8, [3, 3], [1, 1]), 1],
  ['1x1 at 1x1', geom(33, 1, 1, 10, [1, 1]), 3],
  ['3x3 over a 3x3 input (one output position)', geom(6, 3, 3, 11, [3, 3]), 2],
  // Few outputs over rows of whole NR tiles: B read straight from the image (dtile), including
  // rows past a multiple of MR, a stride down the rows only, dilation and the flat 1×1 path.
  ['B from the image: LeNet conv1 (1 -> 20, 5x5 at 28x28)', geom(1, 28, 28, 20, [5, 5]), 2],
  ['B from the image: CIFAR-10 conv1 (3 -> 32, 5x5 pad 2)', geom(3, 32, 32, 32, [5, 5], [2, 2]), 1],
  ['B from the image: 22 outputs (edge rows)', geom(2, 12, 20, 22, [5, 5]), 2],
  ['B from the image: stride 2 x 1, dilation 2', geom(3, 21, 20, 7, [3, 3], [1, 0], [2, 1], [2, 2]), 1],
  ['B from the image: 1x1 flat, 8 x 4', geom(9, 8, 4, 6, [1, 1]), 2],
  // Winograd F(2×2, 3×3) (3×3 stride 1, ≥ WINOGRAD_MIN_CHANNELS in and out per group): odd and
  // even output sizes, tile rows past a multiple of 4 tiles, no padding, groups, K past one k block.
  ['winograd 3x3 pad 1, odd output', geom(16, 9, 11, 16, [3, 3], [1, 1]), 2],
  ['winograd 3x3 no pad, 20 -> 17', geom(20, 8, 8, 17, [3, 3]), 1],
  ['winograd 3x3 pad 1 at 7x7', geom(24, 7, 7, 32, [3, 3], [1, 1]), 1],
  ['winograd 3x3 pad 1 at 1x1', geom(16, 1, 1, 16, [3, 3], [1, 1]), 1],
  ['winograd rect pads 1x0, 30x19', geom(16, 30, 19, 20, [3, 3], [1, 0]), 1],
  ['winograd groups 2', geom(32, 10, 12, 34, [3, 3], [1, 1], [1, 1], [1, 1], 2), 1],
  ['winograd K past one k block', geom(520, 5, 6, 16, [3, 3], [1, 1]), 1],
  // Winograd F(2×2, 5×5) (5×5 stride 1): the same kinds of edges, LeNet's conv2 and CaffeNet's
  // grouped conv2 shapes.
  ['winograd5 pad 2, odd output', geom(16, 9, 11, 16, [5, 5], [2, 2]), 2],
  ['winograd5 no pad, LeNet conv2 (20 -> 50 at 12x12)', geom(20, 12, 12, 50, [5, 5]), 2],
  ['winograd5 pad 2 at 7x7', geom(24, 7, 7, 32, [5, 5], [2, 2]), 1],
  ['winograd5 pad 2 at 1x1', geom(16, 1, 1, 16, [5, 5], [2, 2]), 1],
  ['winograd5 rect pads 2x0, 30x19', geom(16, 30, 19, 20, [5, 5], [2, 0]), 1],
  ['winograd5 groups 2, CaffeNet conv2 at 13x13', geom(32, 13, 13, 34, [5, 5], [2, 2], [1, 1], [1, 1], 2), 1],
  ['winograd5 K past one k block', geom(520, 5, 6, 16, [5, 5], [2, 2]), 1],
];

describe('packed inference convolution (WebAssembly)', () => {
  for (const [label, runner] of runners()) {
    // Winograd cases run with F(2×2, 3×3) and F(4×4, 3×3) (CAFFE_TS_WINOGRAD=2 / 4); the
    // larger tiles' transforms (coefficients up to 8) cost about a decimal digit.
    // (5×5 kernels have the one variant, F(2×2, 5×5).)
    const runs = CASES.flatMap(([name, g, num]) => (name.startsWith('winograd ') ? [[`${name}, F(2x2)`, g, num, '2'], [`${name}, F(4x4)`, g, num, '4']] : [[name, g, num, undefined]]) as [string, Conv2dGeometry, number, string | undefined][]);
    it.each(runs)(`${label}: %s matches the direct convolution`, (name, g, num, tile) => {
      const K = (g.channels / g.group) * g.kernelH * g.kernelW;
      // float32 sums of K products (and Winograd's transforms) drift with depth.
      // F(4×4, 3×3) and F(2×2, 5×5) share their transforms' points (coefficients up to 8 and 16).
      const tol = (!name.startsWith('winograd') ? 1e-5 : tile === '2' ? 3e-5 : 2e-4) * Math.max(1, Math.sqrt(K / 256));
      const saved = process.env.CAFFE_TS_WINOGRAD;
      if (tile) process.env.CAFFE_TS_WINOGRAD = tile;
      try {
        check(g, num, tol);
      } finally {
        if (saved === undefined) delete process.env.CAFFE_TS_WINOGRAD;
        else process.env.CAFFE_TS_WINOGRAD = saved;
      }
    });
    it(`${label}: a 5×5 stride-1 convolution runs F(2×2, 5×5), a 5×5 stride-2 one and CAFFE_TS_WINOGRAD=off the direct path`, () => {
      // The two paths round differently, so the outputs tell them apart; both match the reference.
      const run = (g: Conv2dGeometry, x: Float32Array, w: Float32Array, env?: string) => {
        const saved = process.env.CAFFE_TS_WINOGRAD;
        if (env) process.env.CAFFE_TS_WINOGRAD = env;
        try {
          const OH = convOutputSize(g.height, 5, g.padH, g.strideH, 1), OW = convOutputSize(g.width, 5, g.padW, g.strideW, 1);
          const y = new Float32Array(g.outChannels * OH * OW);
          runner.conv2d(g, 1, x, w, undefined, {}, y);
          expect(worstError(y, convRef(g, 1, x, w, null, null, null))).toBeLessThan(2e-4);
          return y;
        } finally {
          if (saved === undefined) delete process.env.CAFFE_TS_WINOGRAD;
          else process.env.CAFFE_TS_WINOGRAD = saved;
        }
      };
      const x = random(20 * 12 * 12), w = random(50 * 20 * 25);
      const s1 = geom(20, 12, 12, 50, [5, 5]);
      expect(run(s1, x, w)).not.toEqual(run(s1, x, w, 'off'));
      const s2 = geom(20, 12, 12, 50, [5, 5], [0, 0], [2, 2]);
      expect(run(s2, x, w)).toEqual(run(s2, x, w, 'off'));
    });
    const check = (g: Conv2dGeometry, num: number, tol: number) => {
      const K = (g.channels / g.group) * g.kernelH * g.kernelW;
      const x = random(num * g.channels * g.height * g.width), w = random(g.outChannels * K);
      const bias = random(g.outChannels);
      const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
      const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
      const y = new Float32Array(num * g.outChannels * OH * OW).fill(NaN);
      // Uncached, then cached (twice: the second call reuses the packed block).
      for (const version of [undefined, 1, 1]) {
        y.fill(NaN);
        runner.conv2d(g, num, x, w, version, { shift: bias }, y);
        expect(worstError(y, convRef(g, num, x, w, null, bias, null))).toBeLessThan(tol);
      }
      // The epilogue: scale, shift and a leaky ReLU.
      const scale = random(g.outChannels);
      runner.conv2d(g, num, x, w, 1, { scale, shift: bias, relu: 0.1 }, y);
      expect(worstError(y, convRef(g, num, x, w, scale, bias, 0.1))).toBeLessThan(tol);
      runner.conv2d(g, num, x, w, 1, { relu: 0 }, y);
      expect(worstError(y, convRef(g, num, x, w, null, null, 0))).toBeLessThan(tol);
    };

    it.each([
      ['3x3 pad 1', geom(6, 9, 11, 6, [3, 3], [1, 1], [1, 1], [1, 1], 6), 2],
      ['3x3 stride 2 pad 1, odd plane', geom(5, 13, 9, 5, [3, 3], [1, 1], [2, 2], [1, 1], 5), 1],
      ['5x3 stride 3 dilation 2', geom(3, 17, 14, 3, [5, 3], [2, 1], [3, 3], [2, 2], 3), 1],
    ] as [string, Conv2dGeometry, number][])(`${label}: depthwise %s with the folded epilogue matches the direct convolution`, (_name, g, num) => {
      const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
      const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
      const x = random(num * g.channels * g.height * g.width), w = random(g.channels * g.kernelH * g.kernelW);
      const scale = random(g.channels), shift = random(g.channels);
      const y = new Float32Array(num * g.channels * OH * OW).fill(NaN);
      runner.depthwise(g, num, x, w, { scale, shift, relu: 0.2 }, y);
      expect(worstError(y, convRef(g, num, x, w, scale, shift, 0.2))).toBeLessThan(1e-5);
      runner.depthwise(g, num, x, w, {}, y);
      expect(worstError(y, convRef(g, num, x, w, null, null, null))).toBeLessThan(1e-5);
      expect(() => runner.depthwise({ ...g, group: 1 }, num, x, w, {}, y)).toThrow(/group = channels = outChannels/);
    });

    it.each([
      ['3x3 stride 1, 37 wide (16-, 4-output steps, a 1-lane tail)', geom(5, 7, 37, 5, [3, 3], [1, 1], [1, 1], [1, 1], 5)],
      ['3x3 stride 1, 7 wide (a 3-lane tail)', geom(6, 7, 7, 6, [3, 3], [1, 1], [1, 1], [1, 1], 6)],
      ['3x3 stride 2, 41 wide (a 1-lane tail)', geom(4, 9, 41, 4, [3, 3], [1, 1], [2, 2], [1, 1], 4)],
      ['3x3 stride 2, 45 wide, no padding (a 2-lane tail)', geom(4, 9, 45, 4, [3, 3], [0, 0], [2, 2], [1, 1], 4)],
      ['3x3 stride 2, 14 wide (a 3-lane tail)', geom(4, 14, 14, 4, [3, 3], [1, 1], [2, 2], [1, 1], 4)],
      ['5x5 stride 1 (generic taps)', geom(3, 8, 23, 3, [5, 5], [2, 2], [1, 1], [1, 1], 3)],
    ] as [string, Conv2dGeometry][])(`${label}: depthwise %s with a ReLU of slope 0 stores exactly max(v, 0) of the unfused output`, (_name, g) => {
      const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
      const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
      const x = random(g.channels * g.height * g.width), w = random(g.channels * g.kernelH * g.kernelW);
      const shift = random(g.channels);
      const plain = new Float32Array(g.channels * OH * OW), fused = new Float32Array(plain.length).fill(NaN);
      runner.depthwise(g, 1, x, w, { shift }, plain);
      runner.depthwise(g, 1, x, w, { shift, relu: 0 }, fused);
      expect(worstError(plain, convRef(g, 1, x, w, null, shift, null))).toBeLessThan(1e-5);
      expect(Array.from(fused)).toEqual(Array.from(plain, (v) => Math.max(v, 0)));
    });

    it(`${label}: a ReLU of slope 0 in the conv epilogue (direct and Winograd) stores exactly max(v, 0) of the unfused output`, () => {
      for (const g of [geom(8, 9, 13, 9, [1, 1], [0, 0]), geom(16, 9, 13, 16, [3, 3], [1, 1]), geom(6, 10, 10, 5, [3, 3], [1, 1], [2, 2])]) {
        const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
        const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
        const x = random(g.channels * g.height * g.width), w = random(g.outChannels * g.channels * g.kernelH * g.kernelW);
        const scale = random(g.outChannels), shift = random(g.outChannels);
        const plain = new Float32Array(g.outChannels * OH * OW), fused = new Float32Array(plain.length).fill(NaN);
        runner.conv2d(g, 1, x, w, undefined, { scale, shift }, plain);
        runner.conv2d(g, 1, x, w, undefined, { scale, shift, relu: 0 }, fused);
        expect(Array.from(fused)).toEqual(Array.from(plain, (v) => Math.max(v, 0)));
      }
    });

    it(`${label}: a fused sum (Eltwise SUM → ReLU) writes y and z = act(c0·first + c1·second), and z stays resident`, () => {
      // 1×1 (direct) and 3×3 (Winograd), the convolution's output first and second.
      for (const [g, convFirst, relu] of [
        [geom(8, 6, 7, 12, [1, 1]), true, 0], [geom(16, 6, 7, 16, [3, 3], [1, 1]), false, null], [geom(5, 9, 9, 6, [3, 3], [1, 1], [2, 2]), false, 0.1],
      ] as [Conv2dGeometry, boolean, number | null][]) {
        const OH = convOutputSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH);
        const OW = convOutputSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
        const n = g.outChannels * OH * OW;
        const x = random(g.channels * g.height * g.width), w = random(g.outChannels * g.channels * g.kernelH * g.kernelW);
        const shift = random(g.outChannels), other = random(n);
        const yPlain = new Float32Array(n), y = new Float32Array(n).fill(NaN), z = new Float32Array(n).fill(NaN);
        runner.conv2d(g, 1, x, w, undefined, { shift }, yPlain);
        const c0 = 0.5, c1 = -1.25;
        expect(runner.conv2d(g, 1, x, w, undefined, { shift }, y, { x: 300, y: 301 }, { other, convFirst, c0, c1, relu, z, zVersion: 302 })).toBe(true);
        expect(Array.from(y)).toEqual(Array.from(yPlain));
        for (let i = 0; i < n; i++) {
          const [p, q] = convFirst ? [yPlain[i]!, other[i]!] : [other[i]!, yPlain[i]!];
          let v = Math.fround(Math.fround(c0 * p) + Math.fround(c1 * q));
          if (relu !== null) v = Math.max(v, 0) + relu * Math.min(v, 0);
          expect(Math.abs(z[i]! - v)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v)));
        }
        // The next call reading z at its version takes the resident copy; a stale version copies in.
        const g2 = geom(g.outChannels, OH, OW, 3, [1, 1]), w2 = random(3 * g.outChannels), y2 = new Float32Array(3 * OH * OW);
        runner.conv2d(g2, 1, z, w2, undefined, {}, y2, { x: 302, y: 303 });
        expect(worstError(y2, convRef(g2, 1, z, w2, null, null, null))).toBeLessThan(1e-5);
        z.fill(0.25);
        runner.conv2d(g2, 1, z, w2, undefined, {}, y2, { x: 304, y: 305 });
        expect(worstError(y2, convRef(g2, 1, z, w2, null, null, null))).toBeLessThan(1e-5);
      }
      const g = geom(2, 3, 3, 2, [1, 1]), a = random(18);
      expect(() => runner.conv2d(g, 1, a, random(4), undefined, {}, a.subarray(0, 18), undefined, { other: random(18), convFirst: true, c0: 1, c1: 1, relu: null, z: random(17) }))
        .toThrow(/sum.z has 17 elements/);
    });

    it(`${label}: a one-image output stays resident for the next call that reads it at the same version`, () => {
      // conv (im2col path) → depthwise → Winograd → 1×1, each reading the previous output.
      const g1 = geom(3, 10, 9, 16, [3, 3], [1, 1], [2, 2]);
      const g2 = geom(16, 5, 5, 16, [3, 3], [1, 1], [1, 1], [1, 1], 16);
      const g3 = geom(16, 5, 5, 16, [3, 3], [1, 1]);
      const g4 = geom(16, 5, 5, 7, [1, 1]);
      const x = random(3 * 90), w1 = random(16 * 27), w2 = random(16 * 9), w3 = random(16 * 144), w4 = random(7 * 16);
      const y1 = new Float32Array(16 * 25), y2 = new Float32Array(16 * 25), y3 = new Float32Array(16 * 25), y4 = new Float32Array(7 * 25);
      runner.conv2d(g1, 1, x, w1, 1, { relu: 0 }, y1, { x: 100, y: 101 });
      runner.depthwise(g2, 1, y1, w2, { relu: 0 }, y2, { x: 101, y: 102 });
      runner.conv2d(g3, 1, y2, w3, 1, {}, y3, { x: 102, y: 103 });
      runner.conv2d(g4, 1, y3, w4, 1, {}, y4, { x: 103, y: 104 });
      const r1 = convRef(g1, 1, x, w1, null, null, 0), r2 = convRef(g2, 1, Float32Array.from(r1), w2, null, null, 0);
      const r3 = convRef(g3, 1, Float32Array.from(r2), w3, null, null, null), r4 = convRef(g4, 1, Float32Array.from(r3), w4, null, null, null);
      expect(worstError(y1, r1)).toBeLessThan(1e-5);
      expect(worstError(y2, r2)).toBeLessThan(1e-5);
      expect(worstError(y3, r3)).toBeLessThan(2e-4); // Winograd F(4×4, 3×3)
      expect(worstError(y4, r4)).toBeLessThan(2e-4);
      // y3 changed through its blob (a new version): copied in again, so the change shows.
      y3.fill(0.5);
      runner.conv2d(g4, 1, y3, w4, 1, {}, y4, { x: 200, y: 201 });
      expect(worstError(y4, convRef(g4, 1, y3, w4, null, null, null))).toBeLessThan(1e-5);
      // Without versions nothing is kept or trusted.
      runner.conv2d(g4, 1, y3, w4, 1, {}, y4);
      expect(worstError(y4, convRef(g4, 1, y3, w4, null, null, null))).toBeLessThan(1e-5);
    });

    it(`${label}: a new weights version is repacked, the same one is not`, () => {
      const g = geom(4, 6, 6, 5, [3, 3], [1, 1]);
      const x = random(4 * 36), blob = new Blob([5, 4, 3, 3]);
      blob.mutableCpuData().set(random(180));
      const y = new Float32Array(5 * 36);
      runner.conv2d(g, 1, x, blob.cpuData() as Float32Array, blob.dataVersion, {}, y);
      const before = Float32Array.from(y);
      // Changed through the mutable accessor: the version moves and the result follows.
      const w = blob.mutableCpuData();
      for (let i = 0; i < w.length; i++) w[i] = -w[i]!;
      runner.conv2d(g, 1, x, blob.cpuData() as Float32Array, blob.dataVersion, {}, y);
      for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(-before[i]!, 5);
      // Same version: the packed copy is used even if the array changed behind the blob's back
      // (writers must use the mutable accessors, as in Caffe).
      const v = blob.dataVersion;
      const again = blob.cpuData() as Float32Array;
      again[0] = 100;
      runner.conv2d(g, 1, x, again, v, {}, y);
      for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(-before[i]!, 5);
      expect(runner.stats().cachedEntries).toBeGreaterThan(0);
    });

    it(`${label}: few output channels read B from the image and give the packed path's bits`, () => {
      // The same filters as the first 20 of 36 (36 > DIRECT_MAX_ROWS: B packed): every output
      // channel is the same sum in the same order either way.
      for (const [g, num] of [[geom(1, 28, 28, 20, [5, 5]), 2], [geom(3, 16, 16, 30, [3, 3], [1, 1]), 1]] as const) {
        const many = { ...g, outChannels: 36 };
        const K = g.channels * g.kernelH * g.kernelW, S = (g.height - g.kernelH + 1 + 2 * g.padH) * (g.width - g.kernelW + 1 + 2 * g.padW);
        expect(g.outChannels).toBeLessThanOrEqual(DIRECT_MAX_ROWS);
        expect(many.outChannels).toBeGreaterThan(DIRECT_MAX_ROWS);
        const x = random(num * g.channels * g.height * g.width), w = random(36 * K), shift = random(36);
        const few = new Float32Array(num * g.outChannels * S), all = new Float32Array(num * 36 * S);
        runner.conv2d(g, num, x, w.subarray(0, g.outChannels * K), undefined, { shift: shift.subarray(0, g.outChannels), relu: 0 }, few);
        runner.conv2d(many, num, x, w, undefined, { shift, relu: 0 }, all);
        for (let n = 0; n < num; n++) {
          const want = all.subarray(n * 36 * S, (n * 36 + g.outChannels) * S);
          expect(few.subarray(n * g.outChannels * S, (n + 1) * g.outChannels * S)).toEqual(want);
        }
      }
    });

    it(`${label}: inner product with cached weights matches the definition`, () => {
      for (const [M, N, K] of [[1, 7, 13], [3, 33, 100], [10, 5, 4]] as const) {
        const x = random(M * K), w = random(N * K), b = random(N);
        const want = new Float64Array(M * N);
        for (let i = 0; i < M; i++) for (let n = 0; n < N; n++) {
          let s = b[n]!;
          for (let k = 0; k < K; k++) s += x[i * K + k]! * w[n * K + k]!;
          want[i * N + n] = s;
        }
        const y = new Float32Array(M * N);
        for (const version of [undefined, 5, 5]) {
          y.fill(NaN);
          runner.innerProduct(M, N, K, x, w, version, b, y);
          expect(worstError(y, want)).toBeLessThan(1e-5);
        }
      }
    });

    it(`${label}: clear() gives the weight blocks back, and bad geometry is a MathError`, () => {
      runner.clear();
      expect(runner.stats().cachedEntries).toBe(0);
      expect(() => runner.conv2d(geom(3, 4, 4, 4, [3, 3], [0, 0], [1, 1], [1, 1], 2), 1, random(48), random(100), undefined, {}, new Float32Array(16)))
        .toThrow(/multiples of group/);
      expect(() => runner.conv2d(geom(2, 4, 4, 2, [3, 3]), 1, random(8), random(36), undefined, {}, new Float32Array(8)))
        .toThrow(/x has 8 elements, needs 32/);
    });
  }
});

/**
 * The plain-SIMD build's 3×3 depthwise sum in its exact float32 order: bias, then the nine taps
 * row by row (padding taps included, as products with 0), each product and partial sum rounded;
 * the scale folded into the filter first, then max(v, 0).
 */
function depthwiseF32Order(g: Conv2dGeometry, x: Float32Array, w: Float32Array, scale: Float32Array, shift: Float32Array): Float32Array {
  const { channels: C, height: H, width: W } = g;
  const OH = convOutputSize(H, 3, g.padH, g.strideH, 1), OW = convOutputSize(W, 3, g.padW, g.strideW, 1);
  const f = Math.fround;
  const y = new Float32Array(C * OH * OW);
  for (let c = 0; c < C; c++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let acc = shift[c]!;
        for (let kh = 0; kh < 3; kh++) {
          for (let kw = 0; kw < 3; kw++) {
            const ih = oh * g.strideH - g.padH + kh, iw = ow * g.strideW - g.padW + kw;
            const v = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(c * H + ih) * W + iw]! : 0;
            acc = f(acc + f(f(scale[c]! * w[c * 9 + kh * 3 + kw]!) * v));
          }
        }
        y[(c * OH + oh) * OW + ow] = Math.max(acc, 0);
      }
    }
  }
  return y;
}

describe('packed inference depthwise 3×3 (plain SIMD): the float32 sum order', () => {
  const runner = createWasmInferConv({ relaxed: false })!;
  // Output rows of MobileNet's sizes: 4-output steps and 1–3-lane tails, stride 1 and 2.
  it.each([
    ['28 wide, stride 1', geom(5, 6, 28, 5, [3, 3], [1, 1], [1, 1], [1, 1], 5)],
    ['14 wide, stride 1 (a 2-lane tail)', geom(4, 5, 14, 4, [3, 3], [1, 1], [1, 1], [1, 1], 4)],
    ['7 wide, stride 1 (a 3-lane tail)', geom(6, 7, 7, 6, [3, 3], [1, 1], [1, 1], [1, 1], 6)],
    ['56 wide, stride 1', geom(3, 4, 56, 3, [3, 3], [1, 1], [1, 1], [1, 1], 3)],
    ['56 wide, stride 2 (28 outputs)', geom(3, 6, 56, 3, [3, 3], [1, 1], [2, 2], [1, 1], 3)],
    ['29 wide, stride 2 (15 outputs: a 3-lane tail)', geom(4, 7, 29, 4, [3, 3], [1, 1], [2, 2], [1, 1], 4)],
  ] as [string, Conv2dGeometry][])('%s is the exact sequential sum', (_name, g) => {
    const OH = convOutputSize(g.height, 3, g.padH, g.strideH, 1), OW = convOutputSize(g.width, 3, g.padW, g.strideW, 1);
    const x = random(g.channels * g.height * g.width), w = random(g.channels * 9);
    const scale = random(g.channels), shift = random(g.channels);
    const y = new Float32Array(g.channels * OH * OW).fill(NaN);
    runner.depthwise(g, 1, x, w, { scale, shift, relu: 0 }, y);
    expect(Array.from(y)).toEqual(Array.from(depthwiseF32Order(g, x, w, scale, shift)));
  });
});
