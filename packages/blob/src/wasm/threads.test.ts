import v8 from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { createWasmConv2d, type Conv2dGeometry, type Conv2dPass } from './conv-wasm.js';
import { checkAgainstNaive, defineAgreementTests, randomArray } from './gemm-wasm-cases.js';
import { createWasmGemmKernel } from './gemm-wasm.js';
import { coopPlan, splitSlabs } from './gemm-threaded.js';
import { setHostAllocator } from '../host-memory.js';
import { Blob } from '../blob.js';
import {
  activeThreads, engine, getNumThreads, initThreads, kernelThreadSpin, planThreads, setKernelThreadSpin, setNumThreads, shutdownThreads, threadPoolInfo,
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

  it('the worker takes part in the jobs: threadPoolInfo().workerLists counts the lists it ran', async () => {
    expect(await initThreads(2)).toBe(2);
    const k = createWasmGemmKernel({ relaxed: false })!;
    const before = threadPoolInfo().workerLists;
    const A = new Float32Array(256 * 256).fill(0.5), B = new Float32Array(256 * 256).fill(0.25), C = new Float32Array(256 * 256);
    // The caller takes a list back when the worker has not claimed it in time (a busy machine), so
    // a few products, not one, are what the worker is sure to have joined.
    for (let r = 0; r < 200 && threadPoolInfo().workerLists === before; r++) k(false, false, 256, 256, 256, 1, A, B, 0, C);
    expect(threadPoolInfo().workerLists).toBeGreaterThan(before);
    expect(C[0]).toBe(32);
  });

  it('setKernelThreadSpin(0): an idle worker sleeps at once, and the next job still wakes it', async () => {
    expect(() => setKernelThreadSpin(-1)).toThrow(/setKernelThreadSpin: expected a non-negative integer, got -1/);
    const spin = kernelThreadSpin();
    expect(spin).toBeGreaterThan(0);
    expect(await initThreads(2)).toBe(2);
    setKernelThreadSpin(0);
    try {
      expect(kernelThreadSpin()).toBe(0);
      const k = createWasmGemmKernel({ relaxed: false })!;
      const A = new Float32Array(256 * 256).fill(0.5), B = new Float32Array(256 * 256).fill(0.25), C = new Float32Array(256 * 256);
      const before = threadPoolInfo().workerLists;
      // Pauses between the products let the worker fall asleep each time.
      for (let r = 0; r < 200 && threadPoolInfo().workerLists === before; r++) {
        await new Promise((done) => setTimeout(done, 2));
        k(false, false, 256, 256, 256, 1, A, B, 0, C);
      }
      expect(threadPoolInfo().workerLists).toBeGreaterThan(before);
      expect(C[0]).toBe(32);
    } finally {
      setKernelThreadSpin(spin);
    }
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

    it('cooperative gemm_mt: k blocks alternating B buffers, N past NC, many row tasks (float64 agreement)', () => {
      const k = createWasmGemmKernel({ relaxed, ...split })!;
      checkAgainstNaive(k, false, false, 37, 29, 1100, 1, 0.5); // three k blocks: buffer 0 reused by the third
      checkAgainstNaive(k, true, true, 70, 45, 1030, -1, 0);
      checkAgainstNaive(k, false, true, 3, 4100, 9, 1, 1); // two column blocks of NC = 4096, a 4-column tail
      checkAgainstNaive(k, true, false, 300, 20, 40, 0.25, -2); // 300 rows: ragged row tasks
      checkAgainstNaive(k, false, false, 1, 1, 1, 2, 0); // a single element on two threads
      // 5.7 MB B buffers (512 x 2800 floats): two fit in 16 MiB, for three k blocks, so the
      // first is reused for the third.
      checkAgainstNaive(k, false, false, 2, 2800, 1030, 1, 0.5);
    });

    it('gives bit for bit the C of one thread (same operation order), also with CAFFE_TS_GEMM_COOP=off', () => {
      const rng = new Rng(11);
      const one = createWasmGemmKernel({ relaxed, threads: 1 })!;
      const two = createWasmGemmKernel({ relaxed, ...split })!;
      // The last: two column blocks (N > NC) of two k blocks each, rows of C copied out early.
      for (const [tA, tB, M, N, K] of [[false, false, 133, 71, 1029], [true, true, 64, 200, 600], [false, true, 5, 300, 77], [false, false, 40, 4200, 600]] as const) {
        const A = randomArray(rng, M * K), B = randomArray(rng, K * N), C0 = randomArray(rng, M * N);
        const want = C0.slice();
        one(tA, tB, M, N, K, 0.5, A, B, 1.5, want);
        const got = C0.slice();
        two(tA, tB, M, N, K, 0.5, A, B, 1.5, got);
        expect(Array.from(got)).toEqual(Array.from(want));
        process.env.CAFFE_TS_GEMM_COOP = 'off';
        try {
          const slabs = C0.slice();
          two(tA, tB, M, N, K, 0.5, A, B, 1.5, slabs);
          expect(Array.from(slabs)).toEqual(Array.from(want));
        } finally {
          delete process.env.CAFFE_TS_GEMM_COOP;
        }
      }
    });

    it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('uses operands in the shared memory in place (wasm host allocator), C overlapping nothing', () => {
      const rng = new Rng(12);
      const M = 90, N = 70, K = 530;
      const A = randomArray(rng, M * K), B = randomArray(rng, K * N), C0 = randomArray(rng, M * N);
      const want = C0.slice();
      createWasmGemmKernel({ relaxed, threads: 1 })!(false, true, M, N, K, 1, A, B, -1, want);
      const previous = setHostAllocator('wasm');
      try {
        const place = (v: Float32Array) => {
          const d = new Blob([v.length]).mutableCpuData() as Float32Array;
          d.set(v);
          return d;
        };
        const a = place(A), b = place(B), c = place(C0);
        expect(engine()!.offsetOf(c)).toBeGreaterThan(0);
        createWasmGemmKernel({ relaxed, ...split })!(false, true, M, N, K, 1, a, b, -1, c);
        expect(Array.from(c)).toEqual(Array.from(want));
      } finally {
        setHostAllocator(previous);
      }
    });
  });
}

