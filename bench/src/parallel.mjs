#!/usr/bin/env node
// Training throughput on one core against every mix of kernel threads and data-parallel worker
// threads that uses all the cores, from the built packages, in one run:
//
//   pnpm build && pnpm --filter @caffe-ts/bench bench:parallel [-- --models lenet,cifar10_quick]
//       [--rounds 7] [--iterations 32] [--warmup 3] [--epochs N] [--records 2048] [--profile]
//       [--mixes 1core,kernels,split,replicate] [--host-alloc wasm|js] [--probe on|off]
//       [--probe-warmup N] [--probe-rounds N] [--probe-iterations N] [--thread-cpu] [--kernels wasm|native]
//
// --kernels native runs every mix on @caffe-ts/backend-native's OpenBLAS kernels (its register module is
// imported here and by every replica); the default is the WebAssembly kernels.
// After each model's table, `caffe train`'s default times the mixes itself on copies of the same
// solver (probeParallelism, as the command does before a long run) and the line says which it
// picks; the accuracy rows (--epochs) train with that pick. --probe off leaves that out (the static
// default, chooseParallelism, is then the pick); --probe-* override the timing's warm-up
// iterations, rounds and iterations per round (probeParallelism's defaults: 2 and at least 200
// ms; 3; about 200 ms of iterations, 4 to 64).
//
// Mixes (C = the cores):
//   1 core        1 replica × 1 kernel thread (the reference)
//   kernels ×C    1 replica × C kernel threads (GEMM/conv split inside each layer)
//   split ×C      C replicas share each batch (the single-worker trajectory) × 1 kernel thread
//   replicate ×C  C replicas of a whole batch each (Caffe's -gpu semantics: C × batch per iteration)
//   split-plain   split ×C with the update in JavaScript loops and no early step (--mixes only)
//   split-static  split ×C with fixed halves read by each replica from its shard (no chunks taken
//                 dynamically; the split before chunking) (--mixes only)
//   split-balanced  split ×C with balanced shares (rank 0 moves the cut between the ranks' rows
//                 from step to step; 2 cores) (--mixes only)
//   split-spin    split ×C whose barrier waits spin 1 ms before they block (--mixes only)
// The default of `caffe train` (chooseParallelism) is marked. Every mix's solver is built once and
// the mixes then run in interleaved rounds of `--iterations` iterations (after `--warmup`), so a
// machine whose load changes during the run slows them alike; the table gives the median
// images/s over rounds and its ratio to '1 core' measured in the same rounds, the process CPU ms
// per image (all threads; the same for two mixes means no work was added, whatever the load),
// the steal (the share of the machine's CPU time that the hypervisor of a virtual machine gave to
// other guests while the mix ran, from /proc/stat; '—' elsewhere), and, for the worker mixes, per
// step: each rank's compute ms, rank 0's wait for the others, the reduction, the divided update
// and everything else on rank 0 between steps ('other': clearing
// the diffs, loss bookkeeping, loading its next batch) (--profile adds each thread's CPU ms while
// computing). --thread-cpu adds a line per mix: every thread's CPU ms per step and the ms it was
// runnable but waited for a core (Linux, from /proc/self/task), which shows what V8's own threads
// (compilers, garbage collection helpers) take beside the ranks, and how long each rank was
// descheduled while it had work.
// Blob host memory comes from the allocator `caffe train` uses (CAFFE_TS_HOST_ALLOCATOR=wasm, set
// by the CLI unless the user set it): --host-alloc, else CAFFE_TS_HOST_ALLOCATOR, else 'wasm'. It
// goes into the environment before anything is built, so the replica workers inherit it too.
// Synthetic LMDBs (labels learnable from the pixels) feed the throughput runs.
// Then (epochs > 0) '1 core' and the default mix each train that many epochs from the same seed
// and report the test accuracy and loss: LeNet one epoch of the MNIST digits bundled with
// io-leveldb (8,334 train, 1,666 test), CIFAR-10 quick three epochs of its synthetic LMDB (after
// one it is still at chance, 0.1, whatever the mix); --epochs N sets both (0: no accuracy rows).
import v8 from 'node:v8';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuTicks, stealPercent } from './host-steal.mjs';
import { parseBenchArgs } from './cli-args.mjs';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
// `pnpm … bench:parallel -- --flags` hands the '--' on: drop it.
const argv = process.argv.slice(2);
if (argv[0] === '--') argv.shift();
const { values } = parseBenchArgs({
  args: argv,
  options: {
    models: { type: 'string', default: 'lenet,cifar10_quick' },
    rounds: { type: 'string', default: '7' },
    // 32: each round is one solver.step() call, whose first step a worker mix runs cold (no batch
    // read ahead, no early start: 1-4 ms more on LeNet split ×2). `caffe train` runs its whole
    // solve in one step() call, so that cost comes once a run; rounds of 8 charged it to every
    // 8th step, and longer rounds also even out this host's drifting speed.
    iterations: { type: 'string', default: '32' },
    warmup: { type: 'string', default: '3' },
    epochs: { type: 'string' },
    records: { type: 'string', default: '2048' },
    mixes: { type: 'string', default: '1core,kernels,split,replicate' },
    profile: { type: 'boolean', default: false },
    // After each table: which mix `caffe train`'s default picks by timing them itself (probeParallelism).
    probe: { type: 'string', default: 'on' },
    'probe-warmup': { type: 'string' },
    'probe-rounds': { type: 'string' },
    'probe-iterations': { type: 'string' },
    'host-alloc': { type: 'string' },
    'thread-cpu': { type: 'boolean', default: false },
    kernels: { type: 'string', default: 'wasm' },
  },
}, import.meta.url);
const hostAlloc = values['host-alloc'] ?? process.env.CAFFE_TS_HOST_ALLOCATOR ?? 'wasm';
if (hostAlloc !== 'wasm' && hostAlloc !== 'js') {
  process.stderr.write(`parallel.mjs: --host-alloc expects wasm or js (got '${hostAlloc}')\n`);
  process.exit(2);
}
process.env.CAFFE_TS_HOST_ALLOCATOR = hostAlloc;
const { setLogEnabled, setNumThreads, initThreads } = await import('@caffe-ts/blob');
const { defaultLayerRegistry, registerBuiltinLayers } = await import('@caffe-ts/layers');
const { registerDataLayers, openDatumDb, formatKey, convertBundledMnist } = await import('@caffe-ts/io-leveldb');
const { parseNetParameter, createMessage, encodeDatum, printText, Phase } = await import('@caffe-ts/proto');
const { createNodeSolver } = await import('@caffe-ts/solver/node');
const { DataParallel, chooseParallelism, availableCores, probeParallelism, describePlan, threadTimes } = await import('@caffe-ts/solver/parallel');
const { nodeSolverIO } = await import('@caffe-ts/solver/node');
const { zooModel } = await import('@caffe-ts/zoo');

