import { Blob, Rng } from '@caffe-ts/blob';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { createGpuBackend } from './backend.js';
import { isModeSupported } from './runtime.js';
import { texturePoolStats } from './texture-pool.js';

const TINY = `
name: "tiny"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "ip1" inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "y" top: "loss" }
`;

/**
 * Train TINY for `steps` SGD steps on `backend`, growing the batch past every blob's capacity at
 * step steps/2 and shrinking it back; `sample` is called after each step.
 */
function trainTiny(backend: ReturnType<typeof createGpuBackend>, steps: number, sample: () => void): void {
  const net = new Net(parseNetParameter(TINY), { backend, phase: Phase.TRAIN, log: false, rng: new Rng(5) });
  const history = net.learnableParams.map((p) => new Blob(p.shape, { dtype: 'float32', device: backend.device }));
  const rng = new Rng(9);
  const setBatch = (n: number) => {
    net.blob('x').reshape([n, 4]);
    net.blob('y').reshape([n]);
    net.reshape();
  };
  for (let it = 0; it < steps; it++) {
    if (it === steps / 2) setBatch(6); // grows past the capacity of every activation blob
    if (it === steps / 2 + 1) setBatch(2);
    const x = net.blob('x').mutableCpuData();
    for (let i = 0; i < x.length; i++) x[i] = rng.gaussian(0, 1);
    const y = net.blob('y').mutableCpuData();
    for (let i = 0; i < y.length; i++) y[i] = rng.int(3);
    net.clearParamDiffs();
    net.forwardBackward();
    net.learnableParams.forEach((p, i) =>
      backend.ops.sgdStep(p, history[i]!, { localRate: 0.01, momentum: 0.9, localDecay: 5e-4, regularization: 'L2', diffScale: 1 }),
    );
    sample();
  }
}

describe('device memory over many iterations (gpu.js cpu mode)', () => {
  it('1,000 training steps with a reshape past capacity half-way: live buffers flat, old textures released', () => {
    const backend = createGpuBackend({ mode: 'cpu' });
    const live: number[] = [];
    trainTiny(backend, 1000, () => live.push(backend.stats().liveBuffers));
    // Steady state from the second step on; the same count after the big batch came and went
    // (the grown blobs freed their old buffers instead of leaking them).
    expect(new Set(live.slice(2, 500)).size).toBe(1);
    expect(new Set(live.slice(502)).size).toBe(1);
    expect(live[999]).toBe(live[499]);
    // One readback (the loss) per step.
    expect(backend.stats().readbacks).toBe(1000);
    backend.destroy();
  }, 60_000);

  it('Blob.dispose frees device buffers, shared memory only with its last user', () => {
    const backend = createGpuBackend({ mode: 'cpu' });
    const a = new Blob([3], { dtype: 'float32', device: backend.device });
    a.mutableCpuData().set([1, 2, 3]);
    a.gpuData();
    const b = new Blob([3], { dtype: 'float32', device: backend.device });
    b.shareData(a);
    expect(backend.stats().liveBuffers).toBe(1);
    a.dispose();
    expect(backend.stats().liveBuffers).toBe(1); // b still uses it
    expect(Array.from(b.cpuData())).toEqual([1, 2, 3]);
    b.dispose();
    expect(backend.stats().liveBuffers).toBe(0);
    expect(a.count()).toBe(0);
    backend.destroy();
  });

  it("Net.dispose frees every device buffer of the net, its layers' own and the kernels' state included", () => {
    const backend = createGpuBackend({ mode: 'cpu' });
    const step = () => {
      const net = new Net(parseNetParameter(TINY), { backend, phase: Phase.TRAIN, log: false, rng: new Rng(5) });
      net.blob('x').mutableCpuData().set([1, -2, 3, 0.5, 0, 1, -1, 2]);
      net.blob('y').mutableCpuData().set([0, 2]);
      net.clearParamDiffs();
      net.forwardBackward();
      return net;
    };
    // The device's own buffers (a placeholder made on first use) stay: a first net makes them.
    step().dispose();
    const before = backend.stats().liveBuffers;
    const net = step();
    // Activations, params, Dropout's mask, SoftmaxWithLoss's probabilities and loss.
    expect(backend.stats().liveBuffers - before).toBeGreaterThan(15);
    net.dispose();
    expect(backend.stats().liveBuffers).toBe(before);
    backend.destroy();
  });
});

// In the GL modes the buffers are textures, and freed ones wait in the texture pool for reuse:
// the GL textures that exist (made minus deleted) must stay flat too.
describe.skipIf(!isModeSupported('headlessgl'))('GL textures over many iterations (headless GL)', () => {
  it('300 training steps with a reshape past capacity half-way: textures in existence flat, the pool bounded', () => {
    const backend = createGpuBackend({ mode: 'headlessgl' });
    const gl = (backend.device.runtime.gpu as unknown as { context: { createTexture(): unknown; deleteTexture(t: unknown): void } }).context;
    let made = 0;
    let deleted = 0;
    const create = gl.createTexture.bind(gl);
    const remove = gl.deleteTexture.bind(gl);
    gl.createTexture = () => {
      made++;
      return create();
    };
    gl.deleteTexture = (t) => {
      deleted++;
      remove(t);
    };
    const existing: number[] = [];
    const pooled: number[] = [];
    trainTiny(backend, 300, () => {
      existing.push(made - deleted);
      pooled.push(texturePoolStats(backend.device.runtime.gpu)!.pooled);
    });
    // After warm-up (kernels compiled, pool filled) no step adds a texture, before or after the
    // big batch came and went.
    // After warm-up (kernels compiled, pool filled) no step adds a texture. The big batch compiles
    // kernels for its shapes (cached, each owning its textures), after which the count is flat again.
    expect(new Set(existing.slice(20, 150)).size).toBe(1);
    expect(new Set(existing.slice(160)).size).toBe(1);
    expect(Math.max(...pooled)).toBeLessThanOrEqual(16);
    expect(texturePoolStats(backend.device.runtime.gpu)!.reused).toBeGreaterThan(1000);
    backend.destroy();
  }, 120_000);
});

