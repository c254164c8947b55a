import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertBundledMnist, closeDataSources } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter, saveNet } from '@caffe-ts/net/node';
import { decodeNetParameter } from '@caffe-ts/proto';
import { caffe, corpus, hasCorpus, messages, tempDir, zooDir } from './helpers.js';

const lenetZoo = join(zooDir, 'lenet');
const testAccuracy = (log: string[]) => {
  const m = messages(log)
    .map((l) => /Test net output #\d+: accuracy = (\S+)/.exec(l))
    .filter((x) => x !== null);
  return Number(m[m.length - 1]![1]);
};
const accuracyOf = (log: string[]) => {
  const lines = messages(log).filter((m) => /^accuracy = /.test(m));
  return Number(lines[lines.length - 1]!.split(' = ')[1]);
};

// C++ Caffe's own files, end to end through the CLI: its LeNet weights score the bundled digits,
// its solverstate resumes, its prototxts train on databases made here.
describe.skipIf(!hasCorpus)('LeNet with C++ Caffe files', () => {
  const dir = tempDir('caffe-ts-lenet-');
  beforeAll(async () => {
    mkdirSync(join(dir.path, 'data/mnist'), { recursive: true });
    await convertBundledMnist('test', join(dir.path, 'data/mnist/mnist_test_lmdb'), { backend: 'lmdb' });
    await convertBundledMnist('train', join(dir.path, 'data/mnist/mnist_train_lmdb'), { backend: 'lmdb' });
  }, 120_000);
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  it('caffe test: C++ Caffe weights score >= 0.97 on the held-out bundled digits', async () => {
    const weights = corpus('weights/lenet_nn_ex1/lenet_iter_10000.caffemodel');
    const r = await caffe(
      ['test', '--model', join(lenetZoo, 'lenet_train_test.prototxt'), '--weights', weights, '--iterations', '17'],
      dir.path,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(accuracyOf(r.log)).toBeGreaterThanOrEqual(0.97);
    expect(messages(r.log)).toContainEqual(expect.stringMatching(/^loss = [\d.]+ \(\* 1 = [\d.]+ loss\)$/));
  });

  it('caffe train --snapshot resumes C++ Caffe lenet_iter_5000.solverstate, and snapshots reload bit-identically', async () => {
    // The state names its weights as "examples/mnist/lenet_iter_5000.caffemodel" (C++ Caffe's
    // checkout): found by base name beside the state file.
    const solver = join(dir.path, 'resume_solver.prototxt');
    mkdirSync(join(dir.path, 'snap'), { recursive: true }); // Caffe requires the snapshot folder to exist
    const zooSolver = readFileSync(join(lenetZoo, 'lenet_solver.prototxt'), 'utf8');
    writeFileSync(
      solver,
      zooSolver
        .replace(/net: ".*"/, `net: "${join(lenetZoo, 'lenet_train_test.prototxt')}"`)
        .replace(/max_iter: \d+/, 'max_iter: 5040')
        .replace(/test_iter: \d+/, 'test_iter: 17')
        .replace(/display: \d+/, 'display: 20')
        .replace(/snapshot_prefix: ".*"/, 'snapshot_prefix: "snap/lenet"'),
    );
    const r = await caffe(
      ['train', '--solver', solver, '--snapshot', corpus('weights/lenet_nn_ex1/lenet_iter_5000.solverstate')],
      dir.path,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const msgs = messages(r.log);
    expect(msgs).toContainEqual(expect.stringMatching(/^Restoring previous solver status from .*lenet_iter_5000\.solverstate/));
    const losses = msgs.filter((m) => /^Iteration \d+ \(.*\), loss = /.test(m));
    expect(losses[0]).toMatch(/^Iteration 5000 /); // Caffe displays on the first step after a restore
    // Already trained weights: the loss is small from the first display on.
    for (const l of losses) expect(Number(l.split('loss = ')[1])).toBeLessThan(0.5);
    expect(msgs).toContainEqual(expect.stringMatching(/^Iteration 5000, Testing net \(#0\)$/)); // 5000 % test_interval == 0
    expect(testAccuracy(r.log)).toBeGreaterThan(0.95);

    const snap = join(dir.path, 'snap');
    const files = readdirSync(snap).sort();
    expect(files).toEqual(['lenet_iter_5040.caffemodel', 'lenet_iter_5040.solverstate']);
    // Our caffemodel reloads into a net and saves again with identical weights.
    const bytes = readFileSync(join(snap, 'lenet_iter_5040.caffemodel'));
    const saved = decodeNetParameter(bytes);
    const deploy = new Net(readNetParameter(join(lenetZoo, 'lenet_deploy.prototxt')), {
      registry: registerBuiltinLayers(new LayerRegistry()),
      log: false,
    });
    copyTrainedLayersFromFile(deploy, join(snap, 'lenet_iter_5040.caffemodel'));
    const again = join(dir.path, 'again.caffemodel');
    saveNet(deploy, again);
    const reloaded = decodeNetParameter(readFileSync(again));
    const withBlobs = reloaded.layer.filter((l) => l.blobs.length > 0);
    expect(withBlobs.map((l) => l.name)).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
    for (const layer of withBlobs) {
      const original = saved.layer.find((l) => l.name === layer.name)!;
      expect(layer.blobs.map((b) => b.data)).toEqual(original.blobs.map((b) => b.data));
    }
  });

  it("BVLC's lenet_train_test.prototxt and lenet_solver.prototxt train with only source/net paths changed (LMDB)", async () => {
    const lmdbDir = join(dir.path, 'lmdb');
    mkdirSync(lmdbDir, { recursive: true });
    await convertBundledMnist('train', join(lmdbDir, 'mnist_train_lmdb'), { backend: 'lmdb' });
    await convertBundledMnist('test', join(lmdbDir, 'mnist_test_lmdb'), { backend: 'lmdb' });
    const net = readFileSync(corpus('nets/mnist_lenet/lenet_train_test.prototxt'), 'utf8')
      .replace('examples/mnist/mnist_train_lmdb', join(lmdbDir, 'mnist_train_lmdb'))
      .replace('examples/mnist/mnist_test_lmdb', join(lmdbDir, 'mnist_test_lmdb'));
    writeFileSync(join(lmdbDir, 'lenet_train_test.prototxt'), net);
    // The test keeps the run short (CI budget): max_iter and the test schedule are the only other changes.
    const solver = readFileSync(corpus('nets/mnist_lenet/lenet_solver.prototxt'), 'utf8')
      .replace('examples/mnist/lenet_train_test.prototxt', join(lmdbDir, 'lenet_train_test.prototxt'))
      .replace(/max_iter: \d+/, 'max_iter: 100')
      .replace(/test_iter: \d+/, 'test_iter: 5')
      .replace(/test_interval: \d+/, 'test_interval: 100')
      .replace('examples/mnist/lenet', join(lmdbDir, 'lenet'));
    writeFileSync(join(lmdbDir, 'lenet_solver.prototxt'), solver);
    const r = await caffe(['train', '--solver', join(lmdbDir, 'lenet_solver.prototxt')], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const msgs = messages(r.log);
    const first = Number(msgs.find((m) => /^Iteration 0 .*loss = /.test(m))!.split('loss = ')[1]);
    // The last display is the solver's final "Iteration 100, loss = X" line.
    const last = Number(msgs.filter((m) => /^Iteration \d+[ ,].*loss = /.test(m)).pop()!.split('loss = ')[1]);
    expect(first).toBeGreaterThan(1.5);
    expect(last).toBeLessThan(0.7);
    expect(existsSync(join(lmdbDir, 'lenet_iter_100.caffemodel'))).toBe(true);
  });
});