registerBuiltinLayers(defaultLayerRegistry());
registerDataLayers(defaultLayerRegistry());
setLogEnabled(false);
const register = [import.meta.resolve('@caffe-ts/io-leveldb/register')];
// --kernels native: @caffe-ts/backend-native's OpenBLAS kernels here and in every replica.
if (values.kernels === 'native') {
  const nativeRegister = import.meta.resolve('@caffe-ts/backend-native/register');
  await import(nativeRegister);
  register.push(nativeRegister);
} else if (values.kernels !== 'wasm') {
  process.stderr.write(`parallel.mjs: --kernels expects wasm or native (got '${values.kernels}')\n`);
  process.exit(2);
}

const corpus = fileURLToPath(new URL('../../../shared/corpus/nets/cifar10/', import.meta.url));
const MODELS = {
  // epochs: the accuracy rows' default. CIFAR-10 quick needs 3 on the synthetic LMDB (at lr 0.01)
  // before its accuracy leaves chance (0.1): one epoch would compare two untrained nets.
  lenet: { net: zooModel('lenet').files.trainTest, shape: [1, 28, 28], lr: 0.01, wd: 5e-4, epochs: 1 },
  cifar10_quick: { net: `${corpus}cifar10_quick_train_test.prototxt`, shape: [3, 32, 32], lr: 0.01, wd: 4e-3, epochs: 3 },
};
const rounds = Number(values.rounds);
const iterations = Number(values.iterations);
const warmup = Number(values.warmup);
/** Epochs of the accuracy rows for a model: --epochs, else the model's default. */
const epochsFor = (model) => (values.epochs === undefined ? MODELS[model].epochs : Number(values.epochs));
const records = Number(values.records);
const cores = availableCores();
const work = mkdtempSync(join(tmpdir(), 'caffe-ts-bench-parallel-'));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** This thread's CPU ms (Linux /proc/thread-self; NaN elsewhere). */
const threadCpu = () => {
  try {
    return threadTimes().cpu;
  } catch {
    return NaN;
  }
};
/** CPU and runqueue-wait ms of every thread of this process by thread id (Linux /proc/self/task; empty elsewhere). */
const threadsCpu = () => {
  const out = new Map();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        out.set(Number(tid), threadTimes(`/proc/self/task/${tid}`));
      } catch {
        // The thread ended between the listing and the read.
      }
    }
  } catch {
    // Not Linux.
  }
  return out;
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

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

