import { defaultWasmInfer, MathError, Rng, type Conv2dGeometry, type ConvEpilogue, type WasmInferConv } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { nativeAddon, nativeAvailability } from './addon.js';
import { createNativeInferConv, NATIVE_WINOGRAD_MIN_CHANNELS, nativeWinogradApplies } from './infer.js';

const { available } = nativeAvailability();

function random(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

const outSize = (size: number, k: number, pad: number, stride: number, dil: number) => Math.floor((size + 2 * pad - (dil * (k - 1) + 1)) / stride) + 1;

const leaky = (v: number, slope: number | null | undefined) => (slope === null || slope === undefined ? v : v > 0 ? v : v * slope);

/**
 * The inference contract written out in float64: y = act(scale[o]·Σ w·x + shift[o]) per output
 * channel, Caffe's grouped, strided, dilated, padded convolution summed directly (no unfolding).
 */
function reference(g: Conv2dGeometry, num: number, x: Float32Array, w: Float32Array, e: ConvEpilogue): Float64Array {
  const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
  const Cg = g.channels / g.group, m = g.outChannels / g.group;
  const y = new Float64Array(num * g.outChannels * OH * OW);
  for (let n = 0; n < num; n++) for (let o = 0; o < g.outChannels; o++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let s = 0;
    for (let c = 0; c < Cg; c++) for (let kh = 0; kh < g.kernelH; kh++) for (let kw = 0; kw < g.kernelW; kw++) {
      const ih = oh * g.strideH - g.padH + kh * g.dilationH, iw = ow * g.strideW - g.padW + kw * g.dilationW;
      if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
      s += w[((o * Cg + c) * g.kernelH + kh) * g.kernelW + kw]! * x[((n * g.channels + Math.floor(o / m) * Cg + c) * g.height + ih) * g.width + iw]!;
    }
    const v = (e.scale ? e.scale[o]! : 1) * s + (e.shift ? e.shift[o]! : 0);
    y[((n * g.outChannels + o) * OH + oh) * OW + ow] = leaky(v, e.relu);
  }
  return y;
}

function worstError(got: Float32Array, want: Float64Array): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return worst;
}

const geometry = (over: Partial<Conv2dGeometry>): Conv2dGeometry => ({
  channels: 3, height: 7, width: 6, kernelH: 3, kernelW: 3, padH: 0, padW: 0, strideH: 1, strideW: 1,
  dilationH: 1, dilationW: 1, outChannels: 4, group: 1, ...over,
});

