import fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setLogSink, setMaxBlobBytes } from '@caffe-ts/blob';
import { createContext, emptySummary, loadSeeds, makeInput, npyReader, READERS, runInput, runInputAsync } from '../../scripts/fuzz/fuzz-core.js';
import { createMediaContext, isHdf5Running, loadMediaSeeds, MEDIA_READERS, quietStderr, tinyNet } from '../../scripts/fuzz/fuzz-media.js';
import { hdf5Ready, readHdf5DatasetsSync, writeHdf5DatasetsSync } from '../../packages/io-leveldb/src/hdf5.js';
import { HDF5DataLayer } from '../../packages/io-leveldb/src/hdf5-data-layer.js';
import { Blob } from '@caffe-ts/blob';
import { createMessage, type LayerParameter } from '@caffe-ts/proto';
import { decodeImage, encodeImage } from '../../packages/io-leveldb/src/image-io.js';
import { copyTrainedLayersFromHdf5, loadH5wasm, readSolverStateHdf5 } from '../../packages/solver/src/hdf5.js';
import { corpusDir, hasCorpus, tempDir, zooDir } from './helpers.js';
import { parseNpy } from '../../packages/zoo/src/npy.js';

// A fixed-seed slice of `pnpm fuzz`: every reader must return or throw a typed caffe-ts error.
const COUNT = Number(process.env['FUZZ_SMOKE_COUNT'] ?? 3000);
const BUDGET_MS = 45_000;
// HDF5 files and images (h5wasm, sharp) to their own readers (the full run also feeds them to the
// Caffe-format readers): about 230 HDF5 inputs and 340 images, a few seconds.
const MEDIA_COUNT = Number(process.env['FUZZ_SMOKE_MEDIA_COUNT'] ?? 600);
const MEDIA_BUDGET_MS = 30_000;

describe('fuzz smoke (fixed seed)', () => {
  it(`feeds ${COUNT} mutated Caffe files to every reader without a crash`, () => {
    const prev = setMaxBlobBytes(16 * 2 ** 20);
    try {
      const seeds = loadSeeds(corpusDir, zooDir);
      const readers = [...READERS, npyReader(parseNpy)];
      const ctx = createContext(seeds);
      const summary = emptySummary(1234, COUNT, seeds, {});
      const t0 = Date.now();
      for (let i = 0; i < COUNT && Date.now() - t0 < BUDGET_MS; i++) runInput(makeInput(seeds, 1234, i), readers, ctx, summary);
      const crashes = summary.crashes.map((c) => `#${c.index} ${c.reader} on ${c.seed} (${c.mutation}): ${c.error.split('\n')[0]}`);
      expect(crashes).toEqual([]);
      expect(summary.inputsDone).toBeGreaterThan(Math.min(COUNT, 1000));
      // Unmutated seeds (the first round) decode: the readers accept the real files.
      expect(summary.readers['decodeBinary:NetParameter']!.ok).toBeGreaterThan(0);
      expect(summary.readers['parseText:NetParameter']!.ok).toBeGreaterThan(0);
      expect(summary.readers['Net(parsed prototxt)']!.ok).toBeGreaterThan(0);
      expect(summary.readers['parseNpy']!.ok).toBeGreaterThan(0);
      // Slowest input well under the runner's per-input timeout.
      expect(summary.slowest[0]!.ms).toBeLessThan(5000);
    } finally {
      setMaxBlobBytes(prev);
    }
  }, 90_000);

  it(`feeds ${MEDIA_COUNT} mutated HDF5 files, JPEGs, PNGs and encoded Datums to their readers without a crash`, async () => {
    const prev = setMaxBlobBytes(16 * 2 ** 20);
    const dir = tempDir('caffe-ts-fuzz-');
    const prevSink = setLogSink(() => {});
    const restore = quietStderr(fs, isHdf5Running);
    try {
      const seeds = await loadMediaSeeds(corpusDir, join(dir.path, 'seeds'));
      const media = await createMediaContext(join(dir.path, 'run'));
      const ctx = createContext(seeds);
      const summary = emptySummary(4321, MEDIA_COUNT, seeds, {});
      const t0 = Date.now();
      for (let i = 0; i < MEDIA_COUNT && Date.now() - t0 < MEDIA_BUDGET_MS; i++) {
        await runInputAsync(makeInput(seeds, 4321, i), [], ctx, MEDIA_READERS, media, summary);
      }
      const crashes = summary.crashes.map((c) => `#${c.index} ${c.reader} on ${c.seed} (${c.mutation}): ${c.error.split('\n')[0]}`);
      expect(crashes).toEqual([]);
      expect(summary.inputsDone).toBeGreaterThan(Math.min(MEDIA_COUNT, 300));
      // The unmutated seeds (made here through the project's writers, and the corpus's) read.
      for (const reader of ['HDF5Data layer', 'HDF5Data source list', 'readHdf5Datasets', 'copyTrainedLayersFromHdf5', 'readSolverStateHdf5', 'decodeImage', 'readImage(resize)', 'zoo loadImage', 'decodeDatumImage']) {
        expect(summary.readers[reader]?.ok, reader).toBeGreaterThan(0);
        expect(summary.readers[reader]!.tried, reader).toBeGreaterThan(summary.readers[reader]!.ok);
      }
      if (hasCorpus) expect(seeds.map((s) => s.name)).toContain('data/sample_data.h5');
      expect(summary.mutations['hugeDim']).toBeGreaterThan(0);
      expect(summary.mutations['header']).toBeGreaterThan(0);
      expect(summary.slowest[0]!.ms).toBeLessThan(5000);
    } finally {
      restore();
      setLogSink(prevSink);
      setMaxBlobBytes(prev);
      dir.remove();
    }
  }, 90_000);
});

