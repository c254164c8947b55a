/*
 * Data-parallel training across worker threads (@caffe-ts/solver/parallel): trajectories,
 * shared parameters, snapshots, failures and shutdown, on a tiny net over a small LMDB.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaultLayerRegistry, Layer, registerBuiltinLayers, type LayerContext } from '@caffe-ts/layers';
import { formatKey, openDatumDb, registerDataLayers } from '@caffe-ts/io-leveldb';
import { createMessage, encodeDatum, type Datum, type LayerParameter, type SolverParameter } from '@caffe-ts/proto';
import type { Solver } from '@caffe-ts/solver';
import { createNodeSolver } from '@caffe-ts/solver/node';
import { availableCores, createParallelSolver, DataParallel, ParallelConfigError, ParallelWorkerError, type DataParallelOptions } from '@caffe-ts/solver/parallel';
import { getNumThreads, hostMemoryInfo, setHostAllocator, type Blob } from '@caffe-ts/blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';
// The dev helper that bundles the workspace for worker threads (a child process reuses it).
// @ts-expect-error -- a plain .mjs without type declarations
import { devBundle } from '../../packages/solver/src/parallel/dev/bundle.mjs';

const RECORDS = 64;
const REGISTER = ['@caffe-ts/io-leveldb/register'];
let dir: ReturnType<typeof tempDir>;
let source: string;

/**
 * 1×3×3 records whose label (0..3) is readable from the pixels, with noise so batches differ;
 * the last pixel is the record's index (so a spy layer can tell which record it was given).
 */
function datum(i: number): Uint8Array {
  const label = i % 4;
  const data = Uint8Array.from({ length: 9 }, (_, p) => (p === 8 ? i : (p % 4 === label ? 200 : 20) + ((i * 7 + p * 13) % 31)));
  return encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 3, width: 3, data, label }));
}

beforeAll(async () => {
  registerBuiltinLayers(defaultLayerRegistry());
  registerDataLayers(defaultLayerRegistry());
  dir = tempDir('caffe-ts-parallel-');
  source = join(dir.path, 'train_lmdb');
  const db = await openDatumDb(source, { mode: 'new', backend: 'lmdb' });
  const w = db.writer();
  for (let i = 0; i < RECORDS; i++) await w.put(formatKey(i), datum(i));
  await w.close();
  await db.close();
});
afterAll(() => dir?.remove());

function netParam(batch: number, extra: Record<string, unknown>[] = []): Record<string, unknown> {
  const layers: Record<string, unknown>[] = [
    { name: 'data', type: 'Data', top: ['data', 'label'], data_param: { source, backend: 1, batch_size: batch }, transform_param: { scale: 1 / 255 } },
    { name: 'ip1', type: 'InnerProduct', bottom: ['data'], top: ['ip1'], inner_product_param: { num_output: 8, weight_filler: { type: 'xavier' } } },
    { name: 'relu1', type: 'ReLU', bottom: ['ip1'], top: ['ip1'] },
    ...extra,
    { name: 'ip2', type: 'InnerProduct', bottom: ['ip1'], top: ['ip2'], inner_product_param: { num_output: 4, weight_filler: { type: 'xavier' } } },
    { name: 'loss', type: 'SoftmaxWithLoss', bottom: ['ip2', 'label'], top: ['loss'] },
  ];
  return { name: 'tiny', layer: layers };
}

function solverParam(batch: number, props: Record<string, unknown> = {}, extra: Record<string, unknown>[] = []): SolverParameter {
  return createMessage<SolverParameter>('SolverParameter', {
    net_param: netParam(batch, extra),
    base_lr: 0.1,
    momentum: 0.9,
    weight_decay: 5e-4,
    lr_policy: 'step',
    gamma: 0.5,
    stepsize: 40,
    max_iter: 100,
    display: 0,
    random_seed: 7,
    snapshot_after_train: false,
    ...props,
  });
}

