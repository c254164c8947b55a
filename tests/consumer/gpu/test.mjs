// An application that classifies on the gpu backend: @caffe-ts/proto, blob, layers, net and
// backend-gpu installed from their tarballs, without the optional headless-gl build (npm
// --omit=optional), so gpu.js runs in its fallback modes: WebAssembly ('wasm') when it loads,
// else plain JavaScript ('cpu'). Run by tests/consumer/run.sh in a scratch copy of this folder.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import '@caffe-ts/layers/register';
import '@caffe-ts/backend-gpu/register';
import { cpuBackend, fillBlob, getBackend, Rng } from '@caffe-ts/blob';
import { createGpuBackend, isModeSupported } from '@caffe-ts/backend-gpu';
import { Net } from '@caffe-ts/net';
import { createMessage, parseNetParameter, Phase } from '@caffe-ts/proto';

const here = fileURLToPath(new URL('.', import.meta.url));
const deployText = readFileSync(join(here, 'lenet_deploy.prototxt'), 'utf8');
const mode = isModeSupported('wasm') ? 'wasm' : 'cpu';

/** A binary PGM (P5) of one MNIST "7", scaled as LeNet was trained: pixel / 256. */
function loadDigit() {
  const bytes = readFileSync(join(here, 'digit-7.pgm'));
  const m = /^P5\s+28\s+28\s+255\s/.exec(bytes.subarray(0, 20).toString('latin1'));
  assert.ok(m, 'digit-7.pgm: expected a 28x28 8-bit P5 header');
  return Float32Array.from(bytes.subarray(m[0].length), (v) => v * 0.00390625);
}

function lenet(backend) {
  return new Net(parseNetParameter(deployText), { backend, phase: Phase.TEST, log: false });
}

/** Xavier weights (the deploy prototxt has no fillers: its weights would come from a caffemodel). */
function fillWeights(net) {
  const rng = new Rng(1701);
  const xavier = createMessage('FillerParameter', { type: 'xavier' });
  const bias = createMessage('FillerParameter', { type: 'constant', value: 0.01 });
  for (const [, blobs] of net.params) {
    fillBlob(blobs[0], xavier, rng);
    if (blobs[1]) fillBlob(blobs[1], bias, rng);
  }
}

function classify(net, pixels) {
  net.blob('data').mutableCpuData().set(pixels);
  net.forward();
  return Array.from(net.blob('prob').cpuData());
}

test('only the inference packages, backend-gpu and gpu.js are installed (no GL, no LevelDB, no CLI)', () => {
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  for (const name of pkg.caffeTs.absent) {
    assert.equal(existsSync(join(here, 'node_modules', name)), false, `${name} must not be installed`);
  }
  for (const p of pkg.caffeTs.packages) {
    assert.ok(existsSync(join(here, 'node_modules/@caffe-ts', p, 'package.json')), `@caffe-ts/${p} is installed`);
  }
  assert.ok(existsSync(join(here, 'node_modules/gpu.js/package.json')), 'gpu.js comes with @caffe-ts/backend-gpu');
});

test(`LeNet on the gpu backend (gpu.js ${mode} mode, no GL) gives the CPU backend's probabilities`, () => {
  assert.equal(isModeSupported('headlessgl'), false, 'headless GL is not installed here');
  const backend = createGpuBackend({ mode });
  assert.equal(backend.info().mode, mode);
  const ref = lenet(cpuBackend());
  fillWeights(ref);
  const net = lenet(backend);
  ref.learnableParams.forEach((p, i) => net.learnableParams[i].mutableCpuData().set(p.cpuData()));

  const digit = loadDigit();
  const want = classify(ref, digit);
  const got = classify(net, digit);
  assert.equal(got.length, 10);
  // float32 sums over up to 800 terms in another order: agree to ~1e-5 of the largest probability.
  const worst = Math.max(...got.map((g, k) => Math.abs(g - want[k])));
  assert.ok(worst < 1e-4, `max |gpu - cpu| = ${worst}\n  gpu ${got.map((p) => p.toFixed(5)).join(' ')}\n  cpu ${want.map((p) => p.toFixed(5)).join(' ')}`);
  assert.ok(Math.abs(got.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'probabilities sum to 1');
  const stats = backend.stats();
  assert.ok(stats.kernelRuns > 0, 'the layers ran as gpu.js kernels');
  assert.deepEqual(stats.cpuFallbacks, {}, 'no layer of LeNet fell back to the host');
});

test("the registered 'gpu' backend (CAFFE_TS_GPU_MODE) serves getBackend('gpu')", async () => {
  process.env.CAFFE_TS_GPU_MODE = mode;
  const backend = await getBackend('gpu');
  assert.equal(backend.name, 'gpu');
  assert.equal(backend.info().mode, mode);
  const a = lenet(backend);
  const b = lenet(cpuBackend());
  fillWeights(b);
  b.learnableParams.forEach((p, i) => a.learnableParams[i].mutableCpuData().set(p.cpuData()));
  const digit = loadDigit();
  const want = classify(b, digit);
  const got = classify(a, digit);
  assert.ok(Math.max(...got.map((g, k) => Math.abs(g - want[k]))) < 1e-4);
});