/** The model's train/test net on these LMDBs, and a factory of solvers (fresh definitions each). */
function solverFor(model, trainDb, testDb, testIter) {
  const m = MODELS[model];
  const net = parseNetParameter(readFileSync(m.net, 'utf8'));
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
    base_lr: m.lr,
    momentum: 0.9,
    weight_decay: m.wd,
    lr_policy: 'fixed',
    max_iter: 1_000_000,
    display: 0,
    random_seed: 1,
    snapshot_after_train: false,
    test_iter: [testIter],
    test_interval: 1_000_000,
  };
  const text = printText('NetParameter', net);
  return { param: () => createMessage('SolverParameter', { ...solver, net_param: parseNetParameter(text) }), batch };
}

async function build(param, mix) {
  const opts = { log: false, rootDir: work };
  setNumThreads(mix.kernelThreads);
  if (mix.workers === 1) return { solver: await createNodeSolver(param, opts), dp: null };
  const dp = new DataParallel({
    workers: mix.workers,
    mode: mix.mode,
    kernelThreads: mix.kernelThreads,
    register,
    log: false,
    profile: values.profile,
    ...(mix.plain ? { wasmUpdate: false, earlyStep: false } : {}),
    ...(mix.chunks !== undefined ? { chunks: mix.chunks } : {}),
    ...(mix.balance !== undefined ? { balance: mix.balance } : {}),
    ...(mix.spinMs !== undefined ? { spinMs: mix.spinMs } : {}),
  });
  const solver = await createNodeSolver(param, { ...opts, netFactoryAsync: dp.netFactoryAsync });
  await dp.attach(solver);
  return { solver, dp };
}

const plan = chooseParallelism();
const ALL = {
  '1core': { name: '1 core', workers: 1, kernelThreads: 1 },
  kernels: { name: `kernels ×${cores}`, workers: 1, kernelThreads: cores },
  split: { name: `split ×${cores}`, workers: cores, mode: 'split', kernelThreads: 1 },
  replicate: { name: `replicate ×${cores}`, workers: cores, mode: 'replicate', kernelThreads: 1 },
  // split without the WebAssembly update kernels and the early step (JavaScript loops; each step
  // posted when rank 0 starts its own): what those two bring, measured in the same rounds.
  'split-plain': { name: `split ×${cores} plain`, workers: cores, mode: 'split', kernelThreads: 1, plain: true },
  // split with each replica's fixed share of every batch (chunks: 0), measured in the same rounds.
  'split-static': { name: `split ×${cores} static`, workers: cores, mode: 'split', kernelThreads: 1, chunks: 0 },
  // chunked split with balanced shares, and with barrier waits that spin first, in the same rounds.
  'split-balanced': { name: `split ×${cores} balanced`, workers: cores, mode: 'split', kernelThreads: 1, balance: true },
  'split-spin': { name: `split ×${cores} spin`, workers: cores, mode: 'split', kernelThreads: 1, spinMs: 1 },
};
const mixes = values.mixes.split(',').map((k) => {
  if (!ALL[k]) throw new Error(`unknown mix '${k}' (known: ${Object.keys(ALL).join(', ')})`);
  return ALL[k];
});
if (!mixes.includes(ALL['1core'])) mixes.unshift(ALL['1core']);
const isDefault = (mix) => !mix.plain && mix.chunks === undefined && mix.balance === undefined && mix.spinMs === undefined && mix.workers === plan.workers && mix.kernelThreads === plan.kernelThreads && (mix.workers === 1 || mix.mode === plan.mode);
const defaultMix = Object.values(ALL).find(isDefault) ?? ALL['1core'];
await initThreads(cores);
console.log(
  `cores: ${cores}; untimed default mix (chooseParallelism; caffe train times it against the others first, see below): ${plan.workers} ${plan.workers > 1 ? `${plan.mode} replicas` : 'replica'} × ${plan.kernelThreads} kernel thread(s); host allocator ${hostAlloc}; ` +
    `${rounds} rounds × ${iterations} iterations after ${warmup}; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`,
);

