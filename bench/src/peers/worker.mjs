#!/usr/bin/env node
// Runs one framework's rows of the peer comparison in its own process (so its peak RSS is its
// own) and writes the results as JSON to --out. Started by bench/src/compare.mjs:
//
//   node [--experimental-wasm-relaxed-simd] src/peers/worker.mjs --framework caffe-ts|caffe-ts-native|tfjs-wasm|tfjs-cpu|onnxruntime
//       --rows ID,ID --threads 1,2 --bundle DIR --out FILE [--quick] [--budget SECONDS]
//
// The caffe-ts worker runs first: besides timing, it writes each net row's bundle (spec with
// random weights, inputs, and caffe-ts's outputs / loss and gradients) that the other workers
// convert, run and compare against.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ROWS, NOT_AVAILABLE } from './rows.mjs';
import { loadBundle, maxRelError } from './bundle.mjs';
import { gemmLabel } from '../gemm-label.mjs';

const { values } = parseArgs({
  options: {
    framework: { type: 'string' },
    rows: { type: 'string', default: '' },
    threads: { type: 'string', default: '1' },
    bundle: { type: 'string' },
    out: { type: 'string' },
    quick: { type: 'boolean', default: false },
    slow: { type: 'boolean', default: false },
    budget: { type: 'string' },
  },
});
const framework = values.framework;
const rows = values.rows.split(',').filter(Boolean).map((id) => {
  const r = ROWS.find((x) => x.id === id);
  if (!r) throw new Error(`unknown row ${id}`);
  return r;
});
const threadCounts = values.threads.split(',').map(Number);
const quick = values.quick;
// Seconds of timed runs per cell (after the warm-up); at least minReps runs, at most maxReps.
const budgetMs = 1000 * Number(values.budget ?? (quick ? 0.4 : 4));
const minReps = quick ? 1 : 3, maxReps = quick ? 3 : 25;

