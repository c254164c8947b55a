#!/usr/bin/env node
// Float32 GEMM throughput: JS path vs WebAssembly SIMD vs WebAssembly relaxed SIMD, on 1 or
// more kernel threads.
//
//   pnpm --filter @caffe-ts/blob build && node bench/src/gemm.mjs [--sizes 256,512,1024,2048]
//       [--reps 7] [--js-max 1024] [--trans NN|NT|TN|TT] [--clock wall|cpu] [--threads 1,2]
//
// --threads lists kernel thread counts (initThreads(n) before each; the JS column runs once,
// on one thread). Use the wall clock with more than one thread: the cpu clock adds up threads.
//
// Prints GFLOP/s (2·M·N·K / median time over --reps runs after one warm-up run) for square
// products. The JS path is slow, so sizes above --js-max skip it. Relaxed SIMD needs
// --experimental-wasm-relaxed-simd on Node 20; this script turns the flag on itself (before
// anything is compiled) so all three columns come from one process.
import v8 from 'node:v8';
import { parseArgs } from 'node:util';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { createWasmGemmKernel, math, wasmGemmInfo, initThreads } = await import('@caffe-ts/blob');

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '256,512,1024,2048' },
    reps: { type: 'string', default: '7' },
    'js-max': { type: 'string', default: '1024' },
    trans: { type: 'string', default: 'NN' },
    clock: { type: 'string', default: 'wall' },
    threads: { type: 'string', default: '1' },
  },
});
const sizes = values.sizes.split(',').map(Number);
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
const kernels = [['js', math.gemmJs, 1]];
const simd = createWasmGemmKernel({ relaxed: false });
const relaxed = createWasmGemmKernel({ relaxed: true });
for (const t of threadCounts) {
  const tag = threadCounts.length > 1 || t !== 1 ? ` x${t}` : '';
  if (simd) kernels.push([`wasm-simd${tag}`, simd, t]);
  if (relaxed) kernels.push([`wasm-relaxed${tag}`, relaxed, t]);
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
  `GFLOP/s: median of ${reps} runs (best run)`);
console.log(['size', ...kernels.map(([name]) => name)].map((s) => s.padStart(18)).join(''));
for (const n of sizes) {
  const A = random(n * n), B = random(n * n), C = new Float32Array(n * n);
  const flops = 2 * n * n * n;
  const cells = [String(n)];
  for (const [name, kernel, threads] of kernels) {
    const got = await initThreads(threads);
    if (got !== threads) console.warn(`${name}: only ${got} thread(s) available`);
    if (name === 'js' && n > jsMax) {
      cells.push('-');
      continue;
    }
    const runs = name === 'js' ? Math.min(reps, 3) : reps;
    kernel(transA, transB, n, n, n, 1, A, B, 0, C); // warm-up: compile tiers, grow memory
    const times = [];
    for (let r = 0; r < runs; r++) {
      const t0 = now();
      kernel(transA, transB, n, n, n, 1, A, B, 0, C);
      times.push(now() - t0);
    }
    // median (and best run, as a hint of contention on shared machines)
    cells.push(`${(flops / median(times) / 1e6).toFixed(1)} (${(flops / Math.min(...times) / 1e6).toFixed(1)})`);
  }
  console.log(cells.map((s) => s.padStart(18)).join(''));
}
