import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Blob, Rng } from '@caffe-ts/blob';
import { createMessage, Phase, type LayerParameter } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HDF5DataLayer, hdf5DataLayerDef } from './hdf5-data-layer.js';
import { HDF5OutputLayer } from './hdf5-output-layer.js';
import { hdf5Ready, readHdf5DatasetsSync, writeHdf5Datasets } from './hdf5.js';

const corpusSample = fileURLToPath(new URL('../../../../shared/corpus/data/sample_data.h5', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hdf5-layers-'));
let list: string;

/**
 * Caffe's test data (generate_sample_data.py): sample_data.h5 holds data 10×8×6×5 = 0…2399,
 * label 10×1 = 1…10 and label2 = 2…11; sample_data_2_gzip.h5 the same with data + 2400, gzipped.
 * The first file is the corpus copy of Caffe's own when present.
 */
beforeAll(async () => {
  const first = join(dir, 'sample_data.h5');
  const label = { shape: [10, 1], data: Float32Array.from({ length: 10 }, (_, i) => i + 1) };
  const label2 = { shape: [10, 1], data: Float32Array.from({ length: 10 }, (_, i) => i + 2) };
  if (existsSync(corpusSample)) copyFileSync(corpusSample, first);
  else await writeHdf5Datasets(first, { data: { shape: [10, 8, 6, 5], data: Float32Array.from({ length: 2400 }, (_, i) => i) }, label, label2 });
  await writeHdf5Datasets(
    join(dir, 'sample_data_2_gzip.h5'),
    { data: { shape: [10, 8, 6, 5], data: Float32Array.from({ length: 2400 }, (_, i) => i + 2400) }, label, label2 },
    { gzip: 4 },
  );
  list = join(dir, 'sample_data_list.txt');
  // Relative names are found beside the list file.
  writeFileSync(list, 'sample_data.h5\nsample_data_2_gzip.h5\n');
  await hdf5Ready();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const param = (props: Record<string, unknown>, tops = ['data', 'label', 'label2'], extra: Record<string, unknown> = {}) =>
  createMessage<LayerParameter>('LayerParameter', { name: 'h5', type: 'HDF5Data', top: tops, hdf5_data_param: { source: list, ...props }, ...extra });

describe('HDF5Data layer', () => {
  it("reads Caffe's test files as BVLC's TestRead expects (batch_size 5, two files, 10 iterations)", () => {
    const layer = new HDF5DataLayer(param({ batch_size: 5 }));
    const top = [new Blob(), new Blob(), new Blob()];
    layer.setUp([], top);
    expect(top[0]!.shape).toEqual([5, 8, 6, 5]);
    expect(top[1]!.shape).toEqual([5, 1]);
    expect(top[2]!.shape).toEqual([5, 1]);
    const dataSize = 8 * 6 * 5;
    for (let iter = 0; iter < 10; iter++) {
      layer.forward([], top);
      const labelOffset = 1 + (iter % 2 === 0 ? 0 : 5);
      const dataOffset = iter % 2 === 0 ? 0 : 5 * dataSize;
      const fileOffset = iter % 4 < 2 ? 0 : 2400;
      expect(Array.from(top[1]!.cpuData())).toEqual([0, 1, 2, 3, 4].map((i) => labelOffset + i));
      expect(Array.from(top[2]!.cpuData())).toEqual([0, 1, 2, 3, 4].map((i) => labelOffset + 1 + i));
      const data = top[0]!.cpuData();
      expect(data.every((v, idx) => v === fileOffset + dataOffset + idx)).toBe(true);
    }
  });

  it('shuffles rows with the layer generator, each row whole', () => {
    const layer = new HDF5DataLayer(param({ batch_size: 10, shuffle: true }), { rng: new Rng(3) });
    const top = [new Blob(), new Blob(), new Blob()];
    layer.setUp([], top);
    layer.forward([], top);
    const labels = Array.from(top[1]!.cpuData());
    expect([...labels].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(labels).not.toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const data = top[0]!.cpuData();
    const file = data[0]! >= 2400 ? 2400 : 0;
    labels.forEach((l, i) => {
      expect(data[i * 240]).toBe(file + (l - 1) * 240);
      expect(top[2]!.cpuData()[i]).toBe(l + 1);
    });
  });

  it('refuses transform_param, missing datasets and a missing list, naming them', () => {
    expect(() => new HDF5DataLayer(param({ batch_size: 2 }, ['data'], { transform_param: { scale: 2 } })).setUp([], [new Blob()])).toThrow(
      "HDF5Data layer 'h5': HDF5Data does not transform data.",
    );
    expect(() => new HDF5DataLayer(param({ batch_size: 2 }, ['data', 'nope'])).setUp([], [new Blob(), new Blob()])).toThrow(
      /HDF5Data layer 'h5': Failed to find HDF5 dataset nope in .*sample_data\.h5/,
    );
    const missing = createMessage<LayerParameter>('LayerParameter', { name: 'h5', type: 'HDF5Data', top: ['data'], hdf5_data_param: { source: join(dir, 'none.txt'), batch_size: 1 } });
    expect(() => new HDF5DataLayer(missing).setUp([], [new Blob()])).toThrow(/Failed to open source file: .*none\.txt/);
  });

  it('has a prime hook that loads the library', async () => {
    await expect(hdf5DataLayerDef.prime!(param({ batch_size: 1 }), {})).resolves.toBeUndefined();
  });
});

describe('HDF5Output layer', () => {
  it('writes bottom 0 as data and bottom 1 as label (4-axis shapes), readable by HDF5Data', () => {
    const file = join(dir, 'out.h5');
    const p = createMessage<LayerParameter>('LayerParameter', { name: 'out', type: 'HDF5Output', bottom: ['d', 'l'], hdf5_output_param: { file_name: file } });
    const layer = new HDF5OutputLayer(p, { phase: Phase.TEST });
    const data = new Blob([3, 2, 2]);
    data.mutableCpuData().set(Float32Array.from({ length: 12 }, (_, i) => i * 0.5));
    const label = new Blob([3]);
    label.mutableCpuData().set([7, 8, 9]);
    layer.setUp([data, label], []);
    expect(existsSync(file)).toBe(true);
    expect(readHdf5DatasetsSync(file)).toEqual({});
    layer.forward([data, label], []);
    const back = readHdf5DatasetsSync(file);
    expect(back.data).toEqual({ shape: [3, 2, 2, 1], data: Float32Array.from({ length: 12 }, (_, i) => i * 0.5) });
    expect(back.label).toEqual({ shape: [3, 1, 1, 1], data: Float32Array.of(7, 8, 9) });
    // A second forward replaces the datasets.
    label.mutableCpuData().set([1, 2, 3]);
    layer.forward([data, label], []);
    expect(Array.from(readHdf5DatasetsSync(file).label!.data as Float32Array)).toEqual([1, 2, 3]);

    const listFile = join(dir, 'out_list.txt');
    writeFileSync(listFile, `${file}\n`);
    const reader = new HDF5DataLayer(
      createMessage<LayerParameter>('LayerParameter', { name: 'r', type: 'HDF5Data', top: ['data', 'label'], hdf5_data_param: { source: listFile, batch_size: 3 } }),
    );
    const top = [new Blob(), new Blob()];
    reader.setUp([], top);
    reader.forward([], top);
    expect(top[0]!.shape).toEqual([3, 2, 2, 1]);
    expect(Array.from(top[1]!.cpuData())).toEqual([1, 2, 3]);
  });

  it('refuses bottoms of different batch sizes', () => {
    const p = createMessage<LayerParameter>('LayerParameter', { name: 'out', type: 'HDF5Output', bottom: ['d', 'l'], hdf5_output_param: { file_name: join(dir, 'o2.h5') } });
    const layer = new HDF5OutputLayer(p);
    const a = new Blob([2, 3]);
    const b = new Blob([3]);
    layer.setUp([a, b], []);
    expect(() => layer.forward([a, b], [])).toThrow("HDF5Output layer 'out': data blob and label blob must have the same batch size (2 vs 3)");
  });
});