const log = (msg) => process.stderr.write(`[${framework}] ${msg}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Median and minimum wall ms of `fn` (sync or async) after the warm-up: at least `warmup` runs,
 * and (when warmup > 0) more, up to 10, until a quarter of the budget has passed. V8 first runs
 * WebAssembly on its baseline compiler and swaps in optimised code after enough calls, in the
 * background, so a single warm-up run could leave the first timed runs of a small net on
 * baseline code (in every framework that runs WebAssembly).
 */
async function measure(fn, { warmup = 1, min = minReps, max = maxReps } = {}) {
  const w0 = performance.now();
  let warmed = 0;
  while (warmed < warmup || (warmup > 0 && warmed < 10 && performance.now() - w0 < budgetMs / 4)) {
    await fn();
    warmed++;
  }
  // A run longer than the whole budget (tfjs-cpu on the big nets): one timed run is enough.
  if (warmed > 0 && (performance.now() - w0) / warmed > budgetMs) min = 1;
  const times = [];
  const start = performance.now();
  while (times.length < max && (times.length < min || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return { ms: median(times), minMs: Math.min(...times), reps: times.length };
}

/** Deterministic matrix in [-1, 1) (same LCG as bench/src/gemm.mjs). */
function randomMatrix(n, seed) {
  const a = new Float32Array(n * n);
  let s = seed;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    a[i] = (s >>> 8) / 2 ** 23 - 1;
  }
  return a;
}

/** Max relative error of C = A·B at 256 sampled entries against float64 dot products. */
function gemmError(n, A, B, C) {
  const got = [], ref = [];
  let s = 7;
  for (let t = 0; t < 256; t++) {
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    const i = (s >>> 8) % n;
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    const j = (s >>> 8) % n;
    let d = 0;
    for (let k = 0; k < n; k++) d += A[i * n + k] * B[k * n + j];
    ref.push(d);
    got.push(C[i * n + j]);
  }
  return maxRelError(got, ref);
}

const gemmInputs = (n) => ({ A: randomMatrix(n, 12345), B: randomMatrix(n, 54321) });

/** Every array of a bundle's reference against `got` (name → Float32Array): the largest error. */
function compareAll(got, reference) {
  let worst = 0, where = '';
  for (const [name, ref] of Object.entries(reference)) {
    if (!(name in got)) throw new Error(`no result for ${name}`);
    const e = maxRelError(got[name], ref.data);
    if (!(e <= worst)) {
      worst = e;
      where = name;
    }
  }
  return { err: worst, errAt: where };
}

// ---------------------------------------------------------------------------------------------
// Frameworks: each returns { version, notes, setThreads(t) → string|null (why not), gemm(row),
// infer(row), train(row) } where the row runners return a cell { ms, minMs, reps, err, ... }.

/** Where caffe-ts's float32 blob memory lives in this run (compare.mjs --host-alloc). */
function hostMemoryNote(blob) {
  const info = blob.hostMemoryInfo?.();
  if (!info) return 'caffe-ts host memory: plain arrays';
  return info.active
    ? "caffe-ts host memory: 'wasm' allocator (blobs in the kernels' shared memory, as the caffe command runs; kernels read and write them in place)"
    : `caffe-ts host memory: plain arrays (${info.reason}; the kernels copy operands in and out)`;
}

/**
 * caffe-ts itself; with `native`, under @caffe-ts/backend-native's OpenBLAS kernels
 * (useNativeKernels), checked against the bundles the WebAssembly run wrote as a peer is.
 */
async function caffeTs({ native = false } = {}) {
  const blob = await import('@caffe-ts/blob');
  const nativeBlas = native ? (await import('@caffe-ts/backend-native')).useNativeKernels() : null;
  const { defaultLayerRegistry } = await import('@caffe-ts/layers');
  await import('@caffe-ts/layers/register');
  const { Net } = await import('@caffe-ts/net');
  const { rowNetParameter } = await import('./rows.mjs');
  const { describeNet, fillRandomParams, saveBundle } = await import('./net-spec.mjs');
  const { reuseActivations } = await import('@caffe-ts/zoo');
  /** What feeds each Softmax: logits say more than near-uniform probabilities. */
  const logitNames = (net) => net.layers.filter((l) => l.param.type === 'Softmax').map((l) => l.param.bottom[0]);
  const version = JSON.parse(readFileSync(new URL('../../../packages/blob/package.json', import.meta.url), 'utf8')).version;
  // Intra-op threads (@caffe-ts/blob's worker pool): initThreads(n) resolves once the workers
  // are up, to the count jobs will really use; without the API only 1 thread runs.
  const hasThreads = typeof blob.initThreads === 'function' || typeof blob.setNumThreads === 'function';
  const built = new Map();
  return {
    // The GEMM kernel is picked on first use: read its name when the rows are done.
    get version() {
      return `${version} (gemm ${gemmLabel(blob)})`;
    },
    notes: [
      ...(nativeBlas ? [`caffe-ts-native: @caffe-ts/backend-native (convolutions and GEMMs in OpenBLAS ${nativeBlas.config.split(' ')[1] ?? ''}, core ${nativeBlas.core}; the rest as caffe-ts)`] : []),
      hasThreads ? 'caffe-ts threads: @caffe-ts/blob initThreads(n) (worker pool over shared memory)' : '@caffe-ts/blob has no thread API yet: 1 thread only',
      hostMemoryNote(blob),
    ],
    async setThreads(t) {
      if (!hasThreads) return t === 1 ? null : 'no thread API yet';
      const got = typeof blob.initThreads === 'function' ? await blob.initThreads(t) : (blob.setNumThreads(t), t);
      return got === t ? null : `only ${got} thread(s) started`;
    },
    gemm(row) {
      const n = row.n;
      // Operands in blob memory, where a caffe-ts layer's GEMM finds them (the kernels' memory
      // under the 'wasm' host allocator: no staging copies).
      const place = (values) => {
        const d = new blob.Blob([values.length]).mutableCpuData();
        d.set(values);
        return d;
      };
      const inputs = gemmInputs(n);
      const A = place(inputs.A), B = place(inputs.B), C = place(new Float32Array(n * n));
      const run = () => blob.gemm(false, false, n, n, n, 1, A, B, 0, C);
      return { run, check: () => gemmError(n, A, B, C) };
    },
    async net(row) {
      if (!built.has(row.id)) {
        const { param, phase } = await rowNetParameter(row);
        const net = await Net.create(param, { phase, registry: defaultLayerRegistry(), log: false, name: row.id });
        const rng = new blob.Rng(20240601);
        fillRandomParams(net, rng);
        // A deploy net's activations share buffers where their lifetimes do not overlap, as
        // onnxruntime and tfjs plan theirs (@caffe-ts/zoo's reuseActivations; the same bits, see
        // tests/src/zoo-memory.test.ts). The logits the peers are checked on stay readable.
        if (row.kind === 'infer') reuseActivations(net, { keep: logitNames(net) });
        const inputs = {};
        for (const name of net.inputBlobNames) {
          const b = net.blobs.get(name);
          const d = b.mutableCpuData();
          if (name === 'label') for (let i = 0; i < d.length; i++) d[i] = rng.int(10);
          else if (row.kind === 'train') for (let i = 0; i < d.length; i++) d[i] = rng.uniform() < 0.8 ? 0 : rng.uniform();
          else for (let i = 0; i < d.length; i++) d[i] = 2 * rng.uniform() - 1;
          inputs[name] = { shape: [...b.shape], data: Float32Array.from(d) };
        }
        const reference = {};
        let check;
        if (row.kind === 'infer') {
          net.forward();
          // Outputs, plus what feeds each Softmax (logits say more than near-uniform probabilities).
          const names = new Set([...net.outputBlobNames, ...logitNames(net)]);
          for (const name of names) reference[name] = { shape: [...net.blobs.get(name).shape], data: Float32Array.from(net.blobs.get(name).cpuData()) };
          check = [...names];
        } else {
          net.clearParamDiffs();
          const loss = net.forward();
          net.backward();
          reference.loss = { shape: [1], data: Float32Array.from([loss]) };
          net.layers.forEach((layer, li) => layer.blobs.forEach((b, bi) => {
            reference[`${net.layerNames[li]}/${bi}`] = { shape: [...b.shape], data: Float32Array.from(b.cpuDiff()) };
          }));
        }
        if (!native) saveBundle(values.bundle, row.id, describeNet(net, { views: true }), inputs, reference, { check });
        else built.set(`${row.id}:got`, reference);
        built.set(row.id, net);
      }
      const net = built.get(row.id);
      return {
        run: row.kind === 'infer' ? () => net.forward() : () => { net.clearParamDiffs(); net.forward(); net.backward(); },
        // The same weights and inputs (same seed) as the WebAssembly run, whose results the bundle holds.
        check: native
          ? () => {
            const got = built.get(`${row.id}:got`);
            const { reference } = loadBundle(values.bundle, row.id);
            return compareAll(Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.data])), reference);
          }
          : () => 0, // the reference itself
      };
    },
    endRow() {
      // The next row's net reuses this one's memory (the kernel heap never shrinks).
      for (const net of built.values()) net.dispose?.();
      built.clear();
    },
  };
}

async function tfjs(backend) {
  const tf = await import('@tensorflow/tfjs-core');
  if (backend === 'cpu') await (await import('./tfjs-gradients.mjs')).registerTfjsGradients(values.bundle);
  await import('@tensorflow/tfjs-backend-cpu');
  if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  const { specToTfjs } = await import('./to-tfjs.mjs');
  // Production mode, as a deployed app runs: no debug checks, no console advice to install tfjs-node.
  tf.env().set('PROD', true);
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
  await tf.ready();
  const notes = [];
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    notes.push(`tfjs-wasm runs ${wasm.getThreadsCount?.() ?? 1} thread(s) in Node (its threaded build needs a browser's workers)`);
  } else notes.push('tfjs-cpu is plain single-threaded JavaScript');
  let scoped = false;
  return {
    version: tf.version_core,
    notes,
    // Every tensor a row makes (weights, inputs) is freed when the row ends.
    startRow() {
      tf.engine().startScope();
      scoped = true;
    },
    endRow() {
      if (scoped) tf.engine().endScope();
      tf.disposeVariables();
      scoped = false;
    },
    setThreads: (t) => (t === 1 ? null : 'n/a: no threads in Node'),
    gemm(row) {
      const n = row.n;
      const { A, B } = gemmInputs(n);
      const a = tf.tensor2d(A, [n, n]), b = tf.tensor2d(B, [n, n]);
      let C = null;
      const run = () => {
        const c = tf.matMul(a, b);
        C = c.dataSync();
        c.dispose();
      };
      return { run, check: () => gemmError(n, A, B, C) };
    },
    net(row) {
      const { spec, inputs, reference, check } = loadBundle(values.bundle, row.id);
      const train = row.kind === 'train';
      const prog = specToTfjs(tf, spec, { train });
      const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, prog.feed(v.data, v.shape)]));
      const main = spec.outputs[0];
      if (!train) {
        return {
          run: () => {
            const y = tf.tidy(() => prog.run(feeds).get(main));
            y.dataSync();
            y.dispose();
          },
          check: () => {
            const outs = tf.tidy(() => {
              const env = prog.run(feeds);
              return check.map((name) => prog.toNchw(env.get(name)));
            });
            const got = Object.fromEntries(check.map((name, i) => [name, outs[i].dataSync()]));
            tf.dispose(outs);
            return compareAll(got, reference);
          },
        };
      }
      const vars = prog.params.map((p) => p.tensor);
      // The check reads the last timed step's gradients: on tfjs-cpu a step takes minutes.
      let last = null;
      const release = () => {
        if (last) tf.dispose([last.value, ...Object.values(last.grads)]);
        last = null;
      };
      return {
        run: () => {
          release();
          last = tf.variableGrads(() => prog.run(feeds).get(main), vars);
          last.value.dataSync();
        },
        check: () => {
          const got = { loss: last.value.dataSync() };
          for (const p of prog.params) {
            const g = tf.tidy(() => p.toCaffe(last.grads[p.tensor.name]));
            got[`${p.layer}/${p.index}`] = g.dataSync();
            g.dispose();
          }
          release();
          return compareAll(got, reference);
        },
        measure: backend === 'cpu' ? { warmup: 0, min: quick ? 1 : row.tfjsCpuSteps ?? 1, max: quick ? 1 : row.tfjsCpuSteps ?? 1 } : undefined,
      };
    },
  };
}

