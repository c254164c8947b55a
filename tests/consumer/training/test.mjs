// An application that trains from a LevelDB: proto, blob, layers, net, solver and the io-leveldb
// plugin installed from their tarballs. Run by tests/consumer/run.sh in a scratch copy of this
// folder (the working directory), which it writes data/ and snapshots/ into.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import '@caffe-ts/layers/register';
import '@caffe-ts/io-leveldb/register';
import { setLogSink } from '@caffe-ts/blob';
import { closeDataSources, convertBundledMnist, LevelDbDatumDb } from '@caffe-ts/io-leveldb';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter } from '@caffe-ts/net/node';
import { decodeDatum, Phase } from '@caffe-ts/proto';
import { loadSolverFromFile } from '@caffe-ts/solver/node';

const here = fileURLToPath(new URL('.', import.meta.url));
process.chdir(here);

// Caffe's log lines, captured: the solver, the nets and the Data layer all log through the one
// copy of @caffe-ts/blob that the application and the plugin share.
const log = [];
const previousSink = setLogSink((line) => log.push(line));
after(async () => {
  setLogSink(previousSink);
  await closeDataSources();
});

// The same seed and opposite fractions give disjoint sets: the train split keeps the last 3% of
// each class's shuffle, the test split the first 3%.
const counts = {};
before(async () => {
  counts.train = (await convertBundledMnist('train', 'data/digits_train_leveldb', { testFraction: 0.97 })).count;
  counts.test = (await convertBundledMnist('test', 'data/digits_test_leveldb', { testFraction: 0.03 })).count;
});

test('the bundled digits convert to LevelDBs of Caffe Datums', async () => {
  assert.ok(counts.train >= 250 && counts.train <= 350, `train digits: ${counts.train}`);
  assert.ok(counts.test >= 250 && counts.test <= 350, `test digits: ${counts.test}`);
  const db = await LevelDbDatumDb.open('data/digits_train_leveldb', 'read');
  try {
    assert.equal(await db.count(), counts.train);
    const first = await db.cursor().next();
    assert.equal(first.key, '00000000', "Caffe's keys: the index, 8 digits");
    const datum = decodeDatum(first.value);
    assert.deepEqual([datum.channels, datum.height, datum.width, datum.data.length], [1, 28, 28, 784]);
    assert.ok(datum.label >= 0 && datum.label <= 9);
  } finally {
    await db.close();
  }
});

test('LeNet trains 20 iterations from the LevelDB with SGD and snapshots', async () => {
  mkdirSync('snapshots', { recursive: true }); // as in Caffe, the prefix's folder must exist
  const solver = await loadSolverFromFile('lenet_solver.prototxt');
  const losses = [];
  const tests = [];
  solver.addCallback({
    onIteration: ({ loss }) => losses.push(loss),
    onTest: (r) => tests.push(r),
  });
  await solver.solve();
  await solver.close();

  assert.equal(losses.length, 20);
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, 3));
  const last = mean(losses.slice(-3));
  assert.ok(first > 1.8, `an untrained LeNet starts near ln 10 ≈ 2.3 (first losses ${losses.slice(0, 3)})`);
  assert.ok(last < 0.8 * first, `the loss falls: first ${first.toFixed(3)}, last ${last.toFixed(3)} (${losses.map((l) => l.toFixed(2)).join(' ')})`);

  const accuracy = tests.at(-1)?.scores.find((s) => s.name === 'accuracy')?.value;
  assert.ok(accuracy > 0.3, `held-out accuracy after 20 iterations: ${accuracy} (chance is 0.1)`);

  assert.ok(existsSync('snapshots/lenet_iter_20.caffemodel'));
  assert.ok(existsSync('snapshots/lenet_iter_20.solverstate'));
  const messages = log.map((l) => l.replace(/^[IWE]\d{4} [\d:.]+ +\d+ [^\]]+\] /, ''));
  assert.ok(messages.includes('Iteration 20, Testing net (#0)'), 'Caffe log lines come through the shared logger');
  assert.ok(messages.some((m) => /^Snapshotting to binary proto file snapshots\/lenet_iter_20\.caffemodel$/.test(m)), 'the snapshot is logged');
});

test('the snapshot loads into a TEST net that scores like the solver did', async () => {
  const net = await Net.create(readNetParameter(join(here, 'lenet_train_test.prototxt'), { log: false }), { phase: Phase.TEST, log: false });
  copyTrainedLayersFromFile(net, 'snapshots/lenet_iter_20.caffemodel');
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    await net.prepare();
    net.forward();
    sum += net.blob('accuracy').cpuData()[0];
  }
  assert.ok(sum / 3 > 0.3, `accuracy of the reloaded weights: ${sum / 3}`);
  await net.close();
});

test('the plugin shares the core with the application (peer dependencies: one copy each)', () => {
  for (const core of ['proto', 'blob', 'layers']) {
    assert.equal(existsSync(join(here, 'node_modules/@caffe-ts/io-leveldb/node_modules/@caffe-ts', core)), false, `io-leveldb has no copy of @caffe-ts/${core}`);
  }
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  for (const name of pkg.caffeTs.absent) {
    assert.equal(existsSync(join(here, 'node_modules', name)), false, `${name} must not be installed`);
  }
});
