#!/usr/bin/env node
// Per-layer and per-step times of a training net (forward + backward, single thread), from the
// built packages:
//
//   pnpm build && node bench/src/lenet.mjs [--model lenet|cifar10_quick|cifar10_full|PATH]
//       [--batch N[,M…]] [--iterations 30] [--warmup 5] [--clock cpu|wall] [--phase TRAIN|TEST]
//       [--dtype float32|float64] [--col-floats N[,M…]] [--threads 1,2] [--host-alloc js|wasm|js,wasm]
//       [--roofline] [--update] [--env NAME=a,b] [--alternate] [--kernels wasm|native]
//
// --roofline adds, per layer, the work against the medians: for Convolution / InnerProduct the
// GEMM GFLOP/s (2·N·weights·output positions forward; backward that for the weight gradient plus
// as much again where the bottom needs a gradient); for the others the
// GB/s of the blob traffic a layer cannot avoid (forward: bottoms read + tops written; backward:
// top diffs and bottom data read + bottom diffs written; argmax masks and scratch not counted),
// so a memory-bound layer far below the machine's copy bandwidth is slow for another reason.
// --threads runs the whole measurement once per kernel thread count (initThreads(n) first); with
// more than one thread the default clock is wall (the cpu clock adds up all threads); with
// --alternate the thread counts take turns step by step instead (setNumThreads before each), so
// load from other processes falls on all of them alike, and a ratio of the step medians closes the
// run. The last
// line reports the process's peak resident set size (maxRSS).
// The net's Data layers are replaced by an Input layer of the same batch size (default: the
// prototxt's TRAIN batch size) holding fixed random inputs and labels, so only compute is
// timed. Prints, per layer, the median and minimum forward and backward ms over the iterations,
// then the median forward, backward and step (forward + backward) ms and the minimum step.
// --clock cpu (the default) times this process's CPU use (user + system, all its threads)
// rather than wall time, which on a machine shared with other jobs leaves out the time the
// benchmark was descheduled.
// --host-alloc picks where float32 blob memory lives (setHostAllocator): 'js' plain arrays that
// the WebAssembly kernels copy in and out, 'wasm' the kernels' shared memory (used in place).
// With several, one net is built per choice and their steps alternate (step i of every net, then
// step i + 1), so load from other processes falls on all of them alike; a summary line per net
// and the ratio of the medians close the run.
// --env NAME=a,b does the same for the values of an environment switch (each net built and
// stepped with NAME set to its value), e.g. --env CAFFE_TS_PACKED_DGRAD=on,off.
// --col-floats sets the convolution layers' maxBatchColFloats (their batched column-buffer budget);
// with several values, one net per value, steps alternating as above.
// --update builds each net through an SGD solver (LeNet's solver settings: lr 0.01, momentum 0.9,
// weight_decay 5e-4) and also times, per iteration, what a training iteration adds to forward +
// backward: clearing the param diffs, the solver's update (SGDSolver.applyUpdate) and its check
// that the params stayed finite; an "update" row and a step-with-update line report it.
// CAFFE_TS_GEMM=js|wasm-simd|wasm-relaxed-simd in the environment picks the float32 GEMM.
import v8 from 'node:v8';
import { readFileSync } from 'node:fs';
import { parseBenchArgs } from './cli-args.mjs';
import { fileURLToPath } from 'node:url';

// Before anything compiles WebAssembly, as the caffe CLI does.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { activeGemmKernelName, Rng, initThreads, setNumThreads, setHostAllocator, hostMemoryInfo } = await import('@caffe-ts/blob');
const { defaultLayerRegistry } = await import('@caffe-ts/layers');
await import('@caffe-ts/layers/register');
const { Net } = await import('@caffe-ts/net');
const { parseNetParameter, createMessage, Phase } = await import('@caffe-ts/proto');
const { zooModel } = await import('@caffe-ts/zoo');
const { createSolver } = await import('@caffe-ts/solver');

const { values } = parseBenchArgs({
  options: {
    model: { type: 'string', default: 'lenet' },
    batch: { type: 'string' },
    iterations: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
    clock: { type: 'string' },
    threads: { type: 'string', default: '1' },
    phase: { type: 'string', default: 'TRAIN' },
    dtype: { type: 'string', default: 'float32' },
    'col-floats': { type: 'string' },
    'host-alloc': { type: 'string' },
    env: { type: 'string' },
    roofline: { type: 'boolean', default: false },
    update: { type: 'boolean', default: false },
    alternate: { type: 'boolean', default: false },
    kernels: { type: 'string', default: 'wasm' },
  },
}, import.meta.url);
// --kernels native: @caffe-ts/backend-native's OpenBLAS convolutions and GEMMs.
if (values.kernels === 'native') await import('@caffe-ts/backend-native/register');
else if (values.kernels !== 'wasm') throw new Error(`--kernels ${values.kernels}: expected wasm or native`);

