#!/usr/bin/env node
// Training throughput on one core vs every core (data-parallel worker threads), from the built
// packages, in one run:
//
//   pnpm build && pnpm --filter @caffe-ts/bench bench:parallel [-- --models lenet,cifar10_quick]
//       [--iterations 40] [--warmup 5] [--epochs 2] [--records 2048]
//
// For each model (LeNet on 1×28×28, CIFAR-10 quick on 3×32×32) it writes a synthetic LMDB
// whose labels can be learnt from the pixels, swaps it into the prototxt's Data layers, and
// trains with the model's own solver settings in these mixes:
//   1 core       — no workers (the reference)
//   split ×N     — N replicas share each batch: the same trajectory (--workers auto, the default mix)
//   replicate ×N — N replicas of a whole batch each (Caffe's -gpu semantics; N × batch per iteration)
// Throughput is images per wall-clock second over `--iterations` iterations after `--warmup`.
// Then each mix trains `--epochs` epochs from the same seed and reports the test accuracy, which
// must not change between '1 core' and 'split' (the same computation up to summation order).
import v8 from 'node:v8';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { setLogEnabled } = await import('@caffe-ts/blob');
const { defaultLayerRegistry, registerBuiltinLayers } = await import('@caffe-ts/layers');
const { registerDataLayers, openDatumDb, formatKey } = await import('@caffe-ts/io-leveldb');
const { parseNetParameter, createMessage, encodeDatum, printText, Phase } = await import('@caffe-ts/proto');
const { createNodeSolver } = await import('@caffe-ts/solver/node');
const { createParallelSolver, chooseParallelism, availableCores } = await import('@caffe-ts/solver/parallel');
const { zooModel } = await import('@caffe-ts/zoo');

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'lenet,cifar10_quick' },
    iterations: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '5' },
    epochs: { type: 'string', default: '2' },
    records: { type: 'string', default: '2048' },
  },
});
registerBuiltinLayers(defaultLayerRegistry());
registerDataLayers(defaultLayerRegistry());
setLogEnabled(false);
const register = [import.meta.resolve('@caffe-ts/io-leveldb/register')];

const corpus = fileURLToPath(new URL('../../../shared/corpus/nets/cifar10/', import.meta.url));
const MODELS = {
  lenet: { net: zooModel('lenet').files.trainTest, shape: [1, 28, 28] },
  cifar10_quick: { net: `${corpus}cifar10_quick_train_test.prototxt`, shape: [3, 32, 32] },
};
const iterations = Number(values.iterations);
const warmup = Number(values.warmup);
const epochs = Number(values.epochs);
const records = Number(values.records);
const cores = availableCores();
const auto = chooseParallelism();
const work = mkdtempSync(join(tmpdir(), 'caffe-ts-bench-parallel-'));

/** Ten classes, each a bright band at its own place in the image, plus deterministic noise. */
async function writeLmdb(path, shape, count, salt) {
  const [c, h, w] = shape;
  const db = await openDatumDb(path, { mode: 'new', backend: 'lmdb' });
  const writer = db.writer();
  let s = salt;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < count; i++) {
    const label = (i * 7 + salt) % 10;
    const data = new Uint8Array(c * h * w);
    for (let p = 0; p < data.length; p++) {
      const row = Math.floor((p % (h * w)) / w);
      data[p] = (Math.floor((row * 10) / h) === label ? 160 : 0) + (rand() % 96);
    }
    await writer.put(formatKey(i), encodeDatum(createMessage('Datum', { channels: c, height: h, width: w, data, label })));
  }
  await writer.close();
  await db.close();
}

function solverFor(model, trainDb, testDb, testIter) {
  const net = parseNetParameter(readFileSync(MODELS[model].net, 'utf8'));
  let batch = 0;
  for (const l of net.layer) {
    if (l.type !== 'Data') continue;
    const train = l.include.some((r) => r.phase === Phase.TRAIN);
    l.data_param.source = train ? trainDb : testDb;
    l.data_param.backend = 1; // LMDB
    if (l.transform_param) {
      l.transform_param.mean_file = '';
      l.transform_param.scale = 1 / 256;
    }
    if (train) batch = l.data_param.batch_size;
  }
  const solver = {
    net_param: net,
    base_lr: model === 'lenet' ? 0.01 : 0.001,
    momentum: 0.9,
    weight_decay: model === 'lenet' ? 5e-4 : 4e-3,
    lr_policy: 'fixed',
    max_iter: 1_000_000,
    display: 0,
    random_seed: 1,
    snapshot_after_train: false,
    test_iter: [testIter],
    test_interval: 1_000_000,
  };
  // A fresh copy of the net for every solver (solvers keep and may change their definitions).
  const text = printText('NetParameter', net);
  return { param: () => createMessage('SolverParameter', { ...solver, net_param: parseNetParameter(text) }), batch };
}

async function build(param, mix) {
  const opts = { log: false, rootDir: work };
  if (mix.workers === 1) return createNodeSolver(param, opts);
  return createParallelSolver(param, { workers: mix.workers, mode: mix.mode, kernelThreads: mix.kernelThreads, register, log: false }, opts);
}

async function throughput(makeParam, batch, mix) {
  const solver = await build(makeParam(), mix);
  try {
    await solver.step(warmup);
    const t0 = performance.now();
    await solver.step(iterations);
    const s = (performance.now() - t0) / 1000;
    const perIter = mix.mode === 'replicate' ? batch * mix.workers : batch;
    return (perIter * iterations) / s;
  } finally {
    await solver.close();
  }
}

async function accuracy(makeParam, batch, mix) {
  const solver = await build(makeParam(), mix);
  try {
    const perIter = mix.mode === 'replicate' ? batch * mix.workers : batch;
    await solver.step(Math.ceil((epochs * records) / perIter));
    const [result] = await solver.testAll();
    return result.scores.find((s) => s.name === 'accuracy')?.value ?? NaN;
  } finally {
    await solver.close();
  }
}

const mixes = [
  { name: '1 core', workers: 1, kernelThreads: 1 },
  { name: `split ×${auto.workers} (default: --workers auto)`, workers: auto.workers, mode: 'split', kernelThreads: auto.kernelThreads },
  { name: `replicate ×${cores}`, workers: cores, mode: 'replicate', kernelThreads: 1 },
];
console.log(`cores: ${cores}; default mix: ${auto.workers} split replicas × ${auto.kernelThreads} kernel thread(s)`);
try {
  for (const model of values.models.split(',')) {
    if (!MODELS[model]) throw new Error(`unknown model '${model}' (known: ${Object.keys(MODELS).join(', ')})`);
    const trainDb = join(work, `${model}_train`);
    const testDb = join(work, `${model}_test`);
    await writeLmdb(trainDb, MODELS[model].shape, records, 1);
    await writeLmdb(testDb, MODELS[model].shape, 500, 2);
    const { param, batch } = solverFor(model, trainDb, testDb, 5);
    const base = { ips: 0 };
    console.log(`\n${model} (batch ${batch}, ${iterations} timed iterations after ${warmup})`);
    for (const mix of mixes) {
      if (mix.workers === 1 && mix !== mixes[0]) continue;
      const ips = await throughput(param, batch, mix);
      if (mix === mixes[0]) base.ips = ips;
      const acc = epochs > 0 ? await accuracy(param, batch, mix) : NaN;
      console.log(
        `  ${mix.name.padEnd(40)} ${ips.toFixed(1).padStart(8)} images/s  ${(ips / base.ips).toFixed(2)}×   accuracy after ${epochs} epochs: ${acc.toFixed(4)}`,
      );
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
