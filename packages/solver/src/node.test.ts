import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { CaffeFileError, decodeNetParameter, decodeSolverState, parseNetParameter, type NetParameter } from '@caffe-ts/proto';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AdamSolver } from './adam-solver.js';
import { createNodeSolver, loadSolverFromFile } from './node.js';
import type { SGDSolver } from './sgd-solver.js';
import type { SnapshotWeightsAdapter } from './solver.js';
import { regressionNetText, sequentialFeed, solverParam, testRegistry, type Feed } from './test-fixtures.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'caffe-ts-solver-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let restoreSink: LogSink | undefined;
afterEach(() => {
  if (restoreSink) setLogSink(restoreSink);
  restoreSink = undefined;
});
function captureLog(): string[] {
  const lines: string[] = [];
  restoreSink = setLogSink((line) => lines.push(line.slice(line.indexOf('] ') + 2)));
  return lines;
}

const schedule = {
  base_lr: 0.05,
  momentum: 0.9,
  weight_decay: 0.01,
  lr_policy: 'multistep',
  gamma: 0.5,
  // Restoring current_step matters: with stepvalue [1, 2], a resume at iter 3 must start at step 2.
  stepvalue: [1, 2],
};

async function nodeSolver(props: Record<string, unknown>, rootDir: string, feed: Feed = sequentialFeed(2), log = false) {
  const param = solverParam({ net_param: parseNetParameter(regressionNetText(2)), ...schedule, ...props });
  return createNodeSolver(param, { registry: testRegistry(feed), rootDir, log });
}

describe('snapshots on disk', () => {
  it('snapshot + restore continues bit-identically to an uninterrupted run', async () => {
    const dir = tmp();
    const straight = await nodeSolver({ max_iter: 6, snapshot_after_train: false }, dir);
    await straight.solve();

    const lines = captureLog();
    const first = await nodeSolver({ max_iter: 3, snapshot: 3, snapshot_prefix: join(dir, 'run') }, dir, sequentialFeed(2), true);
    await first.solve();
    // Snapshot at iter 3 by the interval; snapshot_after_train does not repeat it.
    expect(readdirSync(dir).sort()).toEqual(['run_iter_3.caffemodel', 'run_iter_3.solverstate']);
    expect(lines).toContain(`Snapshotting to binary proto file ${join(dir, 'run_iter_3.caffemodel')}`);
    expect(lines).toContain(`Snapshotting solver state to binary proto file ${join(dir, 'run_iter_3.solverstate')}`);

    const state = decodeSolverState(readFileSync(join(dir, 'run_iter_3.solverstate')));
    expect(state.iter).toBe(3);
    expect(state.current_step).toBe(2);
    expect(state.learned_net).toBe(join(dir, 'run_iter_3.caffemodel'));
    expect(state.history.map((h) => h.shape!.dim)).toEqual([[2, 3], [2]]);

    const feed = sequentialFeed(2);
    feed.counters = { 0: 3 };
    const resumed = await nodeSolver({ max_iter: 6, snapshot_after_train: false }, dir, feed, true);
    await resumed.solve(join(dir, 'run_iter_3.solverstate'));
    expect(lines).toContain(`Restoring previous solver status from ${join(dir, 'run_iter_3.solverstate')}`);
    expect(resumed.iter).toBe(6);
    resumed.net.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(straight.net.learnableParams[i]!.cpuData()));
    (resumed as SGDSolver).history.forEach((h, i) => expect(h.cpuData()).toEqual((straight as SGDSolver).history[i]!.cpuData()));
  });

  it('snapshotWeights: the model file holds the mapped weights, and a resume maps them back and continues bit-identically', async () => {
    const dir = tmp();
    const straight = await nodeSolver({ max_iter: 6, snapshot_after_train: false }, dir);
    await straight.solve();
    // Every weight doubled in the file (exact in float), halved again on restore.
    const doubled: SnapshotWeightsAdapter = {
      toFile(net) {
        for (const l of net.layer) for (const b of l.blobs) for (let i = 0; i < b.data.length; i++) b.data[i] = b.data[i]! * 2;
        return net;
      },
      fromFile(net) {
        for (const p of net.learnableParams) p.mutableCpuData().forEach((v, i, a) => (a[i] = v / 2));
      },
    };
    const first = await nodeSolver({ max_iter: 3, snapshot: 3, snapshot_prefix: join(dir, 'run') }, dir);
    first.snapshotWeights = doubled;
    await first.solve();
    const file = decodeNetParameter(readFileSync(join(dir, 'run_iter_3.caffemodel')));
    const saved = file.layer.flatMap((l) => l.blobs.map((b) => Array.from(b.data)));
    expect(saved).toEqual(first.net.learnableParams.map((p) => Array.from(p.cpuData(), (v) => v * 2)));
    expect(saved.flat().some((v) => v !== 0)).toBe(true);

    const feed = sequentialFeed(2);
    feed.counters = { 0: 3 };
    const resumed = await nodeSolver({ max_iter: 6, snapshot_after_train: false }, dir, feed);
    resumed.snapshotWeights = doubled;
    await resumed.solve(join(dir, 'run_iter_3.solverstate'));
    resumed.net.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(straight.net.learnableParams[i]!.cpuData()));
  });

  it('writes atomically: no temp files are left, and a rewrite replaces the file', async () => {
    const dir = tmp();
    const solver = await nodeSolver({ max_iter: 2, snapshot_prefix: join(dir, 'a') }, dir);
    await solver.snapshot();
    await solver.step(1);
    // A second snapshot at another iteration, then one more over an existing name.
    await solver.snapshot();
    const again = await solver.snapshot();
    expect(readdirSync(dir).sort()).toEqual(['a_iter_0.caffemodel', 'a_iter_0.solverstate', 'a_iter_1.caffemodel', 'a_iter_1.solverstate']);
    const net = decodeNetParameter(readFileSync(again.modelFile));
    expect(net.layer.find((l) => l.name === 'ip')!.blobs).toHaveLength(2);
  });

  it('finds a moved snapshot\'s learned_net by its base name next to the state, and lists the places tried', async () => {
    const root = tmp();
    mkdirSync(join(root, 'snaps'));
    const solver = await nodeSolver({ max_iter: 2, snapshot_prefix: 'snaps/run' }, root);
    await solver.solve();
    expect(existsSync(join(root, 'snaps', 'run_iter_2.solverstate'))).toBe(true);
    // The state names its model relative to where training ran: snaps/run_iter_2.caffemodel.
    const moved = join(tmp(), 'elsewhere');
    renameSync(join(root, 'snaps'), moved);
    const other = tmp();
    const resumed = await nodeSolver({ max_iter: 2 }, other);
    await resumed.restore(join(moved, 'run_iter_2.solverstate'));
    expect(resumed.iter).toBe(2);
    resumed.net.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(solver.net.learnableParams[i]!.cpuData()));

    rmSync(join(moved, 'run_iter_2.caffemodel'));
    const fresh = await nodeSolver({ max_iter: 2 }, other);
    const err = await fresh.restore(join(moved, 'run_iter_2.solverstate')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaffeFileError);
    expect((err as Error).message).toBe(
      `learned_net 'snaps/run_iter_2.caffemodel' (named in ${join(moved, 'run_iter_2.solverstate')}) not found; tried ` +
        `${join(other, 'snaps/run_iter_2.caffemodel')}, ${join(moved, 'snaps/run_iter_2.caffemodel')}, ${join(moved, 'run_iter_2.caffemodel')}`,
    );
  });
});

