import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { afterAll, describe, expect, it } from 'vitest';
import { allocHost, allocHostInt32, setHostAllocator } from '../host-memory.js';
import { Rng } from '../rng.js';
import { TRAIN_GENERATED_PATH, renderTrainWasm } from '../../scripts/build-train-wasm.mjs';
import { engine, initThreads, shutdownThreads } from './threads.js';
import { decodeBase64 } from './wasm-api.js';
import { TRAIN_WASM_RELAXED_SIMD_BASE64 } from './generated/train-wasm.js';
import { createWasmTrain, SMALL_CONV_MAX_TAPS, type PoolGeometry, type SmallConvGeometry, type WasmTrain } from './train-wasm.js';

// Relaxed SIMD is behind --experimental-wasm-relaxed-simd in Node 20; this file runs in its own
// worker process, so turning it on here (before anything compiles) reaches no other test file.
const wasmValidate = (bytes: Uint8Array): boolean =>
  (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes);
if (!wasmValidate(decodeBase64(TRAIN_WASM_RELAXED_SIMD_BASE64))) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

function kernels(): WasmTrain {
  const k = createWasmTrain();
  if (!k) throw new Error('WebAssembly SIMD is unavailable in this Node');
  return k;
}

/** Caffe's output size (CEIL, the last window starting inside the image or its padding). */
function geometry(H: number, W: number, k: [number, number], s: [number, number], p: [number, number]): PoolGeometry {
  const out = (n: number, kk: number, ss: number, pp: number) => {
    let o = Math.ceil((n + 2 * pp - kk) / ss) + 1;
    if (pp > 0 && (o - 1) * ss >= n + pp) o--;
    return o;
  };
  return {
    height: H, width: W, pooledH: out(H, k[0], s[0], p[0]), pooledW: out(W, k[1], s[1], p[1]),
    kernelH: k[0], kernelW: k[1], strideH: s[0], strideW: s[1], padH: p[0], padW: p[1],
  };
}

/** Window by window: clipped MAX scan (first element seeds, strict >), float32 AVE sum over pool_size, and AVE backward. */
function reference(g: PoolGeometry, planes: number, src: Float32Array, topDiff: Float32Array) {
  const { height: H, width: W, pooledH: PH, pooledW: PW } = g;
  const max: number[] = [], arg: number[] = [], ave: number[] = [];
  const bottom = new Float32Array(planes * H * W);
  for (let q = 0; q < planes; q++) {
    for (let y = 0; y < PH; y++) {
      for (let x = 0; x < PW; x++) {
        const hs = y * g.strideH - g.padH, ws = x * g.strideW - g.padW;
        const he = Math.min(hs + g.kernelH, H + g.padH), we = Math.min(ws + g.kernelW, W + g.padW);
        const size = (he - hs) * (we - ws);
        let best = NaN, at = -1, sum = 0;
        for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) {
          for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) {
            const v = src[q * H * W + h * W + w]!;
            sum = Math.fround(sum + v);
            if (at < 0 || v > best) [best, at] = [v, h * W + w];
          }
        }
        max.push(best);
        arg.push(at);
        ave.push(Math.fround(sum / size));
        const d = Math.fround(topDiff[q * PH * PW + y * PW + x]! / size);
        for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) {
          for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) bottom[q * H * W + h * W + w] += d;
        }
      }
    }
  }
  return { max, arg, ave, bottom: Array.from(bottom) };
}