// Inputs the HDF5 and image targets found, pinned: each once ended in an untyped error or an
// allocation as large as the file claimed.
describe('fuzz findings (HDF5, images)', () => {
  it('a truncated .h5 file is a typed error naming it (h5wasm threw "error - name not defined!")', async () => {
    await Promise.all([hdf5Ready(), loadH5wasm()]);
    const dir = tempDir('caffe-ts-fuzz-');
    const restore = quietStderr(fs, () => true);
    try {
      const whole = join(dir.path, 'whole.h5');
      writeHdf5DatasetsSync(whole, { data: { shape: [4, 3], data: new Float32Array(12).fill(1) }, label: { shape: [4], data: new Float32Array(4) } });
      const cut = join(dir.path, 'cut.h5');
      const bytes = fs.readFileSync(whole);
      fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
      expect(() => readHdf5DatasetsSync(cut)).toThrow(expect.objectContaining({ name: 'DataError', message: expect.stringContaining(cut) }));
      expect(() => readSolverStateHdf5(cut)).toThrow(expect.objectContaining({ name: 'CaffeFileError', message: expect.stringContaining(cut) }));
      expect(() => copyTrainedLayersFromHdf5(tinyNet(), cut, { log: false })).toThrow(expect.objectContaining({ name: 'CaffeFileError' }));
    } finally {
      restore();
      dir.remove();
    }
  });

  it("an HDF5Data source list naming a directory, or a source that is one, is a typed error (was a plain EISDIR)", async () => {
    await hdf5Ready();
    const dir = tempDir('caffe-ts-fuzz-');
    try {
      const setUp = (source: string) => {
        const param = createMessage<LayerParameter>('LayerParameter', { name: 'h5', type: 'HDF5Data', top: ['data'], hdf5_data_param: { source, batch_size: 1 } });
        new HDF5DataLayer(param).setUp([], [new Blob()]);
      };
      const list = join(dir.path, 'list.txt');
      fs.writeFileSync(list, '.\n');
      expect(() => setUp(list)).toThrow(expect.objectContaining({ name: 'DataError', message: expect.stringMatching(/^Failed opening HDF5 file: .*: not a regular file$/) }));
      expect(() => setUp(dir.path)).toThrow(expect.objectContaining({ name: 'LayerError', message: expect.stringContaining(`Failed to read source file ${dir.path}`) }));
    } finally {
      dir.remove();
    }
  });

  it("a dataset whose shape × type size is over the blob limit is refused before h5wasm allocates", async () => {
    await hdf5Ready();
    const dir = tempDir('caffe-ts-fuzz-');
    const prev = setMaxBlobBytes(2 ** 20);
    try {
      const file = join(dir.path, 'big.h5');
      writeHdf5DatasetsSync(file, { data: { shape: [600, 600], data: new Float32Array(360000) } });
      expect(() => readHdf5DatasetsSync(file)).toThrow(/dataset 'data' claims shape 600×600 of 4-byte values \(1440000 bytes\), over the 1048576-byte limit/);
    } finally {
      setMaxBlobBytes(prev);
      dir.remove();
    }
  });

  it('a JPEG whose header claims more pixels than the blob limit holds is refused before decoding', async () => {
    const jpeg = Buffer.from(await encodeImage({ height: 8, width: 8, channels: 3, data: new Uint8Array(192).fill(90) }, 'jpg'));
    // The frame header (SOF0): height and width 5 and 7 bytes after the marker.
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    jpeg.writeUInt16BE(2000, sof + 5);
    jpeg.writeUInt16BE(2000, sof + 7);
    const prev = setMaxBlobBytes(2 ** 20);
    try {
      await expect(decodeImage(jpeg, 'color', 'bomb.jpg')).rejects.toThrow(/^cannot decode bomb\.jpg \(\d+ bytes\): its header claims more than 262144 pixels/);
    } finally {
      setMaxBlobBytes(prev);
    }
    // Within the limit the same bytes decode (libjpeg fills the missing scan data).
    expect((await decodeImage(jpeg, 'gray', 'bomb.jpg')).width).toBe(2000);
  });
});
