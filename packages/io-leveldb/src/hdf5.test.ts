import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hdf5DatasetShapesSync, hdf5Ready, readHdf5Datasets, readHdf5DatasetsSync, writeHdf5Datasets } from './hdf5.js';
import { DataError } from './errors.js';

const sample = fileURLToPath(new URL('../../../../shared/corpus/data/sample_data.h5', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hdf5-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('HDF5 helpers', () => {
  it.skipIf(!existsSync(sample))("reads Caffe's sample_data.h5: data 10×8×6×5 = 0…2399, label 1…10, label2 2…11", async () => {
    const all = await readHdf5Datasets(sample);
    expect(Object.keys(all).sort()).toEqual(['data', 'label', 'label2']);
    expect(all.data!.shape).toEqual([10, 8, 6, 5]);
    expect(all.data!.data).toBeInstanceOf(Float32Array);
    expect(Array.from(all.data!.data as Float32Array).every((v, i) => v === i)).toBe(true);
    expect(all.label!.shape).toEqual([10, 1]);
    expect(Array.from(all.label!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(Array.from(all.label2!.data as Float32Array)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(hdf5DatasetShapesSync(sample)).toEqual({ data: [10, 8, 6, 5], label: [10, 1], label2: [10, 1] });
  });

  it('round-trips nested datasets, number types, strings and gzip', async () => {
    const file = join(dir, 'snap.h5');
    await writeHdf5Datasets(file, {
      'data/conv1/0': { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
      'data/conv1/1': { data: Float64Array.of(0.5, -0.25) },
      'history/0': { shape: [2], data: [7, 8] },
      iter: { shape: [1], data: Int32Array.of(42) },
      learned_net: { data: 'lenet_iter_42.caffemodel.h5' },
    });
    const back = readHdf5DatasetsSync(file);
    expect(Object.keys(back).sort()).toEqual(['data/conv1/0', 'data/conv1/1', 'history/0', 'iter', 'learned_net']);
    expect(back['data/conv1/0']).toEqual({ shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
    expect(back['data/conv1/1']).toEqual({ shape: [2], data: Float64Array.of(0.5, -0.25) });
    expect(back['history/0']).toEqual({ shape: [2], data: Float32Array.of(7, 8) });
    expect(back.iter).toEqual({ shape: [1], data: Int32Array.of(42) });
    expect(back.learned_net).toEqual({ shape: [], data: 'lenet_iter_42.caffemodel.h5' });
    expect(readHdf5DatasetsSync(file, ['iter'])).toEqual({ iter: back.iter });
    // No temporary file is left beside it.
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const gz = join(dir, 'gz.h5');
    const big = Float32Array.from({ length: 2400 }, (_, i) => i + 2400);
    await writeHdf5Datasets(gz, { data: { shape: [10, 8, 6, 5], data: big } }, { gzip: 4 });
    expect((await readHdf5Datasets(gz)).data!.data).toEqual(big);
  });

  it('fails with DataErrors naming the file and the dataset', async () => {
    await hdf5Ready();
    const file = join(dir, 'one.h5');
    await writeHdf5Datasets(file, { a: { data: [1] } });
    expect(() => readHdf5DatasetsSync(file, ['b'])).toThrow(/Failed to find HDF5 dataset b in .*one\.h5/);
    expect(() => readHdf5DatasetsSync(join(dir, 'none.h5'))).toThrow(/Failed opening HDF5 file: .*none\.h5: no such file/);
    const notH5 = join(dir, 'text.h5');
    writeFileSync(notH5, 'not hdf5');
    let err: unknown;
    try {
      readHdf5DatasetsSync(notH5);
    } catch (e) {
      err = e;
    }
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toMatch(/Failed opening HDF5 file: .*text\.h5: not an HDF5 file/);
    await expect(writeHdf5Datasets(file, { x: { shape: [3], data: [1, 2] } })).rejects.toThrow(/dataset 'x' has shape 3 \(3 values\) but 2 values were given/);
  });
});
