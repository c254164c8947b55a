/* `caffe train --workers N` and `caffe test --workers N` on a tiny LMDB net. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatKey, openDatumDb } from '@caffe-ts/io-leveldb';
import { createMessage, encodeDatum, type Datum } from '@caffe-ts/proto';
import { availableCores } from '@caffe-ts/solver/parallel';
import { readNpy, writeNpy } from '@caffe-ts/zoo';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffe, tempDir, withEnv, withWorkersEnv } from './helpers.js';

let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  dir = tempDir('caffe-ts-parallel-cli-');
  const db = await openDatumDb(join(dir.path, 'lmdb'), { mode: 'new', backend: 'lmdb' });
  const w = db.writer();
  for (let i = 0; i < 32; i++) {
    const label = i % 2;
    const data = Uint8Array.from({ length: 4 }, (_, p) => (p % 2 === label ? 180 : 30) + ((i * 5 + p) % 17));
    await w.put(formatKey(i), encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 2, width: 2, data, label })));
  }
  await w.close();
  await db.close();
  // The same records in a LevelDB, which only one thread of a process can open.
  const ldb = await openDatumDb(join(dir.path, 'leveldb'), { mode: 'new', backend: 'leveldb' });
  const lw = ldb.writer();
  for (let i = 0; i < 8; i++) {
    const data = Uint8Array.from({ length: 4 }, (_, p) => (p * 40 + i * 7) % 255);
    await lw.put(formatKey(i), encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 2, width: 2, data, label: i % 2 })));
  }
  await lw.close();
  await ldb.close();
  writeFileSync(
    join(dir.path, 'ldb.prototxt'),
    `name: "ldb"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "leveldb" backend: LEVELDB batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
`,
  );
  writeFileSync(join(dir.path, 'ldb_solver.prototxt'), `net: "ldb.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 3\ndisplay: 1\nsnapshot_after_train: false\n`);
  writeFileSync(
    join(dir.path, 'net.prototxt'),
    `name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "lmdb" backend: LMDB batch_size: 4 } transform_param { scale: 0.00390625 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
`,
  );
  writeFileSync(
    join(dir.path, 'solver.prototxt'),
    `net: "net.prototxt"\nbase_lr: 0.5\nlr_policy: "fixed"\nmax_iter: 12\ndisplay: 4\nrandom_seed: 1\nsnapshot: 12\nsnapshot_prefix: "tiny"\n`,
  );
  // A train batch of 3 does not split between 2 cores; the TEST batch (2) does not matter.
  writeFileSync(
    join(dir.path, 'odd.prototxt'),
    `name: "odd"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "lmdb" backend: LMDB batch_size: 3 } include { phase: TRAIN } }
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "lmdb" backend: LMDB batch_size: 2 } include { phase: TEST } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
`,
  );
  writeFileSync(join(dir.path, 'odd_solver.prototxt'), `net: "odd.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 3\ndisplay: 1\nsnapshot_after_train: false\n`);
  writeFileSync(join(dir.path, 'quiet_solver.prototxt'), `net: "net.prototxt"\nbase_lr: 0.5\nlr_policy: "fixed"\nmax_iter: 12\ndisplay: 4\nrandom_seed: 1\nsnapshot_after_train: false\n`);
});


const losses = (r: { log: string[] }) => r.log.flatMap((l) => /Iteration (\d+)(?: \([^)]*\))?, loss = (\S+)/.exec(l)?.slice(1, 3).map(Number) ?? []);
afterAll(() => dir?.remove());

const withProbeEnv = <T>(value: string, run: () => Promise<T>) => withEnv('CAFFE_TS_PARALLEL_PROBE', value, run);

describe('caffe train/test --workers', () => {
  it('trains with 2 workers (Caffe semantics) and scores the snapshot with 2 workers exactly as with 1', async () => {
    const train = await caffe(['train', '--solver', 'solver.prototxt', '--workers', '2'], dir.path);
    expect(train.stderr).toBe('');
    expect(train.code).toBe(0);
    expect(train.log.join('\n')).toMatch(/Data-parallel training: 2 replicas \(effective batch 2 × batch_size\)/);
    expect(train.log.join('\n')).toMatch(/Iteration 12, loss = /);
    const one = await caffe(['test', '--model', 'net.prototxt', '--weights', 'tiny_iter_12.caffemodel', '--iterations', '6'], dir.path);
    const two = await caffe(['test', '--model', 'net.prototxt', '--weights', 'tiny_iter_12.caffemodel', '--iterations', '6', '--workers', '2'], dir.path);
    expect(two.code).toBe(0);
    const lines = (r: { log: string[] }) => r.log.filter((l) => /\] (Batch \d+, |Loss: |acc = |loss = )/.test(l)).map((l) => l.replace(/^.*\] /, ''));
    expect(lines(two).length).toBeGreaterThan(6);
    expect(lines(two)).toEqual(lines(one));
  });

  it('by default trains on every core in split mode (the one-thread trajectory); CAFFE_TS_WORKERS=1 keeps one thread', async () => {
    const dflt = await withWorkersEnv(undefined, () => caffe(['train', '--solver', 'quiet_solver.prototxt'], dir.path));
    expect(dflt.code).toBe(0);
    const one = await withWorkersEnv('1', () => caffe(['train', '--solver', 'quiet_solver.prototxt'], dir.path));
    expect(one.log.join('\n')).not.toMatch(/Data-parallel training/);
    const text = dflt.log.join('\n');
    // 12 iterations: too short a run to time the mixes first (probeWanted).
    expect(text).not.toMatch(/Timed the parallel mixes|Parallel mix: /);
    if (availableCores() >= 2) {
      expect(text).toMatch(new RegExp(`Data-parallel training: ${availableCores()} replicas \\(each batch split among them\\), 1 kernel thread\\(s\\) each`));
    } else {
      expect(text).not.toMatch(/Data-parallel training: /);
    }
    // The last line (Iteration 12) is the solver's extra forward on rank 0's net alone, which holds
    // half of each batch in split mode (as Caffe's root solver shows its own loss): left out.
    const a = losses(dflt).slice(0, -2);
    const b = losses(one).slice(0, -2);
    expect(a.length).toBe(6);
    expect(a.length).toBe(b.length);
    a.forEach((x, i) => expect(Math.abs(x - b[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i]!))));
  });

  it('by default falls back to one thread, saying why, when the train batch does not split among the cores', async () => {
    const r = await withWorkersEnv(undefined, () => caffe(['train', '--solver', 'odd_solver.prototxt'], dir.path));
    expect(r.code).toBe(0);
    expect(r.log.join('\n')).toMatch(/Iteration 3, loss = /);
    if (availableCores() === 2) {
      expect(r.log.join('\n')).toMatch(/Data-parallel training off \(split mode: Data layer 'data' has batch_size 3, which does not divide among 2 replicas/);
    }
    // Asked for explicitly, the same split is an error.
    const strict = await caffe(['train', '--solver', 'odd_solver.prototxt', '--workers', '2', '--split_batch'], dir.path);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr + strict.log.join('\n')).toMatch(/batch_size 3, which does not divide among 2 replicas/);
  });

  it('times the default mix against one replica on every core first (CAFFE_TS_PARALLEL_PROBE=on), and trains the one-thread trajectory either way', async () => {
    const r = await withProbeEnv('on', () => withWorkersEnv(undefined, () => caffe(['train', '--solver', 'quiet_solver.prototxt'], dir.path)));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const text = r.log.join('\n');
    if (availableCores() >= 2) {
      const n = availableCores();
      const timed = new RegExp(`Timed the parallel mixes over 3 round\\(s\\): ${n} split replicas × 1 kernel thread: ([\\d.]+) ms/iteration \\(\\d+ per round\\); 1 replica × ${n} kernel threads: ([\\d.]+) ms/iteration \\(\\d+ per round\\)`).exec(text);
      expect(timed).not.toBeNull();
      const [split, kernels] = [Number(timed![1]), Number(timed![2])];
      expect(split).toBeGreaterThan(0);
      expect(kernels).toBeGreaterThan(0);
      const chosen = /Parallel mix: (\d+) (?:split )?replicas? × (\d+) kernel threads?/.exec(text);
      expect(chosen).not.toBeNull();
      // The default stays unless the other was more than 3 % faster.
      expect(Number(chosen![1])).toBe(kernels < split * 0.97 ? 1 : n);
      if (Number(chosen![1]) === 1) expect(text).not.toMatch(/Data-parallel training: /);
      else expect(text).toMatch(/Data-parallel training: \d+ replicas \(each batch split among them\)/);
    } else {
      expect(text).not.toMatch(/Timed the parallel mixes/);
    }
    const one = await withWorkersEnv('1', () => caffe(['train', '--solver', 'quiet_solver.prototxt'], dir.path));
    // The copies the mixes were timed with are built quietly: the run logs its nets' set-up once.
    const setUps = (x: { log: string[] }) => x.log.filter((l) => /Initializing net from parameters/.test(l)).length;
    expect(setUps(one)).toBeGreaterThan(0);
    expect(setUps(r)).toBe(setUps(one));
    // So does an explicit chunked split, whose data layers run in a net of their own.
    const split = await withWorkersEnv(undefined, () => caffe(['train', '--solver', 'quiet_solver.prototxt', '--workers', '2', '--split_batch'], dir.path));
    expect(split.code).toBe(0);
    expect(setUps(split)).toBe(setUps(one));
    const a = losses(r).slice(0, -2);
    const b = losses(one).slice(0, -2);
    expect(a.length).toBe(6);
    a.forEach((x, i) => expect(Math.abs(x - b[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i]!))));
  });

  it('times the mixes on a LevelDB train source too (the nets of a process share one open database)', async () => {
    const r = await withProbeEnv('on', () => withWorkersEnv(undefined, () => caffe(['train', '--solver', 'ldb_solver.prototxt'], dir.path)));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.log.join('\n')).toMatch(/Iteration 3, loss = /);
    if (availableCores() >= 2) {
      expect(r.log.join('\n')).toMatch(/Timed the parallel mixes over 3 round\(s\): \d+ split replicas × 1 kernel thread: [\d.]+ ms\/iteration \(\d+ per round\); 1 replica × \d+ kernel threads: [\d.]+ ms\/iteration \(\d+ per round\)/);
    }
  });

  it('a LevelDB train source trains split by default (only this thread reads it, in chunks), and --workers 2 (replicate) says to use LMDB', async () => {
    const r = await withWorkersEnv(undefined, () => caffe(['train', '--solver', 'ldb_solver.prototxt'], dir.path));
    expect(r.code).toBe(0);
    expect(r.log.join('\n')).toMatch(/Iteration 3, loss = /);
    if (availableCores() >= 2) {
      // Chunked split: rank 0 alone opens the database and reads each whole batch.
      expect(r.log.join('\n')).toMatch(/Data-parallel training: \d+ replicas \(each batch split among them\).*each batch read on this thread in \d+ chunks/);
    }
    const strict = await caffe(['train', '--solver', 'ldb_solver.prototxt', '--workers', '2'], dir.path);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr + strict.log.join('\n')).toMatch(/reads a LevelDB \(source 'leveldb'\), which only one thread of a process can open/);
  });

  it('caffe forward --workers 3 divides the rows of the inputs among replicas; outputs are those of one worker', async () => {
    writeFileSync(
      join(dir.path, 'deploy.prototxt'),
      `name: "deploy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
layer { name: "total" type: "Reduction" bottom: "prob" top: "total" reduction_param { axis: 0 } }
`,
    );
    const rows = 11;
    writeNpy(join(dir.path, 'x.npy'), { shape: [rows, 4], data: Float32Array.from({ length: rows * 4 }, (_, i) => Math.sin(i * 0.7) * 3) });
    // Trained weights, so that every replica must load the same ones.
    const weights = 'tiny_iter_12.caffemodel';
    const args = (out: string, workers: string) =>
      ['forward', '--model', 'deploy.prototxt', '--weights', weights, '--input', 'data=x.npy', '--blobs', 'ip,prob', '--output', out, '--workers', workers];
    const one = await caffe(args('out1', '1'), dir.path);
    const three = await caffe(args('out3', '3'), dir.path);
    expect(one.code).toBe(0);
    expect(three.stderr).toBe('');
    expect(three.code).toBe(0);
    for (const blob of ['ip', 'prob']) {
      const a = readNpy(join(dir.path, 'out1', `${blob}.npy`));
      const b = readNpy(join(dir.path, 'out3', `${blob}.npy`));
      expect(b.shape).toEqual([rows, 2]);
      expect(Array.from(b.data)).toEqual(Array.from(a.data));
    }
    // A blob without the rows on axis 0 cannot be put back together: refused, naming it.
    const bad = await caffe(args('out4', '2').map((a) => (a === 'ip,prob' ? 'total' : a)), dir.path);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr + bad.log.join('\n')).toMatch(/blob 'total' has shape .*whose first axis is not the \d+ input rows/);
  });
});