describe('lists a worker has not picked up', () => {
  it('are run by the caller once its own list is done (each list exactly once, whoever claims it)', async () => {
    expect(await initThreads(2)).toBe(2);
    const e = engine()!;
    const { base, f32 } = e.scratch(1 << 20, 'test');
    const at = (k: number) => base + k * 65536;
    const rng = new Rng(9);
    const A = randomArray(rng, 32 * 32), B = randomArray(rng, 32 * 32);
    f32.set(A, at(1) >> 2);
    f32.set(B, at(2) >> 2);
    const want = new Float32Array(32 * 32);
    createWasmGemmKernel({ relaxed: false, threads: 1 })!(false, false, 32, 32, 32, 1, A, B, 0, want);
    const claims = { worker: 0, caller: 0 };
    for (let job = 0; job < 40; job++) {
      const lists = e.lists(2, false);
      // The caller's list is empty, so it tries to take the worker's list back at once; the
      // worker, just woken, races it. C accumulates (beta = 1): a list run twice would show.
      e.views().f32.fill(0, at(3) >> 2, (at(3) >> 2) + 32 * 32);
      lists[1]!.gemm(0, 0, 32, 32, 32, 1, at(1), 32, at(2), 32, 1, at(3), 32, at(4), at(5), at(6));
      e.run(lists, 'steal test');
      expect(Array.from(e.views().f32.subarray(at(3) >> 2, (at(3) >> 2) + 32 * 32))).toEqual(Array.from(want));
      const word = e.views().i32[lists[1]!.base]!;
      if (word === -1) claims.worker++;
      else claims.caller++;
    }
    expect(claims.worker + claims.caller).toBe(40);
  });
});

describe('coopPlan', () => {
  const blk = { MR: 4, NR: 8, MC: 128, KC: 512, NC: 4096 };
  it('cuts each block into at least four tasks per thread, rows in whole micro-tiles', () => {
    for (const [M, N, K] of [[512, 512, 512], [2048, 2048, 2048], [64, 3136, 576], [5, 9, 3], [1, 1, 1], [300, 20, 40]]) {
      const p = coopPlan(2, M!, N!, K!, blk);
      expect(p.mcT % blk.MR).toBe(0);
      expect(p.mcT).toBeLessThanOrEqual(blk.MC);
      const panels = Math.ceil(Math.min(N!, blk.NC) / blk.NR);
      expect(p.nJ).toBeLessThanOrEqual(Math.ceil(panels / 2));
      // Enough tasks unless the product is too narrow for that.
      if (Math.ceil(panels / 2) >= 8) expect(Math.ceil(M! / p.mcT) * p.nJ).toBeGreaterThanOrEqual(8);
      expect(p.blocks).toBe(Math.ceil(N! / blk.NC) * Math.ceil(K! / blk.KC));
      expect(p.bFloats).toBe(Math.min(K!, blk.KC) * panels * blk.NR);
    }
    expect(coopPlan(2, 2048, 2048, 2048, blk).mcT).toBe(128); // enough row blocks: full MC
    expect(coopPlan(2, 512, 512, 512, blk).mcT).toBe(128);
    expect(coopPlan(2, 64, 3136, 576, blk).mcT).toBe(32); // one block of rows per thread
  });
});