// The CIFAR-10 nets of the shared corpus beside the repository.
const corpus = fileURLToPath(new URL('../../../shared/corpus/nets/cifar10/', import.meta.url));
const MODELS = {
  lenet: { file: zooModel('lenet').files.trainTest, input: [1, 28, 28] },
  cifar10_quick: { file: `${corpus}cifar10_quick_train_test.prototxt`, input: [3, 32, 32] },
  cifar10_full: { file: `${corpus}cifar10_full_train_test.prototxt`, input: [3, 32, 32] },
};
const known = MODELS[values.model];
const file = known ? known.file : values.model;
const inputShape = known ? known.input : null;
const phase = values.phase.toUpperCase() === 'TEST' ? Phase.TEST : Phase.TRAIN;

const param = parseNetParameter(readFileSync(file, 'utf8'));
// Swap the phase's data layer(s) for one Input layer with the same tops and batch size.
const batches = values.batch ? values.batch.split(',').map(Number) : [];
for (const b of batches) if (!(Number.isInteger(b) && b > 0)) throw new Error(`--batch: expected positive integers, got ${values.batch}`);
const dataTops = [];
param.layer = param.layer.filter((l) => {
  if (l.type !== 'Data') return true;
  const inPhase = l.include.length === 0 || l.include.some((r) => r.phase === phase);
  if (inPhase) {
    if (batches.length === 0) batches.push(l.data_param?.batch_size ?? 64);
    if (dataTops.length === 0) dataTops.push(...l.top);
  }
  return false;
});
if (dataTops.length === 0) throw new Error(`${file}: no Data layer to replace`);
if (!inputShape) throw new Error(`${file}: unknown input shape (known models: ${Object.keys(MODELS).join(', ')})`);
/** The net's parameter with an Input layer of batch `b` in front. */
const paramFor = (b) => {
  const shapes = [[b, ...inputShape], [b]];
  const input = createMessage('LayerParameter', {
    name: 'input',
    type: 'Input',
    top: dataTops,
    input_param: { shape: dataTops.map((_, i) => ({ dim: shapes[Math.min(i, 1)] })) },
  });
  return createMessage('NetParameter', { ...param, layer: [input, ...param.layer] });
};

// One net per host allocator asked for (none asked: the default, unlabelled).
const allocs = values['host-alloc'] ? values['host-alloc'].split(',') : [null];
for (const a of allocs) if (a !== null && a !== 'js' && a !== 'wasm') throw new Error(`--host-alloc: expected js and/or wasm, got ${a}`);
// --env NAME=a,b: one net per value, built and stepped with NAME set to it (for switches the
// layers read from the environment, e.g. CAFFE_TS_PACKED_DGRAD=on,off), steps alternating.
let envName = null, envValues = [null];
if (values.env) {
  const m = /^([A-Z0-9_]+)=(.+)$/.exec(values.env);
  if (!m) throw new Error(`--env: expected NAME=value1,value2,…, got ${values.env}`);
  envName = m[1];
  envValues = m[2].split(',');
}
const setEnv = (v) => {
  if (envName !== null) process.env[envName] = v;
};
const nets = [];
// --batch a,b: one net per batch size too (its steps alternate with the others'; the summary
// also gives ms per image, so sizes compare).
const colFloatsList = values['col-floats'] ? values['col-floats'].split(',').map(Number) : [null];
for (const batch of batches) for (const alloc of allocs) for (const envValue of envValues) for (const colFloats of colFloatsList) {
  const param = paramFor(batch);
  if (alloc) setHostAllocator(alloc);
  setEnv(envValue);
  let solver = null;
  if (values.update) {
    if (phase !== Phase.TRAIN) throw new Error('--update needs the TRAIN phase');
    const sp = createMessage('SolverParameter', {
      net_param: param, base_lr: 0.01, momentum: 0.9, weight_decay: 0.0005, lr_policy: 'inv', gamma: 0.0001, power: 0.75, max_iter: 1 << 30, display: 0,
    });
    solver = createSolver(sp, { registry: defaultLayerRegistry(), dtype: values.dtype, log: false });
  }
  const net = solver ? solver.net : await Net.create(param, { phase, registry: defaultLayerRegistry(), log: false, dtype: values.dtype, name: file });
  if (colFloats !== null) {
    for (const layer of net.layers) if ('maxBatchColFloats' in layer) layer.maxBatchColFloats = colFloats;
  }
  // Fixed inputs: MNIST-like sparse [0, 1) pixels (most zero) and labels 0..9.
  const rng = new Rng(1);
  const data = net.blobs.get(dataTops[0]).mutableCpuData();
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform() < 0.8 ? 0 : rng.uniform();
  if (dataTops.length > 1) {
    const label = net.blobs.get(dataTops[1]).mutableCpuData();
    for (let i = 0; i < label.length; i++) label[i] = rng.int(10);
  }
  const inKernelMemory = !(data.buffer instanceof ArrayBuffer);
  const tags = [];
  if (alloc) tags.push(`host memory ${alloc}${alloc === 'wasm' && !inKernelMemory ? ': unavailable, plain arrays' : ''}`);
  if (envName !== null) tags.push(`${envName}=${envValue}`);
  if (batches.length > 1) tags.push(`batch ${batch}`);
  if (colFloatsList.length > 1) tags.push(`col floats ${colFloats}`);
  nets.push({ batch, alloc, envValue, net, solver, tag: tags.length ? ` [${tags.join(', ')}]` : '' });
}
const net = nets[0].net;

