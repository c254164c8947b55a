// An application that only classifies: @caffe-ts/proto, blob, layers and net installed from their
// tarballs, nothing else. Run by tests/consumer/run.sh in a scratch copy of this folder.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import '@caffe-ts/layers/register';
import { fillBlob, relaxedSimdStatus, Rng, wasmGemmInfo } from '@caffe-ts/blob';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, loadNetFromFile, readNetWeights, saveNet } from '@caffe-ts/net/node';
import { createMessage, parseNetParameter, Phase } from '@caffe-ts/proto';

const here = fileURLToPath(new URL('.', import.meta.url));
const deploy = join(here, 'lenet_deploy.prototxt');
const scratch = mkdtempSync(join(tmpdir(), 'caffe-ts-inference-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A binary PGM (P5) of one MNIST "7", scaled as LeNet was trained: pixel / 256. */
function loadDigit() {
  const bytes = readFileSync(join(here, 'digit-7.pgm'));
  const m = /^P5\s+28\s+28\s+255\s/.exec(bytes.subarray(0, 20).toString('latin1'));
  assert.ok(m, `digit-7.pgm: expected a 28x28 8-bit P5 header`);
  return Float32Array.from(bytes.subarray(m[0].length), (v) => v * 0.00390625);
}

function classify(net, pixels) {
  net.blob('data').mutableCpuData().set(pixels);
  net.forward();
  return Array.from(net.blob('prob').cpuData());
}

const argmax = (xs) => xs.reduce((best, v, i) => (v > xs[best] ? i : best), 0);

test('only the inference packages are installed', () => {
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  for (const name of pkg.caffeTs.absent) {
    assert.equal(existsSync(join(here, 'node_modules', name)), false, `${name} must not be installed by the inference packages`);
  }
  for (const p of pkg.caffeTs.packages) {
    assert.ok(existsSync(join(here, 'node_modules/@caffe-ts', p, 'package.json')), `@caffe-ts/${p} is installed`);
  }
});

test('plain node runs the fused multiply-add (relaxed SIMD) kernel builds, no flag needed', () => {
  // Node 20 keeps relaxed SIMD behind a flag, which the package sets itself; Node 22+ has it.
  assert.ok(['native', 'enabled'].includes(relaxedSimdStatus()), `relaxedSimdStatus() is ${relaxedSimdStatus()}`);
  assert.equal(wasmGemmInfo().variant, 'relaxed-simd');
});

test('LeNet deploy: random weights, saveNet, reload, identical probabilities', () => {
  const net = loadNetFromFile(deploy, { phase: Phase.TEST, log: false });
  assert.deepEqual(net.blob('data').shape, [1, 1, 28, 28]);
  // The deploy prototxt has no fillers (its weights come from a caffemodel): fill them here.
  const rng = new Rng(1701);
  const xavier = createMessage('FillerParameter', { type: 'xavier' });
  const bias = createMessage('FillerParameter', { type: 'constant', value: 0.01 });
  for (const [, blobs] of net.params) {
    fillBlob(blobs[0], xavier, rng);
    if (blobs[1]) fillBlob(blobs[1], bias, rng);
  }
  const digit = loadDigit();
  const before = classify(net, digit);
  assert.equal(before.length, 10);
  assert.ok(Math.abs(before.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'probabilities sum to 1');

  const model = join(scratch, 'lenet_random.caffemodel');
  saveNet(net, model);
  const saved = readNetWeights(model, { log: false });
  assert.deepEqual(
    saved.layer.filter((l) => l.blobs.length > 0).map((l) => l.name),
    ['conv1', 'conv2', 'ip1', 'ip2'],
  );

  const reloaded = loadNetFromFile(deploy, { phase: Phase.TEST, log: false });
  copyTrainedLayersFromFile(reloaded, model);
  assert.deepEqual(classify(reloaded, digit), before, 'the reloaded net gives the same probabilities, bit for bit');
});

// C++ Caffe's LeNet weights (trained on MNIST) from the read-only corpus beside the repository.
const corpusWeights = process.env.CAFFE_TS_CORPUS
  ? join(process.env.CAFFE_TS_CORPUS, 'weights/lenet_nn_ex1/lenet_iter_10000.caffemodel')
  : undefined;

test('LeNet with C++ Caffe weights reads the digit as a 7', { skip: corpusWeights && existsSync(corpusWeights) ? false : 'no corpus (CAFFE_TS_CORPUS)' }, () => {
  const net = loadNetFromFile(deploy, { phase: Phase.TEST, log: false });
  copyTrainedLayersFromFile(net, corpusWeights);
  const prob = classify(net, loadDigit());
  assert.equal(argmax(prob), 7, `probabilities ${prob.map((p) => p.toFixed(3)).join(' ')}`);
  assert.ok(prob[7] > 0.9, `p(7) = ${prob[7]}`);
});

test('a Net from an in-memory prototxt (the browser path: no file access)', () => {
  const net = new Net(parseNetParameter(readFileSync(deploy, 'utf8')), { phase: Phase.TEST, log: false });
  assert.deepEqual(net.outputBlobs.map((b) => b.shape), [[1, 10]]);
  assert.deepEqual(net.layerNames, ['data', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'prob']);
});

test('net.dispose: the net gives its memory back and then refuses to run', () => {
  const net = loadNetFromFile(deploy, { phase: Phase.TEST, log: false });
  const before = classify(net, loadDigit());
  assert.equal(before.length, 10);
  net.dispose();
  assert.equal(net.isDisposed, true);
  assert.equal(net.params.get('ip1')[0].count(), 0);
  assert.throws(() => net.forward(), /was disposed/);
});
