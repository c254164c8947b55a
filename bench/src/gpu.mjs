#!/usr/bin/env node
// The gpu backend (gpu.js) against the CPU backend, from the built packages:
//
//   pnpm build && xvfb-run -a node bench/src/gpu.mjs [--modes headlessgl,wasm,cpu,headlessgl-direct]
//       [--lenet-batch 64] [--lenet-iterations 3] [--caffenet-batch 1] [--caffenet-iterations 1]
//       [--json results/gpu.json] [--kernel-profile] [--gemm 512,1024 [--gemm-iterations 5]]
//
// LeNet: one training step = forward + backward + the SGD update (momentum 0.9, weight decay
// 5e-4; on the device for gpu modes, on the host for cpu) over the zoo's train net with its Data
// layers swapped for Input layers holding fixed random digits. CaffeNet: forward of the zoo's
// deploy net (TEST phase, zero weights: the work does not depend on the values) at
// --caffenet-batch 227×227 images. Each figure is the median over the iterations after one
// warm-up iteration (which compiles the gpu.js kernels). Wall clock; gpu modes call
// synchronize() before reading it. "cpu" is the process's CPU time over the same span (all
// threads: Mesa's llvmpipe renders on one thread per core), steadier than wall clock on a busy
// machine. `headlessgl-direct` is headless GL without the packed GEMMs (the direct kernels). Without xvfb-run (or without the optional `gl` build) the
// headlessgl mode is listed as unavailable with the reason. No real GPU was available when this
// was written: on a GPU-less machine headless GL renders with Mesa's software rasterizer. Each gpu
// mode prints its renderer (the GL driver's name for the GPU or rasterizer). `--json` also writes
// the figures to a file. `--kernel-profile` then times each gpu kernel by name (a device sync
// around every kernel run) over warm LeNet steps and CaffeNet forwards, and lists the slowest.
// `--gemm 512,1024` first times an InnerProduct forward of n outputs over n rows of n inputs for
// each size (2·n³ flops: the packed GEMM with its packing and unpacking, apart from the nets).
// To run on a machine that has a GPU and Node but not this repository's install,
// `node bench/src/bundle-gpu.mjs --out DIR` packs this script into one self-contained folder.
import { readFileSync } from 'node:fs';
import { parseBenchArgs } from './cli-args.mjs';

const { Blob, cpuBackend, Rng, threadPoolInfo } = await import('@caffe-ts/blob');
await import('@caffe-ts/layers/register');
const { Net } = await import('@caffe-ts/net');
const { parseNetParameter, Phase } = await import('@caffe-ts/proto');
const { zooModel } = await import('@caffe-ts/zoo');
// Not a dependency of bench/ (its optional native `gl` stays out of the bench install): the build output.
const { createGpuBackend, isModeSupported } = await import(new URL('../../packages/backend-gpu/dist/index.js', import.meta.url).href);