describe('loadSolverFromFile', () => {
  function writeSolverDir(solverText: string): string {
    const dir = tmp();
    writeFileSync(join(dir, 'net.prototxt'), regressionNetText(2));
    writeFileSync(join(dir, 'my_solver.prototxt'), solverText);
    return dir;
  }
  const registry = () => testRegistry(sequentialFeed(2));

  it('resolves net: against rootDir first, then the solver file\'s folder; upgrades solver_type', async () => {
    const dir = writeSolverDir('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nsolver_type: ADAM\nmax_iter: 1\nsnapshot_after_train: false\n');
    const lines = captureLog();
    const solver = await loadSolverFromFile(join(dir, 'my_solver.prototxt'), { registry: registry(), rootDir: tmp() });
    expect(solver).toBeInstanceOf(AdamSolver);
    expect(solver.type).toBe('Adam');
    expect(solver.param.type).toBe('Adam');
    expect(lines).toContain('Creating training net from net file: net.prototxt');
    expect(lines.some((l) => l.startsWith("Attempting to upgrade input file specified using deprecated 'solver_type' field"))).toBe(true);
    // Adam keeps two histories per param.
    expect((solver as AdamSolver).history).toHaveLength(4);
    await solver.solve();
    expect(solver.iter).toBe(1);
  });

  it('sets snapshot_prefix as Caffe does: unset → the solver file\'s name; a directory → that directory plus the name', async () => {
    const dir = writeSolverDir('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\n');
    const a = await loadSolverFromFile('my_solver.prototxt', { registry: registry(), rootDir: dir, log: false });
    expect(a.param.snapshot_prefix).toBe('my_solver');
    await a.solve();
    expect(existsSync(join(dir, 'my_solver_iter_1.caffemodel'))).toBe(true);

    mkdirSync(join(dir, 'snaps'));
    writeFileSync(join(dir, 's2.prototxt'), 'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\nsnapshot: 1\nsnapshot_prefix: "snaps"\n');
    const b = await loadSolverFromFile('s2.prototxt', { registry: registry(), rootDir: dir, log: false });
    expect(b.param.snapshot_prefix).toBe(join('snaps', 's2'));
    await b.solve();
    expect(readdirSync(join(dir, 'snaps')).sort()).toEqual(['s2_iter_1.caffemodel', 's2_iter_1.solverstate']);
  });

  it('fails before training when the snapshot folder does not exist', async () => {
    const dir = writeSolverDir('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nsnapshot: 5\nsnapshot_prefix: "missing/run"\n');
    const err = await loadSolverFromFile(join(dir, 'my_solver.prototxt'), { registry: registry(), rootDir: dir, log: false }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CaffeFileError);
    expect((err as Error).message).toMatch(/^Cannot write to snapshot prefix 'missing\/run'\.  Make sure that the directory exists and is writeable\./);
  });

  it('names every place it looked for a missing net file', async () => {
    const dir = writeSolverDir('net: "nope.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n');
    const root = tmp();
    const err = await loadSolverFromFile(join(dir, 'my_solver.prototxt'), { registry: registry(), rootDir: root, log: false }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CaffeFileError);
    expect((err as Error).message).toBe(
      `net 'nope.prototxt' (named in ${join(dir, 'my_solver.prototxt')}) not found; tried ${join(root, 'nope.prototxt')}, ${join(dir, 'nope.prototxt')}`,
    );
  });
});

