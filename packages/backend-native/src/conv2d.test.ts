import { defaultWasmTrain, MathError, Rng, type Conv2dGeometry, type Conv2dPass } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { nativeAvailability } from './addon.js';
import { createNativeConv2d } from './conv2d.js';
import { releaseNativeMemory } from './use.js';

const { available, reason } = nativeAvailability();
if (!available) console.warn(`backend-native tests skipped: ${reason}`);

function random(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

const outSize = (size: number, k: number, pad: number, stride: number, dil: number) => Math.floor((size + 2 * pad - (dil * (k - 1) + 1)) / stride) + 1;

/**
 * Caffe's convolution written out directly in float64 (no unfolding): y[n][o][oh][ow] =
 * bias[o] + Σ w[o][c][kh][kw] · x[n][g·Cg + c][oh·s − p + kh·d][ow·s − p + kw·d], and its two
 * gradients, dW += Σ dy·x and dx = Σ dy·w over the same index pairs.
 */
function direct2d(g: Conv2dGeometry, num: number, x: Float32Array, dy: Float32Array, w: Float32Array, bias: Float32Array) {
  const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  const Cg = g.channels / g.group, m = g.outChannels / g.group;
  const y = new Float64Array(num * g.outChannels * OH * OW), dw = new Float64Array(w.length), dx = new Float64Array(x.length);
  const db = new Float64Array(g.outChannels);
  for (let n = 0; n < num; n++) for (let o = 0; o < g.outChannels; o++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    const yi = ((n * g.outChannels + o) * OH + oh) * OW + ow;
    let s = bias[o]!;
    db[o]! += dy[yi]!;
    for (let c = 0; c < Cg; c++) for (let kh = 0; kh < g.kernelH; kh++) for (let kw = 0; kw < g.kernelW; kw++) {
      const ih = oh * g.strideH - g.padH + kh * g.dilationH, iw = ow * g.strideW - g.padW + kw * g.dilationW;
      if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
      const xi = ((n * g.channels + Math.floor(o / m) * Cg + c) * g.height + ih) * g.width + iw;
      const wi = ((o * Cg + c) * g.kernelH + kh) * g.kernelW + kw;
      s += w[wi]! * x[xi]!;
      dw[wi]! += dy[yi]! * x[xi]!;
      dx[xi]! += dy[yi]! * w[wi]!;
    }
    y[yi] = s;
  }
  return { y, dw, dx, db };
}

function expectClose(got: Float32Array, want: Float64Array, what: string) {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  expect(worst, what).toBeLessThan(2e-5);
}

const geometry = (over: Partial<Conv2dGeometry>): Conv2dGeometry => ({
  channels: 3, height: 7, width: 6, kernelH: 3, kernelW: 3, padH: 0, padW: 0, strideH: 1, strideW: 1,
  dilationH: 1, dilationW: 1, outChannels: 4, group: 1, ...over,
});

const cases: [string, Conv2dGeometry, number, number][] = [
  ['LeNet conv2 (5×5 over 20×12×12, 50 outputs), chunks of 4', geometry({ channels: 20, height: 12, width: 12, kernelH: 5, kernelW: 5, outChannels: 50 }), 10, 4],
  ['3×3 pad 1', geometry({ padH: 1, padW: 1 }), 3, 2],
  ['stride 2, pad 2 × 1, 3×2 kernel', geometry({ kernelW: 2, strideH: 2, strideW: 2, padH: 2, padW: 1 }), 3, 3],
  ['dilation 2, two groups', geometry({ channels: 4, height: 9, width: 8, dilationH: 2, dilationW: 2, outChannels: 6, group: 2, padH: 1 }), 2, 1],
  ['1×1, one image per chunk (no reordering)', geometry({ kernelH: 1, kernelW: 1, outChannels: 5 }), 3, 1],
  ['1×1, three images per chunk', geometry({ kernelH: 1, kernelW: 1, outChannels: 5 }), 3, 3],
  ['a window that never fits a padded edge (pad 3, kernel 2)', geometry({ height: 4, width: 4, kernelH: 2, kernelW: 2, padH: 3, padW: 3, strideH: 3, strideW: 3 }), 2, 2],
  // 5-wide kernels over rows of 16 or more: the weight gradient by direct sums (no unfolding), the
  // bottom gradient through the columns.
  ['CIFAR-10 conv2\'s shape with fewer channels (8×16×16, 5×5 pad 2, 6 outputs), 18 images: sums in blocks of 16 and 2', geometry({ channels: 8, height: 16, width: 16, kernelH: 5, kernelW: 5, padH: 2, padW: 2, outChannels: 6 }), 18, 4],
  ['5×5 unpadded over 3×9×24 (rows of 20: a cut vector), 7 outputs (the last one unpaired)', geometry({ height: 9, width: 24, kernelH: 5, kernelW: 5, outChannels: 7 }), 3, 2],
  ['5×3 pad 1 × 2 over 2×6×16 (rows of 16), 5 outputs', geometry({ channels: 2, height: 6, width: 16, kernelH: 3, kernelW: 5, padH: 1, padW: 2, outChannels: 5 }), 2, 1],
  // Fewer images than threads: each product is split over the threads (sgemm) instead of the
  // images (packed weights).
  // The weight gradient packed from the images (stride 1, rows of whole vectors): padded edges
  // (masked loads, rows above and below), two blocks of depth (positions), a partial panel of taps.
  ['CIFAR-10 conv3\'s shape with fewer channels (8×8×8, 5×5 pad 2, 12 outputs), 9 images in chunks of 5', geometry({ channels: 8, height: 8, width: 8, kernelH: 5, kernelW: 5, padH: 2, padW: 2, outChannels: 12 }), 9, 5],
  ['3×3 pad 1 over one channel, rows of 16 (9 taps: one partial panel)', geometry({ channels: 1, height: 5, width: 16, padH: 1, padW: 1, outChannels: 3 }), 2, 2],
  ['one image of LeNet conv2', geometry({ channels: 20, height: 12, width: 12, kernelH: 5, kernelW: 5, outChannels: 50 }), 1, 1],
];

describe.skipIf(!available)('createNativeConv2d', () => {
  for (const threads of [1, 2]) {
    for (const [name, g, num, chunk] of cases) {
      it(`${name}, ${threads} thread(s): forward, then the three backward products, as Caffe defines them`, () => {
        const rng = new Rng(7);
        const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
        const K = (g.channels / g.group) * g.kernelH * g.kernelW;
        const x = random(rng, num * g.channels * g.height * g.width), dy = random(rng, num * g.outChannels * OH * OW);
        const w = random(rng, g.outChannels * K), bias = random(rng, g.outChannels);
        const want = direct2d(g, num, x, dy, w, bias);
        // Small passes stay on one thread unless told: minimum work 0 here by asking for threads.
        const conv = createNativeConv2d({ threads });
        const y = new Float32Array(want.y.length).fill(Number.NaN);
        conv.run(g, num, chunk, { colIn: x, weights: w, bias, gemmOut: y });
        expectClose(y, want.y, 'forward');
        // The gradients accumulate into what is there; the data gradient overwrites.
        const dw = random(rng, w.length), db = random(rng, g.outChannels);
        const dw0 = Float64Array.from(dw), db0 = Float64Array.from(db);
        const dx = new Float32Array(x.length).fill(Number.NaN);
        conv.run(g, num, chunk, { colIn: x, gemmIn: dy, weights: w, weightDiff: dw, biasDiff: db, colOut: dx });
        expectClose(dw, want.dw.map((v, i) => v + dw0[i]!), 'weight gradient');
        expectClose(db, want.db.map((v, i) => v + db0[i]!), 'bias gradient');
        expectClose(dx, want.dx, 'data gradient');
      });
    }
  }

  // Few taps, stride 1, no bottom gradient: the direct kernels (no unfolding).
  const direct: [string, Conv2dGeometry, number][] = [
    ['LeNet conv1 (1×28×28, 5×5, 20 outputs: rows of 24)', geometry({ channels: 1, height: 28, width: 28, kernelH: 5, kernelW: 5, outChannels: 20 }), 3],
    ['CIFAR-10 conv1 (3×32×32, 5×5 pad 2, 32 outputs: rows of 16 + 16)', geometry({ channels: 3, height: 32, width: 32, kernelH: 5, kernelW: 5, padH: 2, padW: 2, outChannels: 32 }), 2],
    ['7 outputs, rows of 13 (16 with 3 lanes cut), pad 1 × 2', geometry({ channels: 2, height: 11, width: 13, kernelH: 3, kernelW: 3, padH: 1, padW: 2, outChannels: 7 }), 3],
    ['rows of 44 (24, then 16, then 4 of 8), 5 outputs', geometry({ channels: 2, height: 6, width: 46, kernelH: 3, kernelW: 3, outChannels: 5 }), 2],
    ['rows of 9 (16 with 7 lanes cut), 6 outputs', geometry({ channels: 3, height: 7, width: 11, kernelH: 3, kernelW: 3, outChannels: 6 }), 2],
    ['rows of 53 (24, 16 + 13: a remainder of 5 taken as 16 + 13), 4 outputs', geometry({ channels: 1, height: 5, width: 55, kernelH: 3, kernelW: 3, outChannels: 4 }), 2],
    ['7×7 over one channel (taps in two chunks), 3 outputs', geometry({ channels: 1, height: 20, width: 30, kernelH: 7, kernelW: 7, outChannels: 3 }), 2],
  ];
  for (const threads of [1, 2]) {
    for (const [name, g, num] of direct) {
      it(`${name}, ${threads} thread(s): forward, weight and bias gradients without the bottom's`, () => {
        const rng = new Rng(9);
        const OH = outSize(g.height, g.kernelH, g.padH, 1, 1), OW = outSize(g.width, g.kernelW, g.padW, 1, 1);
        const x = random(rng, num * g.channels * g.height * g.width), dy = random(rng, num * g.outChannels * OH * OW);
        const w = random(rng, g.outChannels * g.channels * g.kernelH * g.kernelW), bias = random(rng, g.outChannels);
        const want = direct2d(g, num, x, dy, w, bias);
        const conv = createNativeConv2d({ threads });
        const y = new Float32Array(want.y.length).fill(Number.NaN);
        conv.run(g, num, 1, { colIn: x, weights: w, bias, gemmOut: y });
        expectClose(y, want.y, 'forward');
        const dw = random(rng, w.length), db = random(rng, g.outChannels);
        const dw0 = Float64Array.from(dw), db0 = Float64Array.from(db);
        conv.run(g, num, 1, { colIn: x, gemmIn: dy, weights: w, weightDiff: dw, biasDiff: db });
        expectClose(dw, want.dw.map((v, i) => v + dw0[i]!), 'weight gradient');
        expectClose(db, want.db.map((v, i) => v + db0[i]!), 'bias gradient');
      });
    }
  }

  it('splits a large pass over two threads with the same sums as one thread', () => {
    const g = geometry({ channels: 20, height: 12, width: 12, kernelH: 5, kernelW: 5, outChannels: 50 });
    const rng = new Rng(3), num = 16;
    const x = random(rng, num * 20 * 144), dy = random(rng, num * 50 * 64), w = random(rng, 50 * 500);
    const grads = [1, 2].map((threads) => {
      const dw = new Float32Array(w.length), dx = new Float32Array(x.length);
      createNativeConv2d({ threads }).run(g, num, 4, { colIn: x, gemmIn: dy, weights: w, weightDiff: dw, colOut: dx });
      return { dw, dx };
    });
    // The data gradient does not depend on the split; the weight gradient's sum order does.
    expect(grads[1]!.dx).toEqual(grads[0]!.dx);
    for (let i = 0; i < w.length; i++) expect(Math.abs(grads[1]!.dw[i]! - grads[0]!.dw[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(grads[0]!.dw[i]!)));
  });

  it('releaseNativeMemory frees the column buffers a pass grew, and the next pass grows them again', () => {
    const g = geometry({ channels: 8, height: 20, width: 20, outChannels: 8 });
    const rng = new Rng(6);
    const x = random(rng, 2 * 8 * 400), w = random(rng, 8 * 72), y = new Float32Array(2 * 8 * 324);
    const conv = createNativeConv2d({ threads: 1 });
    conv.run(g, 2, 2, { colIn: x, weights: w, gemmOut: y });
    // Columns of two images: 72 rows × 648 positions; the reordered outputs: 8 × 648.
    expect(releaseNativeMemory()).toBeGreaterThanOrEqual(4 * (72 * 648 + 8 * 648));
    expect(releaseNativeMemory()).toBe(0);
    const again = new Float32Array(y.length);
    conv.run(g, 2, 2, { colIn: x, weights: w, gemmOut: again });
    expect(again).toEqual(y);
  });

  it('works in place on arrays over a SharedArrayBuffer (the kernels\' shared memory)', () => {
    const g = geometry({});
    const rng = new Rng(5), num = 2;
    const shared = (a: Float32Array) => {
      const s = new Float32Array(new SharedArrayBuffer(4 * (a.length + 3)), 12, a.length);
      s.set(a);
      return s;
    };
    const x = random(rng, num * 3 * 42), w = random(rng, 4 * 27), bias = random(rng, 4);
    const plain = new Float32Array(num * 4 * 20), inShared = shared(new Float32Array(plain.length));
    const conv = createNativeConv2d({ threads: 1 });
    conv.run(g, num, 2, { colIn: x, weights: w, bias, gemmOut: plain });
    conv.run(g, num, 2, { colIn: shared(x), weights: shared(w), bias: shared(bias), gemmOut: inShared });
    expect(Array.from(inShared)).toEqual(Array.from(plain));
  });

  it('sgdStep: the WebAssembly step\'s bits (with and without decay, 1 and 2 threads, tails), whether the weights stayed finite, and a decline', () => {
    const train = defaultWasmTrain()!;
    const rng = new Rng(11);
    for (const [n, decay, threads] of [[1003, 5e-4, 1], [1003, 0, 2], [7, 1e-2, 2], [64, 0, 1]] as const) {
      // Some large entries, so that rounding to float32 matters at each stored step.
      const w = random(rng, n).map((v, i) => (i % 13 === 0 ? v * 1e5 : v)), g = random(rng, n), h = random(rng, n);
      const want = [w.slice(), g.slice(), h.slice()] as const;
      const wantFinite = train.sgdStep(want[0], want[1], want[2], 0.0099, 0.9, decay);
      const finite = createNativeConv2d({ threads }).sgdStep!(w, g, h, 0.0099, 0.9, decay);
      expect(finite).toBe(wantFinite);
      expect(Array.from(w), `w, n ${n}`).toEqual(Array.from(want[0]));
      expect(Array.from(g), `g (the step), n ${n}`).toEqual(Array.from(want[1]));
      expect(Array.from(h), `h, n ${n}`).toEqual(Array.from(want[2]));
    }
    for (const threads of [1, 2]) {
      for (const decay of [0, 1e-3]) {
        const g = random(rng, 100);
        g[97] = Number.POSITIVE_INFINITY;
        expect(createNativeConv2d({ threads }).sgdStep!(random(rng, 100), g, random(rng, 100), 0.01, 0.9, decay)).toBe(false);
      }
    }
    const w = new Float32Array(4);
    expect(createNativeConv2d().sgdStep!(w, new Float32Array(3), new Float32Array(4), 0.01, 0.9, 0)).toBeNull();
    expect(Array.from(w)).toEqual([0, 0, 0, 0]);
  });

  it('refuses a pass that does not fit its geometry, naming what is wrong', () => {
    const conv = createNativeConv2d({ threads: 1 });
    const g = geometry({});
    const w = new Float32Array(4 * 27);
    expect(() => conv.run(g, 2, 1, { colIn: new Float32Array(10), weights: w, gemmOut: new Float32Array(160) }))
      .toThrow(new MathError('native conv: colIn has 10 elements, needs 252'));
    expect(() => conv.run({ ...g, group: 2 }, 1, 1, { colIn: new Float32Array(126), weights: w, gemmOut: new Float32Array(80) }))
      .toThrow(/native conv: channels 3 and outChannels 4 must be multiples of group 2/);
    expect(() => conv.run(g, 1, 1, { weights: w, gemmOut: new Float32Array(80) })).toThrow(/gemmOut needs colIn/);
  });
});
