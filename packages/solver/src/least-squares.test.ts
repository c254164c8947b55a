/**
 * Caffe's gradient-based solver tests (test_gradient_based_solver.cpp) on its own data,
 * solver_data.h5 (8×3×10×10 randn, targets 8×1): a least-squares net (data → InnerProduct(1) →
 * EuclideanLoss) whose (K+1)-th update every solver must match the closed form computed from the
 * state after K updates; iter_size accumulation; snapshot/restore; and the "Share" variants
 * (two InnerProducts sharing weights over the two halves of each batch).
 *
 * The data goes in through a MemoryData layer, which serves the 8 rows in batches of 4 and wraps
 * around exactly as HDF5Data does.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LayerRegistry, MemoryDataLayer, registerBuiltinLayers } from '@caffe-ts/layers';
import { parseNetParameter, SolverParameter_SnapshotFormat } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadH5wasm } from './hdf5.js';
import { createNodeSolver } from './node.js';
import type { SGDSolver } from './sgd-solver.js';
import { solverParam } from './test-fixtures.js';

const solverData = fileURLToPath(new URL('../../../../shared/corpus/data/solver_data.h5', import.meta.url));
const hasData = existsSync(solverData);

const NUM = 4;
const D = 3 * 10 * 10;
const registry = registerBuiltinLayers(new LayerRegistry());
let data: Float32Array;
let targets: Float32Array;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function netText(batch: number, share: boolean): string {
  const ip = (name: string, bottom: string, top: string) => `
    layer {
      name: '${name}' type: 'InnerProduct' bottom: '${bottom}' top: '${top}'
      param { name: 'weights' } param { name: 'bias' }
      inner_product_param {
        num_output: 1
        weight_filler { type: 'gaussian' std: 1.0 }
        bias_filler { type: 'gaussian' std: 1.0 }
      }
    }`;
  return `
    name: 'TestNetwork'
    layer {
      name: 'data' type: 'MemoryData' top: 'data' top: 'targets'
      memory_data_param { batch_size: ${batch} channels: 3 height: 10 width: 10 }
    }
    ${
      share
        ? `layer { name: 'slice' type: 'Slice' bottom: 'data' top: 'data1' top: 'data2' slice_param { axis: 0 } }
           ${ip('innerprod', 'data1', 'innerprod1')}
           ${ip('innerprod2', 'data2', 'innerprod2')}
           layer { name: 'concat' type: 'Concat' bottom: 'innerprod1' bottom: 'innerprod2' top: 'innerprod' concat_param { axis: 0 } }`
        : ip('innerprod', 'data', 'innerprod')
    }
    layer { name: 'loss' type: 'EuclideanLoss' bottom: 'innerprod' bottom: 'targets' }`;
}

type SolverType = 'SGD' | 'Nesterov' | 'AdaGrad' | 'RMSProp' | 'AdaDelta' | 'Adam';
interface Setup {
  type: SolverType;
  lr: number;
  wd: number;
  mom: number;
  share?: boolean;
}
interface RunOptions {
  iters: number;
  iterSize?: number;
  snapshot?: { dir: string; hdf5: boolean };
  restore?: string;
  dtype?: 'float32' | 'float64';
}

/** Caffe's RunLeastSquaresSolver: a fresh solver seeded 1701, trained to `iters`. */
async function run(s: Setup, o: RunOptions): Promise<SGDSolver> {
  const iterSize = o.iterSize ?? 1;
  const dir = o.snapshot?.dir ?? tmpdir();
  const props: Record<string, unknown> = {
    type: s.type,
    base_lr: s.lr,
    lr_policy: 'fixed',
    max_iter: o.iters,
    iter_size: iterSize,
    snapshot_after_train: false,
    random_seed: 1701,
    net_param: parseNetParameter(netText(NUM / iterSize, s.share ?? false)),
    snapshot_prefix: `${dir}/`,
  };
  if (s.wd !== 0) props.weight_decay = s.wd;
  // The Adam and RMSProp test fixtures set these whatever the case passes.
  if (s.type === 'Adam') {
    props.momentum = 0.9;
    props.momentum2 = 0.999;
  } else if (s.mom !== 0) props.momentum = s.mom;
  if (s.type === 'RMSProp') props.rms_decay = 0.95;
  if (o.snapshot) {
    props.snapshot = o.iters;
    if (o.snapshot.hdf5) props.snapshot_format = SolverParameter_SnapshotFormat.HDF5;
  }
  const solver = (await createNodeSolver(solverParam(props), { registry, log: false, rootDir: dir, dtype: o.dtype })) as SGDSolver;
  (solver.net.layer('data') as MemoryDataLayer).reset(data, targets, 8);
  if (o.restore) {
    await solver.restore(o.restore);
    // Caffe's test replays the data cursor: one forward per iteration done.
    for (let i = 0; i < solver.iter; i++) solver.net.forward();
  }
  await solver.solve();
  return solver;
}