async function train(
  param: SolverParameter,
  parallel: DataParallelOptions | null,
  iters: number,
  options: { resume?: string } = {},
): Promise<{ losses: number[]; params: number[][]; tests: number[] }> {
  const common = { log: false, rootDir: dir.path };
  const solver = parallel ? await createParallelSolver(param, { register: REGISTER, ...parallel, log: false }, common) : await createNodeSolver(param, common);
  const losses: number[] = [];
  solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
  try {
    if (options.resume) await solver.restore(options.resume);
    await solver.step(iters);
    // A test pass on rank 0's test net (when the solver has one), after the last update.
    const tests = param.test_iter.length > 0 ? (await solver.testAll()).flatMap((r) => r.scores.map((s) => s.value)) : [];
    return { losses, params: solver.net.learnableParams.map((b: Blob) => Array.from(b.cpuData())), tests };
  } finally {
    await solver.close();
  }
}

function expectClose(a: number[], b: number[], rel = 1e-5): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => {
    const tol = rel * Math.max(1, Math.abs(b[i]!));
    if (!(Math.abs(x - b[i]!) <= tol)) throw new Error(`element ${i}: ${x} vs ${b[i]} (tolerance ${tol})`);
  });
}

/** Source of a layer plugin 'Spy' (no top) that appends the record indices of each batch to spy-<thread>.txt in `dir`. */
function spyPlugin(dir: string): string {
  return `import { appendFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { defaultLayerRegistry, Layer } from '@caffe-ts/layers';
class Spy extends Layer {
  type = 'Spy';
  reshape() {}
  forwardCpu(bottom) {
    const d = bottom[0].cpuData();
    const per = bottom[0].count() / bottom[0].shape[0];
    const ids = [];
    for (let n = 0; n < bottom[0].shape[0]; n++) ids.push(Math.round(d[n * per + per - 1] * 255));
    appendFileSync(${JSON.stringify(dir)} + '/spy-' + threadId + '.txt', ids.join(',') + '\\n');
  }
  backwardCpu() {}
}
defaultLayerRegistry().register({ type: 'Spy', create: (p, ctx) => new Spy(p, ctx) }, { override: true });
`;
}

/** A solver built with an explicit DataParallel (for its stats and replicaParams). */
async function parallelSolver(param: SolverParameter, options: DataParallelOptions) {
  const dp = new DataParallel({ register: REGISTER, log: false, ...options });
  const solver = await createNodeSolver(param, { log: false, rootDir: dir.path, netFactoryAsync: dp.netFactoryAsync });
  try {
    await dp.attach(solver);
  } catch (e) {
    await solver.close();
    throw e;
  }
  return { dp, solver };
}

