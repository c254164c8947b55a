#!/usr/bin/env node
// Float32 GEMM throughput: JS path vs WebAssembly SIMD vs WebAssembly relaxed SIMD, on 1 or
// more kernel threads.
//
//   pnpm --filter @caffe-ts/blob build && node bench/src/gemm.mjs [--sizes 256,512,1024,2048|MxNxK,…]
//       [--reps 7] [--js-max 1024] [--trans NN|NT|TN|TT] [--clock wall|cpu] [--threads 1,2]
//       [--host-alloc js|wasm|js,wasm] [--kernels js,simd,relaxed] [--split coop|static|coop,static]
//
// --kernels picks the columns: 'js' (the JS path), 'simd' (WebAssembly SIMD, f32x4.mul + add),
// 'relaxed' (relaxed SIMD, f32x4.relaxed_madd: FMA); all three by default. Each WebAssembly
// column's header names its build, thread count and host allocator, e.g. 'wasm-relaxed x2'.
// --split picks how products are shared between threads (columns with more than one thread):
// 'coop' the cooperative gemm_mt (the default: B packed once, work handed out in small tasks),
// 'static' one slab of C per thread (CAFFE_TS_GEMM_COOP=off); both to compare them side by side.
// --threads lists kernel thread counts (initThreads(n) before each; the JS column runs once,
// on one thread). Use the wall clock with more than one thread: the cpu clock adds up threads.
//
// Prints GFLOP/s (2·M·N·K / median time over --reps runs after one warm-up run) for square
// products, or for M×N×K where a size is written so (e.g. 1x4096x9216 --trans NT: CaffeNet's fc6
// at batch 1, the weights being B). The JS path is slow, so sizes above --js-max skip it.
// --host-alloc lists where the WebAssembly columns' operands live: 'js' plain Float32Arrays (the
// kernel copies A, B and C into its memory and C back on every call), 'wasm' float32 blob memory
// from setHostAllocator('wasm') (used in place). With several, each kernel gets one column per
// choice. The columns' runs are interleaved (run r of every column, then run r + 1; odd runs in
// reverse order), so load from other processes falls on all of them alike. Relaxed SIMD needs
// --experimental-wasm-relaxed-simd on Node 20; this script turns the flag on itself (before
// anything is compiled) so all three columns come from one process.
import v8 from 'node:v8';
import { parseBenchArgs } from './cli-args.mjs';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { createWasmGemmKernel, math, wasmGemmInfo, initThreads, Blob, setHostAllocator } = await import('@caffe-ts/blob');

const { values } = parseBenchArgs({
  options: {
    sizes: { type: 'string', default: '256,512,1024,2048' },
    reps: { type: 'string', default: '7' },
    'js-max': { type: 'string', default: '1024' },
    trans: { type: 'string', default: 'NN' },
    clock: { type: 'string', default: 'wall' },
    threads: { type: 'string', default: '1' },
    'host-alloc': { type: 'string', default: 'js' },
    kernels: { type: 'string', default: 'js,simd,relaxed' },
    split: { type: 'string', default: 'coop' },
  },
}, import.meta.url);
const sizes = values.sizes.split(',').map((t) => {
  const d = t.split('x').map(Number);
  if (!(d.length === 1 || d.length === 3) || !d.every((v) => Number.isInteger(v) && v > 0)) throw new Error(`--sizes: expected N or MxNxK, got ${t}`);
  return d.length === 1 ? [d[0], d[0], d[0]] : d;
});
const reps = Number(values.reps);
const jsMax = Number(values['js-max']);
const transA = values.trans[0] === 'T', transB = values.trans[1] === 'T';
// 'cpu' times this process's CPU use instead of wall time: on a machine shared with other
// jobs it leaves out the time the benchmark spent descheduled.
const now = values.clock === 'cpu'
  ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }
  : () => performance.now();

