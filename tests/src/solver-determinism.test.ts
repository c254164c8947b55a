/**
 * Determinism of `caffe train` on LeNet with the bundled digits (CPU backend):
 *
 * - with random_seed set, two runs print the same loss at every iteration and write
 *   byte-identical weights;
 * - training N iterations, snapshotting, and resuming (`--snapshot`) to 2N writes the same weights,
 *   byte for byte, and the same history, as training 2N straight.
 *
 * What is and isn't bit-identical on resume: Caffe does not store the data layer's cursor (or its
 * prefetched batches) in the .solverstate, so a resumed run reads its database from the start.
 * The weights only match a straight run when the straight run reads the same batches after
 * iteration N. Here the training database holds exactly N batches, so the straight run wraps
 * around to the first record at iteration N too. With a database of any other size the resumed
 * run sees other batches and its weights differ (its loss curve stays statistically the same).
 * Everything else a run depends on is restored: weights, history, iter (so the learning rate),
 * current_step. random_seed only matters for fillers (overwritten by the snapshot) and layers
 * that draw random numbers while training (LeNet has none).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDataSources, formatKey, loadBundledMnistDigits, mnistDatumBytes, openDatumDb } from '@caffe-ts/io-leveldb';
import { decodeSolverState } from '@caffe-ts/proto';
import { caffe, messages, tempDir, zooDir } from './helpers.js';

const N = 8;
/** LeNet as in the zoo, with training batches of 8 instead of 64 to keep the test fast. */
const BATCH = 8;

/** An LMDB (the zoo net's backend) of the first `count` bundled digits, classes interleaved (0, 1, …, 9, 0, 1, …). */
async function writeDigitsDb(path: string, count: number): Promise<void> {
  const classes = await loadBundledMnistDigits();
  const db = await openDatumDb(path, { mode: 'new', backend: 'lmdb' });
  const writer = db.writer();
  for (let i = 0; i < count; i++) {
    const label = i % 10;
    const index = Math.floor(i / 10);
    await writer.put(formatKey(i), mnistDatumBytes(classes[label]!.subarray(index * 784, (index + 1) * 784), 28, 28, label));
  }
  await writer.close();
  await db.close();
}

function losses(log: string[]): string[] {
  return messages(log)
    .map((m) => /^Iteration (\d+) \(.*\), loss = (\S+)$/.exec(m))
    .filter((m) => m !== null)
    .map((m) => `${m[1]}: ${m[2]}`);
}

describe('caffe train is deterministic on LeNet (CPU)', () => {
  const dir = tempDir('caffe-ts-determinism-');
  const solver = (name: string, maxIter: number, extra = '') =>
    writeFileSync(
      join(dir.path, `${name}.prototxt`),
      'net: "lenet_train_test.prototxt"\n' +
        // No test passes: they would not change training, only cost time.
        'test_iter: 1\ntest_interval: 100000\ntest_initialization: false\n' +
        'base_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: "inv"\ngamma: 0.0001\npower: 0.75\n' +
        `display: 1\nmax_iter: ${maxIter}\nsnapshot_prefix: "snap/${name}"\nrandom_seed: 1701\n${extra}`,
    );

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'data/mnist'), { recursive: true });
    mkdirSync(join(dir.path, 'snap'));
    const zooNet = readFileSync(join(zooDir, 'lenet', 'lenet_train_test.prototxt'), 'utf8');
    expect(zooNet).toContain('batch_size: 64');
    writeFileSync(join(dir.path, 'lenet_train_test.prototxt'), zooNet.replace('batch_size: 64', `batch_size: ${BATCH}`));
    await writeDigitsDb(join(dir.path, 'data/mnist/mnist_train_lmdb'), N * BATCH);
    await writeDigitsDb(join(dir.path, 'data/mnist/mnist_test_lmdb'), 100);
    solver('a', 2 * N);
    solver('b', 2 * N);
    solver('half', N);
    solver('resumed', 2 * N);
  }, 60_000);
  let straight: string[] = [];
  const sameBytes = (a: string, b: string) => readFileSync(join(dir.path, a)).equals(readFileSync(join(dir.path, b)));
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  it('random_seed: two runs give the same loss sequence and byte-identical weights', async () => {
    const a = await caffe(['train', '--solver', 'a.prototxt'], dir.path);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const b = await caffe(['train', '--solver', 'b.prototxt'], dir.path);
    expect(b.code).toBe(0);
    const la = losses(a.log);
    straight = la;
    expect(la).toHaveLength(2 * N);
    expect(losses(b.log)).toEqual(la);
    // It learns: the loss falls from chance level (ln 10 ≈ 2.3).
    expect(Number(la[0]!.split(': ')[1])).toBeGreaterThan(2);
    expect(Number(la.at(-1)!.split(': ')[1])).toBeLessThan(Number(la[0]!.split(': ')[1]));
    expect(sameBytes(`snap/b_iter_${2 * N}.caffemodel`, `snap/a_iter_${2 * N}.caffemodel`)).toBe(true);
  }, 120_000);

  it(`N = ${N} iterations, snapshot, --snapshot resume to 2N: the same weights and history as 2N straight`, async () => {
    const half = await caffe(['train', '--solver', 'half.prototxt'], dir.path);
    expect(half.code).toBe(0);
    const resumed = await caffe(['train', '--solver', 'resumed.prototxt', '--snapshot', `snap/half_iter_${N}.solverstate`], dir.path);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    // The resumed run's losses are the straight run's second half.
    expect(straight).toHaveLength(2 * N);
    expect(losses(resumed.log)).toEqual(straight.slice(N));
    expect(sameBytes(`snap/resumed_iter_${2 * N}.caffemodel`, `snap/a_iter_${2 * N}.caffemodel`)).toBe(true);
    const s1 = decodeSolverState(readFileSync(join(dir.path, `snap/resumed_iter_${2 * N}.solverstate`)));
    const s2 = decodeSolverState(readFileSync(join(dir.path, `snap/a_iter_${2 * N}.solverstate`)));
    expect(s1.iter).toBe(2 * N);
    expect(s1.history).toHaveLength(8);
    // (Float32Array comparisons: element-wise deep equality of plain arrays this long is slow.)
    s1.history.forEach((h, i) => expect(Buffer.from(Float32Array.from(h.data).buffer).equals(Buffer.from(Float32Array.from(s2.history[i]!.data).buffer))).toBe(true));
  }, 120_000);
});