describe('data-parallel training', () => {
  it('2 workers × batch 4 follow 1 worker with iter_size 2 × batch 4 for 100 iterations; shards are disjoint; replicas hold identical params', async () => {
    const spyDir = join(dir.path, 'spy');
    rmSync(spyDir, { recursive: true, force: true });
    mkdirSync(spyDir);
    const plugin = join(dir.path, 'spy-plugin.mjs');
    writeFileSync(plugin, spyPlugin(spyDir));
    await import(pathToFileURL(plugin).href); // rank 0's Spy (this thread)

    const serial = await train(solverParam(4, { iter_size: 2 }), null, 100);
    const spy = [{ name: 'spy', type: 'Spy', bottom: ['data'] }];
    const param = solverParam(4, {}, spy);
    const { dp, solver } = await parallelSolver(param, { workers: 2, register: [...REGISTER, pathToFileURL(plugin).href] });
    const losses: number[] = [];
    solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
    try {
      expect(dp.updateDivided).toBe(true); // the SGD update runs in shares on both ranks
      // 2 replicas on the cores: each replica's kernels use cores / 2 threads (at least 1), and a
      // replica with 1 never starts a kernel worker.
      const k = Math.max(1, Math.floor(availableCores() / 2));
      expect(dp.kernelThreads).toBe(k);
      expect(getNumThreads()).toBe(k);
      expect(dp.workerKernelThreads).toEqual([{ requested: k, started: k === 1 ? 0 : expect.any(Number) }]);
      for (const b of solver.net.learnableParams) {
        expect(b.cpuData().buffer).toBeInstanceOf(SharedArrayBuffer);
        expect(b.cpuDiff().buffer).toBeInstanceOf(SharedArrayBuffer);
      }
      await solver.step(100);
      // The replicas' own params (read in their threads) agree exactly with rank 0's.
      const replicas = await dp.replicaParams();
      expect(replicas).toHaveLength(2);
      replicas[1]!.forEach((p, i) => expect(Array.from(p)).toEqual(Array.from(replicas[0]![i]!)));
      // Plain SGD: every rank reduced and updated its share of the params in one pass, in
      // WebAssembly on the shared arenas (JavaScript where CAFFE_TS_PARALLEL_WASM=off).
      expect(dp.reductionFused).toBe(true);
      expect(dp.updateKernels).toBe(process.env.CAFFE_TS_PARALLEL_WASM === 'off' ? 'js' : 'wasm-simd');
      const stats = dp.stats();
      expect(stats.map((r) => r.steps)).toEqual([100, 101]); // rank 1 also ran the PARAMS command
      expect(serial.losses[0]).toBeGreaterThan(1);
      expect(serial.losses.at(-1)!).toBeLessThan(serial.losses[0]! / 4); // it learns
      expectClose(losses, serial.losses);
      solver.net.learnableParams.forEach((b, i) => expectClose(Array.from(b.cpuData()), serial.params[i]!, 1e-4));
    } finally {
      await solver.close();
    }
    // Sharding: in every epoch (64 records = 8 iterations of 2 × 4) the two ranks read disjoint
    // halves that together cover every record once.
    const files = readdirSync(spyDir).filter((f) => f.startsWith('spy-'));
    expect(files).toHaveLength(2);
    const perRank = files.map((f) => readFileSync(join(spyDir, f), 'utf8').trim().split('\n').map((l) => l.split(',').map(Number)));
    for (const lines of perRank) expect(lines.length).toBeGreaterThanOrEqual(100);
    for (let epoch = 0; epoch < 12; epoch++) {
      const sets = perRank.map((lines) => new Set(lines.slice(epoch * 8, epoch * 8 + 8).flat()));
      expect(sets[0]!.size).toBe(32);
      expect(sets[1]!.size).toBe(32);
      for (const id of sets[0]!) expect(sets[1]!.has(id)).toBe(false);
      expect(new Set([...sets[0]!, ...sets[1]!]).size).toBe(RECORDS);
    }
  });

  it('split mode: 2 workers share each batch of 8 and follow the single-threaded run (the test net sees the updated weights); a batch that does not split is refused', async () => {
    // The test net (rank 0's, sharing the train net's params) scores at iteration 0 and after the
    // last update: its layers cache their weights by data version at inference, so the second
    // pass sees the new weights only if the divided update marks them written.
    const withTest = { test_iter: [2], test_interval: 1000 };
    const serial = await train(solverParam(8, withTest), null, 30);
    const split = await train(solverParam(8, withTest), { workers: 2, mode: 'split' }, 30);
    expectClose(split.losses, serial.losses);
    expect(serial.tests.length).toBeGreaterThan(0);
    expectClose(split.tests, serial.tests, 1e-4);
    await expect(createParallelSolver(solverParam(5), { workers: 2, mode: 'split', register: REGISTER, log: false }, { log: false, rootDir: dir.path })).rejects.toThrow(
      ParallelConfigError,
    );
  });

  it('chunked split: the ranks take the chunks of each batch as they go (4 per batch, iter_size 2 too) and follow the single-threaded run; the static split (chunks 0) too', async () => {
    for (const props of [{}, { iter_size: 2 }]) {
      const serial = await train(solverParam(8, props), null, 20);
      const { dp, solver } = await parallelSolver(solverParam(8, props), { workers: 2, mode: 'split', chunks: 4 });
      const losses: number[] = [];
      solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
      try {
        expect(dp.chunksPerBatch).toBe(4);
        await solver.step(12);
        await solver.step(8);
        const stats = dp.stats();
        // Every chunk of every batch computed exactly once, by one rank or the other.
        expect(stats[0]!.chunks + stats[1]!.chunks).toBe(20 * 4 * (props.iter_size ?? 1));
        const [mine, theirs] = await dp.replicaParams();
        expect(theirs!.map((a) => Array.from(a))).toEqual(mine!.map((a) => Array.from(a)));
      } finally {
        await solver.close();
      }
      expectClose(losses, serial.losses);
    }
    // Each replica reading its shard and computing its fixed half.
    const stat = await parallelSolver(solverParam(8), { workers: 2, mode: 'split', chunks: 0 });
    const losses: number[] = [];
    stat.solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
    try {
      expect(stat.dp.chunksPerBatch).toBe(0);
      await stat.solver.step(20);
      expect(stat.dp.stats().map((r) => r.chunks)).toEqual([0, 0]);
    } finally {
      await stat.solver.close();
    }
    expectClose(losses, (await train(solverParam(8), null, 20)).losses);
    // Chunks asked for that do not divide the batch are refused, naming the sizes.
    await expect(parallelSolver(solverParam(8), { workers: 2, mode: 'split', chunks: 3 })).rejects.toThrow(/do not divide into 3 chunks/);
  });

  it("chunked split: solve()'s last display line is the loss of the next batch, as the single-threaded run prints it", async () => {
    // Caffe's Solve ends with one more forward pass (no update) for the display; in split mode
    // rank 0's net alone holds only a chunk, so the data-parallel solver reads the next batch and
    // runs every chunk of it.
    const finalLoss = async (parallel: DataParallelOptions | null) => {
      const param = solverParam(8, { display: 5, max_iter: 20 });
      const common = { log: false, rootDir: dir.path };
      const solver = parallel ? await createParallelSolver(param, { register: REGISTER, ...parallel, log: false }, common) : await createNodeSolver(param, common);
      try {
        await solver.solve();
        return solver.smoothedLossValue;
      } finally {
        await solver.close();
      }
    };
    const serial = await finalLoss(null);
    expectClose([await finalLoss({ workers: 2, mode: 'split', chunks: 4 })], [serial]);
    expectClose([await finalLoss({ workers: 2, mode: 'split' })], [serial]);
  });

  it('balanced shares: with a worker slower per row, rank 0 moves the cut so that it computes more rows of each batch; still the single-threaded run', async () => {
    // 'Slow' passes ip1 through in place; the workers' version spins 0.5 ms per row first.
    const define = (spin: number) => `class Slow extends Layer {
  type = 'Slow';
  reshape() {}
  forwardCpu(bottom) { const until = performance.now() + ${spin} * bottom[0].shape[0]; while (performance.now() < until); }
  backwardCpu() {}
}`;
    const registry = defaultLayerRegistry();
    if (!registry.has('Slow')) {
      const Slow = new Function('Layer', `${define(0)}; return Slow;`)(Layer) as new (p: LayerParameter, c: LayerContext) => Layer;
      registry.register({ type: 'Slow', create: (p: LayerParameter, ctx: LayerContext) => new Slow(p, ctx) });
    }
    const plugin = join(dir.path, 'slow-plugin.mjs');
    writeFileSync(
      plugin,
      `import { defaultLayerRegistry, Layer } from '@caffe-ts/layers';
${define(0.5)}
defaultLayerRegistry().register({ type: 'Slow', create: (p, ctx) => new Slow(p, ctx) }, { override: true });
`,
    );
    const slow = [{ name: 'slow', type: 'Slow', bottom: ['ip1'], top: ['ip1'] }];
    const serial = await train(solverParam(16, {}, slow), null, 30);
    // Balanced shares and barrier waits that spin 1 ms first (both opt-in).
    const { dp, solver } = await parallelSolver(solverParam(16, {}, slow), { workers: 2, mode: 'split', balance: true, spinMs: 1, register: [...REGISTER, pathToFileURL(plugin).href] });
    const losses: number[] = [];
    solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
    try {
      expect(dp.chunksPerBatch).toBe(2);
      expect(dp.shareRows).toEqual([8, 8]);
      await solver.step(30);
      const rows = dp.shareRows!;
      expect(rows[0]! + rows[1]!).toBe(16);
      // The worker spends 4 ms more on 8 rows than rank 0: rank 0 takes more of them (at most 3/4).
      expect(rows[0]).toBeGreaterThan(8);
      expect(rows[0]).toBeLessThanOrEqual(12);
    } finally {
      await solver.close();
    }
    expectClose(losses, serial.losses);
    // By default: equal halves.
    const even = await parallelSolver(solverParam(16), { workers: 2, mode: 'split' });
    try {
      expect(even.dp.shareRows).toBeNull();
      expect(even.dp.chunksPerBatch).toBe(2);
    } finally {
      await even.solver.close();
    }
  });

  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')("with the 'wasm' host allocator the arenas sit in rank 0's kernel memory and the workers keep private copies in theirs (no staging copies); split still follows the single-threaded run", async () => {
    const previous = setHostAllocator('wasm');
    // The workers inherit the environment: their replicas then keep private params and diffs in
    // their own kernel memory, copied from and to the arenas once per step.
    const envBefore = process.env.CAFFE_TS_HOST_ALLOCATOR;
    process.env.CAFFE_TS_HOST_ALLOCATOR = 'wasm';
    try {
      const serial = await train(solverParam(8), null, 30);
      const dp = new DataParallel({ workers: 2, mode: 'split', register: REGISTER, log: false });
      const solver = await createNodeSolver(solverParam(8), { log: false, rootDir: dir.path, netFactoryAsync: dp.netFactoryAsync });
      const losses: number[] = [];
      try {
        await dp.attach(solver);
        solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
        await solver.step(30);
        expect(hostMemoryInfo().active).toBe(true);
        expect(dp.arenaInKernelMemory).toBe(true);
        expect(dp.updateKernels).toBe('wasm-simd');
        // The replicas view rank 0's arena: identical params after the run.
        const [mine, theirs] = await dp.replicaParams();
        expect(theirs!.map((a) => Array.from(a))).toEqual(mine!.map((a) => Array.from(a)));
      } finally {
        await solver.close();
      }
      expectClose(losses, serial.losses);
    } finally {
      setHostAllocator(previous);
      if (envBefore === undefined) delete process.env.CAFFE_TS_HOST_ALLOCATOR;
      else process.env.CAFFE_TS_HOST_ALLOCATOR = envBefore;
    }
  });

  it('split mode posts each next step early; params written between iterations make the workers compute it again on the same batch', async () => {
    // A callback that halves ip1's weights after iterations 10 and 20 (as a user's could).
    const halve = (solver: Solver) => ({
      onIteration: (info: { iter: number }) => {
        if (info.iter % 10 !== 0) return;
        const w = solver.net.learnableParams[0]!.mutableCpuData();
        for (let i = 0; i < w.length; i++) w[i] = w[i]! / 2;
      },
    });
    const run = async (parallel: boolean) => {
      const param = solverParam(8);
      const common = { log: false, rootDir: dir.path };
      const dp = parallel ? new DataParallel({ workers: 2, mode: 'split', register: REGISTER, log: false }) : null;
      const solver = await createNodeSolver(param, dp ? { ...common, netFactoryAsync: dp.netFactoryAsync } : common);
      const losses: number[] = [];
      try {
        await dp?.attach(solver);
        solver.addCallback(halve(solver));
        solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
        await solver.step(15);
        await solver.step(15);
        return { losses, early: dp?.earlySteps };
      } finally {
        await solver.close();
      }
    };
    const serial = await run(false);
    const split = await run(true);
    expectClose(split.losses, serial.losses);
    // 29 iterations follow another in the same step() call (the first of each call is posted
    // normally): 2 after a halving (iterations 11 and 21) were computed again.
    expect(split.early).toEqual(process.env.CAFFE_TS_PARALLEL_EARLY === 'off' ? { used: 0, redone: 0 } : { used: 26, redone: 2 });
  });

  it('Adam, gradient clipping and float64 reduce in a command of their own (WebAssembly or JavaScript) and still follow the single-threaded run', async () => {
    for (const [props, dtype] of [
      [{ type: 'Adam', base_lr: 0.01, momentum2: 0.999 }, 'float32'],
      [{ clip_gradients: 0.1 }, 'float32'], // the gradients' norm is 0.3-0.4: clipped every iteration
      [{}, 'float64'],
    ] as const) {
      const run = async (parallel: boolean) => {
        const common = { log: false, rootDir: dir.path, dtype };
        const dp = parallel ? new DataParallel({ workers: 2, mode: 'split', register: REGISTER, log: false }) : null;
        const solver = await createNodeSolver(solverParam(8, props), dp ? { ...common, netFactoryAsync: dp.netFactoryAsync } : common);
        const losses: number[] = [];
        try {
          await dp?.attach(solver);
          solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
          await solver.step(20);
          if (dp && 0) {
            expect(dp.updateDivided).toBe(true);
            expect(dp.reductionFused).toBe(false);
            expect(dp.updateKernels).toBe(dtype === 'float32' && process.env.CAFFE_TS_PARALLEL_WASM !== 'off' ? 'wasm-simd' : 'js');
          }
          return losses;
        } finally {
          await solver.close();
        }
      };
      const serial = await run(false);
      const split = await run(true);
      try {
        expectClose(split, serial);
      } catch (e) {
        throw new Error(`${JSON.stringify(props)} ${dtype}: ${(e as Error).message}`);
      }
    }
  });

  it('snapshot at an epoch boundary, then resume with workers: iterations 9..16 are those of the uninterrupted run', async () => {
    const prefix = join(dir.path, 'snap');
    // 8 iterations × 2 replicas × batch 4 = the 64 records: the resumed data layers, which restart
    // at the first record (as Caffe's do), read what the uninterrupted run reads next.
    const whole = await train(solverParam(4, { snapshot: 8, snapshot_prefix: prefix }), { workers: 2 }, 16);
    const resumed = await train(solverParam(4), { workers: 2 }, 8, { resume: `${prefix}_iter_8.solverstate` });
    expect(whole.losses).toHaveLength(16);
    expectClose(resumed.losses, whole.losses.slice(8), 1e-6);
    expectClose(resumed.params.flat(), whole.params.flat(), 1e-6);
  });
  it('replicaSetup: every replica runs beforeBuild (a layer type registered at run time) and afterBuild with its rank; rank 0 alone gets count 1', async () => {
    // The setup registers 'RankValue' (a source of 4 × 2 values) and gives replica r the value
    // base + r. With y = x·w summed as the loss (w = 0.5), each replica's gradient is 4 × value per
    // weight, so one SGD step (lr 0.01) moves w by 0.01 × the replicas' mean of it.
    const setupFile = join(dir.path, 'rank-setup.mjs');
    writeFileSync(
      setupFile,
      `import { defaultLayerRegistry, Layer } from '@caffe-ts/layers';
class RankValue extends Layer {
  type = 'RankValue';
  value = NaN;
  reshape(bottom, top) { top[0].reshape([4, 2]); }
  forwardCpu(bottom, top) { top[0].mutableCpuData().fill(this.value); }
  backwardCpu() {}
}
export function beforeBuild() {
  defaultLayerRegistry().register({ type: 'RankValue', create: (p, c) => new RankValue(p, c) }, { override: true });
}
export function afterBuild(net, data, replica) {
  net.layers.find((l) => l.type === 'RankValue').value = data.base + replica.rank;
  if (replica.rank === 0) globalThis.rankZeroSetup = { ...replica };
}
`,
    );
    const param = createMessage<SolverParameter>('SolverParameter', {
      net_param: {
        name: 'ranks',
        layer: [
          { name: 'x', type: 'RankValue', top: ['x'] },
          { name: 'ip', type: 'InnerProduct', bottom: ['x'], top: ['y'], loss_weight: [1], inner_product_param: { num_output: 1, bias_term: false, weight_filler: { type: 'constant', value: 0.5 } } },
        ],
      },
      base_lr: 0.01, lr_policy: 'fixed', max_iter: 1, display: 0, snapshot_after_train: false,
    });
    const replicaSetup = { module: pathToFileURL(setupFile).href, data: { base: 1 } };
    const g = globalThis as { rankZeroSetup?: unknown };
    for (const [workers, w, loss, replica] of [[2, 0.5 - 0.01 * 4 * 1.5, 6, { rank: 0, count: 2 }], [1, 0.5 - 0.01 * 4, 4, { rank: 0, count: 1 }]] as const) {
      g.rankZeroSetup = undefined;
      const { dp, solver } = await parallelSolver(param, { workers, replicaSetup });
      const losses: number[] = [];
      solver.addCallback({ onIteration: (info) => losses.push(info.loss) });
      try {
        expect(dp.active).toBe(workers > 1);
        await solver.step(1);
        expect(g.rankZeroSetup).toEqual(replica);
        expect(losses).toEqual([loss]);
        for (const v of solver.net.learnableParams[0]!.cpuData()) expect(v).toBeCloseTo(w, 6);
      } finally {
        await solver.close();
      }
    }
  });

  it("a failure inside a worker is a ParallelWorkerError naming the rank and the layer", async () => {
    // The calling thread's 'Boom' passes data through; the workers load one that throws.
    class PassLayer extends Layer {
      readonly type = 'Boom';
      override reshape(bottom: Blob[], top: Blob[]): void {
        top[0]!.reshapeLike(bottom[0]!);
      }
      protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
        top[0]!.mutableCpuData().set(bottom[0]!.cpuData());
      }
      protected override backwardCpu(top: Blob[], down: boolean[], bottom: Blob[]): void {
        if (down[0]) bottom[0]!.mutableCpuDiff().set(top[0]!.cpuDiff());
      }
    }
    const registry = defaultLayerRegistry();
    if (!registry.has('Boom')) registry.register({ type: 'Boom', create: (p: LayerParameter, ctx: LayerContext) => new PassLayer(p, ctx) });
    const plugin = join(dir.path, 'boom-plugin.mjs');
    writeFileSync(
      plugin,
      `import { defaultLayerRegistry, Layer } from '@caffe-ts/layers';
class Boom extends Layer {
  type = 'Boom';
  reshape(bottom, top) { top[0].reshapeLike(bottom[0]); }
  forwardCpu() { this.fail('refuses to run in a worker'); }
}
defaultLayerRegistry().register({ type: 'Boom', create: (p, ctx) => new Boom(p, ctx) }, { override: true });
`,
    );
    const boom = [{ name: 'boom', type: 'Boom', bottom: ['ip1'], top: ['ip1b'] }];
    const param = solverParam(4, {}, boom);
    (param.net_param!.layer[4] as LayerParameter).bottom = ['ip1b'];
    const err = await train(param, { workers: 2, register: [...REGISTER, pathToFileURL(plugin).href] }, 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParallelWorkerError);
    const e = err as ParallelWorkerError;
    expect(e.rank).toBe(1);
    expect(e.layer).toBe('boom');
    expect(e.during).toBe('step');
    expect(e.causeName).toBe('LayerError');
    expect(e.message).toMatch(/worker rank 1 failed during step in layer 'boom' \(Boom\): LayerError: .*refuses to run in a worker/);

    const setup = await train(solverParam(4), { workers: 2, register: ['@caffe-ts/no-such-plugin/register'] }, 1).catch((x: unknown) => x);
    expect(setup).toBeInstanceOf(ParallelWorkerError);
    expect((setup as ParallelWorkerError).during).toBe('setup');
    expect((setup as ParallelWorkerError).rank).toBe(1);
  });

  it('a program that never calls close() still exits (workers do not hold the process)', async () => {
    // The child runs the same sources, bundled (as the workers are), so it starts without a
    // TypeScript loader.
    const bundle = (await devBundle()) as { url(name: string): string };
    const script = join(dir.path, 'forgets-close.mjs');
    writeFileSync(
      script,
      `import { defaultLayerRegistry, registerBuiltinLayers } from ${JSON.stringify(bundle.url('layers/index'))};
import { registerDataLayers } from ${JSON.stringify(bundle.url('io-leveldb/index'))};
import { parseText } from ${JSON.stringify(bundle.url('proto/index'))};
import { createParallelSolver } from ${JSON.stringify(bundle.url('parallel/index'))};
registerBuiltinLayers(defaultLayerRegistry());
registerDataLayers(defaultLayerRegistry());
const param = parseText('SolverParameter', ${JSON.stringify(`base_lr: 0.1 lr_policy: "fixed" max_iter: 3 display: 0 snapshot_after_train: false net_param { layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: ${JSON.stringify(source)} backend: LMDB batch_size: 4 } } layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } } layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" } }`)});
const solver = await createParallelSolver(param, { workers: 2, register: [${JSON.stringify(bundle.url('io-leveldb/register'))}], log: false }, { log: false });
await solver.step(3);
console.log('trained', solver.iter);
`,
    );
    const started = Date.now();
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).not.toMatch(/Error|hang/);
    expect(r.stdout).toContain('trained 3');
    expect(r.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
