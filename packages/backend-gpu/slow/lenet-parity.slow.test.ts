import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuBackend, setGemmKernel, type Backend, type Blob } from '@caffe-ts/blob';
import { closeDataSources, convertBundledMnist, registerDataLayers } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { parseSolverParameter } from '@caffe-ts/proto';
import { createNodeSolver } from '@caffe-ts/solver/node';
import { createGpuBackend, type GpuBackend } from '../src/backend.js';
import type { GpuMode } from '../src/runtime.js';

/**
 * Issue #7's parity check on the zoo's LeNet (Caffe's LeNet solver, batch 64, on the real digits
 * bundled with io-leveldb, written as LMDBs into a temp dir): ITERS iterations on the gpu backend
 * and on the CPU backend from the same seed and the same batches.
 *
 * What float32 lets us assert, and why not "every iteration's loss within 1e-3":
 * - early trajectory: each of the first EARLY iterations' training losses agree within EARLY_REL.
 *   Both backends compute the same function; they differ only by float32 rounding (~1e-7), so a
 *   kernel bug shows here as a jump.
 * - the nets the two runs reach: after ITERS iterations, each net's loss on the same held-out data,
 *   averaged over the WHOLE bundled test split (1666 digits, one pass), within REACHED_REL, and
 *   test accuracies within 0.5 %.
 * One mini-batch's loss after hundreds of float32 SGD steps is chaotic in the summation order:
 * two CPU runs that differ only in the GEMM (JS vs WebAssembly) drift apart past 1e-3 relative by
 * iteration ~150 (1.4e-2 at 499), as gpu vs cpu does (1e-3 at ~98). The weights drift with them,
 * so even the test-split loss of the reached nets is not float32-stable to 1e-3: measured at 500
 * iterations, 0.091721 (gpu, headless GL) vs 0.090919 (cpu, WebAssembly GEMM), 8.8e-3 relative,
 * and 0.091402 (cpu, JS GEMM) vs 0.090919, 5.3e-3, between two CPU runs that differ only in the
 * GEMM's summation order. REACHED_REL = 1e-2 is the tightest round bound both meet; accuracies
 * agreed to 0.06 % in both pairs. CAFFE_TS_GPU_PARITY_BASELINE=1 also runs that JS-GEMM CPU
 * baseline and holds it to the same bounds.
 * CAFFE_TS_GPU_PARITY_ITERS (default 500), CAFFE_TS_GPU_MODE (default: the best mode here; the
 * GEMMs run packed wherever the mode has textures, as by default).
 */
const ITERS = Number(process.env.CAFFE_TS_GPU_PARITY_ITERS ?? 500);
const EARLY = Math.min(ITERS, 50);
const EARLY_REL = 1e-5;
// Not 1e-3: the float32 baseline (two CPU GEMMs) already differs by 5.3e-3 here; see above.
const REACHED_REL = 1e-2;
const ACCURACY_ABS = 0.005;
const zoo = new URL('../../zoo/models/lenet/', import.meta.url).pathname;

interface Run {
  losses: number[];
  testLoss: number;
  accuracy: number;
  seconds: number;
}

/** Largest divisor of n not above max: a test batch that covers the test split exactly once. */
const batchFor = (n: number, max: number): number => {
  for (let b = max; b > 1; b--) if (n % b === 0) return b;
  return 1;
};

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