const { values } = parseBenchArgs({
  options: {
    modes: { type: 'string', default: 'headlessgl,wasm,cpu' },
    'lenet-batch': { type: 'string', default: '64' },
    'lenet-iterations': { type: 'string', default: '3' },
    'caffenet-batch': { type: 'string', default: '1' },
    'caffenet-iterations': { type: 'string', default: '1' },
    json: { type: 'string' },
    'kernel-profile': { type: 'boolean', default: false },
    gemm: { type: 'string', default: '' },
    'gemm-iterations': { type: 'string', default: '5' },
  },
}, import.meta.url);
const lenetBatch = Number(values['lenet-batch']);
const lenetIters = Number(values['lenet-iterations']);
const caffenetBatch = Number(values['caffenet-batch']);
const caffenetIters = Number(values['caffenet-iterations']);
const gemmSizes = values.gemm.split(',').filter(Boolean).map(Number);
if (gemmSizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--gemm ${values.gemm}: expected positive integers`);
const gemmIters = Number(values['gemm-iterations']);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The zoo LeNet train net with its Data layer replaced by Input layers of the same tops. */
function lenetNet(backend) {
  const text = readFileSync(zooModel('lenet').files.trainTest, 'utf8');
  const param = parseNetParameter(text);
  param.layer = param.layer.filter((l) => l.type !== 'Data' && l.type !== 'Accuracy');
  const input = parseNetParameter(
    `layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: ${lenetBatch} dim: 1 dim: 28 dim: 28 } shape { dim: ${lenetBatch} } } }`,
  ).layer[0];
  param.layer.unshift(input);
  const net = new Net(param, { backend, phase: Phase.TRAIN, log: false, rng: new Rng(1701) });
  const rng = new Rng(7);
  const d = net.blob('data').mutableCpuData();
  for (let i = 0; i < d.length; i++) d[i] = rng.uniform();
  const l = net.blob('label').mutableCpuData();
  for (let i = 0; i < l.length; i++) l[i] = rng.int(10);
  return net;
}

/** Wall and CPU milliseconds of `fn`. */
function measure(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}
const medians = (xs) => ({ wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) });

function timeLenet(backend, sync) {
  const net = lenetNet(backend);
  const history = net.learnableParams.map((p) => new Blob(p.shape, { dtype: 'float32', device: p.device }));
  const ops = backend.solverOps;
  const times = [];
  for (let it = 0; it < lenetIters + 1; it++) {
    // A new batch each step, as a data layer would upload it.
    net.blob('data').mutableCpuData();
    net.blob('label').mutableCpuData();
    const m = measure(() => {
      net.clearParamDiffs();
      net.forwardBackward();
      net.learnableParams.forEach((p, i) => {
        const step = { localRate: 0.01 * (net.paramsLr[i] ?? 1), momentum: 0.9, localDecay: 5e-4 * (net.paramsWeightDecay[i] ?? 1), regularization: 'L2', diffScale: 1 };
        if (ops) ops.sgdStep(p, history[i], step);
        else {
          const g = p.mutableCpuDiff();
          const w = p.cpuData();
          const h = history[i].mutableCpuData();
          for (let j = 0; j < g.length; j++) {
            h[j] = step.localRate * (g[j] + step.localDecay * w[j]) + step.momentum * h[j];
            g[j] = h[j];
          }
          p.update();
        }
      });
      sync();
    });
    if (it > 0) times.push(m);
  }
  net.dispose();
  for (const h of history) h.dispose();
  return medians(times);
}

/**
 * Medians over `iterations` forwards of `text`'s net (TEST phase) after one warm-up forward: a
 * new `input` each time, as a data layer would upload it, and `output` read back where given.
 */
function timeForwards(backend, sync, text, input, output, iterations) {
  const net = new Net(parseNetParameter(text), { backend, phase: Phase.TEST, log: false });
  const times = [];
  for (let it = 0; it < iterations + 1; it++) {
    net.blob(input).mutableCpuData();
    const m = measure(() => {
      net.forward();
      if (output) net.blob(output).cpuData();
      sync();
    });
    if (it > 0) times.push(m);
  }
  net.dispose();
  return medians(times);
}

function timeCaffenet(backend, sync) {
  const text = readFileSync(zooModel('caffenet').files.deploy, 'utf8').replace('dim: 10 dim: 3', `dim: ${caffenetBatch} dim: 3`);
  // The answer (prob) comes back to the host.
  return timeForwards(backend, sync, text, 'data', 'prob', caffenetIters);
}

/**
 * One forward of an InnerProduct of n outputs over n rows of n inputs (no bias): a GEMM of 2·n³
 * flops, so the device's GEMM speed shows apart from the nets' other kernels.
 */
function timeGemm(backend, sync, n) {
  const text = `layer { name: "x" type: "Input" top: "x" input_param { shape { dim: ${n} dim: ${n} } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: ${n} bias_term: false } }`;
  return timeForwards(backend, sync, text, 'x', null, gemmIters);
}

const rows = [];
const run = (label, backend, sync, info) => {
  for (const n of gemmSizes) {
    const g = timeGemm(backend, sync, n);
    console.log(`${label.padEnd(26)} InnerProduct ${n}×${n}·${n}: ${g.wall.toFixed(2).padStart(9)} ms (${((2 * n ** 3) / g.wall / 1e6).toFixed(1)} GFLOP/s; cpu ${g.cpu.toFixed(0)} ms)`);
  }
  const lenet = timeLenet(backend, sync);
  const caffenet = timeCaffenet(backend, sync);
  rows.push({ label, lenet, caffenet, ...(info ? { info } : {}) });
  console.log(
    `${label.padEnd(26)} LeNet train step (batch ${lenetBatch}): ${lenet.wall.toFixed(1).padStart(9)} ms (cpu ${lenet.cpu.toFixed(0)} ms; ${((lenetBatch * 1000) / lenet.wall).toFixed(1)} img/s)` +
      `   CaffeNet forward (batch ${caffenetBatch}): ${caffenet.wall.toFixed(1).padStart(9)} ms (cpu ${caffenet.cpu.toFixed(0)} ms; ${((caffenetBatch * 1000) / caffenet.wall).toFixed(2)} img/s)`,
  );
};

console.log(`node ${process.version}; DISPLAY=${process.env.DISPLAY ?? '(none)'}; no real GPU was used unless headlessgl reports a hardware renderer`);
const pool = threadPoolInfo();
run(`cpu backend (${pool.requested} thr)`, cpuBackend(), () => {}, { kernelThreads: pool.requested });
for (const entry of values.modes.split(',').filter(Boolean)) {
  const direct = entry.endsWith('-direct');
  const mode = direct ? entry.slice(0, -'-direct'.length) : entry;
  if (!isModeSupported(mode)) {
    console.log(`${`gpu.js ${entry}`.padEnd(26)} unavailable here${mode === 'headlessgl' ? ' (needs the gl build and a display: xvfb-run -a)' : ''}`);
    continue;
  }
  const backend = createGpuBackend({ mode, packed: !direct });
  const info = backend.info();
  if (info.renderer) console.log(`${`gpu.js ${entry}`.padEnd(26)} renderer: ${info.renderer}`);
  run(`gpu.js ${info.mode}${direct ? ' (direct)' : info.packed ? ' (packed)' : ''}`, backend, () => backend.synchronize(), {
    mode: info.mode,
    renderer: info.renderer ?? null,
    maxTextureSize: info.maxTextureSize,
    mantissaBits: info.mantissaBits,
  });
  if (values['kernel-profile']) printKernelProfile(mode, direct);
  const s = backend.stats();
  // Every net above was disposed: what the device still holds is what leaked.
  rows[rows.length - 1].info.liveBuffersAfterDispose = s.liveBuffers;
  console.log(`${''.padEnd(26)} (max texture ${info.maxTextureSize}, ${info.mantissaBits} mantissa bits, ${s.kernelsCompiled} kernels compiled, ${s.uploads} uploads, ${s.readbacks} readbacks, ${s.liveBuffers} device buffer(s) live after the nets' dispose, of which the device's own placeholder is 1)`);
  backend.destroy();
}
/** Per-kernel device time over warm steps (a fresh backend with profiling on; kernels compiled first). */
function printKernelProfile(mode, direct) {
  const prof = createGpuBackend({ mode, packed: !direct, profileKernels: true });
  const sync = () => prof.synchronize();
  const gemms = gemmSizes.map((n) => [`InnerProduct ${n}³`, (b, s) => timeGemm(b, s, n), gemmIters + 1]);
  for (const [what, time, steps] of [...gemms, ['LeNet train step', timeLenet, lenetIters + 1], ['CaffeNet forward', timeCaffenet, caffenetIters + 1]]) {
    time(prof, sync);
    prof.device.kernelProfile(true);
    time(prof, sync);
    const rows = prof.device.kernelProfile(true);
    const total = rows.reduce((t, r) => t + r.ms, 0) / steps;
    console.log(`${''.padEnd(26)} kernel profile, ${what} (${total.toFixed(1)} ms of kernels per step, each run synchronised):`);
    for (const r of rows.slice(0, 12)) {
      console.log(`${''.padEnd(28)}${(r.ms / steps).toFixed(2).padStart(8)} ms ${String(r.calls / steps).padStart(5)}x  ${r.name}`);
    }
  }
  prof.destroy();
}

const cpu = rows[0];
for (const r of rows.slice(1)) {
  console.log(
    `${r.label}: LeNet ${(r.lenet.wall / cpu.lenet.wall).toFixed(1)}x the CPU backend's step time (${(r.lenet.cpu / cpu.lenet.cpu).toFixed(1)}x its CPU time), ` +
      `CaffeNet ${(r.caffenet.wall / cpu.caffenet.wall).toFixed(1)}x its forward time (${(r.caffenet.cpu / cpu.caffenet.cpu).toFixed(1)}x)`,
  );
}
if (values.json) {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  mkdirSync(dirname(values.json), { recursive: true });
  const config = { lenetBatch, lenetIters, caffenetBatch, caffenetIters, node: process.version, cpus: (await import('node:os')).cpus().length };
  writeFileSync(values.json, JSON.stringify({ config, rows }, null, 2) + '\n');
  console.log(`wrote ${values.json}`);
}
