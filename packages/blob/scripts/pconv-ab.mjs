#!/usr/bin/env node
// A/B timing of the inference module's packed convolution (pconv, one image, one thread): the
// generator at a git revision against the one in the working tree, both instantiated in this one
// process and called alternately (ab-harness.mjs says why).
//
//   node --experimental-wasm-relaxed-simd packages/blob/scripts/pconv-ab.mjs [--base HEAD]
//       [--shapes 3x227x227-64k3s2p0,16x112x112-96k1s1p0,...] [--rounds 30] [--simd] [--cold]
//
// --cold: 48 MB of other memory is written before each timed call (untimed), so the call finds
// its operands out of the caches, as a layer of a large net does; without it they stay warm.
// A shape is CxHxW-O k<kernel> s<stride> p<pad> (square kernel, stride and pad; no groups), with
// a bias and a ReLU as the epilogue. Outputs are compared bit for bit.
import { parseArgs } from 'node:util';
import { alternate, importAtRevision, instantiator, roundsOf } from './ab-harness.mjs';
import { generateInferWat } from './infer-wat.mjs';

const { values } = parseArgs({
  options: {
    base: { type: 'string', default: 'HEAD' },
    // SqueezeNet 1.1's and MobileNet v2's first layers, small-K and projecting 1×1 layers, conv10.
    shapes: { type: 'string', default: '3x227x227-64k3s2p0,3x224x224-32k3s2p1,16x112x112-96k1s1p0,16x56x56-64k1s1p0,96x56x56-24k1s1p0,64x28x28-384k1s1p0,512x14x14-1000k1s1p0' },
    rounds: { type: 'string', default: '30' },
    simd: { type: 'boolean', default: false },
    cold: { type: 'boolean', default: false },
  },
});
const relaxed = !values.simd;
const rounds = roundsOf(values.rounds);
const shapes = values.shapes.split(',').map((spec) => {
  const m = /^(\d+)x(\d+)x(\d+)-(\d+)k(\d+)s(\d+)p(\d+)$/.exec(spec);
  if (!m) throw new Error(`--shapes: '${spec}' is not CxHxW-OkKsSpP`);
  const [C, H, W, O, K, S, P] = m.slice(1).map(Number);
  return { C, H, W, O, KK: K, S, P, label: spec };
});

const { generateInferWat: baseGenerate } = await importAtRevision(values.base, 'infer-wat.mjs');
const instantiate = await instantiator({ simd: true, bulk_memory: true, relaxed_simd: relaxed });
const builds = [baseGenerate, generateInferWat].map((generate) => instantiate(generate({ relaxed })));
const align = (b) => Math.ceil(b / 64) * 64;
const sweep = values.cold ? new Float32Array(12 * 2 ** 20) : null;
let sweeps = 0;
const evict = () => sweep?.fill(++sweeps);
console.log(`pconv A/B: ${values.base} against the work tree, ${relaxed ? 'relaxed' : 'plain'} SIMD, one thread, ${rounds} alternating rounds per shape`);
for (const { C, H, W, O, KK, S: stride, P, label } of shapes) {
  const OH = Math.floor((H + 2 * P - KK) / stride) + 1, OW = Math.floor((W + 2 * P - KK) / stride) + 1, N = OH * OW, K = C * KK * KK;
  const Hp = H + 2 * P, Wp = W + 2 * P;
  const flat = KK === 1 && stride === 1 && P === 0;
  const runs = builds.map((ex) => {
    const MR = ex.PCONV_MR.value, NR = ex.PCONV_NR.value, KC = ex.PCONV_KC.value, NC = ex.PCONV_NC.value;
    const Mp = Math.ceil(O / MR) * MR;
    const pX = 1024, pXp = pX + align(4 * (C * H * W + 16)), pRaw = pXp + align(4 * (C * Hp * Wp + 16));
    const pW = pRaw + align(4 * O * K), pA = pW + align(4 * Mp * K), pB = pA + align(4 * (Mp + MR));
    const pY = pB + align(4 * (Mp + MR)), pBuf = pY + align(4 * O * N), pTile = pBuf + align(4 * Math.min(KC, K) * Math.ceil(Math.min(NC, N) / NR) * NR);
    const need = pTile + align(4 * MR * NR) + 65536;
    if (ex.memory.buffer.byteLength < need) ex.memory.grow(Math.ceil((need - ex.memory.buffer.byteLength) / 65536));
    const f = new Float32Array(ex.memory.buffer);
    for (let i = 0; i < C * H * W; i++) f[pX / 4 + i] = Math.sin(i * 0.7);
    for (let i = 0; i < O * K; i++) f[pRaw / 4 + i] = Math.cos(i * 0.3) / Math.sqrt(K);
    for (let i = 0; i < Mp + MR; i++) {
      f[pA / 4 + i] = 1;
      f[pB / 4 + i] = i < O ? Math.sin(i) * 0.1 : 0;
    }
    ex.packa(pRaw, O, K, pW);
    const xp = P > 0 ? pXp : pX;
    const call = () => {
      if (P > 0) ex.padimg(pX, C, H, W, P, P, pXp);
      ex.pconv(pW, O, K, xp, flat ? 1 : Hp, flat ? H * W : Wp, KK, KK, stride, stride, 1, 1, flat ? N : OW, N, pY, pA, pB, 2, 0, pBuf, pTile, 0, N);
    };
    return { call, out: () => new Float32Array(ex.memory.buffer, pY, O * N), ...(values.cold ? { before: evict } : {}) };
  });
  const { ms: [a, b], ratio, same } = alternate(runs, rounds);
  const gf = (ms) => ((2 * O * K * N) / ms / 1e6).toFixed(1);
  console.log(`${label.padEnd(24)} ${values.base}: ${a.toFixed(3)} ms (${gf(a)} GF/s)   work tree: ${b.toFixed(3)} ms (${gf(b)} GF/s)   base / work tree ${ratio.toFixed(3)}${same ? '' : '   OUTPUTS DIFFER'}`);
}
