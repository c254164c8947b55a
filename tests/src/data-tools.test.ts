import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { closeDataSources, decodeDatumImage, encodeImage, openDatumDb, type PixelImage } from '@caffe-ts/io-leveldb';
import { decodeBlobProto, decodeDatum } from '@caffe-ts/proto';
import { caffe, messages, readDatums, tempDir } from './helpers.js';

// End to end through the CLI: generated JPEG/PNG images → convert_imageset (raw and encoded) →
// compute_image_mean → a tiny net trained from the encoded LMDB with mean_file, crop and mirror.

const COUNT = 40;
const SIZE = 16;

/** Image i: class i % 2; class 0 reddish, class 1 bluish, with noise and a bright square. */
function image(i: number, rng: Rng): PixelImage {
  const data = new Uint8Array(SIZE * SIZE * 3);
  const cls = i % 2;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const p = (y * SIZE + x) * 3;
      const noise = () => rng.int(60);
      const square = Math.abs(x - 4 - (i % 7)) < 3 && Math.abs(y - 5) < 3 ? 80 : 0;
      // BGR
      data[p] = Math.min(255, (cls ? 170 : 40) + noise() + square);
      data[p + 1] = Math.min(255, 60 + noise() + square);
      data[p + 2] = Math.min(255, (cls ? 40 : 170) + noise() + square);
    }
  }
  return { height: SIZE, width: SIZE, channels: 3, data };
}


const NET = `name: "tiny"
layer {
  name: "data" type: "Data" top: "data" top: "label"
  transform_param { mean_file: "mean.binaryproto" crop_size: 12 mirror: true scale: 0.0078125 }
  data_param { source: "enc_lmdb" backend: LMDB batch_size: 10 }
}
layer {
  name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } }
}
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer {
  name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } }
}
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
`;

const SOLVER = `net: "train.prototxt"
base_lr: 0.05
momentum: 0.9
lr_policy: "fixed"
max_iter: 40
display: 5
random_seed: 7
snapshot_after_train: false
solver_mode: CPU
`;

