#!/usr/bin/env node
// Per-layer forward times of the zoo's deploy nets at inference (TEST phase), from the built
// packages, with the same reproducible random weights and inputs as the peer comparison:
//
//   pnpm build && node bench/src/profile-inference.mjs [--models caffenet,googlenet,...]
//       [--iterations 10] [--warmup 2] [--top 12] [--by-type]
//       [--threads 1] [--host-alloc js|wasm] [--clock wall|cpu] [--col-floats N] [--fused]
//
// For each model: the median ms of net.forward() (fused inference chains included) and of the
// layer-by-layer forward (forwardFromTo(i, i): nothing fused), then the `--top` slowest layers (median and
// minimum ms, share of the total, GFLOP/s of convolutions and inner products, type and top shape) and, with --by-type, the sum per layer
// type. --clock cpu (the default with 1 thread) times this process's CPU use, which leaves out
// the time a loaded machine deschedules it. CAFFE_TS_GEMM=js|wasm-simd|wasm-relaxed-simd picks
// the float32 GEMM as elsewhere; --col-floats sets the convolution layers' maxBatchColFloats.
// --fused: the per-step times are those of net.forward()'s own steps (a fused inference chain,
// e.g. Convolution → BatchNorm → Scale → ReLU, is one step named after its first layer, with
// type "first+…"), so they add up to net.forward(). CAFFE_TS_FUSION=off and CAFFE_TS_PACKED=off
// (the packed-weights inference kernels) turn those off for comparison. --host-alloc wasm places
// the blobs in the kernel threads' shared memory, where the packed runner reads and writes them in
// place (no copies in and out of its memory); the default 'js' allocator is what compare.mjs
// measures.
import v8 from 'node:v8';
import { parseBenchArgs } from './cli-args.mjs';
import { gemmLabel } from './gemm-label.mjs';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const blob = await import('@caffe-ts/blob');
const { defaultLayerRegistry } = await import('@caffe-ts/layers');
await import('@caffe-ts/layers/register');
const { Net } = await import('@caffe-ts/net');
const { rowNetParameter, ROWS } = await import('./peers/rows.mjs');
const { fillRandomParams } = await import('./peers/net-spec.mjs');

const { values } = parseBenchArgs({
  options: {
    models: { type: 'string', default: 'caffenet-b1,caffenet-b10,googlenet,resnet50,squeezenet,mobilenet_v2' },
    iterations: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    top: { type: 'string', default: '12' },
    'by-type': { type: 'boolean', default: false },
    threads: { type: 'string', default: '1' },
    'host-alloc': { type: 'string' },
    clock: { type: 'string' },
    'col-floats': { type: 'string' },
    fused: { type: 'boolean', default: false },
  },
}, import.meta.url);
const threads = Number(values.threads);
if (!Number.isInteger(threads) || threads < 1) {
  console.error(`profile-inference.mjs: --threads takes one thread count (a positive integer), not '${values.threads}'; run once per count`);
  process.exit(2);
}
const clock = values.clock ?? (threads > 1 ? 'wall' : 'cpu');
const now = clock === 'cpu'
  ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }
  : () => performance.now();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
if (values['host-alloc']) blob.setHostAllocator(values['host-alloc']);
await blob.initThreads(threads);

// Multiply-add work of a Convolution or InnerProduct layer (2 flops per multiply-add), from its
// weight and top shapes; 0 for the other types, whose rows then show no rate.
function layerFlops(net, i) {
  const layer = net.layers[i];
  const type = layer.param.type;
  if (type !== 'Convolution' && type !== 'InnerProduct') return 0;
  const weights = layer.blobs?.[0];
  const top = net.blobs.get(layer.param.top[0]);
  if (!weights || !top) return 0;
  const perOutput = weights.count() / weights.shape[0]; // Cin/group × kernel area, or K
  return 2 * top.count() * perOutput;
}

