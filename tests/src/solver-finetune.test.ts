/**
 * The LeNet fine-tuning recipe of packages/zoo/models/lenet/README.md, through the CLI: LeNet on
 * the digits 0-4, then a new classifier head on 5-9 from its weights (`--weights`, the last layer
 * renamed). The full run also trains the 5-9 net from scratch for comparison.
 *
 * In CI the runs are short (copies of the recipe's solvers with fewer iterations and test
 * batches). CAFFE_TS_FINETUNE_FULL=1 runs the recipe's solvers as they are (minutes) and prints
 * the accuracies the README quotes.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDataSources, openDatumDb } from '@caffe-ts/io-leveldb';
import { decodeDatum, decodeNetParameter, type NetParameter } from '@caffe-ts/proto';
import { caffe, messages, tempDir, zooDir, type CliRun } from './helpers.js';

const FULL = process.env.CAFFE_TS_FINETUNE_FULL === '1';
const recipe = join(zooDir, 'lenet', 'finetune');

/** Test accuracies in order, with the iteration each was measured at. */
function accuracies(run: CliRun): { iter: number; accuracy: number }[] {
  const out: { iter: number; accuracy: number }[] = [];
  let iter = -1;
  for (const m of messages(run.log)) {
    const t = /^Iteration (\d+), Testing net/.exec(m);
    if (t) iter = Number(t[1]);
    const a = /Test net output #\d+: accuracy = (\S+)/.exec(m);
    if (a) out.push({ iter, accuracy: Number(a[1]) });
  }
  return out;
}

describe('LeNet fine-tuning recipe: 0-4, then a new head on 5-9', () => {
  const dir = tempDir('caffe-ts-finetune-');
  const iters = FULL ? { base: 500, tune: 300 } : { base: 20, tune: 15 };

  /** The recipe's solver, shortened in CI; nets resolve from the recipe folder. */
  const solver = (name: string): string => {
    let text = readFileSync(join(recipe, name), 'utf8').replace(/net: "(.*)"/, (_, n: string) => `net: "${join(recipe, n)}"`);
    if (!FULL) {
      const n = name.startsWith('lenet_04') ? iters.base : iters.tune;
      // Tests before training and at the end only.
      text = text.replace(/max_iter: \d+/, `max_iter: ${n}`).replace(/test_iter: \d+/, 'test_iter: 2').replace(/test_interval: \d+/, `test_interval: ${n}`);
    }
    writeFileSync(join(dir.path, name), text);
    return name;
  };

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'data/mnist'), { recursive: true });
    for (const [digits, tag] of [['0-4', '04'], ['5-9', '59']] as const) {
      for (const split of ['train', 'test']) {
        const r = await caffe(['convert_mnist', '--bundled', split, `data/mnist/mnist_${tag}_${split}_lmdb`, '--digits', digits, '--backend', 'lmdb'], dir.path);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
    }
  }, 120_000);
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  it('convert_mnist --digits keeps only those classes; a bad list is a usage error', async () => {
    const r = await caffe(['convert_mnist', '--bundled', 'test', 'data/mnist/x', '--digits', '4-2'], dir.path);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--digits: invalid digit list '4-2'/);
    const db = await openDatumDb(join(dir.path, 'data/mnist/mnist_59_test_lmdb'), { mode: 'read', backend: 'lmdb' });
    const counts = new Map<number, number>();
    for await (const rec of db.entries()) {
      const label = decodeDatum(rec.value).label;
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    await db.close();
    expect([...counts.keys()].sort()).toEqual([5, 6, 7, 8, 9]);
    // Every held-out digit of those classes (the 1,666 of the test split hold all ten classes).
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(700);
    expect(total).toBeLessThan(1000);
  });

  it('--weights copies conv1, conv2 and ip1 exactly and leaves the renamed head to its fillers; fine-tuning learns 5-9', async () => {
    const base = await caffe(['train', '--solver', solver('lenet_04_solver.prototxt')], dir.path);
    expect(base.stderr).toBe('');
    expect(base.code).toBe(0);
    const baseAcc = accuracies(base).at(-1)!;
    expect(baseAcc.iter).toBe(iters.base);
    const weights = `data/mnist/lenet_04_iter_${iters.base}.caffemodel`;

    // With max_iter 0 the snapshot after training holds the weights exactly as copied.
    writeFileSync(
      join(dir.path, 'copy_only.prototxt'),
      readFileSync(join(dir.path, solver('lenet_59_finetune_solver.prototxt')), 'utf8')
        .replace(/max_iter: \d+/, 'max_iter: 0')
        .replace(/snapshot_prefix: ".*"/, 'snapshot_prefix: "data/mnist/copy_only"'),
    );
    const copy = await caffe(['train', '--solver', 'copy_only.prototxt', '--weights', weights], dir.path);
    expect(copy.code).toBe(0);
    const msgs = messages(copy.log);
    expect(msgs).toContainEqual(expect.stringMatching(/^Finetuning from .*lenet_04_iter_\d+\.caffemodel$/));
    // The 0-4 model's classifier has no layer of that name any more (train net and test net).
    expect(msgs.filter((m) => m === 'Ignoring source layer ip2')).toHaveLength(2);
    const source = decodeNetParameter(readFileSync(join(dir.path, weights)));
    const copied = decodeNetParameter(readFileSync(join(dir.path, 'data/mnist/copy_only_iter_0.caffemodel')));
    const blobsOf = (net: NetParameter, name: string) => net.layer.find((l) => l.name === name)!.blobs.map((b) => b.data);
    for (const layer of ['conv1', 'conv2', 'ip1']) {
      const [a, b] = [blobsOf(source, layer), blobsOf(copied, layer)];
      expect(a.length).toBe(2);
      a.forEach((d, i) => expect(Buffer.from(Float32Array.from(d).buffer).equals(Buffer.from(Float32Array.from(b[i]!).buffer))).toBe(true));
    }
    // The new head: gaussian std 0.01 weights, zero bias, 10 outputs on 500 inputs.
    const [w, bias] = blobsOf(copied, 'ip2_59');
    expect(w!.length).toBe(5000);
    expect(Math.max(...w!.map(Math.abs))).toBeLessThan(0.06);
    expect(Array.from(bias!)).toEqual(Array(10).fill(0));

    const tuned = await caffe(['train', '--solver', solver('lenet_59_finetune_solver.prototxt'), '--weights', weights], dir.path);
    expect(tuned.stderr).toBe('');
    expect(tuned.code).toBe(0);
    const tunedAcc = accuracies(tuned);
    // Before training the new head is random: about chance; after, it recognizes 5-9.
    expect(tunedAcc[0]!.iter).toBe(0);
    expect(tunedAcc[0]!.accuracy).toBeLessThan(0.5);
    expect(tunedAcc.at(-1)!.iter).toBe(iters.tune);
    expect(baseAcc.accuracy).toBeGreaterThan(FULL ? 0.97 : 0.5);
    expect(tunedAcc.at(-1)!.accuracy).toBeGreaterThan(FULL ? 0.95 : 0.6);
    if (FULL) {
      const scratch = await caffe(['train', '--solver', solver('lenet_59_scratch_solver.prototxt')], dir.path);
      expect(scratch.code).toBe(0);
      console.log(`0-4 base: ${JSON.stringify(accuracies(base))}`);
      console.log(`5-9 fine-tuned: ${JSON.stringify(tunedAcc)}`);
      console.log(`5-9 from scratch: ${JSON.stringify(accuracies(scratch))}`);
    }
  }, FULL ? 1_800_000 : 120_000);
});