const threadCounts = values.threads.split(',').map(Number);
const clock = values.clock ?? (threadCounts.some((t) => t > 1) ? 'wall' : 'cpu');
const now = clock === 'cpu'
  ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }
  : () => performance.now();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Layer i's forward and backward work: { flops } for the GEMM layers, else { bytes } of blob
 * traffic (element size from the dtype; a blob that is both bottom and top counted once).
 */
function work(n, i) {
  const layer = n.layers[i], bottoms = n.bottomVecs[i], tops = n.topVecs[i];
  const num = bottoms[0]?.shape[0] ?? 1;
  if (layer.type === 'Convolution' || layer.type === 'InnerProduct') {
    const w = layer.blobs[0].count();
    const positions = layer.type === 'Convolution' ? tops[0].count() / (num * tops[0].shape[1]) : 1;
    const f = 2 * num * w * positions;
    // Backward: the weight gradient, and the bottom gradient where the bottom needs one.
    return [{ flops: f }, { flops: n.bottomNeedBackward[i]?.[0] ? 2 * f : f }];
  }
  const el = values.dtype === 'float64' ? 8 : 4;
  const count = (blobs) => blobs.reduce((a, b) => a + b.count(), 0);
  return [{ bytes: el * (count(bottoms) + count(tops)) }, { bytes: el * (count(tops) + 2 * count(bottoms)) }];
}
const rate = (w, msTaken) => {
  if (!(msTaken > 0)) return ''.padStart(16);
  return (w.flops !== undefined ? `${(w.flops / msTaken / 1e6).toFixed(1)} GFLOP/s` : `${(w.bytes / msTaken / 1e6).toFixed(1)} GB/s`).padStart(16);
};

const L = net.layers.length;
const iterations = Number(values.iterations), warmup = Number(values.warmup);
const ms = (x) => x.toFixed(3).padStart(9);
const summary = [];
const newRuns = () => nets.map(() => ({
  fwd: Array.from({ length: L }, () => []), bwd: Array.from({ length: L }, () => []), fwdTotal: [], bwdTotal: [], step: [],
  update: [], stepUpdate: [],
}));

/** One step of every net (forward, backward, the update with --update), recorded in `runs` unless warming up. */
function stepNets(runs, record) {
  nets.forEach(({ alloc, envValue, net, solver }, k) => {
    const r = runs[k];
    // Blobs allocate lazily (diffs on the first backward, scratch on first use): each net steps
    // under its own allocator, or its late arrays would land in the other's memory.
    if (alloc) setHostAllocator(alloc);
    setEnv(envValue);
    const f = new Float64Array(L), b = new Float64Array(L);
    // A solver iteration starts by clearing the param diffs (timed with the update).
    const c0 = now();
    if (solver) net.clearParamDiffs();
    const clear = now() - c0;
    const t0 = now();
    for (let i = 0; i < L; i++) {
      const s = now();
      net.forwardFromTo(i, i);
      f[i] = now() - s;
    }
    const t1 = now();
    for (let i = L - 1; i >= 0; i--) {
      const s = now();
      net.backwardFromTo(i, i);
      b[i] = now() - s;
    }
    const t2 = now();
    if (solver) {
      solver.applyUpdate();
      solver.checkParamsFinite();
    }
    const t3 = now();
    if (!record) return;
    if (solver) {
      r.update.push(clear + t3 - t2);
      r.stepUpdate.push(clear + t3 - t0);
    }
    for (let i = 0; i < L; i++) {
      r.fwd[i].push(f[i]);
      r.bwd[i].push(b[i]);
    }
    r.fwdTotal.push(t1 - t0);
    r.bwdTotal.push(t2 - t1);
    r.step.push(t2 - t0);
  });
}