/**
 * Caffe's ComputeLeastSquaresUpdate: forward once more, then the next update from the analytic
 * gradient (1/N)·Xᵀ(Xw + b − y) + λw and the solver's closed form, for t = K + 1.
 */
function leastSquaresUpdate(solver: SGDSolver, s: Setup, t: number): { w: Float64Array; u: Float64Array } {
  const net = solver.net;
  net.forward();
  const x = net.blob('data').cpuData();
  const y = net.blob('targets').cpuData();
  const [weights, bias] = net.params.get('innerprod')!;
  const w = Float64Array.from(weights!.cpuData());
  const b = bias!.cpuData()[0]!;
  expect(x.length).toBe(NUM * D);
  const residual = Array.from({ length: NUM }, (_, k) => {
    let r = b - y[k]!;
    for (let j = 0; j < D; j++) r += x[k * D + j]! * w[j]!;
    return r;
  });
  const history = solver.history.map((h) => h.cpuData());
  expect(history).toHaveLength(s.type === 'AdaDelta' || s.type === 'Adam' ? 4 : 2);
  const delta = solver.param.delta;
  const mom = s.type === 'Adam' ? 0.9 : s.mom;
  const updated = new Float64Array(D + 1);
  const updates = new Float64Array(D + 1);
  for (let i = 0; i <= D; i++) {
    const param = i === D ? b : w[i]!;
    let grad = 0;
    for (let k = 0; k < NUM; k++) grad += (i === D ? 1 : x[k * D + i]!) * residual[k]!;
    grad = grad / NUM + s.wd * param;
    const h = i === D ? history[1]![0]! : history[0]![i]!;
    const h2 = () => (i === D ? history[3]![0]! : history[2]![i]!);
    let update = s.lr * grad;
    switch (s.type) {
      case 'SGD':
        update += mom * h;
        break;
      case 'Nesterov':
        update = (1 + mom) * (update + mom * h) - mom * h;
        break;
      case 'AdaGrad':
        update /= Math.sqrt(h + grad * grad) + delta;
        break;
      case 'RMSProp':
        update /= Math.sqrt(0.95 * h + grad * grad * 0.05) + delta;
        break;
      case 'AdaDelta': {
        const avg = mom * h + (1 - mom) * grad * grad;
        update = grad * Math.sqrt((h2() + delta) / (avg + delta)) * s.lr;
        break;
      }
      case 'Adam': {
        const m = (1 - mom) * grad + mom * h;
        const v = 0.001 * grad * grad + 0.999 * h2();
        const alpha = (s.lr * Math.sqrt(1 - 0.999 ** t)) / (1 - mom ** t);
        update = (alpha * m) / (Math.sqrt(v) + delta);
        break;
      }
    }
    updates[i] = update;
    updated[i] = param - update;
  }
  return { w: updated, u: updates };
}

/** Caffe's tolerance: max(1e-7, 1e-2·min(|a|, |b|)). */
function expectNear(actual: number, expected: number, what: string): void {
  const margin = Math.max(1e-7, 1e-2 * Math.min(Math.abs(actual), Math.abs(expected)));
  if (!(Math.abs(actual - expected) <= margin)) {
    expect.fail(`${what}: expected ${expected}, got ${actual} (margin ${margin})`);
  }
}

function paramsOf(solver: SGDSolver): number[] {
  const [weights, bias] = solver.net.params.get('innerprod')!;
  return [...weights!.cpuData(), bias!.cpuData()[0]!];
}