describe('dataset tools end to end', () => {
  const dir = tempDir('caffe-ts-data-tools-');
  beforeAll(async () => {
    const rng = new Rng(2024);
    mkdirSync(join(dir.path, 'images/sub'), { recursive: true });
    const list: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      const name = `sub/img_${i}.${i % 4 === 3 ? 'png' : 'jpg'}`;
      writeFileSync(join(dir.path, 'images', name), await encodeImage(image(i, rng), name.endsWith('png') ? 'png' : 'jpg'));
      list.push(`${name} ${i % 2}`);
    }
    writeFileSync(join(dir.path, 'train.txt'), `${list.join('\n')}\n`);
    writeFileSync(join(dir.path, 'train.prototxt'), NET);
    writeFileSync(join(dir.path, 'solver.prototxt'), SOLVER);
  });
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  it('convert_imageset writes raw and encoded LMDBs with Caffe keys and log lines', async () => {
    const raw = await caffe(['convert_imageset', 'images/', 'train.txt', 'raw_lmdb'], dir.path);
    expect(raw.stderr).toBe('');
    expect(raw.code).toBe(0);
    expect(messages(raw.log)).toEqual(expect.arrayContaining(['A total of 40 images.', 'Processed 40 files.']));
    const enc = await caffe(['convert_imageset', '--encoded', '-shuffle=false', 'images/', 'train.txt', 'enc_lmdb'], dir.path);
    expect(enc.code).toBe(0);
    expect(readdirSync(dir.path).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const rawRecs = await readDatums(join(dir.path, 'raw_lmdb'), 'lmdb');
    const encRecs = await readDatums(join(dir.path, 'enc_lmdb'), 'lmdb');
    expect(rawRecs.map((r) => r.key)).toEqual(Array.from({ length: COUNT }, (_, i) => `${String(i).padStart(8, '0')}_sub/img_${i}.${i % 4 === 3 ? 'png' : 'jpg'}`));
    expect(encRecs.map((r) => r.key)).toEqual(rawRecs.map((r) => r.key));
    // Encoded records hold the files; decoded they are the raw records, pixel for pixel.
    expect(Buffer.from(encRecs[0]!.datum.data).equals(readFileSync(join(dir.path, 'images/sub/img_0.jpg')))).toBe(true);
    for (const k of [0, 3, 17]) {
      const decoded = await decodeDatumImage(encRecs[k]!.datum);
      expect([decoded.channels, decoded.height, decoded.width, decoded.label]).toEqual([3, SIZE, SIZE, k % 2]);
      expect(decoded.data).toEqual(rawRecs[k]!.datum.data);
    }
  });

  it('convert_imageset resizes and reads gray on request, and refuses an existing database', async () => {
    const r = await caffe(['convert_imageset', '--gray', '--resize_height', '8', '--resize_width', '6', '--backend', 'leveldb', 'images/', 'train.txt', 'gray_leveldb'], dir.path);
    expect(r.code).toBe(0);
    const db = await openDatumDb(join(dir.path, 'gray_leveldb'));
    const first = decodeDatum((await db.entries().next()).value!.value);
    await db.close();
    expect([first.channels, first.height, first.width, first.data.length]).toEqual([1, 8, 6, 48]);
    const again = await caffe(['convert_imageset', 'images/', 'train.txt', 'raw_lmdb'], dir.path);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
  });

  it('compute_image_mean writes the mean and logs each channel as Caffe', async () => {
    const r = await caffe(['compute_image_mean', 'raw_lmdb', 'mean.binaryproto'], dir.path);
    expect(r.code).toBe(0);
    const m = messages(r.log);
    expect(m).toEqual(expect.arrayContaining(['Starting iteration', 'Processed 40 files.', 'Write to mean.binaryproto', 'Number of channels: 3']));
    const means = m.filter((x) => x.startsWith('mean_value channel [')).map((x) => Number(/\]: (\S+)$/.exec(x)![1]));
    expect(means).toHaveLength(3);
    // Blue (channel 0) averages ~(40+170)/2 + noise + squares; so does red (channel 2); green ~60 + noise.
    expect(means[0]).toBeGreaterThan(120);
    expect(means[1]).toBeLessThan(110);
    const proto = decodeBlobProto(readFileSync(join(dir.path, 'mean.binaryproto')));
    expect([proto.num, proto.channels, proto.height, proto.width]).toEqual([1, 3, SIZE, SIZE]);
    // The encoded database has the same mean.
    const e = await caffe(['compute_image_mean', 'enc_lmdb'], dir.path);
    expect(messages(e.log)).toContain('Decoding Datum');
    expect(messages(e.log).filter((x) => x.startsWith('mean_value channel ['))).toEqual(m.filter((x) => x.startsWith('mean_value channel [')));
  });

  it('caffe train learns from the encoded LMDB with mean_file, crop and mirror', async () => {
    expect(existsSync(join(dir.path, 'mean.binaryproto'))).toBe(true);
    const r = await caffe(['train', '--solver', 'solver.prototxt'], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = messages(r.log);
    expect(m).toContain('output data size: 10,3,12,12');
    const losses = m.map((x) => /^Iteration (\d+).*, loss = (\S+)$/.exec(x)).filter((x) => x !== null).map((x) => Number(x[2]));
    expect(losses.length).toBeGreaterThanOrEqual(5);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(Math.min(...losses.slice(-3))).toBeLessThan(losses[0]! * 0.7);
  });

  it('reports usage mistakes in one line with status 1', async () => {
    const few = await caffe(['convert_imageset', 'images/', 'train.txt'], dir.path);
    expect(few.code).toBe(1);
    expect(few.stderr).toMatch(/expected ROOTFOLDER\/ LISTFILE DB, got 2 argument\(s\)/);
    const badType = await caffe(['convert_imageset', '--encode_type', 'gif', 'images/', 'train.txt', 'x_lmdb'], dir.path);
    expect(badType.code).toBe(1);
    expect(badType.stderr).toMatch(/--encode_type takes jpg or png, got 'gif'/);
    const noDb = await caffe(['compute_image_mean', 'missing_lmdb'], dir.path);
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toMatch(/missing_lmdb/);
    const cifar = await caffe(['convert_cifar', 'nowhere', 'out', '--backend', 'rocksdb'], dir.path);
    expect(cifar.code).toBe(1);
    expect(cifar.stderr).toMatch(/Invalid db backend rocksdb/);
  });
});