const info = wasmGemmInfo();
const threadCounts = values.threads.split(',').map(Number);
const allocs = values['host-alloc'].split(',');
for (const a of allocs) if (a !== 'js' && a !== 'wasm') throw new Error(`--host-alloc: expected js and/or wasm, got ${a}`);
const picked = values.kernels.split(',');
for (const k of picked) if (!['js', 'simd', 'relaxed'].includes(k)) throw new Error(`--kernels: expected js, simd and/or relaxed, got ${k}`);
const splits = values.split.split(',');
for (const s of splits) if (s !== 'coop' && s !== 'static') throw new Error(`--split: expected coop and/or static, got ${s}`);
const kernels = picked.includes('js') ? [['js', math.gemmJs, 1, 'js', 'coop']] : [];
const simd = picked.includes('simd') ? createWasmGemmKernel({ relaxed: false }) : null;
const relaxed = picked.includes('relaxed') ? createWasmGemmKernel({ relaxed: true }) : null;
if (picked.includes('relaxed') && !relaxed) console.warn('relaxed SIMD does not compile here: no wasm-relaxed columns');
for (const t of threadCounts) {
  const tag = threadCounts.length > 1 || t !== 1 ? ` x${t}` : '';
  for (const sp of t > 1 ? splits : ['coop']) {
    const how = t > 1 && splits.length > 1 ? ` ${sp}` : '';
    for (const a of allocs) {
      const mem = allocs.length > 1 || a !== 'js' ? ` ${a}` : '';
      if (simd) kernels.push([`wasm-simd${tag}${how}${mem}`, simd, t, a, sp]);
      if (relaxed) kernels.push([`wasm-relaxed${tag}${how}${mem}`, relaxed, t, a, sp]);
    }
  }
}
/** CAFFE_TS_GEMM_COOP for a column's split (read by the kernel on every threaded call). */
function setSplit(sp) {
  if (sp === 'static') process.env.CAFFE_TS_GEMM_COOP = 'off';
  else delete process.env.CAFFE_TS_GEMM_COOP;
}

/** A float32 array of n elements from the host allocator `alloc`, holding `values`. */
function place(values, alloc) {
  if (alloc === 'js') return values.slice();
  setHostAllocator(alloc);
  const d = new Blob([values.length]).mutableCpuData();
  setHostAllocator(undefined);
  d.set(values);
  return d;
}

function random(n) {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    a[i] = (s >>> 8) / 2 ** 23 - 1;
  }
  return a;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

console.log(`node ${process.version}, blocking ${JSON.stringify(info.blocking)}, ${values.trans}, ${values.clock} clock, ` +
  `builds: simd ${info.simd ? 'yes' : 'no'}, relaxed ${info.relaxedSimd ? 'yes' : 'no'}; GFLOP/s: median of ${reps} runs (best run)`);
const width = Math.max(22, ...kernels.map(([name]) => name.length + 2));
console.log(['size', ...kernels.map(([name]) => name)].map((s) => s.padStart(width)).join(''));
for (const [M, N, K] of sizes) {
  const A0 = random(M * K), B0 = random(K * N);
  const flops = 2 * M * N * K;
  const cols = kernels
    .filter(([name]) => !(name === 'js' && Math.max(M, N, K) > jsMax))
    .map(([name, kernel, threads, alloc, split]) => ({
      name, kernel, threads, split, A: place(A0, alloc), B: place(B0, alloc), C: place(new Float32Array(M * N), alloc), times: [],
      runs: name === 'js' ? Math.min(reps, 3) : reps,
    }));
  for (const c of cols) {
    const got = await initThreads(c.threads);
    if (got !== c.threads) console.warn(`${c.name}: only ${got} thread(s) available`);
    setSplit(c.split);
    c.kernel(transA, transB, M, N, K, 1, c.A, c.B, 0, c.C); // warm-up: compile tiers, grow memory
  }
  for (let r = 0; r < reps; r++) {
    // Odd runs go through the columns backwards: a column right after a one-thread column finds
    // the workers asleep, and no column should always be the one that wakes them.
    for (const c of r & 1 ? [...cols].reverse() : cols) {
      if (r >= c.runs) continue;
      await initThreads(c.threads);
      setSplit(c.split);
      const t0 = now();
      c.kernel(transA, transB, M, N, K, 1, c.A, c.B, 0, c.C);
      c.times.push(now() - t0);
    }
  }
  const cells = [M === N && N === K ? String(M) : `${M}x${N}x${K}`];
  for (const [name] of kernels) {
    const c = cols.find((x) => x.name === name);
    // median (and best run, as a hint of contention on shared machines)
    cells.push(c ? `${(flops / median(c.times) / 1e6).toFixed(1)} (${(flops / Math.min(...c.times) / 1e6).toFixed(1)})` : '-');
  }
  console.log(cells.map((s) => s.padStart(width)).join(''));
}
