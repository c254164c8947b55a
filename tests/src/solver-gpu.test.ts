import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGpuBackend, isModeSupported, type GpuBackend, type GpuMode } from '@caffe-ts/backend-gpu';
import { cpuBackend, type Backend } from '@caffe-ts/blob';
import { closeDataSources, convertBundledMnist, registerDataLayers } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { parseSolverParameter } from '@caffe-ts/proto';
import { createNodeSolver } from '@caffe-ts/solver/node';
import { tempDir, zooDir } from './helpers.js';

// The zoo's LeNet train/test net (LevelDB Data layers, a Split on the label in TEST) and Caffe's
// LeNet solver settings (SGD, momentum 0.9, weight decay 5e-4, lr_mult 2 on biases), with small
// batches so gpu.js's wasm mode keeps the test short. Headless GL runs the same under xvfb-run.
function registry(): LayerRegistry {
  const r = new LayerRegistry();
  registerBuiltinLayers(r);
  registerDataLayers(r);
  return r;
}
const mode: GpuMode = process.env.CAFFE_TS_GPU_MODE ? (process.env.CAFFE_TS_GPU_MODE as GpuMode) : isModeSupported('wasm') ? 'wasm' : 'cpu';

describe(`LeNet training on the gpu backend (gpu.js ${mode})`, () => {
  const dir = tempDir('caffe-ts-gpu-solver-');
  let net = '';
  let gpu: GpuBackend;
  beforeAll(async () => {
    await convertBundledMnist('train', join(dir.path, 'train_db'), { backend: 'lmdb' });
    await convertBundledMnist('test', join(dir.path, 'test_db'), { backend: 'lmdb' });
    net = join(dir.path, 'net.prototxt');
    writeFileSync(
      net,
      readFileSync(join(zooDir, 'lenet/lenet_train_test.prototxt'), 'utf8')
        .replace('"data/mnist/mnist_train_lmdb"', JSON.stringify(join(dir.path, 'train_db')))
        .replace('"data/mnist/mnist_test_lmdb"', JSON.stringify(join(dir.path, 'test_db')))
        .replace('batch_size: 64', 'batch_size: 4')
        .replace('batch_size: 100', 'batch_size: 8'),
    );
    mkdirSync(join(dir.path, 'snap'));
    gpu = createGpuBackend({ mode });
  });
  afterAll(async () => {
    await closeDataSources();
    gpu?.destroy();
    dir.remove();
  });

  const solver = (backend: Backend, maxIter: number, testInterval: number) =>
    createNodeSolver(
      parseSolverParameter(
        [
          `net: ${JSON.stringify(net)}`,
          'test_iter: 1',
          `test_interval: ${testInterval}`,
          'base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "inv" gamma: 0.0001 power: 0.75',
          `display: 0 max_iter: ${maxIter} snapshot_after_train: false random_seed: 1701`,
          `snapshot_prefix: ${JSON.stringify(join(dir.path, 'snap', 'lenet'))}`,
        ].join('\n'),
      ),
      { backend, registry: registry(), log: false, rootDir: dir.path },
    );

  it('5 SGD iterations with a test pass: CPU losses within 1e-3 relative; each step reads back only the loss', async () => {
    const run = async (backend: Backend) => {
      const s = await solver(backend, 5, 4);
      const losses: number[] = [];
      const scores: number[] = [];
      const perIter: { uploads: number; readbacks: number; live: number }[] = [];
      let last = { ...backend.stats() };
      s.addCallback({
        onIteration: (info) => {
          losses.push(info.loss);
          const now = backend.stats() as ReturnType<GpuBackend['stats']>;
          perIter.push({ uploads: now.uploads - last.uploads, readbacks: now.readbacks - last.readbacks, live: now.liveBuffers });
          last = { ...now };
        },
        onTest: (r) => void scores.push(...r.scores.map((x) => x.value)),
      });
      await s.step(5);
      expect(s.net.backend).toBe(backend);
      return { losses, scores, perIter };
    };
    const ref = await run(cpuBackend());
    const dev = await run(gpu);
    // Iteration 0 also uploads the freshly filled params; after it, only data and label go up
    // and only the loss comes down (the Data layer is host-only, the SGD update runs on the
    // device). Iteration 4 starts with the test pass (its own uploads and score readbacks).
    expect(dev.perIter.slice(1, 4).map(({ uploads, readbacks }) => ({ uploads, readbacks }))).toEqual([
      { uploads: 2, readbacks: 1 },
      { uploads: 2, readbacks: 1 },
      { uploads: 2, readbacks: 1 },
    ]);
    expect(dev.perIter[3]!.live).toBe(dev.perIter[1]!.live);
    expect(gpu.stats().cpuFallbacks).toEqual({});
    expect(dev.losses).toHaveLength(5);
    dev.losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i]!) / Math.abs(ref.losses[i]!), `iteration ${i}: ${l} vs ${ref.losses[i]}`).toBeLessThan(1e-3));
    expect(ref.scores.length).toBeGreaterThan(0);
    expect(dev.scores.length).toBe(ref.scores.length);
    dev.scores.forEach((v, i) => expect(v).toBeCloseTo(ref.scores[i]!, 3));
  }, 90_000);
});
