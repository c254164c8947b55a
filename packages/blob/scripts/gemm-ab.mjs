#!/usr/bin/env node
// A/B timing of the single-thread GEMM module: the generator at a git revision against the one in
// the working tree, both instantiated in this one process and called alternately (ab-harness.mjs
// says why).
//
//   node --experimental-wasm-relaxed-simd packages/blob/scripts/gemm-ab.mjs [--base HEAD]
//       [--sizes 512,64x500x800:NT,50x4096x500] [--rounds 60] [--simd]
//
// Sizes: N (square) or MxNxK, with an optional :TT suffix (transA, transB as N or T).
// Both modules run the relaxed-SIMD own-memory build (--simd: the plain SIMD build); outputs are
// compared bit for bit as a check that the change kept the arithmetic.
import { parseArgs } from 'node:util';
import { alternate, importAtRevision, instantiator, roundsOf } from './ab-harness.mjs';
import { GEMM_BLOCKING, generateGemmWat } from './gemm-wat.mjs';

const { values } = parseArgs({
  options: {
    base: { type: 'string', default: 'HEAD' },
    sizes: { type: 'string', default: '512,64x500x800:NT,50x4096x500' },
    rounds: { type: 'string', default: '60' },
    simd: { type: 'boolean', default: false },
  },
});
const relaxed = !values.simd;
const rounds = roundsOf(values.rounds);

const shapes = values.sizes.split(',').map((spec) => {
  const [dims, trans = 'NN'] = spec.split(':');
  const parts = dims.split('x').map(Number);
  const [M, N, K] = parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts;
  if (![M, N, K].every((v) => Number.isInteger(v) && v >= 1) || !/^[NT]{2}$/.test(trans)) {
    throw new Error(`--sizes: '${spec}' is not N or MxNxK[:NN|NT|TN|TT]`);
  }
  return { M, N, K, tA: trans[0] === 'T' ? 1 : 0, tB: trans[1] === 'T' ? 1 : 0, label: `${M}x${N}x${K} ${trans}` };
});

const { generateGemmWat: baseGenerate } = await importAtRevision(values.base, 'gemm-wat.mjs');
const instantiate = await instantiator({ simd: true, relaxed_simd: relaxed });
const builds = [baseGenerate, generateGemmWat].map((generate) => instantiate(generate({ relaxed })));

const { MC, KC, NC, MR, NR } = GEMM_BLOCKING;
console.log(`gemm A/B: ${values.base} against the work tree, ${relaxed ? 'relaxed' : 'plain'} SIMD, one thread, ${rounds} alternating rounds per size`);
for (const { M, N, K, tA, tB, label } of shapes) {
  const runs = builds.map((ex) => {
    // Operands, then the workspace (packed A and B blocks, with room for a larger blocking, and the scratch tile).
    const floats = M * K + K * N + M * N + 2 * MC * KC + 2 * KC * (NC + NR) + 2 * MR * NR + NR * KC;
    const need = 4 * floats + 65536;
    if (ex.memory.buffer.byteLength < need) ex.memory.grow(Math.ceil((need - ex.memory.buffer.byteLength) / 65536));
    const f = new Float32Array(ex.memory.buffer);
    const pA = 0, pB = pA + 4 * M * K, pC = pB + 4 * K * N;
    const packA = pC + 4 * M * N, packB = packA + 8 * MC * KC, scratch = packB + 8 * KC * (NC + NR);
    for (let i = 0; i < M * K; i++) f[pA / 4 + i] = Math.sin(i * 0.7);
    for (let i = 0; i < K * N; i++) f[pB / 4 + i] = Math.cos(i * 0.3);
    return {
      call: () => ex.gemm(tA, tB, M, N, K, 1, pA, tA ? M : K, pB, tB ? K : N, 0, pC, N, packA, packB, scratch),
      out: () => new Float32Array(ex.memory.buffer, pC, M * N),
    };
  });
  const { ms: [a, b], ratio, same } = alternate(runs, rounds);
  const gf = (ms) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
  console.log(
    `${label.padEnd(20)} ${values.base}: ${a.toFixed(3)} ms (${gf(a)} GFLOP/s)   work tree: ${b.toFixed(3)} ms (${gf(b)} GFLOP/s)   ` +
      `base / work tree ${ratio.toFixed(3)}${same ? '' : '   OUTPUTS DIFFER'}`,
  );
}
