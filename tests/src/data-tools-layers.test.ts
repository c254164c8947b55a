import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { closeDataSources, encodeImage, openDatumDb, readHdf5Datasets, registerDataLayers, type PixelImage } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { decodeDatum, parseNetParameter, Phase } from '@caffe-ts/proto';
import { caffe, corpus, hasCorpus, messages, tempDir } from './helpers.js';

// The other data layers in nets built by Net.create (which primes them), and convert_cifar.

const registry = registerBuiltinLayers(new LayerRegistry());
registerDataLayers(registry);
const dir = tempDir('caffe-ts-data-layers-');

const pattern = (i: number, h: number, w: number): PixelImage => ({
  height: h,
  width: w,
  channels: 3,
  data: Uint8Array.from({ length: h * w * 3 }, (_, p) => (i * 41 + p * 13 + (p % 5) * 7) & 255),
});

beforeAll(async () => {
  mkdirSync(join(dir.path, 'img'));
  const list: string[] = [];
  for (let i = 0; i < 7; i++) {
    const name = `p${i}.${i % 2 ? 'png' : 'jpg'}`;
    writeFileSync(join(dir.path, 'img', name), await encodeImage(pattern(i, 10 + i, 12 + 2 * i), i % 2 ? 'png' : 'jpg'));
    list.push(`${name} ${i}`);
  }
  writeFileSync(join(dir.path, 'list.txt'), `${list.join('\n')}\n`);
});
afterEach(async () => closeDataSources());
afterAll(() => dir.remove());

async function create(text: string, phase = Phase.TRAIN): Promise<Net> {
  return Net.create(parseNetParameter(text), { phase, registry, log: false, rng: new Rng(12) });
}

describe('ImageData in a net', () => {
  it('shuffles and resizes images of several sizes into fixed batches', async () => {
    const net = await create(`
      layer { name: "img" type: "ImageData" top: "data" top: "label"
        transform_param { scale: 0.5 }
        image_data_param { source: "${join(dir.path, 'list.txt')}" root_folder: "${dir.path}/img/" batch_size: 7 shuffle: true new_height: 9 new_width: 11 } }`);
    expect(net.blob('data').shape).toEqual([7, 3, 9, 11]);
    const seen: number[][] = [];
    for (let k = 0; k < 2; k++) {
      await net.prepare();
      net.forward();
      seen.push(Array.from(net.blob('label').cpuData()));
    }
    await net.close();
    for (const pass of seen) expect([...pass].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(seen.some((p) => p.join() !== '0,1,2,3,4,5,6')).toBe(true);
    expect(net.blob('data').cpuData().every((v) => v >= 0 && v <= 127.5)).toBe(true);
  });
});

describe('WindowData in a net', () => {
  it('samples foreground and background windows from a generated windows file', async () => {
    const windows = [
      '# 0',
      join(dir.path, 'img/p3.png'),
      '3 13 18',
      '3',
      '1 0.9 2 2 12 10',
      '0 0.1 0 0 6 6',
      '2 0.75 5 1 17 12',
      '# 1',
      join(dir.path, 'img/p5.png'),
      '3 15 22',
      '1',
      '0 0.05 3 3 20 14',
      '',
    ].join('\n');
    writeFileSync(join(dir.path, 'windows.txt'), windows);
    const net = await create(`
      layer { name: "win" type: "WindowData" top: "data" top: "label"
        transform_param { crop_size: 8 mirror: true mean_value: 104 mean_value: 117 mean_value: 123 }
        window_data_param { source: "${join(dir.path, 'windows.txt')}" batch_size: 8 fg_threshold: 0.5 bg_threshold: 0.5 fg_fraction: 0.25 context_pad: 1 crop_mode: "square" } }`);
    expect(net.blob('data').shape).toEqual([8, 3, 8, 8]);
    await net.prepare();
    net.forward();
    const labels = Array.from(net.blob('label').cpuData());
    expect(labels.slice(0, 6)).toEqual([0, 0, 0, 0, 0, 0]);
    for (const l of labels.slice(6)) expect([1, 2]).toContain(l);
    await net.close();
  });
});

describe.skipIf(!hasCorpus)("HDF5Data on Caffe's sample_data.h5, HDF5Output round trip", () => {
  it('reads the rows in order through a net and writes them back out', async () => {
    writeFileSync(join(dir.path, 'h5list.txt'), `${corpus('data/sample_data.h5')}\n`);
    const out = join(dir.path, 'out.h5');
    const net = await create(`
      layer { name: "h5" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "${join(dir.path, 'h5list.txt')}" batch_size: 4 } }
      layer { name: "out" type: "HDF5Output" bottom: "data" bottom: "label" hdf5_output_param { file_name: "${out}" } }`);
    const labels: number[] = [];
    for (let k = 0; k < 3; k++) {
      await net.prepare();
      net.forward();
      labels.push(...Array.from(net.blob('label').cpuData()));
    }
    // 10 rows, batches of 4: the third batch wraps around to the first rows.
    expect(labels).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2]);
    const written = await readHdf5Datasets(out);
    expect(written.data!.shape).toEqual([4, 8, 6, 5]);
    expect(written.label!.shape).toEqual([4, 1, 1, 1]);
    expect(Array.from(written.label!.data as Float32Array)).toEqual([9, 10, 1, 2]);
    const data = written.data!.data as Float32Array;
    expect(data[0]).toBe(8 * 240);
    expect(data[2 * 240 + 5]).toBe(5);
    await net.close();
  });
});

describe('convert_cifar', () => {
  it('converts a generated mini CIFAR-10 through the CLI', async () => {
    const input = join(dir.path, 'cifar-10-batches-bin');
    mkdirSync(input);
    const batch = (n: number, base: number) => {
      const b = new Uint8Array(n * 3073);
      for (let r = 0; r < n; r++) {
        b[r * 3073] = (base + r) % 10;
        for (let i = 1; i < 3073; i++) b[r * 3073 + i] = (base * 7 + r * 3 + i) & 255;
      }
      return b;
    };
    for (let f = 1; f <= 5; f++) writeFileSync(join(input, `data_batch_${f}.bin`), batch(3, f));
    writeFileSync(join(input, 'test_batch.bin'), batch(2, 0));
    mkdirSync(join(dir.path, 'cifar'));
    const r = await caffe(['convert_cifar', 'cifar-10-batches-bin', 'cifar', 'leveldb'], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(messages(r.log)).toEqual(expect.arrayContaining(['Writing Training data', 'Training Batch 5', 'Writing Testing data']));
    expect(existsSync(join(dir.path, 'cifar/cifar10_train_leveldb'))).toBe(true);
    const db = await openDatumDb(join(dir.path, 'cifar/cifar10_train_leveldb'));
    const keys: string[] = [];
    for await (const rec of db.entries()) keys.push(rec.key);
    const first = decodeDatum((await db.get('20001'))!);
    await db.close();
    expect(keys).toHaveLength(15);
    expect(keys.slice(0, 4)).toEqual(['00000', '00001', '00002', '10000']);
    expect([first.channels, first.height, first.width, first.label]).toEqual([3, 32, 32, 4]);
    const lm = await caffe(['convert_cifar', 'cifar-10-batches-bin', 'cifar', '--backend', 'lmdb'], dir.path);
    expect(lm.code).toBe(0);
    expect(existsSync(join(dir.path, 'cifar/cifar10_test_lmdb/data.mdb'))).toBe(true);
  });
});
