/* `caffe train --workers N` and `caffe test --workers N` on a tiny LMDB net. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatKey, openDatumDb } from '@caffe-ts/io-leveldb';
import { createMessage, encodeDatum, type Datum } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffe, tempDir } from './helpers.js';

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
});
afterAll(() => dir?.remove());

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
});
