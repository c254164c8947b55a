#!/usr/bin/env node
// A/B timing of the inference module's depthwise kernel: the generator at a git revision against
// the one in the working tree, both instantiated in this one process and called alternately
// (ab-harness.mjs says why).
//
//   node --experimental-wasm-relaxed-simd packages/blob/scripts/depthwise-ab.mjs [--base HEAD]
//       [--shapes 32x112s1,96x112s2,...] [--rounds 40] [--simd]
//
// A shape is CxHs<stride> (square planes, 3×3 filter, pad 1, bias and ReLU: MobileNet v2's
// depthwise layers by default). Outputs are compared bit for bit.
import { parseArgs } from 'node:util';
import { alternate, importAtRevision, instantiator, roundsOf } from './ab-harness.mjs';
import { generateInferWat } from './infer-wat.mjs';

const { values } = parseArgs({
  options: {
    base: { type: 'string', default: 'HEAD' },
    shapes: { type: 'string', default: '32x112s1,96x112s2,144x56s1,144x56s2,192x28s1,192x28s2,384x14s1,576x14s1,576x14s2,960x7s1' },
    rounds: { type: 'string', default: '40' },
    simd: { type: 'boolean', default: false },
  },
});
const relaxed = !values.simd;
const rounds = roundsOf(values.rounds);
const shapes = values.shapes.split(',').map((spec) => {
  const m = /^(\d+)x(\d+)s([12])$/.exec(spec);
  if (!m) throw new Error(`--shapes: '${spec}' is not CxHs1 or CxHs2`);
  return { C: Number(m[1]), H: Number(m[2]), S: Number(m[3]), label: spec };
});

const { generateInferWat: baseGenerate } = await importAtRevision(values.base, 'infer-wat.mjs');
const instantiate = await instantiator({ simd: true, bulk_memory: true, relaxed_simd: relaxed });
const builds = [baseGenerate, generateInferWat].map((generate) => instantiate(generate({ relaxed })));
console.log(`depthwise A/B: ${values.base} against the work tree, ${relaxed ? 'relaxed' : 'plain'} SIMD, one thread, ${rounds} alternating rounds per shape`);
for (const { C, H, S, label } of shapes) {
  const W = H, OH = Math.floor((H + 2 - 3) / S) + 1, OW = OH;
  const runs = builds.map((ex) => {
    const pX = 1024, pW = pX + 4 * C * H * W, pB = pW + 4 * C * 9, pY = pB + 4 * C, pPad = pY + 4 * C * OH * OW;
    const need = pPad + 4 * (H + 2) * (W + 2 + 8) + 65536;
    if (ex.memory.buffer.byteLength < need) ex.memory.grow(Math.ceil((need - ex.memory.buffer.byteLength) / 65536));
    const f = new Float32Array(ex.memory.buffer);
    for (let i = 0; i < C * H * W; i++) f[pX / 4 + i] = Math.sin(i * 0.7);
    for (let i = 0; i < C * 9; i++) f[pW / 4 + i] = Math.cos(i * 0.3);
    for (let i = 0; i < C; i++) f[pB / 4 + i] = Math.sin(i);
    const call = () => ex.depthwise(pX, C, H, W, pW, 3, 3, S, S, 1, 1, 1, 1, pB, 3, pY, OH, OW, pPad);
    return { call, out: () => new Float32Array(ex.memory.buffer, pY, C * OH * OW) };
  });
  const { ms: [a, b], ratio, same } = alternate(runs, rounds);
  console.log(`${label.padEnd(10)} ${values.base}: ${a.toFixed(3)} ms   work tree: ${b.toFixed(3)} ms   base / work tree ${ratio.toFixed(3)}${same ? '' : '   OUTPUTS DIFFER'}`);
}
