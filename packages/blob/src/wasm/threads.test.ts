import v8 from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { createWasmConv2d, type Conv2dGeometry, type Conv2dPass } from './conv-wasm.js';
import { checkAgainstNaive, defineAgreementTests } from './gemm-wasm-cases.js';
import { createWasmGemmKernel } from './gemm-wasm.js';
import { splitSlabs } from './gemm-threaded.js';
import {
  activeThreads, getNumThreads, initThreads, planThreads, setNumThreads, shutdownThreads, threadPoolInfo,
} from './threads.js';

// This file runs in its own vitest worker process: turn relaxed SIMD on before anything
// compiles (as the CLI does), so both builds are exercised on threads.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

// Every product, however small, is split (minFlopsPerThread: 1), so edge slabs and tiny
// shares are covered by the shared agreement cases.
const split = { minFlopsPerThread: 1 } as const;

describe('kernel thread count', () => {
  it('setNumThreads(1) starts no worker, even for products worth splitting', () => {
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    const k = createWasmGemmKernel({ relaxed: false })!;
    checkAgainstNaive(k, false, false, 160, 160, 160, 1, 0);
    expect(threadPoolInfo().started).toBe(0);
    expect(planThreads(1e12)).toBe(1);
  });

  it('rejects counts that are not positive integers', () => {
    expect(() => setNumThreads(0)).toThrow(/positive integer, got 0/);
    expect(() => setNumThreads(1.5)).toThrow(/positive integer/);
  });

  it('initThreads(2) makes two threads usable and small products stay on one', async () => {
    expect(await initThreads(2)).toBe(2);
    const info = threadPoolInfo();
    expect(info).toMatchObject({ requested: 2, active: 2, started: 1, supported: true, reason: null });
    expect(planThreads(1e9)).toBe(2);
    expect(planThreads(1e5)).toBe(1);
    expect(planThreads(1e9, 1)).toBe(1);
  });
});

for (const relaxed of [false, true]) {
  describe(`GEMM on two threads (${relaxed ? 'relaxed SIMD' : 'SIMD'})`, () => {
    beforeAll(async () => {
      expect(await initThreads(2)).toBe(2);
    });
    // The full shared suite once (its 200×300×150 float64 oracle is the slow part); the relaxed
    // build gets the slab cases below, which go through the same dispatch.
    if (!relaxed) defineAgreementTests(() => createWasmGemmKernel({ relaxed, ...split })!);

    it('splits tall products by rows and wide ones by columns (both agree with float64)', () => {
      const k = createWasmGemmKernel({ relaxed, ...split })!;
      checkAgainstNaive(k, true, true, 301, 9, 70, -1.5, 0.5); // row slabs
      checkAgainstNaive(k, false, true, 5, 301, 70, 2, 0); // column slabs
      checkAgainstNaive(k, true, false, 3, 3, 500, 1, 1); // fewer tiles than threads
      for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        checkAgainstNaive(k, tA, tB, 67, 45, 300, 0.5, tA ? 0 : -1); // two k blocks, edge tiles
      }
    });

    it('row slabs with the caller staging its own rows while the worker runs (beta = 0 with NaN in C, beta != 0)', () => {
      const k = createWasmGemmKernel({ relaxed, ...split })!;
      // Untransposed A, rows split: the overlapped staging path, uneven slabs (caller's smaller).
      checkAgainstNaive(k, false, false, 130, 24, 37, 1, 0, 5, { nanInC: true });
      checkAgainstNaive(k, false, true, 130, 24, 37, -0.5, 1.5);
      checkAgainstNaive(k, false, false, 9, 8, 600, 1, 1); // three tiles down: 2 + 1
    });
  });
}