// [what, geometry, images]: each runs on 1 and 2 threads, with and without an epilogue.
const cases: [string, Conv2dGeometry, number][] = [
  ['1×1 (the image is its own columns)', geometry({ channels: 16, height: 9, width: 9, kernelH: 1, kernelW: 1, outChannels: 24 }), 1],
  ['3×3 pad 1, more outputs than positions (split by channels)', geometry({ channels: 8, height: 5, width: 5, padH: 1, padW: 1, outChannels: 40 }), 1],
  ['3×3 pad 1 over 40×40 (split by positions, several tiles)', geometry({ channels: 5, height: 40, width: 40, padH: 1, padW: 1, outChannels: 6 }), 1],
  ['7×7 stride 2 pad 3 over 3 channels (a stem)', geometry({ height: 23, width: 21, kernelH: 7, kernelW: 7, padH: 3, padW: 3, strideH: 2, strideW: 2, outChannels: 16 }), 1],
  ['1×1 stride 2 (unfolded)', geometry({ channels: 12, height: 9, width: 8, kernelH: 1, kernelW: 1, strideH: 2, strideW: 2, outChannels: 20 }), 1],
  // Strided windows wider than 1×1 pack their columns from the image block by block: positions
  // in two blocks of 256 (the second starting mid-row), the depth in two blocks, several images,
  // stride 4 (gathered one at a time).
  ['3×3 stride 2 pad 1 over 45×41 (positions in two blocks, one starting mid-row)', geometry({ height: 45, width: 41, padH: 1, padW: 1, strideH: 2, strideW: 2, outChannels: 10 }), 1],
  ['5×5 stride 2 pad 2 over 12 channels (the depth, 300, in two blocks)', geometry({ channels: 12, height: 20, width: 19, kernelH: 5, kernelW: 5, padH: 2, padW: 2, strideH: 2, strideW: 2, outChannels: 14 }), 1],
  ['3×3 stride 2, no pad, 3 images', geometry({ channels: 4, height: 17, width: 18, strideH: 2, strideW: 2, outChannels: 7 }), 3],
  ['11×11 stride 4 (a stem)', geometry({ height: 35, width: 39, kernelH: 11, kernelW: 11, strideH: 4, strideW: 4, outChannels: 9 }), 1],
  ['groups 2, dilation 2, a window past the edge', geometry({ channels: 6, height: 10, width: 9, padH: 1, padW: 2, dilationH: 2, dilationW: 2, strideW: 3, outChannels: 8, group: 2 }), 1],
  ['a 1×1 plane (matrix-vector products)', geometry({ channels: 50, height: 1, width: 1, kernelH: 1, kernelW: 1, outChannels: 300 }), 1],
  ['a 2×2 plane from 3×3 (matrix-vector products over unfolded columns)', geometry({ channels: 7, height: 4, width: 4, outChannels: 130 }), 1],
  // A last panel of 1, 2 or 5 rows (the packed kernel multiplies only the rows that exist).
  ['1×1 over 13 outputs (panels of 6, 6, 1)', geometry({ channels: 10, height: 6, width: 7, kernelH: 1, kernelW: 1, outChannels: 13 }), 1],
  ['3×3 pad 1 over 11 outputs (panels of 6, 5)', geometry({ channels: 4, height: 9, width: 9, padH: 1, padW: 1, outChannels: 11 }), 1],
  ['3 images (whole images per thread, then one split)', geometry({ channels: 4, height: 8, width: 8, padH: 1, padW: 1, outChannels: 12 }), 3],
  ['3×3 over 40 channels (the depth in two blocks, an edge panel of 2 rows)', geometry({ channels: 40, height: 9, width: 11, padH: 1, padW: 1, outChannels: 20 }), 1],
  ['groups 3, 2 images', geometry({ channels: 9, height: 6, width: 7, padH: 1, padW: 1, outChannels: 15, group: 3 }), 2],
  ['3×3 pad 1 over 38×37 (81 tiles of 4×4: two blocks of tiles, edge tiles cut)', geometry({ channels: 6, height: 38, width: 37, padH: 1, padW: 1, outChannels: 9 }), 2],
  ['3×3 pad 1 over 13×14 (16 tiles, the fewest for Winograd)', geometry({ channels: 24, height: 13, width: 14, padH: 1, padW: 1, outChannels: 30 }), 1],
  // Winograd batches few-tiled images per thread (8 of LeNet's conv2 at a time), then splits
  // an image left over.
  ['3×3 pad 1 over 16×16, 5 images (several per product, then one split)', geometry({ channels: 8, height: 16, width: 16, padH: 1, padW: 1, outChannels: 12 }), 5],
  ['LeNet conv2 (5×5 over 20×12×12, 50 outputs), 9 images', geometry({ channels: 20, height: 12, width: 12, kernelH: 5, kernelW: 5, outChannels: 50 }), 9],
  ['5×5 pad 2 over 15×13 (56 tiles of 2×2, edge tiles cut), 2 images', geometry({ channels: 16, height: 15, width: 13, kernelH: 5, kernelW: 5, padH: 2, padW: 2, outChannels: 17 }), 2],
  // Grouped (CaffeNet's conv2 to conv5, smaller): Winograd group after group.
  ['5×5 pad 2 in two groups of 16 channels, 2 images', geometry({ channels: 32, height: 13, width: 13, kernelH: 5, kernelW: 5, padH: 2, padW: 2, outChannels: 34, group: 2 }), 2],
  ['3×3 pad 1 in two groups over 13×13, 3 images', geometry({ channels: 12, height: 13, width: 13, padH: 1, padW: 1, outChannels: 10, group: 2 }), 3],
];

// The three ways a convolution runs here. Winograd's transforms round more (F(4×4, 3×3) and
// F(2×2, 5×5) have points ±2 and ∞): its results are held to 2e-4.
const modes = [
  { name: 'packed weights', options: { packed: true, winograd: false }, tolerance: 2e-5 },
  { name: 'sgemm', options: { packed: false, winograd: false }, tolerance: 2e-5 },
  { name: 'Winograd', options: { winograd: true }, tolerance: 2e-4 },
] as const;

const epilogues: [string, (rng: Rng, O: number) => ConvEpilogue][] = [
  ['no epilogue', () => ({})],
  ['bias', (rng, O) => ({ shift: random(rng, O) })],
  ['scale, shift, ReLU', (rng, O) => ({ scale: random(rng, O), shift: random(rng, O), relu: 0 })],
  ['shift, leaky ReLU 0.1', (rng, O) => ({ shift: random(rng, O), relu: 0.1 })],
];

