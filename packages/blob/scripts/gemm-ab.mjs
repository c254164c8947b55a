#!/usr/bin/env node
// A/B timing of the single-thread GEMM module: the generator at a git revision against the one in
// the working tree, both instantiated in this one process and called alternately.
//
//   node --experimental-wasm-relaxed-simd packages/blob/scripts/gemm-ab.mjs [--base HEAD]
//       [--sizes 512,64x500x800:NT,50x4096x500] [--rounds 60] [--simd]
//
// On a shared or virtual machine the speed of a core drifts by 20-30 % for seconds at a time, so
// two builds timed in separate processes (or one after the other) differ by more than most kernel
// changes do. Here each round calls A then B (B then A on odd rounds) on the same operands, and
// the verdict is the median of the per-round ratios base / work tree (above 1: the working tree
// is faster). Sizes: N (square) or MxNxK, with an optional :TT suffix (transA, transB as N or T).
// Both modules run the relaxed-SIMD own-memory build (--simd: the plain SIMD build); outputs are
// compared bit for bit as a check that the change kept the arithmetic.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import wabtInit from 'wabt';
import { assembleWat } from './wat-assemble.mjs';
import { GEMM_BLOCKING, generateGemmWat } from './gemm-wat.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    base: { type: 'string', default: 'HEAD' },
    sizes: { type: 'string', default: '512,64x500x800:NT,50x4096x500' },
    rounds: { type: 'string', default: '60' },
    simd: { type: 'boolean', default: false },
  },
});
const relaxed = !values.simd;
const rounds = Number(values.rounds);
if (!(Number.isInteger(rounds) && rounds >= 3)) throw new Error(`--rounds ${values.rounds}: expected an integer >= 3`);

const shapes = values.sizes.split(',').map((spec) => {
  const [dims, trans = 'NN'] = spec.split(':');
  const parts = dims.split('x').map(Number);
  const [M, N, K] = parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts;
  if (![M, N, K].every((v) => Number.isInteger(v) && v >= 1) || !/^[NT]{2}$/.test(trans)) {
    throw new Error(`--sizes: '${spec}' is not N or MxNxK[:NN|NT|TN|TT]`);
  }
  return { M, N, K, tA: trans[0] === 'T' ? 1 : 0, tB: trans[1] === 'T' ? 1 : 0, label: `${M}x${N}x${K} ${trans}` };
});

// The base revision's generator, written beside this script (so that any relative import of its
// own resolves) under a temporary name, loaded, then removed.
const source = execFileSync('git', ['show', `${values.base}:packages/blob/scripts/gemm-wat.mjs`], { cwd: here, encoding: 'utf8' });
const baseFile = join(here, `.gemm-ab-base-${process.pid}.mjs`);
let baseGenerate;
try {
  writeFileSync(baseFile, source);
  ({ generateGemmWat: baseGenerate } = await import(pathToFileURL(baseFile).href));
} finally {
  rmSync(baseFile, { force: true });
}

const wabt = await wabtInit();
const instantiate = (generate) => {
  const bytes = assembleWat(wabt, 'gemm-ab.wat', generate({ relaxed }), { simd: true, relaxed_simd: relaxed });
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports;
};
const builds = [
  { name: values.base, ex: instantiate(baseGenerate) },
  { name: 'work tree', ex: instantiate(generateGemmWat) },
];

const { MC, KC, NC, MR, NR } = GEMM_BLOCKING;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};
console.log(`gemm A/B: ${values.base} against the work tree, ${relaxed ? 'relaxed' : 'plain'} SIMD, one thread, ${rounds} alternating rounds per size`);
for (const { M, N, K, tA, tB, label } of shapes) {
  const runs = builds.map(({ ex }) => {
    // Operands, then the workspace (packed A and B blocks, with room for a larger blocking, and the scratch tile).
    const floats = M * K + K * N + M * N + 2 * MC * KC + 2 * KC * (NC + NR) + 2 * MR * NR + NR * KC;
    const need = 4 * floats + 65536;
    if (ex.memory.buffer.byteLength < need) ex.memory.grow(Math.ceil((need - ex.memory.buffer.byteLength) / 65536));
    const f = new Float32Array(ex.memory.buffer);
    const pA = 0, pB = pA + 4 * M * K, pC = pB + 4 * K * N;
    const packA = pC + 4 * M * N, packB = packA + 8 * MC * KC, scratch = packB + 8 * KC * (NC + NR);
    for (let i = 0; i < M * K; i++) f[pA / 4 + i] = Math.sin(i * 0.7);
    for (let i = 0; i < K * N; i++) f[pB / 4 + i] = Math.cos(i * 0.3);
    const call = () => ex.gemm(tA, tB, M, N, K, 1, pA, tA ? M : K, pB, tB ? K : N, 0, pC, N, packA, packB, scratch);
    return { call, out: () => new Float32Array(ex.memory.buffer, pC, M * N), times: [] };
  });
  for (let r = 0; r < 3; r++) for (const run of runs) run.call();
  const same = runs[0].out().every((v, i) => Object.is(v, runs[1].out()[i]));
  for (let r = 0; r < rounds; r++) {
    for (const run of r & 1 ? [...runs].reverse() : runs) {
      const t0 = performance.now();
      run.call();
      run.times.push(performance.now() - t0);
    }
  }
  const gf = (ms) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
  const [a, b] = runs.map((run) => median(run.times));
  const ratio = median(runs[0].times.map((t, i) => t / runs[1].times[i]));
  console.log(
    `${label.padEnd(20)} ${builds[0].name}: ${a.toFixed(3)} ms (${gf(a)} GFLOP/s)   work tree: ${b.toFixed(3)} ms (${gf(b)} GFLOP/s)   ` +
      `base / work tree ${ratio.toFixed(3)}${same ? '' : '   OUTPUTS DIFFER'}`,
  );
}