function statsDelta(before, after) {
  return after.map((a, r) => {
    const b = before[r];
    const d = {};
    for (const k of Object.keys(a)) d[k] = typeof a[k] === 'number' ? a[k] - (b?.[k] ?? 0) : a[k];
    return d;
  });
}

async function throughputTable(model, makeParam, batch) {
  const built = [];
  for (const mix of mixes) {
    let b;
    try {
      b = await build(makeParam(), mix);
      setNumThreads(mix.kernelThreads);
      await b.solver.step(warmup);
    } catch (e) {
      // One mix failing (e.g. a kernel-thread error) must not hide the others' figures.
      console.log(`  ${mix.name}: failed (${e instanceof Error ? `${e.name}: ${e.message}` : String(e)})`);
      await b?.solver.close().catch(() => {});
      continue;
    }
    built.push({ mix, ...b, ips: [], cpuPerImage: [], stats: [], split: [], steal: [], threads: new Map(), steps: 0 });
  }
  try {
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round so no mix always follows the same one.
      for (let k = 0; k < built.length; k++) {
        const e = built[(k + r) % built.length];
        setNumThreads(e.mix.kernelThreads);
        const before = e.dp?.stats();
        const c0 = cpuMs();
        const m0 = threadCpu();
        const k0 = cpuTicks();
        const th0 = values['thread-cpu'] ? threadsCpu() : null;
        const t0 = performance.now();
        await e.solver.step(iterations);
        const s = (performance.now() - t0) / 1000;
        if (th0) {
          for (const [tid, t] of threadsCpu()) {
            const was = th0.get(tid) ?? { cpu: 0, wait: 0 };
            const sum = e.threads.get(tid) ?? { cpu: 0, wait: 0 };
            e.threads.set(tid, { cpu: sum.cpu + t.cpu - was.cpu, wait: sum.wait + t.wait - was.wait });
          }
          e.steps += iterations;
        }
        const cpu = cpuMs() - c0;
        const main = threadCpu() - m0;
        const steal = stealPercent(k0, cpuTicks());
        if (steal !== null) e.steal.push(steal);
        const images = (e.mix.mode === 'replicate' ? batch * e.mix.workers : batch) * iterations;
        e.ips.push(images / s);
        e.cpuPerImage.push(cpu / images);
        let workers = 0;
        if (e.dp) {
          const d = statsDelta(before, e.dp.stats());
          // Balanced shares: each rank's rows of a batch as the last round left them.
          if (e.dp.shareRows) e.rowsSeen = e.dp.shareRows;
          e.stats.push({ ranks: d, wallPerStep: (s * 1000) / iterations });
          workers = d.slice(1).reduce((a, x) => a + x.threadCpuMs, 0);
        }
        // CPU ms per step: the calling thread, the replica workers, everything else (kernel-pool
        // workers, GC and libuv threads).
        e.split.push([main / iterations, workers / iterations, (cpu - main - workers) / iterations]);
      }
    }
  } finally {
    for (const e of built) await e.solver.close();
  }
  const base = built[0];
  console.log(`\n${model} (batch ${batch}): median over ${rounds} rounds`);
  console.log(`  ${'mix'.padEnd(28)} ${'images/s'.padStart(9)}  ${'×1 core'.padStart(7)}  ${'CPU ms/image'.padStart(12)}  ${'steal'.padStart(5)}   per step, ms (wall, then CPU with --profile)`);
  for (const e of built) {
    const ratio = median(e.ips.map((x, i) => x / base.ips[i]));
    let detail = '';
    if (e.stats.length > 0) {
      // Wait = the step's wall time minus the rank's own compute (rank 0: minus its reduction too);
      // rank 0's 'update' = what the solver does between gradient computations.
      const per = (rank, key) => median(e.stats.map((st) => st.ranks[rank][key] / Math.max(1, st.ranks[rank].steps)));
      const wall = median(e.stats.map((st) => st.wallPerStep));
      const ranks = e.stats[0].ranks.map((_, rank) => {
        const cpu = values.profile ? ` (cpu ${per(rank, 'cpuMs').toFixed(1)})` : '';
        return `r${rank} ${per(rank, 'computeMs').toFixed(1)}${cpu}`;
      });
      const r0wait = per(0, 'waitMs');
      // Rank 0's time between gradient computations: the divided update (command to last rank
      // done), then the rest (the solver's clearing of the diffs, loss bookkeeping, the data
      // layers' loading of the next batch on its event loop).
      const update = per(0, 'updateMs');
      const other = wall - per(0, 'computeMs') - r0wait - per(0, 'reduceMs') - update;
      // Inside compute: the data layers' prepare() (the batch's loading that runs there); lag: from
      // rank 0 posting a step to each worker starting it.
      const prep = e.stats[0].ranks.map((_, rank) => per(rank, 'prepareMs').toFixed(1)).join('/');
      const lag = e.stats[0].ranks.slice(1).map((_, i) => per(i + 1, 'lagMs').toFixed(2)).join('/');
      // Chunked split: chunks each rank took per step, and rank 0's reading of batches (inside its compute).
      const rows = e.rowsSeen ? `, rows ${e.rowsSeen.join('/')}` : '';
      // 'passes': the forward/backward passes of each rank's chunks (compute less rank 0's staging
      // and the workers' copies of params in and diffs out).
      const chunks =
        e.stats[0].ranks[0].chunks > 0
          ? `, chunks ${e.stats[0].ranks.map((_, rank) => per(rank, 'chunks').toFixed(2)).join('/')}${rows}, passes ${e.stats[0].ranks.map((_, rank) => per(rank, 'shareMs').toFixed(1)).join('/')}, staging ${per(0, 'stageMs').toFixed(1)}`
          : '';
      detail =
        `step ${wall.toFixed(1)}: compute ${ranks.join(' ')} (prepare ${prep})${chunks}, start lag ${lag}, r0 waits ${r0wait.toFixed(1)}, reduce ${per(0, 'reduceMs').toFixed(2)}, ` +
        `update ${update.toFixed(2)}, other ${other.toFixed(1)}`;
    }
    if (values.profile) {
      const cols = [0, 1, 2].map((i) => median(e.split.map((x) => x[i])));
      detail += `${detail ? '; ' : ''}CPU/step main ${cols[0].toFixed(1)} workers ${cols[1].toFixed(1)} other ${cols[2].toFixed(1)}`;
      // What an idle machine would give if each thread's CPU time were its wall time and the
      // threads overlapped fully (an upper bound; barrier waits come on top): images per CPU-bound step.
      const perThread =
        e.mix.workers > 1
          ? Math.max(cols[0], cols[1] / (e.mix.workers - 1))
          : e.mix.kernelThreads > 1
            ? Math.max(cols[0], cols[2] / (e.mix.kernelThreads - 1))
            : cols[0] + cols[2];
      const images = e.mix.mode === 'replicate' ? batch * e.mix.workers : batch;
      e.bound = images / perThread;
    }
    if (e.bound !== undefined && base.bound !== undefined) detail += `; CPU-bound estimate ${(e.bound / base.bound).toFixed(2)}× 1 core`;
    const name = `${e.mix.name}${e.mix === defaultMix ? ' (untimed default)' : ''}`;
    const steal = e.steal.length > 0 ? `${median(e.steal).toFixed(1)}%` : '—';
    console.log(
      `  ${name.padEnd(28)} ${median(e.ips).toFixed(1).padStart(9)}  ${ratio.toFixed(2).padStart(6)}×  ${median(e.cpuPerImage).toFixed(3).padStart(12)}  ${steal.padStart(5)}   ${detail}`,
    );
    if (e.steps > 0) {
      // Every thread's CPU ms per step over this mix's rounds, busiest first, and (where the
      // kernel reports it) the ms it was runnable but waited for a core; the process's main thread
      // has the process id.
      const per = [...e.threads].filter(([, t]) => t.cpu > 0).sort((a, b) => b[1].cpu - a[1].cpu);
      const waits = (t) => (Number.isFinite(t.wait) ? ` (waited ${(t.wait / e.steps).toFixed(2)})` : '');
      console.log(`    thread CPU ms/step: ${per.map(([tid, t]) => `${tid === process.pid ? 'main' : tid} ${(t.cpu / e.steps).toFixed(2)}${waits(t)}`).join(', ')}`);
    }
  }
}

