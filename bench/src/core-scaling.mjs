#!/usr/bin/env node
// How much compute the machine's cores give together, apart from caffe-ts's own threading: the
// ceiling any parallel mix (bench/src/parallel.mjs, issue #11's 1.7×) works under.
//
//   pnpm --filter @caffe-ts/blob build && node bench/src/core-scaling.mjs [--threads 2] [--rounds 5]
//       [--seconds 3] [--size 128]
//
// Each thread is a worker of its own that runs the WebAssembly GEMM on one thread over operands
// that fit in its core's L2 cache (--size n: n×n·n, 128 by default: 192 KiB), so nothing is shared
// between threads and memory bandwidth plays no part. A round runs it on one worker alone, then on
// --threads workers at once, for --seconds each; the line gives each worker's GFLOP/s, their sum
// against the lone one, and the steal (hypervisor time given to other guests, /proc/stat). On a
// machine whose cores are its own the sum is about threads × alone; on a virtual machine whose
// cores share physical cores with other guests (or with each other), it is less, and it moves
// from round to round.
import v8 from 'node:v8';
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { parseBenchArgs } from './cli-args.mjs';
import { cpuTicks, stealPercent } from './host-steal.mjs';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

if (isMainThread) {
  const { values } = parseBenchArgs({
    options: {
      threads: { type: 'string', default: String(availableParallelism()) },
      rounds: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '3' },
      size: { type: 'string', default: '128' },
    },
  }, import.meta.url);
  const threads = Number(values.threads), rounds = Number(values.rounds), seconds = Number(values.seconds), size = Number(values.size);
  for (const [name, v] of Object.entries({ threads, rounds, seconds, size })) {
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`--${name} must be a positive number, got ${values[name]}`);
  }
  // Workers start together, then time the same span: the start of one does not overlap the other's work.
  const start = new SharedArrayBuffer(4);
  const run = async (n) => {
    const flag = new Int32Array(start);
    Atomics.store(flag, 0, 0);
    let ready = 0;
    const results = Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { size, seconds, start } });
      w.on('message', (m) => {
        if (m === 'ready') {
          if (++ready === n) {
            Atomics.store(flag, 0, 1);
            Atomics.notify(flag, 0);
          }
        } else resolve(m);
      });
      w.on('error', reject);
    }));
    const t0 = cpuTicks();
    const gflops = await Promise.all(results);
    return { gflops, steal: stealPercent(t0, cpuTicks()) };
  };
  console.log(`core scaling: ${size}³ WebAssembly GEMM per worker (operands in cache), ${seconds} s per run, 1 worker alone then ${threads} at once, ${rounds} rounds; node ${process.version}`);
  const ratios = [];
  for (let r = 0; r < rounds; r++) {
    const one = await run(1);
    const many = await run(threads);
    const sum = many.gflops.reduce((a, x) => a + x, 0);
    ratios.push(sum / one.gflops[0]);
    const steal = (s) => (s === null ? '—' : `${s.toFixed(1)}%`);
    console.log(
      `  round ${r + 1}: alone ${one.gflops[0].toFixed(1)} GFLOP/s (steal ${steal(one.steal)}); ` +
        `${threads} at once ${many.gflops.map((x) => x.toFixed(1)).join(' + ')} = ${sum.toFixed(1)} GFLOP/s (steal ${steal(many.steal)}): ${(sum / one.gflops[0]).toFixed(2)}×`,
    );
  }
  const sorted = [...ratios].sort((a, b) => a - b);
  console.log(`${threads} cores give ${sorted[sorted.length >> 1].toFixed(2)}× one core's compute (median; ${sorted[0].toFixed(2)}–${sorted[sorted.length - 1].toFixed(2)}× over the rounds)`);
} else {
  const { size: n, seconds, start } = workerData;
  const blob = await import('@caffe-ts/blob');
  blob.setNumThreads(1);
  // Operands in the kernels' memory: the GEMM runs on them in place (no copies per call).
  blob.setHostAllocator('wasm');
  const operand = () => new blob.Blob([n, n]).mutableCpuData();
  const [A, B, C] = [operand(), operand(), operand()];
  for (let i = 0; i < A.length; i++) {
    A[i] = Math.sin(i);
    B[i] = Math.cos(i);
  }
  const gemm = blob.createWasmGemmKernel({ relaxed: true }) ?? blob.createWasmGemmKernel({ relaxed: false });
  if (!gemm) throw new Error('no WebAssembly SIMD GEMM here');
  for (let i = 0; i < 50; i++) gemm(false, false, n, n, n, 1, A, B, 0, C);
  parentPort.postMessage('ready');
  Atomics.wait(new Int32Array(start), 0, 0);
  let products = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 10; i++) gemm(false, false, n, n, n, 1, A, B, 0, C);
    products += 10;
  }
  parentPort.postMessage((2 * n ** 3 * products) / (performance.now() - t0) / 1e6);
}