describe('createWasmTrain', () => {
  it('the generated module is in sync with scripts/train-wat.mjs (else run node packages/blob/scripts/build-train-wasm.mjs)', async () => {
    expect(readFileSync(TRAIN_GENERATED_PATH, 'utf8') === (await renderTrainWasm()), `${TRAIN_GENERATED_PATH} is stale`).toBe(true);
  });

  it('reluBackward: dy where x > 0, slope·dy elsewhere (0 and NaN inputs take the slope), odd lengths', () => {
    const rng = new Rng(3);
    for (const n of [0, 1, 7, 70001]) {
      for (const slope of [0, 0.25]) {
        const x = Float32Array.from({ length: n }, () => rng.int(5) - 2);
        if (n > 5) x[5] = NaN;
        const dy = Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
        const dx = new Float32Array(n).fill(7);
        kernels().reluBackward(x, dy, dx, n, slope);
        expect(Array.from(dx)).toEqual(Array.from(dy, (d, i) => Math.fround(d * (x[i]! > 0 ? 1 : slope))));
      }
    }
    // In place (dx is dy).
    const x = Float32Array.of(1, -1, 2, 0, 3), dy = Float32Array.of(1, 2, 3, 4, 5);
    kernels().reluBackward(x, dy, dy, 5, 0);
    expect(Array.from(dy)).toEqual([1, 0, 3, 0, 5]);
  });

  const cases: [string, number, number, number, [number, number], [number, number], [number, number]][] = [
    // name, planes, H, W, kernel, stride, pad
    ['2×2 s2 (LeNet)', 5, 12, 12, [2, 2], [2, 2], [0, 0]],
    ['2×2 s2 odd plane (ceil: cut last row and column)', 3, 7, 9, [2, 2], [2, 2], [0, 0]],
    ['3×3 s2 on 32×32 (CIFAR-10 pool1, last window cut)', 3, 32, 32, [3, 3], [2, 2], [0, 0]],
    ['3×3 s2 on 16×16 (CIFAR-10 pool2/pool3)', 4, 16, 16, [3, 3], [2, 2], [0, 0]],
    ['3×3 s1 p1', 2, 5, 6, [3, 3], [1, 1], [1, 1]],
    ['3×3 s2 p1 on wider rows', 3, 8, 21, [3, 3], [2, 2], [1, 1]],
    ['k3 s2 p2 on 3×3 (windows mostly padding)', 2, 3, 3, [3, 3], [2, 2], [2, 2]],
    ['rectangular 3×2 kernel, strides 1×3, pad 1×1', 2, 6, 11, [3, 2], [1, 3], [1, 1]],
    ['4×5 kernel, stride 3, pad 2×1', 2, 9, 13, [4, 5], [3, 3], [2, 1]],
    ['global 7×6', 3, 7, 6, [7, 6], [1, 1], [0, 0]],
    ['1×1 plane', 3, 1, 1, [1, 1], [1, 1], [0, 0]],
    ['2×2 s1 (unrolled 2-wide, stride 1)', 2, 5, 11, [2, 2], [1, 1], [0, 0]],
    ['3×3 s3 p1 (unrolled 3-wide, any stride)', 2, 10, 14, [3, 3], [3, 3], [1, 1]],
    ['5×5 s2 p2 (column loop, stride 2)', 2, 9, 19, [5, 5], [2, 2], [2, 2]],
    ['many planes in several chunks', 300, 16, 17, [3, 3], [2, 2], [0, 0]],
  ];
  for (const [name, planes, H, W, k, s, p] of cases) {
    it(`${name}: MAX values and argmax, AVE forward and backward equal the window definition`, () => {
      const g = geometry(H, W, k, s, p);
      const rng = new Rng(planes * H + W);
      const n = planes * H * W, m = planes * g.pooledH * g.pooledW;
      // Few distinct values so windows hold ties; some NaNs (a first element among them) and −0/+0.
      const src = Float32Array.from({ length: n }, () => rng.int(4) - 2);
      src[0] = NaN;
      src[n - 3] = NaN;
      if (n > 8) src[7] = -0;
      const want = reference(g, planes, src, Float32Array.from({ length: m }, (_, i) => (i % 13) - 6.5));
      const dst = new Float32Array(m).fill(-7), idx = new Int32Array(m).fill(-7);
      kernels().pool('max', g, planes, src, dst, idx);
      expect(Array.from(dst)).toEqual(want.max);
      expect(Array.from(idx)).toEqual(want.arg);
      // MAX backward: each top diff added at its argmax (overlapping windows accumulate).
      const topMax = Float32Array.from({ length: m }, (_, i) => (i % 13) - 6);
      const back = new Float32Array(n).fill(NaN);
      kernels().maxUnpool(topMax, idx, planes, H * W, g.pooledH * g.pooledW, back);
      const wantBack = new Float32Array(n);
      for (let i = 0; i < m; i++) wantBack[Math.floor(i / (g.pooledH * g.pooledW)) * H * W + idx[i]!]! += topMax[i]!;
      expect(Array.from(back)).toEqual(Array.from(wantBack));
      // AVE on finite real-valued data (float32 sums in Caffe's order).
      const real = Float32Array.from({ length: n }, () => rng.uniform() * 4 - 2);
      const top = Float32Array.from({ length: m }, () => rng.uniform() - 0.5);
      const wantAve = reference(g, planes, real, top);
      const ave = new Float32Array(m).fill(-7);
      kernels().pool('ave', g, planes, real, ave, null);
      expect(Array.from(ave)).toEqual(wantAve.ave);
      const bottom = new Float32Array(n).fill(NaN);
      kernels().aveUnpool(g, planes, top, bottom);
      // The same terms per cell, grouped by output row: equal up to float32 rounding.
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(bottom[i]! - wantAve.bottom[i]!) / Math.max(1, Math.abs(wantAve.bottom[i]!)));
      expect(worst).toBeLessThanOrEqual(2e-6);
      // One output row per cell (stride ≥ kernel rows): exactly Caffe's order.
      if (g.strideH >= g.kernelH && g.padH === 0) expect(Array.from(bottom)).toEqual(wantAve.bottom);
    });
  }

  it('rejects windows with no cell of the plane, short arrays and bad geometry', () => {
    // k2 s2 p1 on 2×2 with a third output row would start in the padding past the plane.
    const g = { ...geometry(4, 4, [2, 2], [2, 2], [0, 0]) };
    expect(() => kernels().pool('max', { ...g, pooledH: 4 }, 1, new Float32Array(16), new Float32Array(32), new Int32Array(32))).toThrow(/holds no cell/);
    expect(() => kernels().pool('max', g, 2, new Float32Array(16), new Float32Array(8), new Int32Array(8))).toThrow(/need src 32/);
    expect(() => kernels().pool('max', g, 1, new Float32Array(16), new Float32Array(4), null)).toThrow(/idx 4/);
    expect(() => kernels().aveUnpool({ ...g, strideW: 0 }, 1, new Float32Array(4), new Float32Array(16))).toThrow(/strideW must be a positive integer/);
    expect(() => kernels().maxUnpool(new Float32Array(4), Int32Array.of(0, 1, 16, 2), 1, 16, 4, new Float32Array(16))).toThrow(/outside the plane of 16/);
    expect(() => kernels().maxUnpool(new Float32Array(4), Int32Array.of(0, 1, -1, 2), 1, 16, 4, new Float32Array(16))).toThrow(/outside the plane/);
    expect(() => kernels().maxUnpool(new Float32Array(4), new Int32Array(4), 1, 16, 4, new Float32Array(15))).toThrow(/bottomDiff 16/);
    expect(() => kernels().reluBackward(new Float32Array(2), new Float32Array(3), new Float32Array(3), 3, 0)).toThrow(/x has 2 elements, needs 3/);
  });

  describe('sgdStep', () => {
    /** SGDSolver's JS loops: regularize (L2), sgdUpdate, Blob.update. */
    const reference = (w: Float32Array, g: Float32Array, h: Float32Array, rate: number, momentum: number, decay: number) => {
      if (decay) for (let i = 0; i < g.length; i++) g[i] = g[i]! + decay * w[i]!;
      for (let i = 0; i < g.length; i++) {
        h[i] = rate * g[i]! + momentum * h[i]!;
        g[i] = h[i]!;
      }
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - g[i]!;
    };
    // Lengths around the 4-lane steps and past one staging chunk (65536 floats).
    for (const n of [1, 3, 4, 7, 1000, 65536 + 5]) {
      for (const [rate, momentum, decay] of [[0.01, 0.9, 0.0005], [0.1, 0, 0], [1e-3, 0.99, 5e-4 * 3]] as const) {
        it(`${n} floats, rate ${rate}, momentum ${momentum}, decay ${decay}: bit-identical to the JS loops`, () => {
          const rng = new Rng(n + 3);
          const special = [0, -0, NaN, Infinity, -Infinity, 1e-40, -3e38, 1.5];
          const fill = () => Float32Array.from({ length: n }, (_, i) => (i % 13 === 7 ? special[(i >> 4) % special.length]! : rng.gaussian(0, 2)));
          const w = fill(), g = fill(), h = fill();
          const [w2, g2, h2] = [w.slice(), g.slice(), h.slice()];
          reference(w2, g2, h2, rate, momentum, decay);
          const finite = kernels().sgdStep(w, g, h, rate, momentum, decay);
          expect(finite).toBe(w2.every(Number.isFinite));
          expect(Array.from(w)).toEqual(Array.from(w2));
          expect(Array.from(g)).toEqual(Array.from(g2));
          expect(Array.from(h)).toEqual(Array.from(h2));
        });
      }
    }
    it('reports whether every new weight is finite (a float32 overflow included)', () => {
      const k = kernels();
      for (const n of [5, 70000]) {
        const w = new Float32Array(n).fill(1), g = new Float32Array(n).fill(0.5), h = new Float32Array(n);
        expect(k.sgdStep(w, g, h, 0.1, 0.9, 0.01)).toBe(true);
        // The last element only (the scalar tail for n = 5; the second staging chunk for 70000).
        w[n - 1] = -3.4e38;
        g[n - 1] = 3.4e38;
        expect(k.sgdStep(w, g, h, 1, 0, 0)).toBe(false);
        expect(w[n - 1]).toBe(-Infinity);
        w.fill(1);
        g[1] = NaN;
        expect(k.sgdStep(w, g, h, 0.1, 0.9, 0)).toBe(false);
      }
    });

    it('rejects arrays of different lengths', () => {
      expect(() => kernels().sgdStep(new Float32Array(4), new Float32Array(4), new Float32Array(3), 0.1, 0.9, 0)).toThrow(/same length, got 4, 4, 3/);
    });
  });

  describe('smallConvBackward (few-tap convolution weight and bias gradients)', () => {
    /** float64 window sums: dW[o][c,kh,kw] = Σ dy·x over images and outputs, dB[o] = Σ dy. */
    const reference = (g: SmallConvGeometry, num: number, x: Float32Array, dy: Float32Array) => {
      const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, padH, padW, outChannels: O } = g;
      const OH = H + 2 * padH - KH + 1, OW = W + 2 * padW - KW + 1, K = C * KH * KW;
      const dw = new Float64Array(O * K), db = new Float64Array(O);
      for (let n = 0; n < num; n++) for (let o = 0; o < O; o++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
        const d = dy[((n * O + o) * OH + oh) * OW + ow]!;
        db[o] += d;
        for (let c = 0; c < C; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
          const h = oh + kh - padH, w = ow + kw - padW;
          if (h >= 0 && h < H && w >= 0 && w < W) dw[o * K + (c * KH + kh) * KW + kw] += d * x[((n * C + c) * H + h) * W + w]!;
        }
      }
      return { dw, db, OH, OW, K };
    };
    const close = (got: Float32Array, want: Float64Array, base: number) => {
      const scale = Math.max(1, ...Array.from(want, Math.abs));
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - base - want[i]!)).toBeLessThanOrEqual(1e-5 * scale);
    };
    const g = (channels: number, height: number, width: number, kernelH: number, kernelW: number, padH: number, padW: number, outChannels: number) =>
      ({ channels, height, width, kernelH, kernelW, padH, padW, outChannels });
    // name, geometry, images
    const cases: [string, SmallConvGeometry, number][] = [
      ['LeNet conv1 shape (1×28×28, k5, 20 outputs)', g(1, 28, 28, 5, 5, 0, 0, 20), 3],
      ['padded, non-square kernel, outputs and columns not multiples of 4', g(3, 9, 7, 3, 2, 1, 2, 5), 2],
      ['1×k kernel, odd tap count', g(2, 5, 13, 1, 3, 0, 1, 7), 3],
      ['kernel as large as the image (one output per plane)', g(1, 4, 4, 4, 4, 0, 0, 3), 2],
      ['CIFAR-10 conv1 shape (3×32×32, k5 pad 2, 32 outputs)', g(3, 32, 32, 5, 5, 2, 2, 32), 2],
    ];
    const builds = [false, ...(wasmValidate(decodeBase64(TRAIN_WASM_RELAXED_SIMD_BASE64)) ? [true] : [])];
    for (const relaxed of builds) {
      for (const [name, geom, num] of cases) {
        it(`${relaxed ? 'relaxed' : 'plain'} SIMD, ${name}: accumulates the window sums onto the given gradients`, () => {
          const rng = new Rng(21);
          const { OH, OW, K } = reference(geom, 0, new Float32Array(0), new Float32Array(0));
          const x = Float32Array.from({ length: num * geom.channels * geom.height * geom.width }, () => rng.uniform() * 2 - 1);
          const dy = Float32Array.from({ length: num * geom.outChannels * OH * OW }, () => rng.uniform() * 2 - 1);
          const want = reference(geom, num, x, dy);
          // Whole batch in one call, and one image per call (the chunk budget below one image).
          for (const chunk of [undefined, 1]) {
            const k = createWasmTrain({ relaxed, smallConvChunkFloats: chunk })!;
            expect(k.name).toBe(relaxed ? 'wasm-relaxed-simd' : 'wasm-simd');
            const dw = new Float32Array(geom.outChannels * K).fill(0.5), db = new Float32Array(geom.outChannels).fill(-2);
            k.smallConvBackward(geom, num, x, dy, dw, db);
            close(dw, want.dw, 0.5);
            close(db, want.db, -2);
            // Either gradient alone (the other param frozen).
            const dwOnly = new Float32Array(geom.outChannels * K);
            k.smallConvBackward(geom, num, x, dy, dwOnly, null);
            close(dwOnly, want.dw, 0);
            const dbOnly = new Float32Array(geom.outChannels);
            k.smallConvBackward(geom, num, x, dy, null, dbOnly);
            close(dbOnly, want.db, 0);
          }
        });
      }
    }

    it('rejects too many taps, short arrays and bad geometry', () => {
      const k = kernels();
      const geom = g(1, 6, 6, 3, 3, 0, 0, 2);
      const ok = { x: new Float32Array(36), dy: new Float32Array(32), dw: new Float32Array(18), db: new Float32Array(2) };
      const wide = g(SMALL_CONV_MAX_TAPS, 3, 3, 1, 2, 0, 0, 1);
      expect(() => k.smallConvBackward(wide, 1, new Float32Array(9 * SMALL_CONV_MAX_TAPS), new Float32Array(6), null, null)).toThrow(/exceed SMALL_CONV_MAX_TAPS/);
      expect(() => k.smallConvBackward(geom, 1, ok.x, new Float32Array(31), ok.dw, ok.db)).toThrow(/dy 32/);
      expect(() => k.smallConvBackward(geom, 1, ok.x, ok.dy, new Float32Array(17), ok.db)).toThrow(/weightDiff 18/);
      expect(() => k.smallConvBackward(geom, 2, ok.x, ok.dy, ok.dw, ok.db)).toThrow(/x 72/);
      expect(() => k.smallConvBackward({ ...geom, kernelH: 7 }, 1, ok.x, ok.dy, ok.dw, ok.db)).toThrow(/leaves no output/);
      expect(() => k.smallConvBackward({ ...geom, padW: -1 }, 1, ok.x, ok.dy, ok.dw, ok.db)).toThrow(/padW must be a non-negative integer/);
    });
  });
});