async function accuracy(makeParam, batch, mix, trainRecords, epochs) {
  const { solver } = await build(makeParam(), mix);
  try {
    setNumThreads(mix.kernelThreads);
    const perIter = mix.mode === 'replicate' ? batch * mix.workers : batch;
    const iters = Math.ceil((epochs * trainRecords) / perIter);
    const t0 = performance.now();
    await solver.step(iters);
    const s = (performance.now() - t0) / 1000;
    const [result] = await solver.testAll();
    const score = (name) => result.scores.find((sc) => sc.name === name)?.value ?? NaN;
    return { iters, s, acc: score('accuracy'), loss: score('loss') };
  } finally {
    await solver.close();
  }
}

try {
  for (const model of values.models.split(',')) {
    if (!MODELS[model]) throw new Error(`unknown model '${model}' (known: ${Object.keys(MODELS).join(', ')})`);
    const trainDb = join(work, `${model}_train`);
    const testDb = join(work, `${model}_test`);
    await writeLmdb(trainDb, MODELS[model].shape, records, 1);
    await writeLmdb(testDb, MODELS[model].shape, 500, 2);
    const { param, batch } = solverFor(model, trainDb, testDb, 5);
    await throughputTable(model, param, batch);
    // What `caffe train`'s default would train this net with here: its own timing of the mixes.
    let chosenMix = defaultMix;
    if (values.probe !== 'off' && cores >= 2) {
      const read = { param: param(), file: join(work, `${model}_solver.prototxt`), rootDir: work, io: nodeSolverIO({ rootDir: work, log: false }) };
      const num = (k) => (values[k] === undefined ? undefined : Number(values[k]));
      const probe = await probeParallelism(read, {
        register, log: false, solverOptions: { log: false },
        warmup: num('probe-warmup'), rounds: num('probe-rounds'), iterations: num('probe-iterations'),
      });
      const timed = probe.timings.map((t) => `${describePlan(t.plan)} ${t.msPerIteration === null ? 'failed' : `${t.msPerIteration.toFixed(1)} ms`}`).join(', ');
      console.log(`  caffe train's default, timing the mixes itself (${timed} per iteration), picks: ${describePlan(probe.plan)}`);
      chosenMix = probe.plan.workers === 1 ? { ...ALL.kernels, kernelThreads: probe.plan.kernelThreads } : { ...ALL.split, workers: probe.plan.workers, kernelThreads: probe.plan.kernelThreads };
    }
    const epochs = epochsFor(model);
    if (epochs > 0) {
      let acc = { param, trainRecords: records, what: `synthetic LMDB (${records} train, 500 test)` };
      if (model === 'lenet') {
        const digitsTrain = join(work, 'digits_train');
        const digitsTest = join(work, 'digits_test');
        const tr = await convertBundledMnist('train', digitsTrain, { backend: 'lmdb' });
        const te = await convertBundledMnist('test', digitsTest, { backend: 'lmdb' });
        const s = solverFor(model, digitsTrain, digitsTest, Math.ceil(te.count / 100));
        acc = { param: s.param, trainRecords: tr.count, what: `bundled MNIST digits (${tr.count} train, ${te.count} test)` };
      }
      console.log(`  accuracy after ${epochs} epoch(s) of the ${acc.what}, same seed:`);
      for (const mix of chosenMix === ALL['1core'] ? [ALL['1core']] : [ALL['1core'], chosenMix]) {
        const r = await accuracy(acc.param, batch, mix, acc.trainRecords, epochs);
        console.log(`    ${mix.name.padEnd(22)} accuracy ${r.acc.toFixed(4)}, test loss ${r.loss.toPrecision(6)}  (${r.iters} iterations, ${r.s.toFixed(1)} s)`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