const corpus = fileURLToPath(new URL('../../../../shared/corpus', import.meta.url));
const lenetDir = join(corpus, 'weights', 'lenet_nn_ex1');
const haveCorpus = existsSync(join(lenetDir, 'lenet_iter_5000.solverstate'));

describe.skipIf(!haveCorpus)('resuming from C++ Caffe\'s LeNet snapshot', () => {
  it('decodes iter 5000 and LeNet-shaped history, loads learned_net by its base name, and continues', async () => {
    const stateFile = join(lenetDir, 'lenet_iter_5000.solverstate');
    const state = decodeSolverState(readFileSync(stateFile));
    expect(state.iter).toBe(5000);
    expect(state.learned_net).toBe('examples/mnist/lenet_iter_5000.caffemodel');
    // conv1, conv2, ip1, ip2: weight and bias each.
    expect(state.history.map((h) => h.shape!.dim)).toEqual([[20, 1, 5, 5], [20], [50, 20, 5, 5], [50], [500, 800], [500], [10, 500], [10]]);

    const dir = tmp();
    writeFileSync(
      join(dir, 'solver.prototxt'),
      `net: "${join(lenetDir, 'lenet.prototxt')}"\nbase_lr: 0.001\nmomentum: 0.9\nweight_decay: 0.0005\n` +
        'lr_policy: "inv"\ngamma: 0.0001\npower: 0.75\nmax_iter: 5001\nsnapshot_after_train: false\n',
    );
    const solver = await loadSolverFromFile(join(dir, 'solver.prototxt'), {
      registry: registerBuiltinLayers(new LayerRegistry()),
      rootDir: dir,
      log: false,
    });
    await solver.restore(stateFile);
    expect(solver.iter).toBe(5000);
    const history = (solver as SGDSolver).history;
    expect(history.map((h) => [...h.shape])).toEqual(solver.net.learnableParams.map((p) => [...p.shape]));
    expect(Array.from(history[7]!.cpuData())).toEqual(Array.from(state.history[7]!.data));
    const model = decodeNetParameter(readFileSync(join(lenetDir, 'lenet_iter_5000.caffemodel'))) as NetParameter;
    const ip2 = model.layer.find((l) => l.name === 'ip2')!;
    expect(Array.from(solver.net.learnableParams[6]!.cpuData().subarray(0, 20))).toEqual(Array.from(ip2.blobs[0]!.data.slice(0, 20)));

    const lrs: number[] = [];
    solver.addCallback({ onIteration: (i) => lrs.push(i.lr) });
    await solver.solve();
    expect(solver.iter).toBe(5001);
    expect(lrs[0]).toBeCloseTo(solver.param.base_lr * Math.pow(1 + solver.param.gamma * 5000, -solver.param.power), 12);
  });
});