/** Caffe's TestLeastSquaresUpdate for K = 0 … maxK. */
async function checkLeastSquares(s: Setup, maxK: number, dtype: 'float32' | 'float64' = 'float32'): Promise<void> {
  for (let k = 0; k <= maxK; k++) {
    const before = await run(s, { iters: k, dtype });
    const expected = leastSquaresUpdate(before, s, k + 1);
    const after = await run(s, { iters: k + 1, dtype });
    const got = paramsOf(after);
    for (let i = 0; i <= D; i++) expectNear(got[i]!, expected.w[i]!, `${s.type} K=${k} param ${i}`);
    if (s.type === 'SGD') {
      // SGD's history is the last update.
      const h = [...after.history[0]!.cpuData(), after.history[1]!.cpuData()[0]!];
      for (let i = 0; i <= D; i++) expectNear(h[i]!, expected.u[i]!, `SGD K=${k} history ${i}`);
    }
    // Not vacuous: the update moved the params.
    expect(got.some((v, i) => v !== paramsOf(before)[i])).toBe(true);
  }
}

/** Caffe's CheckAccumulation: iter_size 2 with half batches equals iter_size 1. */
async function checkAccumulation(s: Setup, iters: number): Promise<void> {
  const whole = paramsOf(await run(s, { iters }));
  const accumulated = paramsOf(await run(s, { iters, iterSize: 2 }));
  whole.forEach((v, i) => expectNear(accumulated[i]!, v, `${s.type} accumulated param ${i}`));
}

/** Caffe's TestSnapshot: K iterations, snapshot, restore in a fresh solver, K more = 2K straight. */
async function checkSnapshot(s: Setup, k: number, hdf5: boolean): Promise<void> {
  const straight = await run(s, { iters: 2 * k });
  const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-lsq-'));
  dirs.push(dir);
  await run(s, { iters: k, snapshot: { dir, hdf5 } });
  const stateFile = join(dir, `_iter_${k}.solverstate${hdf5 ? '.h5' : ''}`);
  const resumed = await run(s, { iters: 2 * k, restore: stateFile });
  expect(resumed.iter).toBe(2 * k);
  straight.net.learnableParams.forEach((p, i) => {
    expect(resumed.net.learnableParams[i]!.cpuData()).toEqual(p.cpuData());
    expect(resumed.net.learnableParams[i]!.cpuDiff()).toEqual(p.cpuDiff());
  });
  straight.history.forEach((h, i) => expect(resumed.history[i]!.cpuData()).toEqual(h.cpuData()));
}

const accumSetups: Setup[] = [
  { type: 'SGD', lr: 0.01, wd: 0.5, mom: 0.9 },
  { type: 'Nesterov', lr: 0.01, wd: 0.5, mom: 0.9 },
  { type: 'AdaGrad', lr: 0.01, wd: 0.5, mom: 0 },
  { type: 'RMSProp', lr: 0.01, wd: 0.5, mom: 0 },
  { type: 'AdaDelta', lr: 0.1, wd: 0.1, mom: 0.95 },
  { type: 'Adam', lr: 0.01, wd: 0.5, mom: 0.9 },
];

