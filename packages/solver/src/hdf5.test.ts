import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, setHdf5WeightsLoader } from '@caffe-ts/net/node';
import { parseNetParameter, SolverParameter_SnapshotFormat } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyTrainedLayersFromHdf5, loadH5wasm, readSolverStateHdf5 } from './hdf5.js';
import { createNodeSolver, enableHdf5, loadWeightsFile } from './node.js';
import type { SGDSolver } from './sgd-solver.js';
import { regressionNetText, sequentialFeed, solverParam, testRegistry } from './test-fixtures.js';

type H5 = Awaited<ReturnType<typeof loadH5wasm>>;
let h5: H5;
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'caffe-ts-h5-'));
  dirs.push(d);
  return d;
}
beforeAll(async () => {
  h5 = await loadH5wasm();
});
afterAll(() => {
  setHdf5WeightsLoader(undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every dataset path in an HDF5 file with its dtype and shape, e.g. "data/ip/0 <f 2,3". */
function listing(path: string): string[] {
  const f = new h5.File(path, 'r');
  const out: string[] = [];
  const walk = (g: InstanceType<H5['Group']>, prefix: string) => {
    for (const k of g.keys()) {
      const child = g.get(k);
      if (child instanceof h5.Group) {
        out.push(`${prefix}${k}/`);
        walk(child, `${prefix}${k}/`);
      } else if (child instanceof h5.Dataset) out.push(`${prefix}${k} ${String(child.dtype)} ${(child.shape ?? []).join(',')}`);
    }
  };
  walk(f, '');
  f.close();
  return out;
}

function dataset(path: string, name: string): unknown {
  const f = new h5.File(path, 'r');
  try {
    const v = (f.get(name) as InstanceType<H5['Dataset']>).value;
    return ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v;
  } finally {
    f.close();
  }
}

const hdf5 = SolverParameter_SnapshotFormat.HDF5;
const schedule = { base_lr: 0.05, momentum: 0.9, weight_decay: 0.01, lr_policy: 'multistep', gamma: 0.5, stepvalue: [1, 2] };

describe('snapshot_format: HDF5', () => {
  it("writes <prefix>_iter_N.caffemodel.h5 and .solverstate.h5 in Caffe's layout, no temp files left", async () => {
    const dir = tmp();
    const solver = await createNodeSolver(
      solverParam({ net_param: parseNetParameter(regressionNetText(2)), ...schedule, max_iter: 3, snapshot_format: hdf5, snapshot_prefix: join(dir, 'run') }),
      { registry: testRegistry(sequentialFeed(2)), rootDir: dir, log: false },
    );
    await solver.solve();
    expect(readdirSync(dir).sort()).toEqual(['run_iter_3.caffemodel.h5', 'run_iter_3.solverstate.h5']);
    const model = join(dir, 'run_iter_3.caffemodel.h5');
    const state = join(dir, 'run_iter_3.solverstate.h5');
    // Every layer gets a group, even those without params; no diff group without snapshot_diff.
    expect(listing(model)).toEqual(['data/', 'data/feed/', 'data/ip/', 'data/ip/0 <f 2,3', 'data/ip/1 <f 2', 'data/loss/']);
    expect(dataset(model, 'data/ip/0')).toEqual(Array.from(solver.net.learnableParams[0]!.cpuData()));
    // learned_net: an ASCII fixed-length string, as H5LTmake_dataset_string writes it.
    expect(listing(state)).toEqual(['current_step <i 1', 'history/', 'history/0 <f 2,3', 'history/1 <f 2', 'iter <i 1', `learned_net A${model.length + 1} `]);
    expect(dataset(state, 'iter')).toEqual([3]);
    expect(dataset(state, 'current_step')).toEqual([2]);
    expect(dataset(state, 'learned_net')).toBe(model);
    expect(dataset(state, 'history/0')).toEqual(Array.from((solver as SGDSolver).history[0]!.cpuData()));

    const read = readSolverStateHdf5(state);
    expect(read.iter).toBe(3);
    expect(read.current_step).toBe(2);
    expect(read.learned_net).toBe(model);
    expect(read.history.map((h) => h.shape!.dim)).toEqual([[2, 3], [2]]);
  });

  it('snapshot_diff adds a diff group; float64 nets write doubles', async () => {
    const dir = tmp();
    const solver = await createNodeSolver(
      solverParam({
        net_param: parseNetParameter(regressionNetText(2)),
        ...schedule,
        max_iter: 1,
        snapshot_format: hdf5,
        snapshot_diff: true,
        snapshot_prefix: join(dir, 'd'),
      }),
      { registry: testRegistry(sequentialFeed(2)), rootDir: dir, log: false, dtype: 'float64' },
    );
    await solver.solve();
    const model = join(dir, 'd_iter_1.caffemodel.h5');
    expect(listing(model)).toContain('diff/ip/0 <d 2,3');
    expect(listing(model)).toContain('data/ip/1 <d 2');
    expect(dataset(model, 'diff/ip/0')).toEqual(Array.from(solver.net.learnableParams[0]!.cpuDiff()));
    expect(listing(join(dir, 'd_iter_1.solverstate.h5'))).toContain('history/0 <d 2,3');
  });

  it('shared params are stored once (by their owner); diffs for every layer; reading skips the shared', async () => {
    const text = `
      name: 'shared'
      input: 'x' input_shape { dim: 2 dim: 3 }
      layer { name: 'a' type: 'InnerProduct' bottom: 'x' top: 'ya' param { name: 'w' } param { name: 'b' }
              inner_product_param { num_output: 2 weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' } } }
      layer { name: 'b' type: 'InnerProduct' bottom: 'x' top: 'yb' param { name: 'w' } param { name: 'b' }
              inner_product_param { num_output: 2 } }`;
    const registry = registerBuiltinLayers(new LayerRegistry());
    const net = new Net(parseNetParameter(text), { registry, log: false });
    const { writeNetHdf5 } = await import('./hdf5.js');
    const dir = tmp();
    const file = join(dir, 'shared.caffemodel.h5');
    writeNetHdf5(net, file, true);
    // Every layer gets a group (the Input layer and the inserted Split too); 'b' owns no param.
    expect(listing(file)).toEqual([
      'data/', 'data/a/', 'data/a/0 <f 2,3', 'data/a/1 <f 2', 'data/b/', 'data/input/', 'data/x_input_0_split/',
      'diff/', 'diff/a/', 'diff/a/0 <f 2,3', 'diff/a/1 <f 2', 'diff/b/', 'diff/b/0 <f 2,3', 'diff/b/1 <f 2', 'diff/input/',
      'diff/x_input_0_split/',
    ]);
    const other = new Net(parseNetParameter(text), { registry, log: false });
    other.learnableParams.forEach((p) => p.mutableCpuData().fill(0));
    copyTrainedLayersFromHdf5(other, file, { log: false });
    other.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(net.learnableParams[i]!.cpuData()));
    expect(other.params.get('b')![0]!.cpuData()).toEqual(net.params.get('a')![0]!.cpuData());
  });

  it('layer names with "/" become nested groups and read back', async () => {
    const text = `
      name: 'slash'
      input: 'x' input_shape { dim: 1 dim: 4 }
      layer { name: 'inception_3a/1x1' type: 'InnerProduct' bottom: 'x' top: 'y'
              inner_product_param { num_output: 3 weight_filler { type: 'gaussian' } } }`;
    const registry = registerBuiltinLayers(new LayerRegistry());
    const net = new Net(parseNetParameter(text), { registry, log: false });
    const { writeNetHdf5 } = await import('./hdf5.js');
    const file = join(tmp(), 'slash.caffemodel.h5');
    writeNetHdf5(net, file);
    expect(listing(file)).toContain('data/inception_3a/1x1/0 <f 3,4');
    const other = new Net(parseNetParameter(text), { registry, log: false });
    other.learnableParams[0]!.mutableCpuData().fill(0);
    copyTrainedLayersFromHdf5(other, file, { log: false });
    expect(other.learnableParams[0]!.cpuData()).toEqual(net.learnableParams[0]!.cpuData());
  });

  it('restores from .solverstate.h5 (chosen by suffix) and continues bit-identically', async () => {
    const dir = tmp();
    const build = async (props: Record<string, unknown>, feed = sequentialFeed(2)) =>
      (await createNodeSolver(solverParam({ net_param: parseNetParameter(regressionNetText(2)), ...schedule, ...props }), {
        registry: testRegistry(feed),
        rootDir: dir,
        log: false,
      })) as SGDSolver;
    const straight = await build({ max_iter: 6, snapshot_after_train: false });
    await straight.solve();
    const first = await build({ max_iter: 3, snapshot: 3, snapshot_format: hdf5, snapshot_prefix: join(dir, 'h') });
    await first.solve();
    const feed = sequentialFeed(2);
    feed.counters = { 0: 3 };
    const resumed = await build({ max_iter: 6, snapshot_after_train: false }, feed);
    await resumed.solve(join(dir, 'h_iter_3.solverstate.h5'));
    expect(resumed.iter).toBe(6);
    expect(resumed.currentStep).toBe(2);
    resumed.net.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(straight.net.learnableParams[i]!.cpuData()));
    resumed.history.forEach((h, i) => expect(h.cpuData()).toEqual(straight.history[i]!.cpuData()));
  });

  it('copyTrainedLayersFromFile reads .caffemodel.h5 once enableHdf5() ran; loadWeightsFile on its own', async () => {
    const dir = tmp();
    const solver = await createNodeSolver(
      solverParam({ net_param: parseNetParameter(regressionNetText(2)), ...schedule, max_iter: 2, snapshot_format: hdf5, snapshot_prefix: join(dir, 'w') }),
      { registry: testRegistry(sequentialFeed(2)), rootDir: dir, log: false },
    );
    await solver.solve();
    const model = join(dir, 'w_iter_2.caffemodel.h5');
    const fresh = () => new Net(parseNetParameter(regressionNetText(2)), { registry: testRegistry(sequentialFeed(2)), log: false });
    const a = fresh();
    await loadWeightsFile(a, model);
    a.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(solver.net.learnableParams[i]!.cpuData()));
    const b = fresh();
    setHdf5WeightsLoader(undefined);
    expect(() => copyTrainedLayersFromFile(b, model)).toThrow(/HDF5 weights are read from files named \*\.h5.*enableHdf5/);
    await enableHdf5();
    copyTrainedLayersFromFile(b, model);
    b.learnableParams.forEach((p, i) => expect(p.cpuData()).toEqual(solver.net.learnableParams[i]!.cpuData()));
  });

  it('errors name the file: missing, not HDF5, wrong shapes, not a Caffe state', async () => {
    const dir = tmp();
    const net = new Net(parseNetParameter(regressionNetText(2)), { registry: testRegistry(sequentialFeed(2)), log: false });
    expect(() => copyTrainedLayersFromHdf5(net, join(dir, 'none.caffemodel.h5'))).toThrow(/cannot read HDF5 weights '.*none\.caffemodel\.h5': no such file/);
    const junk = join(dir, 'junk.caffemodel.h5');
    writeFileSync(junk, 'not hdf5');
    expect(() => copyTrainedLayersFromHdf5(net, junk)).toThrow(/junk\.caffemodel\.h5': not an HDF5 file \(no HDF5 signature\)/);
    // A model with other shapes: 4 inputs instead of 3.
    const wide = new Net(parseNetParameter(regressionNetText(2).replace('shape { dim: 2 dim: 3 }', 'shape { dim: 2 dim: 4 }')), {
      registry: testRegistry(sequentialFeed(2)),
      log: false,
    });
    const { writeNetHdf5 } = await import('./hdf5.js');
    const wideFile = join(dir, 'wide.caffemodel.h5');
    writeNetHdf5(wide, wideFile);
    expect(() => copyTrainedLayersFromHdf5(net, wideFile, { log: false })).toThrow(
      /Cannot load blob from hdf5; shape mismatch\. Source shape is 2 4 \(8\) target shape is 2 3 \(6\) \(layer 'ip' param 0, weights file .*wide\.caffemodel\.h5\)/,
    );
    // Weights are not a solver state.
    expect(() => readSolverStateHdf5(wideFile)).toThrow(/wide\.caffemodel\.h5: the solver state has no dataset 'iter'/);
    expect(existsSync(wideFile)).toBe(true);
  });
});