describe.skipIf(process.env.CAFFE_TS_GEMM === 'js')("createWasmTrain on the kernel memory (the 'wasm' host allocator's blobs)", () => {
  afterAll(async () => {
    await shutdownThreads();
  });
  /** A copy of `a` in the kernel threads' shared memory, as a blob of the 'wasm' allocator holds it. */
  const resident = <T extends Float32Array | Int32Array>(a: T): T => {
    const prev = setHostAllocator('wasm');
    try {
      const out = (a instanceof Int32Array ? allocHostInt32(a.length) : allocHost('float32', a.length).array) as T;
      if (engine()!.offsetOf(out) < 0) throw new Error('no shared WebAssembly memory in this Node');
      out.set(a);
      return out;
    } finally {
      setHostAllocator(prev);
    }
  };
  const rng = new Rng(21);
  const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * scale);
  /** Each placement: every operand plain, every operand resident, and alternating. */
  const placements: [string, (i: number) => boolean][] = [['plain', () => false], ['resident', () => true], ['mixed', (i) => i % 2 === 1]];
  const place = <T extends Float32Array | Int32Array>(how: (i: number) => boolean, arrays: T[]): T[] =>
    arrays.map((a, i) => (how(i) ? resident(a) : (a.slice() as T)));

  for (const relaxed of [false, true]) {
    const k = createWasmTrain({ relaxed });
    if (!k) continue;
    const label = relaxed ? 'relaxed' : 'plain';

    it(`${label}: reluBackward, sgdStep, maxUnpool give the own-memory results bit for bit, in place or staged`, () => {
      const n = 70001;
      const x = rand(n), dy = rand(n), w = rand(n), g = rand(n, 0.1), h = rand(n, 0.01);
      const idx = Int32Array.from({ length: 3 * 50 }, () => rng.int(200));
      const top = rand(3 * 50);
      const results = placements.map(([, how]) => {
        const [rx, rdy, rdx] = place(how, [x, dy, new Float32Array(n)]);
        k.reluBackward(rx!, rdy!, rdx!, n, 0.25);
        const [rw, rg, rh] = place(how, [w, g, h]);
        const finite = k.sgdStep(rw!, rg!, rh!, 0.01, 0.9, 5e-4);
        const [rt, rb] = place(how, [top, new Float32Array(3 * 200).fill(NaN)]);
        k.maxUnpool(rt!, how(1) ? resident(idx) : idx, 3, 200, 50, rb!);
        return [rdx, rw, rg, rh, rb].map((a) => Array.from(a!)).concat([[finite ? 1 : 0]]);
      });
      expect(results[1]).toEqual(results[0]);
      expect(results[2]).toEqual(results[0]);
      // In place, dx may be dy; the call runs in the shared memory (its scratch block), not the own one.
      const e = engine()!, scratch = e.scratch.bind(e);
      let shared = 0;
      e.scratch = (bytes, what) => (shared++, scratch(bytes, what));
      try {
        const both = resident(dy);
        k.reluBackward(resident(x), both, both, n, 0.25);
        expect(Array.from(both)).toEqual(results[0]![0]);
        k.reluBackward(x, dy, new Float32Array(n), n, 0.25);
      } finally {
        e.scratch = scratch;
      }
      expect(shared).toBe(1);
    });

    it(`${label}: MAX/AVE pooling and AVE unpooling (3×3 s2 p1) from the kernel memory equal the own-memory runs`, () => {
      const g = geometry(13, 11, [3, 3], [2, 2], [1, 1]);
      const planes = 5, inN = planes * 13 * 11, outN = planes * g.pooledH * g.pooledW;
      const src = Float32Array.from({ length: inN }, () => rng.int(5) - 2), top = rand(outN);
      const results = placements.map(([, how]) => {
        const [s, dst, dstA, t, bottom] = place(how, [src, new Float32Array(outN), new Float32Array(outN), top, new Float32Array(inN)]);
        const idx = how(0) ? resident(new Int32Array(outN)) : new Int32Array(outN);
        k.pool('max', g, planes, s!, dst!, idx);
        k.pool('ave', g, planes, s!, dstA!, null);
        k.aveUnpool(g, planes, t!, bottom!);
        return [dst, idx, dstA, bottom].map((a) => Array.from(a!));
      });
      expect(results[1]).toEqual(results[0]);
      expect(results[2]).toEqual(results[0]);
    });

    it(`${label}: sgdStep over two kernel threads (w, g, h in place) gives the one-thread bits and finds a non-finite weight in either slice`, async () => {
      const n = 400_003;
      const w = rand(n), g = rand(n, 0.1), h = rand(n, 0.01);
      const run = (poison: number) => {
        const [rw, rg, rh] = [w, g, h].map(resident);
        if (poison >= 0) rg![poison] = Infinity;
        const finite = k.sgdStep(rw!, rg!, rh!, 0.01, 0.9, 5e-4);
        return { finite, arrays: [rw!, rg!, rh!] };
      };
      await initThreads(1);
      const one = run(-1);
      await initThreads(2);
      const e = engine()!, runLists = e.run.bind(e);
      const split: string[] = [];
      e.run = (lists, what, hooks) => (split.push(`${what} ${lists.length}`), runLists(lists, what, hooks));
      try {
        const two = run(-1);
        expect(two.finite).toBe(true);
        // The first differing element of each array (-1: none), not a diff of 400k-element arrays.
        expect(two.arrays.map((a, j) => a.findIndex((v, i) => !Object.is(v, one.arrays[j]![i])))).toEqual([-1, -1, -1]);
        expect(run(17).finite).toBe(false);
        expect(run(n - 2).finite).toBe(false);
      } finally {
        e.run = runLists;
        await initThreads(1);
      }
      expect(one.finite).toBe(true);
      expect(split).toEqual(Array(3).fill('wasm sgdStep (threads) 2'));
    });

    it(`${label}: smallConvBackward over two kernel threads (operands in place) matches one thread to rounding and the float64 sums`, async () => {
      // LeNet conv1 at batch 8: 4.6 MFLOP, enough to split by images.
      const geo: SmallConvGeometry = { channels: 1, height: 28, width: 28, kernelH: 5, kernelW: 5, padH: 0, padW: 0, outChannels: 20 };
      const num = 8, K = 25, imgOut = 20 * 24 * 24;
      const x = rand(num * 28 * 28), dy = rand(num * imgOut);
      const want = new Float64Array(20 * K), wantB = new Float64Array(20);
      for (let n = 0; n < num; n++) for (let o = 0; o < 20; o++) for (let oh = 0; oh < 24; oh++) for (let ow = 0; ow < 24; ow++) {
        const d = dy[n * imgOut + (o * 24 + oh) * 24 + ow]!;
        wantB[o] += d;
        for (let kh = 0; kh < 5; kh++) for (let kw = 0; kw < 5; kw++) want[o * K + kh * 5 + kw] += d * x[n * 784 + (oh + kh) * 28 + ow + kw]!;
      }
      const run = () => {
        const dW = resident(new Float32Array(20 * K)), dB = resident(new Float32Array(20));
        k.smallConvBackward(geo, num, resident(x), resident(dy), dW, dB);
        return [dW, dB];
      };
      await initThreads(1);
      const [oneW, oneB] = run();
      await initThreads(2);
      const e = engine()!, runLists = e.run.bind(e);
      const split: string[] = [];
      e.run = (lists, what, hooks) => (split.push(`${what} ${lists.length}`), runLists(lists, what, hooks));
      let two: Float32Array[];
      try {
        two = run();
      } finally {
        e.run = runLists;
        await initThreads(1);
      }
      expect(split).toEqual(['wasm smallConvBackward (threads) 2']);
      const scale = Math.max(...Array.from(want, Math.abs)), scaleB = Math.max(...Array.from(wantB, Math.abs));
      for (let i = 0; i < want.length; i++) {
        expect(Math.abs(two[0]![i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * scale);
        expect(Math.abs(two[0]![i]! - oneW![i]!)).toBeLessThanOrEqual(1e-5 * scale);
      }
      for (let o = 0; o < 20; o++) {
        expect(Math.abs(two[1]![o]! - wantB[o]!)).toBeLessThanOrEqual(1e-5 * scaleB);
        expect(Math.abs(two[1]![o]! - oneB![o]!)).toBeLessThanOrEqual(1e-5 * scaleB);
      }
    });

    for (const [name, geo] of [
      ['LeNet conv1 (dy read in place)', { channels: 1, height: 12, width: 12, kernelH: 5, kernelW: 5, padH: 0, padW: 0, outChannels: 8 }],
      ['odd output width and channels (dy staged)', { channels: 2, height: 9, width: 10, kernelH: 3, kernelW: 3, padH: 1, padW: 0, outChannels: 5 }],
    ] as [string, SmallConvGeometry][]) {
      it(`${label}: smallConvBackward, ${name}, equals the own-memory run`, () => {
        const num = 3;
        const OH = geo.height + 2 * geo.padH - geo.kernelH + 1, OW = geo.width + 2 * geo.padW - geo.kernelW + 1;
        const K = geo.channels * geo.kernelH * geo.kernelW;
        const x = rand(num * geo.channels * geo.height * geo.width), dy = rand(num * geo.outChannels * OH * OW);
        const dW = rand(geo.outChannels * K), dB = rand(geo.outChannels);
        const results = placements.map(([, how]) => {
          const [rx, rdy, rdW, rdB] = place(how, [x, dy, dW, dB]);
          k.smallConvBackward(geo, num, rx!, rdy!, rdW!, rdB!);
          return [rdW, rdB].map((a) => Array.from(a!));
        });
        expect(results[1]).toEqual(results[0]);
        expect(results[2]).toEqual(results[0]);
      });
    }
  }
});