describe('gemm_mt on its own (command lists written by hand)', () => {
  // A 64x64x64 product in a scratch block: A, B, C, packA, two B buffers, the tile, sync words.
  function layout(e: NonNullable<ReturnType<typeof engine>>) {
    const { base, f32, i32 } = e.scratch(1 << 20, 'test');
    const at = (k: number) => base + k * 65536;
    const rng = new Rng(5);
    f32.set(randomArray(rng, 64 * 64), at(1) >> 2);
    f32.set(randomArray(rng, 64 * 64), at(2) >> 2);
    // Sync words: 192 + 64·(T + 3) bytes, then the row-done word, 2 · 2 chunk flag bytes, the
    // task-done byte; one B buffer (one k block) of 64 x 64 floats at at(5).
    i32.fill(0, at(7) >> 2, (at(7) >> 2) + 256);
    i32[(at(7) + 128) >> 2] = at(7) + 512;
    i32[(at(7) + 132) >> 2] = at(7) + 516;
    i32[(at(7) + 136) >> 2] = 2; // 8 panels, 4 a chunk
    i32[(at(7) + 140) >> 2] = 1; // B buffers
    i32[(at(7) + 144) >> 2] = at(7) + 520;
    // bChunk: 4 panels, + 2^16 where the thread may sleep while it waits, + t · 2^17 (its index).
    const args = (sync: number, t: number, block = false) => [0, 0, 64, 64, 64, 1, at(1), 64, at(2), 64, 0, at(3), 64,
      at(4), at(5), 64 * 64 * 4, at(4) + 64 * 64 * 4, sync, 2, 64, 1, 4 + (block ? 1 << 16 : 0) + (t << 17), e.errorWordAt] as const;
    return { at, args, f32, i32 };
  }

  it('a list that runs after the other has done all the work finds nothing left and returns', async () => {
    expect(await initThreads(2)).toBe(2);
    const e = engine()!;
    const { at, args, f32, i32 } = layout(e);
    i32[(at(7) + 64) >> 2] = 1; // staged: the one row block in place
    const lists = e.lists(2, true);
    // Both threads' shares in the caller's list (the worker's is empty): they run one after the other.
    lists[0]!.gemmMt(...args(at(7), 0));
    lists[0]!.gemmMt(...args(at(7), 1));
    e.run(lists, 'gemm test');
    const A = f32.slice(at(1) >> 2, (at(1) >> 2) + 4096), B = f32.slice(at(2) >> 2, (at(2) >> 2) + 4096);
    const want = new Float32Array(4096);
    createWasmGemmKernel({ relaxed: true, threads: 1 })!(false, false, 64, 64, 64, 1, A, B, 0, want);
    expect(Array.from(e.views().f32.subarray(at(3) >> 2, (at(3) >> 2) + 4096))).toEqual(Array.from(want));
  });

  it('packs a chunk of B itself when its claimer has not finished it (no waiting on a stalled thread)', async () => {
    expect(await initThreads(2)).toBe(2);
    const e = engine()!;
    const { at, args, f32, i32 } = layout(e);
    i32[(at(7) + 64) >> 2] = 1; // staged
    i32[(at(7) + 192) >> 2] = 1; // chunk 0 of block 0 claimed by a thread that never packs it
    const lists = e.lists(2, false);
    lists[0]!.gemmMt(...args(at(7), 0));
    e.run(lists, 'gemm test');
    const A = f32.slice(at(1) >> 2, (at(1) >> 2) + 4096), B = f32.slice(at(2) >> 2, (at(2) >> 2) + 4096);
    const want = new Float32Array(4096);
    createWasmGemmKernel({ relaxed: false, threads: 1 })!(false, false, 64, 64, 64, 1, A, B, 0, want);
    expect(Array.from(e.views().f32.subarray(at(3) >> 2, (at(3) >> 2) + 4096))).toEqual(Array.from(want));
  });

  it('a failing worker does not leave the caller waiting: it gives up and the job throws', async () => {
    expect(await initThreads(2)).toBe(2);
    const e = engine()!;
    const { at, args } = layout(e);
    const lists = e.lists(2, false);
    // The staged word stays 0, so the caller waits for it before its first task (spinning, then
    // sleeping in memory.atomic.wait32); the worker's sync words lie past the memory, so its
    // first atomic access traps and it flags the job's error word.
    lists[0]!.gemmMt(...args(at(7), 0, true));
    lists[1]!.gemmMt(...args(0x7fff0000, 1));
    expect(() => e.run(lists, 'gemm test')).toThrow(/gemm test: a kernel worker thread failed/);
  });
});

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
