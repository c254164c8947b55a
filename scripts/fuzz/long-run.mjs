// Long memory-flatness run (not in CI; scripts/fuzz/long-run.sh runs it with --expose-gc).
//
//   LONG_RUN_NET=lenet (default): LeNet (packages/zoo/models/lenet/lenet_train_test.prototxt,
//     batch 64, lenet_solver.prototxt's SGD settings) trained from a LevelDB through the Data
//     layer's prefetcher: the corpus's fashion100_leveldb (100 28×28 grey images, 10 classes;
//     CAFFE_TS_CORPUS or ../shared/corpus beside the repository), read over and over.
//   LONG_RUN_NET=mlp: a small MLP on DummyData (minutes instead of an hour).
//   LONG_RUN_ITERS (default 20000) iterations after LONG_RUN_WARMUP (default 1000).
//
// After two gc()s it prints RSS, JS heap, external/ArrayBuffer memory and open file descriptors
// every LONG_RUN_EVERY (2000) iterations, and fails when the RSS at the end is more than 10 %
// above the RSS after the warm-up, or when file descriptors grew. Needs the built packages.
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = (p) => import(pathToFileURL(join(root, 'packages', p)).href);
const ITERS = Number(process.env.LONG_RUN_ITERS ?? 20000);
const WARMUP = Number(process.env.LONG_RUN_WARMUP ?? 1000);
const EVERY = Number(process.env.LONG_RUN_EVERY ?? 2000);
const which = process.env.LONG_RUN_NET ?? 'lenet';
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc (scripts/fuzz/long-run.sh)');

const { createSolver } = await pkg('solver/dist/index.js');
const { createNodeSolver } = await pkg('solver/dist/node.js');
const { parseNetParameter, createMessage } = await pkg('proto/dist/index.js');
const { setLogSink } = await pkg('blob/dist/index.js');
await pkg('layers/dist/register.js');
setLogSink(() => {});

let solver;
if (which === 'lenet') {
  await pkg('io-leveldb/dist/register.js');
  const corpus = process.env.CAFFE_TS_CORPUS ?? join(root, '../shared/corpus');
  const original = join(corpus, 'data/caffe-made/fashion100_leveldb');
  if (!existsSync(original)) throw new Error(`long-run: no ${original} (set CAFFE_TS_CORPUS)`);
  // LevelDB writes a LOCK file and compacts its log on open: read a copy, never the corpus.
  const source = join(mkdtempSync(join(tmpdir(), 'caffe-ts-long-run-')), 'fashion100_leveldb');
  cpSync(original, source, { recursive: true });
  chmodSync(source, 0o755); // the copy keeps the corpus folder's read-only mode
  // The zoo net reads LMDBs; its train layer (the first Data layer) reads this LevelDB instead.
  const text = readFileSync(join(root, 'packages/zoo/models/lenet/lenet_train_test.prototxt'), 'utf8')
    .replace('"data/mnist/mnist_train_lmdb"', JSON.stringify(source))
    .replace('backend: LMDB', 'backend: LEVELDB');
  const param = createMessage('SolverParameter', {
    net_param: parseNetParameter(text),
    base_lr: 0.01,
    momentum: 0.9,
    weight_decay: 0.0005,
    lr_policy: 'inv',
    gamma: 0.0001,
    power: 0.75,
    max_iter: 1e9,
    display: 0,
    random_seed: 1701,
  });
  solver = await createNodeSolver(param, { log: false });
} else if (which === 'mlp') {
  const net = parseNetParameter(`
    layer { name: 'd' type: 'DummyData' top: 'x' top: 't' dummy_data_param { shape { dim: 16 dim: 64 } shape { dim: 16 dim: 4 } data_filler { type: 'gaussian' } } }
    layer { name: 'ip1' type: 'InnerProduct' bottom: 'x' top: 'h' inner_product_param { num_output: 64 weight_filler { type: 'xavier' } } }
    layer { name: 'relu' type: 'ReLU' bottom: 'h' top: 'h' }
    layer { name: 'ip2' type: 'InnerProduct' bottom: 'h' top: 'y' inner_product_param { num_output: 4 weight_filler { type: 'xavier' } } }
    layer { name: 'loss' type: 'EuclideanLoss' bottom: 'y' bottom: 't' top: 'loss' }`);
  solver = createSolver(createMessage('SolverParameter', { net_param: net, base_lr: 0.001, lr_policy: 'fixed', momentum: 0.9, max_iter: 1e9, display: 0 }), { log: false });
} else {
  throw new Error(`LONG_RUN_NET must be lenet or mlp (got ${which})`);
}

const fds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : NaN);
const mem = () => {
  globalThis.gc();
  globalThis.gc();
  return { ...process.memoryUsage(), fds: fds() };
};
const mb = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const show = (label, m, extra = '') =>
  console.log(`${label}: rss ${mb(m.rss)}, heap ${mb(m.heapUsed)}, external ${mb(m.external)} (ArrayBuffers ${mb(m.arrayBuffers)}), fds ${m.fds}${extra}`);

let t = performance.now();
await solver.step(WARMUP);
const warm = mem();
show(`${which}: warm-up (${WARMUP} iterations, ${((performance.now() - t) / 1000).toFixed(0)} s)`, warm);
let last = warm;
for (let done = 0; done < ITERS; done += EVERY) {
  t = performance.now();
  const n = Math.min(EVERY, ITERS - done);
  await solver.step(n);
  last = mem();
  show(`iter ${solver.iter}`, last, `, ${(n / ((performance.now() - t) / 1000)).toFixed(1)} iter/s, loss ${solver.smoothedLossValue.toFixed(4)}`);
}
const growth = (last.rss - warm.rss) / warm.rss;
console.log(`rss growth after warm-up: ${(growth * 100).toFixed(1)} % (limit 10 %); fds ${warm.fds} -> ${last.fds}`);
const { closeDataSources } = which === 'lenet' ? await pkg('io-leveldb/dist/index.js') : { closeDataSources: async () => {} };
await closeDataSources();
process.exit(growth > 0.1 || last.fds > warm.fds ? 1 : 0);