describe.skipIf(!available)('createNativeInferConv', () => {
  for (const [what, g, num] of cases) {
    for (const mode of modes) {
      if (mode.name.startsWith('Winograd') && !nativeWinogradApplies(g)) continue;
      for (const threads of [1, 2]) {
      it(`conv2d: ${what}, ${threads} thread(s), ${mode.name}, every epilogue`, () => {
        const runner = createNativeInferConv({ threads, minFlopsPerThread: 0, ...mode.options, fallback: null });
        const rng = new Rng(7);
        const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
        const w = random(rng, g.outChannels * (g.channels / g.group) * g.kernelH * g.kernelW);
        for (const [name, make] of epilogues) {
          // A new input each time: columns left from the last call must not pass for this one's.
          const x = random(rng, num * g.channels * g.height * g.width);
          const e = make(rng, g.outChannels);
          const y = new Float32Array(num * g.outChannels * OH * OW).fill(NaN);
          expect(runner.conv2d(g, num, x, w, 1, e, y)).toBe(true);
          expect(worstError(y, reference(g, num, x, w, e)), name).toBeLessThan(mode.tolerance);
        }
      });
      }
    }
  }

  it.each(modes)('conv2d with a folded sum ($name): z = act(c0·first + c1·second), y still written, either operand order', ({ options, tolerance }) => {
    const runner = createNativeInferConv({ threads: 2, minFlopsPerThread: 0, ...options, fallback: null });
    const g = geometry({ channels: 8, height: 12, width: 12, padH: 1, padW: 1, outChannels: 16 });
    const rng = new Rng(3);
    const x = random(rng, g.channels * 144), w = random(rng, 16 * 8 * 9), other = random(rng, 16 * 144);
    const e: ConvEpilogue = { scale: random(rng, 16), shift: random(rng, 16), relu: null };
    const want = reference(g, 1, x, w, e);
    for (const convFirst of [true, false]) {
      const y = new Float32Array(16 * 144), z = new Float32Array(16 * 144).fill(NaN);
      runner.conv2d(g, 1, x, w, 1, e, y, {}, { other, convFirst, c0: 0.5, c1: -2, relu: 0, z });
      expect(worstError(y, want)).toBeLessThan(tolerance);
      const zWant = Float64Array.from(want, (v, i) => Math.max(0, convFirst ? 0.5 * v - 2 * other[i]! : 0.5 * other[i]! - 2 * v));
      expect(worstError(z, zWant), `convFirst ${convFirst}`).toBeLessThan(4 * tolerance);
    }
  });

  it('conv2d by Winograd in two groups with a folded sum: each group\'s channels of y and z', () => {
    const runner = createNativeInferConv({ threads: 2, minFlopsPerThread: 0, winograd: true, fallback: null });
    const g = geometry({ channels: 12, height: 13, width: 13, padH: 1, padW: 1, outChannels: 10, group: 2 });
    expect(nativeWinogradApplies(g)).toBe(true);
    const rng = new Rng(12), S = 169;
    const x = random(rng, 2 * 12 * S), w = random(rng, 10 * 6 * 9), other = random(rng, 2 * 10 * S);
    const e: ConvEpilogue = { scale: random(rng, 10), shift: random(rng, 10), relu: 0 };
    const want = reference(g, 2, x, w, e);
    const y = new Float32Array(2 * 10 * S).fill(NaN), z = new Float32Array(2 * 10 * S).fill(NaN);
    runner.conv2d(g, 2, x, w, 1, e, y, {}, { other, convFirst: false, c0: 2, c1: 0.5, relu: null, z });
    expect(worstError(y, want)).toBeLessThan(2e-4);
    expect(worstError(z, Float64Array.from(want, (v, i) => 2 * other[i]! + 0.5 * v))).toBeLessThan(8e-4);
  });

  it('packs the weights once per version, and again when the version changes', () => {
    const runner = createNativeInferConv({ threads: 1, winograd: false, fallback: null });
    const g = geometry({ channels: 4, height: 8, width: 8, outChannels: 7 });
    const rng = new Rng(2);
    const x = random(rng, 4 * 64), w = random(rng, 7 * 4 * 9), y = new Float32Array(7 * 36);
    runner.conv2d(g, 1, x, w, 1, {}, y);
    expect(runner.stats().cachedEntries).toBe(1);
    const bytes = runner.stats().cachedBytes;
    expect(bytes).toBe(4 * 12 * 36); // 7 rows padded to 12, 36 weights each
    // Changed weights come with a new version (Blob.dataVersion): packed again, in place.
    w[0] = w[0]! + 1;
    runner.conv2d(g, 1, x, w, 2, {}, y);
    expect(worstError(y, reference(g, 1, x, w, {}))).toBeLessThan(2e-5);
    expect(runner.stats()).toMatchObject({ cachedEntries: 1, cachedBytes: bytes });
    runner.release(w);
    expect(runner.stats()).toMatchObject({ cachedEntries: 0, cachedBytes: 0 });
    // No version: packed for that call alone.
    runner.conv2d(g, 1, x, w, undefined, {}, y);
    expect(runner.stats().cachedEntries).toBe(0);
  });

  it('hands Winograd-shaped convolutions to the fallback: 5×5; 3×3 over NATIVE_WINOGRAD_MIN_CHANNELS channels where the native Winograd path is off', () => {
    const calls: number[] = [];
    const fallback = {
      conv2d: (g: Conv2dGeometry) => (calls.push(g.channels), true),
      stats: () => ({ cachedBytes: 0, cachedEntries: 0, memoryBytes: 0 }),
    } as unknown as WasmInferConv;
    const runner = createNativeInferConv({ threads: 1, winograd: false, fallback });
    const rng = new Rng(8);
    for (const channels of [NATIVE_WINOGRAD_MIN_CHANNELS, 16]) {
      const g = geometry({ channels, height: 6, width: 6, padH: 1, padW: 1, outChannels: 16 });
      const x = random(rng, channels * 36), w = random(rng, 16 * channels * 9), y = new Float32Array(16 * 36).fill(NaN);
      runner.conv2d(g, 1, x, w, 1, { relu: 0 }, y);
      if (channels === 16) expect(worstError(y, reference(g, 1, x, w, { relu: 0 }))).toBeLessThan(2e-5);
    }
    // A 5×5 over 16 channels goes too.
    const five = geometry({ channels: 16, height: 8, width: 8, kernelH: 5, kernelW: 5, outChannels: 16 });
    runner.conv2d(five, 1, random(rng, 16 * 64), random(rng, 16 * 16 * 25), 1, {}, new Float32Array(16 * 16));
    // Strided: not Winograd's, stays here.
    const strided = geometry({ channels: 64, height: 6, width: 6, strideH: 2, strideW: 2, outChannels: 8 });
    runner.conv2d(strided, 1, random(rng, 64 * 36), random(rng, 8 * 64 * 9), 1, {}, new Float32Array(8 * 4));
    expect(calls).toEqual([NATIVE_WINOGRAD_MIN_CHANNELS, 16]);
    // With the native Winograd path (the default), 3×3 and 5×5 ones of 16 tiles or more stay here;
    // this 5×5 one, of 4 tiles of 2×2, still goes.
    calls.length = 0;
    const own = createNativeInferConv({ threads: 1, fallback });
    const g = geometry({ channels: 64, height: 16, width: 16, padH: 1, padW: 1, outChannels: 16 });
    const x = random(rng, 64 * 256), w = random(rng, 16 * 64 * 9), y = new Float32Array(16 * 256);
    own.conv2d(g, 1, x, w, 1, {}, y);
    expect(worstError(y, reference(g, 1, x, w, {}))).toBeLessThan(2e-4);
    own.conv2d(five, 1, random(rng, 16 * 64), random(rng, 16 * 16 * 25), 1, {}, new Float32Array(16 * 16));
    expect(calls).toEqual([16]);
    expect(own.stats().cachedBytes).toBe(4 * 36 * 18 * 64); // 36 transformed 16 × 64 matrices, rows padded to 18
  });

  it('hands a convolution whose scratch would pass maxScratchFloats to the fallback (Winograd first, then the columns)', () => {
    const calls: string[] = [];
    const fallback = {
      conv2d: (g: Conv2dGeometry) => (calls.push(`${g.kernelH}×${g.kernelW} over ${g.height}×${g.width}`), true),
      stats: () => ({ cachedBytes: 0, cachedEntries: 0, memoryBytes: 0 }),
    } as unknown as WasmInferConv;
    const rng = new Rng(21);
    const g = geometry({ channels: 4, height: 16, width: 16, padH: 1, padW: 1, outChannels: 4 });
    const x = random(rng, 4 * 256), w = random(rng, 4 * 4 * 9), want = reference(g, 1, x, w, {});
    // Winograd's scratch: 36 · (4 + 4) · 16 tiles = 4608 floats; the columns: 36 · 256 = 9216.
    const runs = [[4608, true, 'Winograd'], [4607, true, null], [9216, false, 'columns'], [9215, false, null]] as const;
    for (const [limit, winograd, stays] of runs) {
      const y = new Float32Array(4 * 256).fill(NaN);
      createNativeInferConv({ threads: 1, maxScratchFloats: limit, winograd, fallback }).conv2d(g, 1, x, w, 1, {}, y);
      if (stays) expect(worstError(y, want), stays).toBeLessThan(2e-4);
    }
    expect(calls).toEqual(['3×3 over 16×16', '3×3 over 16×16']);
  });

  const depthwiseCases: [string, Conv2dGeometry][] = [
    ['3×3 pad 1 (MobileNet\'s)', geometry({ channels: 12, height: 14, width: 13, padH: 1, padW: 1, outChannels: 12, group: 12 })],
    ['3×3 stride 2 pad 1', geometry({ channels: 8, height: 15, width: 16, padH: 1, padW: 1, strideH: 2, strideW: 2, outChannels: 8, group: 8 })],
    // Rows split into even and odd columns 16 at a time, then the rest, for either parity of padW.
    ['3×3 stride 2, no pad, rows of 37', geometry({ channels: 3, height: 9, width: 37, strideH: 2, strideW: 2, outChannels: 3, group: 3 })],
    ['3×3 stride 2 pad 1 × 2, rows of 35', geometry({ channels: 3, height: 8, width: 35, padH: 2, padW: 1, strideH: 2, strideW: 2, outChannels: 3, group: 3 })],
    ['3×3 stride 2 pad 2, rows of 34', geometry({ channels: 3, height: 7, width: 34, padH: 1, padW: 2, strideH: 2, strideW: 2, outChannels: 3, group: 3 })],
    // A padded plane of at most 4096 floats runs flat (rows back to back), stride 2 after one
    // split of the whole plane (an odd padded width gets a zero column); a larger one row by row.
    ['3×3 stride 2 pad 1, padded width 15 (odd)', geometry({ channels: 5, height: 14, width: 13, padH: 1, padW: 1, strideH: 2, strideW: 2, outChannels: 5, group: 5 })],
    ['3×3 pad 1 over 7×7', geometry({ channels: 9, height: 7, width: 7, padH: 1, padW: 1, outChannels: 9, group: 9 })],
    ['3×3 pad 1 over 62×62 (a padded plane of 4096: flat)', geometry({ channels: 2, height: 62, width: 62, padH: 1, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 pad 1 over 63×62 (4160: row by row)', geometry({ channels: 2, height: 63, width: 62, padH: 1, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 stride 2 pad 1 over 72×71 (row by row)', geometry({ channels: 2, height: 72, width: 71, padH: 1, padW: 1, strideH: 2, strideW: 2, outChannels: 2, group: 2 })],
    ['3×3 stride 2, no pad, 120 rows of 37 (row by row)', geometry({ channels: 2, height: 120, width: 37, strideH: 2, strideW: 2, outChannels: 2, group: 2 })],
    ['3×3 stride 3, no pad', geometry({ channels: 5, height: 11, width: 10, strideH: 3, strideW: 3, outChannels: 5, group: 5 })],
    ['5×5 dilation 2 pad 3', geometry({ channels: 6, height: 12, width: 12, kernelH: 5, kernelW: 5, padH: 3, padW: 3, dilationH: 2, dilationW: 2, outChannels: 6, group: 6 })],
    ['3×3 over a 2×2 image (every window past an edge)', geometry({ channels: 4, height: 2, width: 2, padH: 1, padW: 1, outChannels: 4, group: 4 })],
    // The AVX2 kernels read each plane in place. Stride 1 over planes under 56 wide runs in strips
    // of eight output columns swept down the plane (edge strips masked): rows narrower than a
    // vector, a 1×1, the widest such plane, a strip whose last column is the plane's, pad 3 (rows
    // of padding beyond a window's reach), one output row, pads that differ.
    ['3×3 pad 1 over 5×3 (rows narrower than a vector)', geometry({ channels: 3, height: 5, width: 3, padH: 1, padW: 1, outChannels: 3, group: 3 })],
    ['3×3 pad 1 over 1×1', geometry({ channels: 3, height: 1, width: 1, padH: 1, padW: 1, outChannels: 3, group: 3 })],
    ['3×3 pad 1 over 9×55 (the widest plane in strips)', geometry({ channels: 2, height: 9, width: 55, padH: 1, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 pad 1 over 4×18 (an unmasked strip reading the last column)', geometry({ channels: 2, height: 4, width: 18, padH: 1, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 pad 1 over 5×16 (a whole last strip, its last tap past the plane)', geometry({ channels: 2, height: 5, width: 16, padH: 1, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 pad 3 × 1 over 4×12', geometry({ channels: 2, height: 4, width: 12, padH: 3, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 stride 1, no pad, over 3×10 (one output row)', geometry({ channels: 2, height: 3, width: 10, outChannels: 2, group: 2 })],
    ['3×3 stride 1, no pad, rows of 21', geometry({ channels: 3, height: 8, width: 21, outChannels: 3, group: 3 })],
    ['3×3 stride 1 pad 2 × 0 over 7×50', geometry({ channels: 2, height: 7, width: 50, padH: 2, outChannels: 2, group: 2 })],
    ['3×3 stride 1 pad 0 × 2 over 6×9', geometry({ channels: 2, height: 6, width: 9, padW: 2, outChannels: 2, group: 2 })],
    // Otherwise two output rows at a time (an odd last row alone), edge vectors masked.
    ['3×3 pad 1 over 5×56 (a whole vector\'s last tap on the row\'s last column)', geometry({ channels: 2, height: 5, width: 56, padH: 1, padW: 1, outChannels: 2, group: 2 })],
    ['3×3 stride 2 pad 1 over 5×31 (the same at stride 2)', geometry({ channels: 2, height: 5, width: 31, padH: 1, padW: 1, strideH: 2, strideW: 2, outChannels: 2, group: 2 })],
    ['3×3 stride 1 pad 2 × 1 over 6×60', geometry({ channels: 2, height: 6, width: 60, padH: 2, padW: 1, outChannels: 2, group: 2 })],
  ];
  // With the AVX2 branches forbidden, the portable kernels (padded copies) run the same cases.
  for (const wide of [true, false]) {
  for (const [what, g] of depthwiseCases) {
    it(`depthwise: ${what}, 1 and 2 threads, 2 images, every epilogue${wide ? '' : ', portable kernels'}`, () => {
      const rng = new Rng(11);
      const OH = outSize(g.height, g.kernelH, g.padH, g.strideH, g.dilationH), OW = outSize(g.width, g.kernelW, g.padW, g.strideW, g.dilationW);
      const x = random(rng, 2 * g.channels * g.height * g.width), w = random(rng, g.channels * g.kernelH * g.kernelW);
      const addon = nativeAddon();
      addon.allowWide(wide);
      try {
        for (const threads of [1, 2]) {
          const runner = createNativeInferConv({ threads, minFlopsPerThread: 0, fallback: null });
          for (const [name, make] of epilogues) {
            const e = make(rng, g.channels);
            const y = new Float32Array(2 * g.channels * OH * OW).fill(NaN);
            expect(runner.depthwise(g, 2, x, w, e, y)).toBe(true);
            expect(worstError(y, reference(g, 2, x, w, e)), `${name}, ${threads} thread(s)`).toBeLessThan(2e-5);
          }
        }
      } finally {
        addon.allowWide(true);
      }
    });
  }
  }

  it('allowWide: forbidding the AVX2 branches answers false, allowing them again restores what the machine has', () => {
    const addon = nativeAddon();
    const machine = addon.allowWide(true);
    expect(addon.allowWide(false)).toBe(false);
    expect(addon.allowWide(true)).toBe(machine);
  });

  // [H, W, kernel, stride, pad]: Caffe's pooled size rounds up, the last window clipped.
  // 24×20 by 2×2/2: every window whole (eight windows a step, then two); 37 wide by 3×3/2 pad 1:
  // 16 windows by eight, then three. Unpadded 3×3/2 with the last row and column of windows cut
  // (56, 27 wide), and rows too short for a step of eight windows (17 wide).
  const pools: [number, number, number, number, number][] = [
    [113, 113, 3, 2, 0], [14, 13, 3, 2, 1], [7, 7, 2, 2, 0], [5, 6, 3, 1, 1], [24, 20, 2, 2, 0], [40, 37, 3, 2, 1],
    [56, 56, 3, 2, 0], [28, 27, 3, 2, 0], [4, 17, 3, 2, 0],
  ];
  for (const [H, W, k, stride, pad] of pools) {
    it(`maxPool: ${k}×${k} stride ${stride} pad ${pad} over ${H}×${W}, 1 and 2 threads, NaN never taken`, () => {
      let PH = Math.ceil((H + 2 * pad - k) / stride) + 1, PW = Math.ceil((W + 2 * pad - k) / stride) + 1;
      if (pad > 0 && (PH - 1) * stride >= H + pad) PH--;
      if (pad > 0 && (PW - 1) * stride >= W + pad) PW--;
      const planes = 5, rng = new Rng(13);
      const x = random(rng, planes * H * W);
      x[7] = NaN;
      x[W + 2] = NaN;
      x[W + 5] = NaN;
      x[W + 18] = NaN;
      const want = new Float64Array(planes * PH * PW);
      for (let p = 0; p < planes; p++) for (let ph = 0; ph < PH; ph++) for (let pw = 0; pw < PW; pw++) {
        const h0 = Math.max(ph * stride - pad, 0), h1 = Math.min(ph * stride - pad + k, H);
        const w0 = Math.max(pw * stride - pad, 0), w1 = Math.min(pw * stride - pad + k, W);
        let m = -Infinity;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) if (x[(p * H + h) * W + w]! > m) m = x[(p * H + h) * W + w]!;
        want[(p * PH + ph) * PW + pw] = m;
      }
      for (const threads of [1, 2]) {
        const runner = createNativeInferConv({ threads, minFlopsPerThread: 0, fallback: null });
        const y = new Float32Array(planes * PH * PW).fill(NaN);
        expect(runner.maxPool!(planes, H, W, PH, PW, k, k, stride, stride, pad, pad, x, y)).toBe(true);
        expect(Array.from(y)).toEqual(Array.from(want, (v) => Math.fround(v)));
      }
    });
  }

  it('maxPool declines a window that would be empty, and refuses short arrays', () => {
    const runner = createNativeInferConv({ threads: 1, fallback: null });
    expect(runner.maxPool!(1, 4, 4, 4, 4, 2, 2, 2, 2, 1, 1, new Float32Array(16), new Float32Array(16))).toBe(false);
    expect(() => runner.maxPool!(2, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, new Float32Array(16), new Float32Array(8))).toThrow(/need x, y of 32, 8/);
  });

  it('innerProduct: y = x·wᵀ + bias, one row (matrix-vector) and seven', () => {
    const runner = createNativeInferConv({ threads: 2, minFlopsPerThread: 0, fallback: null });
    const rng = new Rng(5);
    const N = 70, K = 33;
    const w = random(rng, N * K), bias = random(rng, N);
    for (const M of [1, 7]) {
      const x = random(rng, M * K), y = new Float32Array(M * N).fill(NaN);
      expect(runner.innerProduct(M, N, K, x, w, 1, bias, y)).toBe(true);
      const want = new Float64Array(M * N);
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let s = bias[n]!;
        for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
        want[m * N + n] = s;
      }
      expect(worstError(y, want), `M=${M}`).toBeLessThan(2e-5);
    }
  });

  // [beta, size, images, channels, plane, k]: every beta with square roots; windows clipped at
  // both ends, wider than the channels, and of one; planes with and without a vector tail.
  const lrnCases: [number, number, number, number, number, number][] = [
    [0.75, 5, 2, 7, 13, 2], [0.5, 3, 1, 4, 64, 1], [1, 5, 1, 2, 9, 1.5], [0.75, 1, 3, 3, 8, 1], [0.75, 5, 1, 16, 3 * 29, 2],
  ];
  for (const [beta, size, num, C, P, k] of lrnCases) {
    it(`lrnAcross: beta ${beta}, size ${size}, ${num}×${C} planes of ${P}: the WebAssembly kernel's bits, 1 and 2 threads, s written or not`, () => {
      const rng = new Rng(31);
      const n = num * C * P, an = 1e-2 / size;
      const x = random(rng, n).map((v) => 4 * v);
      const wasm = defaultWasmInfer()!;
      const sWant = new Float32Array(n), yWant = new Float32Array(n);
      wasm.lrnAcross(x, sWant, yWant, num, C, P, size, k, an, beta);
      // And against the definition in float64.
      const pre = (size - 1) / 2;
      for (let i = 0; i < n; i++) {
        const c = Math.floor(i / P) % C, base = i - c * P;
        let q = 0;
        for (let cc = Math.max(0, c - pre); cc <= Math.min(C - 1, c + pre); cc++) q += x[base + cc * P]! ** 2;
        expect(Math.abs(yWant[i]! - x[i]! * (k + an * q) ** -beta)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(x[i]!)));
      }
      for (const threads of [1, 2]) {
        const runner = createNativeInferConv({ threads, minFlopsPerThread: 0, fallback: null });
        const s = new Float32Array(n).fill(NaN), y = new Float32Array(n).fill(NaN);
        expect(runner.lrnAcross!(x, s, y, num, C, P, size, k, an, beta)).toBe(true);
        expect(Array.from(y), `${threads} thread(s)`).toEqual(Array.from(yWant));
        expect(Array.from(s), `${threads} thread(s)`).toEqual(Array.from(sWant));
        const y2 = new Float32Array(n).fill(NaN);
        expect(runner.lrnAcross!(x, null, y2, num, C, P, size, k, an, beta)).toBe(true);
        expect(Array.from(y2)).toEqual(Array.from(yWant));
      }
    });
  }

  it('lrnAcross declines other betas, even sizes and arrays that share memory, and refuses short arrays', () => {
    const runner = createNativeInferConv({ threads: 1, fallback: null });
    const x = new Float32Array(24).fill(1), y = new Float32Array(24);
    expect(runner.lrnAcross!(x, null, y, 1, 3, 8, 5, 1, 1e-3, 0.6)).toBe(false);
    expect(runner.lrnAcross!(x, null, y, 1, 3, 8, 4, 1, 1e-3, 0.75)).toBe(false);
    expect(runner.lrnAcross!(x, null, x, 1, 3, 8, 5, 1, 1e-3, 0.75)).toBe(false);
    expect(runner.lrnAcross!(x, null, x.subarray(8), 1, 2, 8, 5, 1, 1e-3, 0.75)).toBe(false);
    expect(runner.lrnAcross!(x, y, y, 1, 3, 8, 5, 1, 1e-3, 0.75)).toBe(false);
    expect(y.every((v) => v === 0)).toBe(true);
    expect(() => runner.lrnAcross!(x, null, new Float32Array(10), 1, 3, 8, 5, 1, 1e-3, 0.75)).toThrow(/need x, y of 24 elements/);
    expect(() => runner.lrnAcross!(x, new Float32Array(3), y, 1, 3, 8, 5, 1, 1e-3, 0.75)).toThrow(/need x, y, s of 24 elements/);
  });

  // [planes, size]: eight planes at a time and a tail, one plane, a one-value plane.
  for (const [planes, size] of [[17, 49], [8, 196], [1, 13], [5, 1], [1000, 196]] as const) {
    it(`aveGlobal: ${planes} planes of ${size}, the WebAssembly kernel's bits, 1 and 2 threads`, () => {
      const rng = new Rng(41);
      const x = random(rng, planes * size).map((v) => 100 * v);
      const want = new Float32Array(planes);
      defaultWasmInfer()!.aveGlobal(planes, size, size, x, want);
      for (let p = 0; p < planes; p++) {
        let sum = 0;
        for (let t = 0; t < size; t++) sum += x[p * size + t]!;
        expect(Math.abs(want[p]! - sum / size)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(sum / size)));
      }
      for (const threads of [1, 2]) {
        const y = new Float32Array(planes).fill(NaN);
        expect(createNativeInferConv({ threads, minFlopsPerThread: 0, fallback: null }).aveGlobal!(planes, size, size, x, y)).toBe(true);
        expect(Array.from(y), `${threads} thread(s)`).toEqual(Array.from(want));
      }
    });
  }

  it('aveGlobal refuses short arrays and sizes that are not positive integers', () => {
    const runner = createNativeInferConv({ threads: 1, fallback: null });
    expect(() => runner.aveGlobal!(3, 4, 4, new Float32Array(11), new Float32Array(3))).toThrow(/need x, y of 12, 3 elements/);
    expect(() => runner.aveGlobal!(3, 4, 4, new Float32Array(12), new Float32Array(2))).toThrow(MathError);
    expect(() => runner.aveGlobal!(0, 4, 4, new Float32Array(12), new Float32Array(3))).toThrow(/positive integers/);
  });

  it('refuses short arrays and a depthwise call whose groups are not its channels, naming what was expected', () => {
    const runner = createNativeInferConv({ threads: 1, fallback: null });
    const g = geometry({});
    const x = new Float32Array(3 * 7 * 6), w = new Float32Array(4 * 3 * 9);
    expect(() => runner.conv2d(g, 1, x, w, 1, {}, new Float32Array(10))).toThrow(MathError);
    expect(() => runner.conv2d(g, 1, x, w, 1, { shift: new Float32Array(2) }, new Float32Array(4 * 5 * 4))).toThrow(/scale and shift need 4 elements/);
    expect(() => runner.conv2d(g, 1, x, w, 1, {}, new Float32Array(80), {}, { other: new Float32Array(3), convFirst: true, c0: 1, c1: 1, relu: null, z: new Float32Array(80) }))
      .toThrow(/other and z need 80 elements/);
    expect(() => runner.depthwise(g, 1, x, w, {}, new Float32Array(80))).toThrow(/must be equal/);
    expect(() => runner.innerProduct(2, 3, 4, new Float32Array(7), new Float32Array(12), 1, null, new Float32Array(6))).toThrow(MathError);
  });
});