describe(`LeNet ${ITERS} iterations, gpu vs cpu`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-gpu-parity-'));
  let gpu: GpuBackend;
  let testIter = 0;
  beforeAll(async () => {
    await convertBundledMnist('train', join(dir, 'train_db'), { backend: 'lmdb' });
    const test = await convertBundledMnist('test', join(dir, 'test_db'), { backend: 'lmdb' });
    const testBatch = batchFor(test.count, 100);
    // 1666 digits → 17 batches of 98: every test digit exactly once, none twice.
    expect(testBatch).toBeGreaterThanOrEqual(50);
    testIter = test.count / testBatch;
    const net = readFileSync(join(zoo, 'lenet_train_test.prototxt'), 'utf8')
      .replace('"data/mnist/mnist_train_lmdb"', JSON.stringify(join(dir, 'train_db')))
      .replace('"data/mnist/mnist_test_lmdb"', JSON.stringify(join(dir, 'test_db')))
      .replace(/(source: "[^"]*test_db"\s*\n\s*batch_size: )100\b/, `$1${testBatch}`);
    expect(net).toContain(`batch_size: ${testBatch}`);
    writeFileSync(join(dir, 'net.prototxt'), net);
    mkdirSync(join(dir, 'snap'));
    gpu = createGpuBackend({ mode: (process.env.CAFFE_TS_GPU_MODE as GpuMode | undefined) || undefined });
    console.log(`gpu backend: ${JSON.stringify({ ...gpu.info(), kernels: undefined, hostOnly: undefined })}`);
  });
  afterAll(async () => {
    await closeDataSources();
    gpu?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const train = async (
    backend: Backend,
    o: { dtype?: 'float32' | 'float64'; init?: (params: readonly Blob[]) => void } = {},
  ): Promise<Run> => {
    const registry = new LayerRegistry();
    registerBuiltinLayers(registry);
    registerDataLayers(registry);
    // The zoo solver's settings (lenet_solver.prototxt) with max_iter = ITERS and one test pass
    // over the whole test split at the end.
    const text = readFileSync(join(zoo, 'lenet_solver.prototxt'), 'utf8')
      .replace(/^net: .*$/m, `net: ${JSON.stringify(join(dir, 'net.prototxt'))}`)
      .replace(/^test_iter: .*$/m, `test_iter: ${testIter}`)
      .replace(/^test_interval: .*$/m, `test_interval: ${ITERS}`)
      .replace(/^max_iter: .*$/m, `max_iter: ${ITERS}`)
      .replace(/^display: .*$/m, 'display: 0')
      .replace(/^snapshot: .*$/m, 'snapshot: 0')
      .replace(/^snapshot_prefix: .*$/m, `snapshot_prefix: ${JSON.stringify(join(dir, 'snap', 'lenet'))}\nsnapshot_after_train: false\nrandom_seed: 1701`);
    const solver = await createNodeSolver(parseSolverParameter(text), { backend, registry, log: false, rootDir: dir, dtype: o.dtype });
    o.init?.(solver.net.learnableParams);
    const losses: number[] = [];
    let testLoss = NaN;
    let accuracy = NaN;
    solver.addCallback({
      onIteration: (info) => void losses.push(info.loss),
      onTest: (r) => {
        // Test scores are means over the test_iter batches; equal batches → means over the digits.
        testLoss = r.scores.find((s) => s.name === 'loss')!.value;
        accuracy = r.scores.find((s) => s.name === 'accuracy')!.value;
      },
    });
    const t0 = performance.now();
    await solver.solve();
    return { losses, testLoss, accuracy, seconds: (performance.now() - t0) / 1000 };
  };

  const compare = (what: string, a: Run, b: Run) => {
    const r = a.losses.map((l, i) => rel(l, b.losses[i]!));
    const early = Math.max(...r.slice(0, EARLY));
    const firstOver = r.findIndex((x) => x >= 1e-3);
    const at = [10, 20, 50, 80, 100, 200, 300, 400, ITERS - 1].filter((i) => i < ITERS);
    const reached = rel(a.testLoss, b.testLoss);
    const dAcc = Math.abs(a.accuracy - b.accuracy);
    console.log(
      `${what}: max relative training-loss difference over the first ${EARLY} iterations ${early.toExponential(2)}; ` +
        `later (chaotic in the summation order, not asserted): ${at.map((i) => `${i}: ${r[i]!.toExponential(1)}`).join(', ')}, ` +
        `first at or over 1e-3: ${firstOver < 0 ? 'none' : `iteration ${firstOver}`}; ` +
        `test loss over the whole test split ${a.testLoss} vs ${b.testLoss} (relative ${reached.toExponential(2)}); ` +
        `test accuracy ${a.accuracy} vs ${b.accuracy} (|Δ| ${dAcc.toFixed(6)})`,
    );
    expect.soft(a.losses).toHaveLength(ITERS);
    expect.soft(early, `${what}: early training losses`).toBeLessThan(EARLY_REL);
    expect.soft(reached, `${what}: averaged test loss`).toBeLessThan(REACHED_REL);
    expect.soft(dAcc, `${what}: test accuracy`).toBeLessThanOrEqual(ACCURACY_ABS);
  };

  it(`early losses (${EARLY_REL} relative, ${EARLY} iterations), reached test loss (${REACHED_REL} relative) and test accuracy (±0.5 %)`, async () => {
    const info = gpu.info();
    // Headless GL (and WebGL) run Convolution/InnerProduct as packed GEMMs unless opted out.
    if (info.mode === 'headlessgl' && process.env.CAFFE_TS_GPU_PACKED !== '0') expect(info.packed).toBe(true);
    const cpu = await train(cpuBackend());
    const dev = await train(gpu);
    console.log(
      `LeNet ${ITERS} iterations: cpu ${cpu.seconds.toFixed(1)} s, final loss ${cpu.losses.at(-1)}; ` +
        `gpu (${info.mode}, packed ${info.packed}) ${dev.seconds.toFixed(1)} s, final loss ${dev.losses.at(-1)}; readbacks ${gpu.stats().readbacks}`,
    );
    compare(`gpu vs cpu`, dev, cpu);
    if (process.env.CAFFE_TS_GPU_PARITY_BASELINE === '1') {
      // Two CPU runs whose only difference is the GEMM's summation order (the JavaScript GEMM
      // instead of the WebAssembly kernel): the float32 noise floor the bounds above must clear.
      setGemmKernel(null);
      const js = await train(cpuBackend());
      compare(`cpu (JS GEMM) vs cpu (WebAssembly GEMM)`, js, cpu);
    }
  });

  // Why no float32 pair can meet 1e-3 after 500 iterations: the trajectory itself amplifies
  // float32-sized differences. In float64 (rounding ~1e-16, nothing else differs), moving every
  // initial weight by one float32 ulp (random sign) is enough: measured, training losses first
  // 1e-3 apart at iteration 99, test losses of the reached nets 4.3e-3 apart (0.092410 vs
  // 0.092018). Moving a single weight by one ulp instead leaves the runs within 1e-11.
  it.runIf(process.env.CAFFE_TS_GPU_PARITY_FLOAT64 === '1')(
    'float64 from float32-perturbed initial weights: the sensitivity behind the bounds above',
    async () => {
      const exact = await train(cpuBackend(), { dtype: 'float64' });
      const nudged = await train(cpuBackend(), {
        dtype: 'float64',
        init: (params) => {
          let seed = 12345;
          for (const blob of params) {
            const d = blob.mutableCpuData();
            for (let i = 0; i < d.length; i++) {
              seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
              const f = Math.fround(d[i]!);
              const ulp = f === 0 ? 2 ** -149 : Math.abs(f) * 2 ** -23;
              d[i] = f + ((seed >>> 16) & 1 ? ulp : -ulp);
            }
          }
        },
      });
      const r = nudged.losses.map((l, i) => rel(l, exact.losses[i]!));
      const reached = rel(nudged.testLoss, exact.testLoss);
      console.log(
        `float64, every initial weight ±1 float32 ulp: training losses first 1e-3 apart at iteration ${r.findIndex((x) => x >= 1e-3)}; ` +
          `test loss ${nudged.testLoss} vs ${exact.testLoss} (relative ${reached.toExponential(2)})`,
      );
      // The early trajectory is smooth (the nudge is ~1e-7 relative) …
      expect(Math.max(...r.slice(0, EARLY))).toBeLessThan(EARLY_REL);
      // … and by the end the runs are further apart than the issue's 1e-3.
      expect(reached).toBeGreaterThan(1e-3);
    },
  );
});
