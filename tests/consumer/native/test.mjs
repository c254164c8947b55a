// An application on the native kernels: @caffe-ts/proto, blob, layers, net and backend-native
// installed from their tarballs, the addon compiled by the package's install script in this
// scratch project. Run by tests/consumer/run.sh in a scratch copy of this folder.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import '@caffe-ts/layers/register';
import { createWasmConv2d, fillBlob, Rng } from '@caffe-ts/blob';
import { createNativeConv2d, nativeAvailability, stopNativeKernels, useNativeKernels } from '@caffe-ts/backend-native';
import { Net } from '@caffe-ts/net';
import { createMessage, parseNetParameter, Phase } from '@caffe-ts/proto';

const here = fileURLToPath(new URL('.', import.meta.url));

test('the install script built the addon', () => {
  const { available, reason } = nativeAvailability();
  assert.ok(available, reason);
});

test('a training pass through the native runner gives the WebAssembly kernels\' gradients', () => {
  const g = { channels: 3, height: 9, width: 8, kernelH: 3, kernelW: 3, padH: 1, padW: 1, strideH: 2, strideW: 1, dilationH: 1, dilationW: 1, outChannels: 4, group: 1 };
  const rng = new Rng(2);
  const random = (n) => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
  const x = random(2 * 3 * 72), dy = random(2 * 4 * 5 * 8), w = random(4 * 27);
  const grads = [createNativeConv2d({ threads: 2 }), createWasmConv2d({ threads: 1 })].map((runner) => {
    const dw = new Float32Array(w.length), dx = new Float32Array(x.length);
    runner.run(g, 2, 1, { colIn: x, gemmIn: dy, weights: w, weightDiff: dw, colOut: dx });
    return [...dw, ...dx];
  });
  grads[0].forEach((v, i) => assert.ok(Math.abs(v - grads[1][i]) < 1e-5, `entry ${i}: ${v} against ${grads[1][i]}`));
});

test('LeNet classifies a digit with the native kernels installed as without them', () => {
  const bytes = readFileSync(join(here, 'digit-7.pgm'));
  const image = Float32Array.from(bytes.subarray(bytes.length - 784), (v) => v * 0.00390625);
  const probabilities = () => {
    const net = new Net(parseNetParameter(readFileSync(join(here, 'lenet_deploy.prototxt'), 'utf8')), { phase: Phase.TEST, log: false });
    const rng = new Rng(1701);
    for (const [, blobs] of net.params) {
      fillBlob(blobs[0], createMessage('FillerParameter', { type: 'xavier' }), rng);
      if (blobs[1]) fillBlob(blobs[1], createMessage('FillerParameter', { type: 'constant', value: 0.01 }), rng);
    }
    net.blobs.get('data').mutableCpuData().set(image);
    net.forward();
    return Array.from(net.blobs.get('prob').cpuData());
  };
  const plain = probabilities();
  const { core } = useNativeKernels();
  assert.ok(core.length > 0);
  const native = probabilities();
  stopNativeKernels();
  plain.forEach((p, i) => assert.ok(Math.abs(p - native[i]) < 1e-5, `class ${i}: ${native[i]} against ${p}`));
});
