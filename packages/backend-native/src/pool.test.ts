import { defaultWasmTrain, Rng } from '@caffe-ts/blob';
import { maxPoolWithArgmax } from '@caffe-ts/layers/testing';
import { describe, expect, it } from 'vitest';
import { nativeAddon, nativeAvailability } from './addon.js';
import { createNativeConv2d } from './conv2d.js';

const { available } = nativeAvailability();

/** Caffe's MAX pooling of a K×K window at stride S (pooled size rounded up), with its argmax. */
function reference(planes: number, H: number, W: number, KH: number, KW: number, S: number, pad: number, x: Float32Array) {
  const PH = Math.ceil((H + 2 * pad - KH) / S) + 1, PW = Math.ceil((W + 2 * pad - KW) / S) + 1;
  const y = new Float32Array(planes * PH * PW), argmax = new Int32Array(y.length);
  maxPoolWithArgmax(planes, H, W, PH, PW, KH, KW, S, S, pad, pad, x, y, argmax);
  return { PH, PW, y, argmax };
}

const cases: [string, number, number, number, number, number, number][] = [
  // name, planes, H, W, kernel, stride, pad
  ['LeNet pool1 (2×2/2 over 24×24: eight windows a step, then the rest)', 6, 24, 24, 2, 2, 0],
  ['2×2/2 over an odd plane (the last row and column left out)', 5, 9, 21, 2, 2, 0],
  ['3×3/2 pad 1 (windows cut by the edges)', 4, 7, 8, 3, 2, 1],
  ['3×3/3 (windows cut at the bottom and right)', 3, 8, 10, 3, 3, 0],
  ['CIFAR-10 pool1 (3×3/2 over 32×32: eight windows a step, the second step overlapping the first, then the cut last row and column)', 3, 32, 32, 3, 2, 0],
  ['3×3/2 over 17 columns (exactly eight whole windows a row)', 2, 9, 17, 3, 2, 0],
  ['3×3/2 over 35 columns (a third step of eight, overlapping)', 2, 7, 35, 3, 2, 0],
  ['3×3/2 over 15 columns (seven whole windows: no step of eight)', 2, 7, 15, 3, 2, 0],
];

describe.skipIf(!available)('native training MAX pooling', () => {
  // With the AVX2 branches forbidden (allowWide(false)), the general loop runs the same cases.
  for (const wide of [true, false]) {
    for (const threads of [1, 2]) {
      for (const [name, planes, H, W, K, S, pad] of cases) {
        it(`${name}, ${threads} thread(s)${wide ? '' : ', portable kernels'}: values, argmax and the scatter back`, () => {
          const addon = nativeAddon();
          addon.allowWide(wide);
          try {
            check(name, planes, H, W, K, S, pad, threads);
          } finally {
            addon.allowWide(true);
          }
        });
      }
    }
  }

  function check(name: string, planes: number, H: number, W: number, K: number, S: number, pad: number, threads: number): void {
    const rng = new Rng(11);
    const x = new Float32Array(planes * H * W);
    // Few distinct values, so that windows hold ties (the first one wins) and NaN at a window's
    // start stays (as the JavaScript loop's compare keeps it).
    for (let i = 0; i < x.length; i++) x[i] = Math.floor(rng.uniform() * 5) - 2;
    x[0] = Number.NaN;
    x[7] = Number.NaN;
    const want = reference(planes, H, W, K, K, S, pad, x);
    const runner = createNativeConv2d({ threads });
    const y = new Float32Array(want.y.length).fill(99), argmax = new Int32Array(want.y.length).fill(-5);
    expect(runner.maxPool!(planes, H, W, want.PH, want.PW, K, K, S, S, pad, pad, x, y, argmax)).toBe(true);
    expect(Array.from(argmax)).toEqual(Array.from(want.argmax));
    expect(Array.from(y)).toEqual(Array.from(want.y));
    const dy = new Float32Array(y.length);
    for (let i = 0; i < dy.length; i++) dy[i] = i + 1;
    const dx = new Float32Array(x.length).fill(Number.NaN);
    expect(runner.maxUnpool!(dy, argmax, planes, H * W, want.PH * want.PW, dx)).toBe(true);
    const wantDx = new Float32Array(x.length);
    for (let p = 0; p < planes; p++) for (let o = 0; o < want.PH * want.PW; o++) wantDx[p * H * W + want.argmax[p * want.PH * want.PW + o]!]! += dy[p * want.PH * want.PW + o]!;
    expect(Array.from(dx), name).toEqual(Array.from(wantDx));
  }

  it('declines arrays shorter than the geometry (nothing written), and the addon refuses a wrong argmax type', () => {
    const runner = createNativeConv2d({ threads: 1 });
    const y = new Float32Array(4), argmax = new Int32Array(4);
    expect(runner.maxPool!(1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, new Float32Array(15), y, argmax)).toBe(false);
    expect(runner.maxUnpool!(new Float32Array(4), argmax, 1, 16, 4, new Float32Array(15))).toBe(false);
    expect(Array.from(y)).toEqual([0, 0, 0, 0]);
    const x = new Float32Array(16), f = new Float32Array(4);
    expect(() => nativeAddon().maxPool(1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, x, y, 1, f as unknown as Int32Array)).toThrow('maxPool: argmax must be an Int32Array or null');
    expect(() => nativeAddon().maxUnpool(f, f as unknown as Int32Array, 1, 16, 4, x, 1)).toThrow('maxUnpool: argmax must be an Int32Array');
    expect(() => nativeAddon().maxUnpool(f, argmax, 1, 16, 4, new Float32Array(15), 1)).toThrow(/maxUnpool: dy, argmax/);
  });
});