async function onnxruntime() {
  const ort = await import('onnxruntime-node');
  const { specToOnnx, matMulOnnx } = await import('./to-onnx.mjs');
  let threads = 1;
  const session = (bytes) => ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  return {
    version: ort.env?.versions?.node ?? '?',
    notes: ['onnxruntime-node: intraOpNumThreads = the thread count, graph optimizations on'],
    setThreads(t) {
      threads = t;
      return null;
    },
    async gemm(row) {
      const n = row.n;
      const { A, B } = gemmInputs(n);
      const s = await session(matMulOnnx(n));
      const feeds = { A: new ort.Tensor('float32', A, [n, n]), B: new ort.Tensor('float32', B, [n, n]) };
      let C = null;
      return {
        run: async () => { C = (await s.run(feeds)).C.data; },
        check: () => gemmError(n, A, B, C),
      };
    },
    async net(row) {
      if (row.kind === 'train') return null;
      const { spec, inputs, reference, check } = loadBundle(values.bundle, row.id);
      const s = await session(specToOnnx(spec, check));
      const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.shape)]));
      const main = `out:${spec.outputs[0]}`;
      return {
        run: () => s.run(feeds, [main]),
        check: async () => {
          const r = await s.run(feeds);
          return compareAll(Object.fromEntries(check.map((name) => [name, r[`out:${name}`].data])), reference);
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------

const fw = framework === 'caffe-ts' ? await caffeTs()
  : framework === 'caffe-ts-native' ? await caffeTs({ native: true })
  : framework === 'tfjs-wasm' ? await tfjs('wasm')
  : framework === 'tfjs-cpu' ? await tfjs('cpu')
  : framework === 'onnxruntime' ? await onnxruntime()
  : null;
if (!fw) throw new Error(`--framework ${framework}: expected caffe-ts, caffe-ts-native, tfjs-wasm, tfjs-cpu or onnxruntime`);

const cells = {};
for (const row of rows) {
  cells[row.id] = {};
  fw.startRow?.();
  const na = NOT_AVAILABLE[row.kind]?.[framework];
  for (const t of threadCounts) {
    const put = (cell) => { cells[row.id][t] = cell; };
    if (na) { put({ note: na }); continue; }
    if (framework === 'tfjs-cpu' && row.tfjsCpu === false && !values.slow) { put({ note: `skipped (${row.tfjsCpuWhy}; --slow runs it)` }); continue; }
    if (framework === 'tfjs-cpu' && quick && row.kind === 'train') { put({ note: 'skipped (--quick)' }); continue; }
    const why = await fw.setThreads(t);
    if (why) { put({ note: why }); continue; }
    try {
      const job = row.kind === 'gemm' ? await fw.gemm(row) : await fw.net(row);
      const m = await measure(job.run, job.measure);
      const c = await job.check();
      const cell = { ...m, ...(typeof c === 'number' ? { err: c } : c) };
      if (row.kind === 'gemm') cell.gflops = (2 * row.n ** 3) / cell.ms / 1e6;
      put(cell);
      log(`${row.id} t${t}: ${cell.ms.toFixed(2)} ms (min ${cell.minMs.toFixed(2)}, ${cell.reps} runs), max rel err ${cell.err.toExponential(1)}, RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB`);
    } catch (e) {
      put({ error: e.message });
      log(`${row.id} t${t}: FAILED: ${e.stack}`);
    }
  }
  fw.endRow?.();
}

const result = {
  framework,
  version: fw.version,
  notes: fw.notes,
  cells,
  maxRssMB: process.resourceUsage().maxRSS / 1024,
};
writeFileSync(values.out, JSON.stringify(result, null, 1));
process.exit(0); // onnxruntime's and tfjs's pools would otherwise keep the process alive