const iterations = Number(values.iterations), warmup = Number(values.warmup), top = Number(values.top);
const ids = values.models.split(',').map((m) => (ROWS.some((r) => r.id === m) ? m : m === 'caffenet' ? 'caffenet-b1' : m));
for (const id of ids) {
  const row = ROWS.find((r) => r.id === id && r.kind === 'infer');
  if (!row) throw new Error(`unknown inference row ${id} (rows: ${ROWS.filter((r) => r.kind === 'infer').map((r) => r.id).join(', ')})`);
  const { param, phase } = await rowNetParameter(row);
  const net = await Net.create(param, { phase, registry: defaultLayerRegistry(), log: false, name: row.id });
  if (values['col-floats']) {
    for (const layer of net.layers) if ('maxBatchColFloats' in layer) layer.maxBatchColFloats = Number(values['col-floats']);
    net.reshape();
  }
  const rng = new blob.Rng(20240601);
  fillRandomParams(net, rng);
  for (const name of net.inputBlobNames) {
    const d = net.blobs.get(name).mutableCpuData();
    for (let i = 0; i < d.length; i++) d[i] = 2 * rng.uniform() - 1;
  }
  const L = net.layers.length;
  // Steps: single layers, or with --fused the chains net.forward() runs as one (first layer → last).
  const stepEnd = Array.from({ length: L }, (_, i) => i);
  if (values.fused) for (const [i, chain] of net.fusedChains?.() ?? []) stepEnd[i] = chain.end;
  const starts = [];
  for (let i = 0; i < L; i = stepEnd[i] + 1) starts.push(i);
  const per = Array.from({ length: L }, () => []);
  const totals = [];
  for (let it = -warmup; it < iterations; it++) {
    const t0 = now();
    const f = new Float64Array(L);
    for (const i of starts) {
      const s = now();
      net.forwardFromTo(i, stepEnd[i]);
      f[i] = now() - s;
    }
    const total = now() - t0;
    if (it < 0) continue;
    totals.push(total);
    for (let i = 0; i < L; i++) per[i].push(f[i]);
  }
  const total = median(totals);
  // The whole forward in one call, as an application runs it (fused chains included).
  const whole = [];
  for (let it = -1; it < iterations; it++) {
    const t0 = now();
    net.forward();
    if (it >= 0) whole.push(now() - t0);
  }
  console.log(`\n${row.label} (${id}): net.forward() median ${median(whole).toFixed(1)} ms (min ${Math.min(...whole).toFixed(1)}); ${values.fused ? 'step' : 'layer'} by ${values.fused ? 'step' : 'layer'} median ${total.toFixed(1)} ms, min ${Math.min(...totals).toFixed(1)} ms over ${iterations} (${clock} clock, ${threads} thread(s)${values['host-alloc'] ? `, host memory ${values['host-alloc']}` : ''}, gemm ${gemmLabel(blob)})`);
  const rowsOut = starts.map((i) => ({
    name: net.layerNames[i],
    type: net.layers.slice(i, stepEnd[i] + 1).map((l) => l.param.type).join('+'),
    med: median(per[i]), min: Math.min(...per[i]),
    flops: layerFlops(net, i),
    shape: net.topVecs?.[i]?.[0]?.shapeString?.() ?? net.blobs.get(net.layers[i].param.top[0])?.shapeString() ?? '',
  }));
  const sorted = [...rowsOut].sort((a, b) => b.med - a.med).slice(0, top);
  for (const r of sorted) {
    const rate = r.flops ? `${(r.flops / r.med / 1e6).toFixed(1).padStart(6)} GF/s` : ' '.repeat(11);
    console.log(`  ${r.name.padEnd(28)} ${r.type.padEnd(14)} ${r.med.toFixed(2).padStart(9)} ms  min ${r.min.toFixed(2).padStart(8)}  ${((100 * r.med) / total).toFixed(1).padStart(5)}%  ${rate}  ${r.shape}`);
  }
  if (values['by-type']) {
    const byType = new Map();
    for (const r of rowsOut) byType.set(r.type, (byType.get(r.type) ?? 0) + r.med);
    console.log('  by type: ' + [...byType].sort((a, b) => b[1] - a[1]).map(([t, v]) => `${t} ${v.toFixed(1)}`).join(', '));
  }
}
await blob.shutdownThreads?.();