function report(runs, threads, got) {
  nets.forEach(({ batch, net, tag, solver }, k) => {
    const { fwd, bwd, fwdTotal, bwdTotal, step, update, stepUpdate } = runs[k];
    console.log(`${net.name} ${values.phase} batch ${batch} ${values.dtype}, node ${process.version}, gemm ${activeGemmKernelName()}, ` +
      `${got} thread(s)${got !== threads ? ` (asked for ${threads})` : ''}${tag}, ${clock} clock, medians of ${iterations} iterations after ${warmup} warm-up` +
      (values.alternate ? ', thread counts alternating step by step' : ''));
    // Medians, and minima (on a busy machine the minimum is the closer estimate of an idle one).
    const roof = values.roofline;
    console.log(`${'layer'.padEnd(16)}${'forward'.padStart(9)}${'backward'.padStart(9)}${'fwd min'.padStart(9)}${'bwd min'.padStart(9)}` +
      (roof ? `${'fwd rate'.padStart(16)}${'bwd rate'.padStart(16)}` : ''));
    for (let i = 0; i < L; i++) {
      const rates = roof ? work(net, i).map((w, b) => rate(w, median(b ? bwd[i] : fwd[i]))).join('') : '';
      console.log(`${net.layerNames[i].padEnd(16)}${ms(median(fwd[i]))}${ms(median(bwd[i]))}${ms(Math.min(...fwd[i]))}${ms(Math.min(...bwd[i]))}${rates}`);
    }
    if (solver) console.log(`${'update'.padEnd(16)}${ms(median(update))}${''.padStart(9)}${ms(Math.min(...update))}`);
    const line = `forward ${median(fwdTotal).toFixed(2)} ms, backward ${median(bwdTotal).toFixed(2)} ms, ` +
      `step ${median(step).toFixed(2)} ms (min ${Math.min(...step).toFixed(2)} ms)` +
      (solver ? `, with update ${median(stepUpdate).toFixed(2)} ms (min ${Math.min(...stepUpdate).toFixed(2)} ms)` : '');
    console.log(line);
    summary.push(`threads ${got}${tag}: ${line}`);
  });
  if (nets.length > 1) {
    // Per image, so that nets of different batch sizes compare.
    const perImage = (k) => median(runs[k].step) / nets[k].batch;
    const base = perImage(0);
    summary.push(`threads ${got}: step median per image ratio ${nets.slice(1).map(({ tag }, k) => `${tag.trim()} / ${nets[0].tag.trim()} = ${(perImage(k + 1) / base).toFixed(3)}`).join(', ')}`);
  }
}

if (values.alternate && threadCounts.length > 1) {
  // Every thread count steps in turn (setNumThreads before each), so a machine whose speed drifts
  // slows them alike; the pool is started once for the largest count.
  const got = await initThreads(Math.max(...threadCounts));
  const runsBy = threadCounts.map(() => newRuns());
  for (let it = -warmup; it < iterations; it++) {
    threadCounts.forEach((t, j) => {
      setNumThreads(t);
      stepNets(runsBy[j], it >= 0);
    });
  }
  threadCounts.forEach((t, j) => report(runsBy[j], t, Math.min(t, got)));
  const steps = runsBy.map((runs) => median(runs[0].step));
  summary.push(`step median ratio ${threadCounts.slice(1).map((t, j) => `${threadCounts[0]} / ${t} threads = ${(steps[0] / steps[j + 1]).toFixed(2)}×`).join(', ')}`);
} else {
  for (const threads of threadCounts) {
    const got = await initThreads(threads);
    const runs = newRuns();
    for (let it = -warmup; it < iterations; it++) stepNets(runs, it >= 0);
    report(runs, threads, got);
  }
}
if (summary.length > 1) for (const line of summary) console.log(line);
if (allocs[0]) setHostAllocator(undefined);
if (allocs.includes('wasm')) {
  const h = hostMemoryInfo().heap;
  if (h) console.log(`kernel heap: ${(h.bytesInUse / 2 ** 20).toFixed(1)} MiB in use, ${(h.memoryBytes / 2 ** 20).toFixed(1)} MiB memory`);
}
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`);