/** Caffe's AVE pooling in float64 (pool_size counting the padding) and its gradient. */
function aveReference(planes: number, H: number, W: number, PH: number, PW: number, KH: number, KW: number, SH: number, SW: number, padH: number, padW: number, x: Float32Array, dy: Float32Array) {
  const y = new Float64Array(planes * PH * PW), dx = new Float64Array(planes * H * W);
  for (let p = 0; p < planes; p++) {
    for (let ph = 0; ph < PH; ph++) {
      for (let pw = 0; pw < PW; pw++) {
        const hs = ph * SH - padH, ws = pw * SW - padW;
        const he = Math.min(hs + KH, H + padH), we = Math.min(ws + KW, W + padW);
        const size = (he - hs) * (we - ws);
        let sum = 0;
        for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) sum += x[p * H * W + h * W + w]!;
        const o = p * PH * PW + ph * PW + pw;
        y[o] = sum / size;
        for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) dx[p * H * W + h * W + w] += dy[o]! / size;
      }
    }
  }
  return { y, dx };
}

const aveCases: [string, number, number, number, number, number, number, number, number, number][] = [
  // name, planes, H, W, KH, KW, SH, SW, padH, padW
  ['CIFAR-10 pool2 (3×3/2 over 16×16: the last window cut)', 5, 16, 16, 3, 3, 2, 2, 0, 0],
  ['CIFAR-10 pool3 (3×3/2 over 8×8: fewer windows a row than a vector)', 3, 8, 8, 3, 3, 2, 2, 0, 0],
  ['3×3/2 pad 1 over 33×21 (padding counted in the divisor)', 2, 33, 21, 3, 3, 2, 2, 1, 1],
  ['2×2/1 over 9×30 (column stride 1)', 2, 9, 30, 2, 2, 1, 1, 0, 0],
  ['5×3 windows, strides 3 and 2, pads 2 and 1 (rows and columns apart)', 2, 14, 19, 5, 3, 3, 2, 2, 1],
  ['3×3/3 (column stride 3: the general loop)', 2, 10, 11, 3, 3, 3, 3, 0, 0],
];

describe.skipIf(!available)('native training AVE pooling', () => {
  const out = (n: number, k: number, s: number, pad: number) => {
    // Caffe's pooled size: rounded up, the last window starting inside the plane or its padding.
    let o = Math.ceil((n + 2 * pad - k) / s) + 1;
    if (pad > 0 && (o - 1) * s >= n + pad) o--;
    return o;
  };
  for (const wide of [true, false]) {
    for (const threads of [1, 2]) {
      for (const [name, planes, H, W, KH, KW, SH, SW, padH, padW] of aveCases) {
        it(`${name}, ${threads} thread(s)${wide ? '' : ', portable kernels'}: the WebAssembly kernels' bits, forward and backward`, () => {
          const PH = out(H, KH, SH, padH), PW = out(W, KW, SW, padW);
          const rng = new Rng(5);
          const x = new Float32Array(planes * H * W), dy = new Float32Array(planes * PH * PW);
          for (let i = 0; i < x.length; i++) x[i] = rng.uniform() * 2 - 1;
          for (let i = 0; i < dy.length; i++) dy[i] = rng.uniform() * 2 - 1;
          const g = { height: H, width: W, pooledH: PH, pooledW: PW, kernelH: KH, kernelW: KW, strideH: SH, strideW: SW, padH, padW };
          const wasm = defaultWasmTrain()!;
          const wantY = new Float32Array(dy.length), wantDx = new Float32Array(x.length);
          wasm.pool('ave', g, planes, x, wantY, null);
          wasm.aveUnpool(g, planes, dy, wantDx);
          const ref = aveReference(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, dy);
          for (let i = 0; i < wantY.length; i++) expect(Math.abs(wantY[i]! - ref.y[i]!)).toBeLessThan(1e-6);
          for (let i = 0; i < wantDx.length; i++) expect(Math.abs(wantDx[i]! - ref.dx[i]!)).toBeLessThan(1e-6);
          const addon = nativeAddon();
          addon.allowWide(wide);
          try {
            const runner = createNativeConv2d({ threads });
            const y = new Float32Array(dy.length).fill(Number.NaN), dx = new Float32Array(x.length).fill(Number.NaN);
            expect(runner.avePool!(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, x, y)).toBe(true);
            expect(runner.aveUnpool!(planes, H, W, PH, PW, KH, KW, SH, SW, padH, padW, dy, dx)).toBe(true);
            expect(Array.from(y)).toEqual(Array.from(wantY));
            expect(Array.from(dx)).toEqual(Array.from(wantDx));
          } finally {
            addon.allowWide(true);
          }
        });
      }
    }
  }

  it('declines arrays shorter than the geometry (nothing written) and refuses windows that hold no cell of the plane', () => {
    const runner = createNativeConv2d({ threads: 1 });
    const y = new Float32Array(4);
    expect(runner.avePool!(1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, new Float32Array(15), y)).toBe(false);
    expect(runner.aveUnpool!(1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, new Float32Array(3), new Float32Array(16))).toBe(false);
    expect(Array.from(y)).toEqual([0, 0, 0, 0]);
    // A third row of windows at stride 2 over 4 rows starts past the plane.
    expect(() => nativeAddon().avePool(1, 4, 4, 3, 2, 2, 2, 2, 2, 0, 0, new Float32Array(16), new Float32Array(6), 1)).toThrow('avePool: a window holds no row of the plane');
    expect(() => nativeAddon().aveUnpool(1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, new Float32Array(3), new Float32Array(16), 1)).toThrow(/aveUnpool: dy and dx must be/);
  });
});
