import { cpuBackend, Rng, type FloatArray } from '@caffe-ts/blob';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { createGpuBackend, type GpuBackend } from './backend.js';
import { relErr, testModes } from './test-modes.js';

const gl = testModes().find((m) => m.mode === 'headlessgl')!;

function fill(values: FloatArray, seed: number): void {
  const rng = new Rng(seed);
  for (let i = 0; i < values.length; i++) values[i] = rng.uniform() * 2 - 1;
}

const backends: GpuBackend[] = [];
afterEach(() => {
  for (const b of backends.splice(0)) b.destroy();
});

function glBackend(options: { splitLimit?: number; profileKernels?: boolean } = {}): GpuBackend {
  const b = createGpuBackend({ mode: 'headlessgl', ...options });
  backends.push(b);
  return b;
}

/** Blob `top` of the same net run on the CPU backend with `from`'s weights and input. */
function onCpu(text: string, from: Net, top: string): ArrayLike<number> {
  const twin = new Net(parseNetParameter(text), { backend: cpuBackend(), phase: Phase.TEST, log: false });
  from.learnableParams.forEach((p, i) => twin.learnableParams[i]!.mutableCpuData().set(p.cpuData()));
  twin.blob('data').mutableCpuData().set(from.blob('data').cpuData());
  twin.forward();
  return twin.blob(top).cpuData();
}

const weightsOf = (net: Net, layer: string) => net.layers[net.layerNames.indexOf(layer)]!.blobs[0]!;

// A convolution without groups, one with two, an InnerProduct whose weights are split into parts
// (1,920 floats over a 1,000-float limit: two parts of 10 rows) and a whole one.
const NET = `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 6 kernel_size: 3 group: 2 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: -0.1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv2" top: "ip1" inner_product_param { num_output: 20 weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.2 } } }
`;

describe.skipIf(gl.skip !== null)(`packed GEMMs on headless GL${gl.skip ? ` (skipped: ${gl.skip})` : ''}`, () => {
  it('an inference net packs each weight once while it is unchanged, again after a write, and frees the packed copies with the weights', () => {
    const backend = glBackend({ splitLimit: 1000, profileKernels: true });
    const net = new Net(parseNetParameter(NET), { backend, phase: Phase.TEST, log: false, rng: new Rng(5) });
    const packs = () => backend.device.kernelProfile(true)!.find((r) => r.name === 'pack-matrix')?.calls ?? 0;
    fill(net.blob('data').mutableCpuData(), 1);
    backend.device.kernelProfile(true);
    net.forward();
    // Weights: conv1, conv2, ip1's two parts, ip2; inputs: ip1's per part, ip2's.
    expect(packs()).toBe(8);
    const first = Array.from(net.blob('ip2').cpuData());
    expect(relErr(first, onCpu(NET, net, 'ip2'), 1e-3)).toBeLessThan(1e-4);
    const live = backend.stats().liveBuffers;
    net.forward();
    // Only the inputs are packed now.
    expect(packs()).toBe(3);
    expect(Array.from(net.blob('ip2').cpuData())).toEqual(first);
    expect(backend.stats().liveBuffers).toBe(live);

    // New weights (written on the host) are packed again and used.
    fill(weightsOf(net, 'conv1').mutableCpuData(), 2);
    fill(weightsOf(net, 'ip1').mutableCpuData(), 3);
    net.forward();
    expect(packs()).toBe(6);
    const changed = net.blob('ip2').cpuData();
    expect(relErr(changed, onCpu(NET, net, 'ip2'), 1e-3)).toBeLessThan(1e-4);
    expect(relErr(changed, first, 1e-3)).toBeGreaterThan(1e-2);
    expect(backend.stats().liveBuffers).toBe(live);

    // Freeing the weights frees their packed copies: 5 packed values go with the weights' own 5
    // (ip1's buffer holds two parts).
    const weights = ['conv1', 'conv2', 'ip1', 'ip2'].map((name) => weightsOf(net, name));
    const before = backend.stats().liveBuffers;
    for (const w of weights) w.dispose();
    expect(before - backend.stats().liveBuffers).toBe(5 + 5);
  });

  it('a product split along k into partial products, the last split shorter, matches the CPU layer', () => {
    // 2 rows × 8 outputs are 4 output texels, so k is split: 2 splits of 35 four-wide steps for
    // K = 280, of 34 and 33 for K = 265 (not a multiple of 4 either).
    const backend = glBackend();
    for (const K of [280, 265]) {
      const text = `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: ${K} } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "y" inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 0.1 } } }`;
      const net = new Net(parseNetParameter(text), { backend, phase: Phase.TEST, log: false, rng: new Rng(K) });
      fill(net.blob('data').mutableCpuData(), K);
      net.forward();
      expect(relErr(net.blob('y').cpuData(), onCpu(text, net, 'y'), 1e-3)).toBeLessThan(1e-5);
    }
  });
});