describe.skipIf(!hasData)("Caffe's least-squares solver tests on solver_data.h5", () => {
  beforeAll(async () => {
    const h5 = await loadH5wasm();
    const f = new h5.File(solverData, 'r');
    try {
      data = Float32Array.from((f.get('data') as InstanceType<typeof h5.Dataset>).value as Float32Array);
      targets = Float32Array.from((f.get('targets') as InstanceType<typeof h5.Dataset>).value as Float32Array);
    } finally {
      f.close();
    }
    expect(data.length).toBe(8 * D);
    expect(targets.length).toBe(8);
  });

  it('SGD: plain, lr 0.01, weight decay, momentum, everything, everything shared (history = last update)', async () => {
    await checkLeastSquares({ type: 'SGD', lr: 1, wd: 0, mom: 0 }, 0);
    await checkLeastSquares({ type: 'SGD', lr: 0.01, wd: 0, mom: 0 }, 0);
    await checkLeastSquares({ type: 'SGD', lr: 0.01, wd: 0.5, mom: 0 }, 4);
    await checkLeastSquares({ type: 'SGD', lr: 0.01, wd: 0, mom: 0.5 }, 4);
    await checkLeastSquares({ type: 'SGD', lr: 0.01, wd: 0.5, mom: 0.5 }, 4);
    await checkLeastSquares({ type: 'SGD', lr: 0.01, wd: 0.5, mom: 0.5 }, 4, 'float64');
    await checkLeastSquares({ type: 'SGD', lr: 0.01, wd: 0.5, mom: 0.5, share: true }, 4);
  });

  it('Nesterov: plain, weight decay, momentum 0.5, everything (momentum 0.9), shared', async () => {
    await checkLeastSquares({ type: 'Nesterov', lr: 1, wd: 0, mom: 0 }, 0);
    await checkLeastSquares({ type: 'Nesterov', lr: 0.01, wd: 0.5, mom: 0 }, 4);
    await checkLeastSquares({ type: 'Nesterov', lr: 0.01, wd: 0, mom: 0.5 }, 4);
    await checkLeastSquares({ type: 'Nesterov', lr: 0.01, wd: 0.5, mom: 0.9 }, 4);
    await checkLeastSquares({ type: 'Nesterov', lr: 0.01, wd: 0.5, mom: 0.9, share: true }, 4);
  });

  it('AdaGrad: plain, lr 0.01, weight decay, everything, shared', async () => {
    await checkLeastSquares({ type: 'AdaGrad', lr: 1, wd: 0, mom: 0 }, 0);
    await checkLeastSquares({ type: 'AdaGrad', lr: 0.01, wd: 0, mom: 0 }, 0);
    await checkLeastSquares({ type: 'AdaGrad', lr: 0.01, wd: 0.5, mom: 0 }, 4);
    await checkLeastSquares({ type: 'AdaGrad', lr: 0.01, wd: 0.5, mom: 0, share: true }, 4);
  });

  it('RMSProp (rms_decay 0.95): weight decay, decay only, everything, shared', async () => {
    await checkLeastSquares({ type: 'RMSProp', lr: 1, wd: 0.5, mom: 0 }, 0);
    await checkLeastSquares({ type: 'RMSProp', lr: 0.01, wd: 0, mom: 0 }, 4);
    await checkLeastSquares({ type: 'RMSProp', lr: 0.01, wd: 0.5, mom: 0 }, 4);
    await checkLeastSquares({ type: 'RMSProp', lr: 0.01, wd: 0.5, mom: 0, share: true }, 4);
  });

  it('AdaDelta: plain, weight decay, half momentum, momentum 0.95, everything, shared', async () => {
    await checkLeastSquares({ type: 'AdaDelta', lr: 0.1, wd: 0, mom: 0 }, 0);
    await checkLeastSquares({ type: 'AdaDelta', lr: 0.1, wd: 0.5, mom: 0.95 }, 0);
    await checkLeastSquares({ type: 'AdaDelta', lr: 0.1, wd: 0, mom: 0.5 }, 1);
    await checkLeastSquares({ type: 'AdaDelta', lr: 0.1, wd: 0, mom: 0.95 }, 4);
    await checkLeastSquares({ type: 'AdaDelta', lr: 0.1, wd: 0.1, mom: 0.95 }, 4);
    await checkLeastSquares({ type: 'AdaDelta', lr: 0.1, wd: 0.1, mom: 0.95, share: true }, 4);
  });

  it('Adam (momentum 0.9, momentum2 0.999): plain, weight decay, everything, shared', async () => {
    await checkLeastSquares({ type: 'Adam', lr: 0.01, wd: 0, mom: 0.9 }, 0);
    await checkLeastSquares({ type: 'Adam', lr: 0.01, wd: 0.5, mom: 0.9 }, 0);
    await checkLeastSquares({ type: 'Adam', lr: 0.01, wd: 0.5, mom: 0.9 }, 4);
    await checkLeastSquares({ type: 'Adam', lr: 0.01, wd: 0.5, mom: 0.9 }, 4, 'float64');
    await checkLeastSquares({ type: 'Adam', lr: 0.01, wd: 0.5, mom: 0.9, share: true }, 4);
  });

  it('every solver: iter_size 2 with half batches equals iter_size 1 (also with shared params)', async () => {
    for (const s of accumSetups) {
      await checkAccumulation(s, 4);
      await checkAccumulation({ ...s, share: true }, 4);
    }
  });

  it('every solver: snapshot after K and restore continues to 2K exactly (binary proto and HDF5, shared too)', async () => {
    for (const s of accumSetups) {
      for (let k = 1; k <= 3; k++) await checkSnapshot(s, k, k === 2);
      await checkSnapshot({ ...s, share: true }, 2, true);
    }
  });
});
