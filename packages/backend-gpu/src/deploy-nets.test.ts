import '@caffe-ts/layers/register';
import { readdirSync } from 'node:fs';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { describeDeployNet, deployText, missingKernels, wasmOrCpu, ZOO_MODELS, type DeployCase } from './deploy-parity.js';
import { backendFor, testModes } from './test-modes.js';

/**
 * Whole-net inference on the device (see deploy-parity.ts): every zoo deploy net has a kernel for
 * each of its layers; SqueezeNet v1.1 at 64×64 (random weights at full size) matches the CPU
 * backend within 1e-3 relative reading back only its output, in wasm mode and in headless GL;
 * AlexNet at 67×67 in wasm mode.
 * GoogLeNet and ResNet-50 at 64×64 are deploy-googlenet.test.ts and deploy-resnet50.test.ts
 * (wasm mode; software GL takes 15-25 s each, so their GL runs are in test:gpu-slow with the
 * full-size nets).
 */
export const SQUEEZENET_64: DeployCase = { model: 'squeezenet_v1.1', input: [1, 3, 64, 64] };

describe('zoo deploy nets have a gpu kernel for every layer (a missing op fails loudly)', () => {
  const models = readdirSync(ZOO_MODELS)
    .filter((m) => !m.startsWith('.') && m !== 'lenet')
    .sort();
  it.each(models)('%s', (model) => {
    expect(missingKernels(deployText({ model, input: [1, 3, 32, 32] }), backendFor('cpu'))).toEqual([]);
  });

  it('a layer without a kernel throws, naming the layer and type, unless CPU fallback is on', () => {
    const text = `layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "abs" type: "AbsVal" bottom: "x" top: "y" }`;
    const net = new Net(parseNetParameter(text), { backend: backendFor('cpu'), phase: Phase.TEST, log: false });
    expect(() => net.forward()).toThrow(/AbsVal layer 'abs': no kernel for layer type 'AbsVal' on backend 'gpu'/);
  });
});

/** AlexNet at 67×67 (as `caffe time` tests CaffeNet): pool5 is 1×1, so fc6 takes 256 inputs instead of 9,216. */
export const ALEXNET_67: DeployCase = { model: 'alexnet', input: [1, 3, 67, 67] };

describeDeployNet('SqueezeNet v1.1', SQUEEZENET_64, [...wasmOrCpu(), testModes().find((m) => m.mode === 'headlessgl')!], 60_000);
describeDeployNet('AlexNet', ALEXNET_67, wasmOrCpu(), 60_000);