describe('splitSlabs', () => {
  it('covers the extent with contiguous whole-unit slabs, the caller\'s scaled by its weight', () => {
    expect(splitSlabs(512, 2, 4)).toEqual([0, 256, 512]);
    const b = splitSlabs(512, 2, 4, 0.97);
    expect(b[0]).toBe(0);
    expect(b[2]).toBe(512);
    expect(b[1]! % 4).toBe(0);
    expect(b[1]!).toBeLessThan(256);
    expect(b[1]!).toBeGreaterThan(240);
    expect(splitSlabs(301, 2, 4)).toEqual([0, 152, 301]); // the last slab takes the ragged edge
    expect(splitSlabs(100, 3, 8)).toEqual([0, 32, 72, 100]); // 13 tiles: 4, 5 and 4 (the last ragged)
    for (const [extent, parts, unit, w] of [[9, 2, 4, 1], [5, 3, 4, 0.5], [1000, 7, 8, 0.9]] as const) {
      const s = splitSlabs(extent, parts, unit, w);
      expect(s).toHaveLength(parts + 1);
      expect(s[parts]).toBe(extent);
      for (let t = 0; t < parts; t++) {
        expect(s[t + 1]!).toBeGreaterThanOrEqual(s[t]!);
        if (s[t + 1]! < extent) expect(s[t + 1]! % unit).toBe(0);
      }
    }
  });
});

function random(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

describe('convolution passes on two threads', () => {
  beforeAll(async () => {
    expect(await initThreads(2)).toBe(2);
  });
  afterAll(async () => {
    await shutdownThreads();
    expect(threadPoolInfo().started).toBe(0);
    expect(activeThreads()).toBe(1);
  });

  // Threaded runs must equal the one-thread runner (itself checked against float64 in
  // conv-wasm.test.ts) up to summation order of the gradients.
  const cases: Array<[string, Conv2dGeometry, number, number]> = [
    ['LeNet conv2-like, odd batch', { channels: 4, height: 12, width: 12, kernelH: 5, kernelW: 5, padH: 0, padW: 0, strideH: 1, strideW: 1, dilationH: 1, dilationW: 1, outChannels: 6, group: 1 }, 7, 3],
    ['padded, strided, grouped', { channels: 4, height: 9, width: 7, kernelH: 3, kernelW: 2, padH: 1, padW: 1, strideH: 2, strideW: 1, dilationH: 1, dilationW: 2, outChannels: 6, group: 2 }, 5, 64],
    // More calls than one thread's command list holds: the pass must run as several jobs.
    ['many one-image blocks, grouped', { channels: 4, height: 3, width: 3, kernelH: 1, kernelW: 1, padH: 0, padW: 0, strideH: 1, strideW: 1, dilationH: 1, dilationW: 1, outChannels: 4, group: 4 }, 600, 1],
  ];
  for (const relaxed of [false, true]) {
    for (const [name, g, num, chunk] of cases) {
      it(`${name} (${relaxed ? 'relaxed' : 'SIMD'}): forward, weight/bias gradients (accumulating), data gradient`, () => {
        const one = createWasmConv2d({ relaxed, threads: 1 })!;
        const two = createWasmConv2d({ relaxed, ...split })!;
        const rng = new Rng(num * 31 + g.group);
        const OH = Math.floor((g.height + 2 * g.padH - (g.dilationH * (g.kernelH - 1) + 1)) / g.strideH) + 1;
        const OW = Math.floor((g.width + 2 * g.padW - (g.dilationW * (g.kernelW - 1) + 1)) / g.strideW) + 1;
        const inN = num * g.channels * g.height * g.width, outN = num * g.outChannels * OH * OW;
        const K = (g.channels / g.group) * g.kernelH * g.kernelW;
        const x = random(rng, inN), dy = random(rng, outN), w = random(rng, g.outChannels * K), b = random(rng, g.outChannels);
        const dw0 = random(rng, g.outChannels * K), db0 = random(rng, g.outChannels);
        const run = (c: typeof one) => {
          const out = { y: new Float32Array(outN), dx: new Float32Array(inN).fill(Number.NaN), dw: dw0.slice(), db: db0.slice() };
          c.run(g, num, chunk, { colIn: x, weights: w, bias: b, gemmOut: out.y } as Conv2dPass);
          c.run(g, num, chunk, { colIn: x, gemmIn: dy, weights: w, weightDiff: out.dw, biasDiff: out.db, colOut: out.dx });
          return out;
        };
        const a = run(one), t = run(two);
        for (const key of ['y', 'dx', 'dw', 'db'] as const) {
          const p = a[key], q = t[key];
          for (let i = 0; i < p.length; i++) {
            if (!(Math.abs(p[i]! - q[i]!) <= 1e-5 * (1 + Math.abs(p[i]!)))) {
              expect.fail(`${key}[${i}]: one thread ${p[i]}, two threads ${q[i]}`);
            }
          }
        }
      });
    }
  }
});
