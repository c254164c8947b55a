import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGpuBackend, isModeSupported, type GpuBackend, type GpuMode } from '@caffe-ts/backend-gpu';
import { cpuBackend, type Backend } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { parseSolverParameter } from '@caffe-ts/proto';
import { createNodeSolver } from '@caffe-ts/solver/node';
import { tempDir, zooDir } from './helpers.js';

// The zoo's CIFAR-10 quick train net (conv 5×5 pad 2, MAX and AVE 3×3/2 pooling, ReLU in place,
// two InnerProducts, SoftmaxWithLoss) and Caffe's CIFAR-10 quick solver (SGD, momentum 0.9,
// weight decay 0.004), trained a few iterations on the gpu backend and on the CPU backend from
// the same seed. The LMDB Data layer is replaced by a DummyData layer (host-only like Data:
// its tops are uploaded once per batch) drawing pixels ~N(0, 60²) (mean-subtracted scale) and
// labels in [0, 10) from the solver's seed, so both backends see the same batches; the batch is
// 4 (not 100) so gpu.js's wasm mode runs it in seconds. Headless GL runs the same under xvfb-run.
const BATCH = 4;
const ITERS = 3;
const mode: GpuMode = process.env.CAFFE_TS_GPU_MODE ? (process.env.CAFFE_TS_GPU_MODE as GpuMode) : isModeSupported('wasm') ? 'wasm' : 'cpu';

function registry(): LayerRegistry {
  const r = new LayerRegistry();
  registerBuiltinLayers(r);
  return r;
}

function trainNet(): string {
  const zoo = readFileSync(join(zooDir, 'cifar10_quick/train_test.prototxt'), 'utf8');
  // Drop both Data layers (TRAIN and TEST) and the TEST-only Accuracy: the rest is the zoo's net.
  const layers = zoo.split(/\n(?=layer \{)/).filter((l) => !/type: "(Data|Accuracy)"/.test(l));
  const dummy = `layer {
  name: "cifar" type: "DummyData" top: "data" top: "label"
  dummy_data_param {
    shape { dim: ${BATCH} dim: 3 dim: 32 dim: 32 } data_filler { type: "gaussian" std: 60 }
    shape { dim: ${BATCH} } data_filler { type: "uniform" min: 0 max: 9.999 }
  }
}`;
  expect(layers.length).toBe(1 + 12);
  return [layers[0], dummy, ...layers.slice(1)].join('\n');
}

describe(`CIFAR-10 quick training on the gpu backend (gpu.js ${mode})`, () => {
  const dir = tempDir('caffe-ts-gpu-cifar-');
  let net = '';
  let gpu: GpuBackend;
  beforeAll(() => {
    net = join(dir.path, 'net.prototxt');
    writeFileSync(net, trainNet());
    gpu = createGpuBackend({ mode });
  });
  afterAll(() => {
    gpu?.destroy();
    dir.remove();
  });

  const solver = (backend: Backend) =>
    createNodeSolver(
      parseSolverParameter(
        [
          `net: ${JSON.stringify(net)}`,
          'base_lr: 0.001 momentum: 0.9 weight_decay: 0.004 lr_policy: "fixed"',
          `display: 0 max_iter: ${ITERS} snapshot_after_train: false random_seed: 1701`,
          `snapshot_prefix: ${JSON.stringify(join(dir.path, 'cifar10_quick'))}`,
        ].join('\n'),
      ),
      { backend, registry: registry(), log: false, rootDir: dir.path },
    );

  it(`${ITERS} SGD iterations: losses and weight updates match the CPU backend; each step uploads the batch and reads back only the loss`, async () => {
    const run = async (backend: Backend) => {
      const s = await solver(backend);
      const initial = s.net.learnableParams.map((p) => Float64Array.from(p.cpuData()));
      const losses: number[] = [];
      const perIter: { uploads: number; readbacks: number; live: number }[] = [];
      let last = { ...backend.stats() };
      s.addCallback({
        onIteration: (info) => {
          losses.push(info.loss);
          const now = backend.stats() as ReturnType<GpuBackend['stats']>;
          perIter.push({ uploads: now.uploads - last.uploads, readbacks: now.readbacks - last.readbacks, live: now.liveBuffers });
          last = { ...now };
        },
      });
      await s.step(ITERS);
      expect(s.net.backend).toBe(backend);
      // What the iterations changed in each param (reading them back ends the measured part).
      const deltas = s.net.learnableParams.map((p, i) => Float64Array.from(p.cpuData(), (v, j) => v - initial[i]![j]!));
      return { losses, perIter, deltas, names: s.net.layers.flatMap((l) => l.blobs.map((_, k) => `${l.name} param ${k}`)) };
    };
    const ref = await run(cpuBackend());
    const dev = await run(gpu);
    expect(gpu.stats().cpuFallbacks).toEqual({});
    // Iteration 0 also uploads the freshly filled params (10) and the loss weight; after it, only
    // data and label go up and only the loss comes down: no host round trip between layers.
    expect(dev.perIter.slice(1).map(({ uploads, readbacks }) => ({ uploads, readbacks }))).toEqual(
      Array.from({ length: ITERS - 1 }, () => ({ uploads: 2, readbacks: 1 })),
    );
    expect(dev.perIter[0]!.readbacks).toBe(1);
    expect(dev.perIter[ITERS - 1]!.live).toBe(dev.perIter[1]!.live);
    expect(dev.losses).toHaveLength(ITERS);
    dev.losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]!) / Math.abs(ref.losses[i]!), `iteration ${i}: ${l} vs ${ref.losses[i]}`).toBeLessThan(1e-4));
    // The update (not the weights, which the tiny steps barely move) must agree: max |Δgpu − Δcpu| / max |Δcpu|
    // (float32 weights minus their initial values: ~1e-3 of rounding left in the smallest updates).
    for (let i = 0; i < ref.deltas.length; i++) {
      const want = ref.deltas[i]!;
      const got = dev.deltas[i]!;
      let scale = 0;
      let err = 0;
      for (let j = 0; j < want.length; j++) {
        scale = Math.max(scale, Math.abs(want[j]!));
        err = Math.max(err, Math.abs(got[j]! - want[j]!));
      }
      expect(scale, `${ref.names[i]} moved`).toBeGreaterThan(0);
      expect(err / scale, `${ref.names[i]} update relative error`).toBeLessThan(1e-2);
    }
  }, 120_000);
});
