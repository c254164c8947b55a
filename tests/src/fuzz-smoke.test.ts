import fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setLogSink, setMaxBlobBytes } from '@caffe-ts/blob';
import { createContext, emptySummary, loadSeeds, makeInput, npyReader, READERS, runInput, runInputAsync } from '../../scripts/fuzz/fuzz-core.js';
import { createMediaContext, isHdf5Running, loadMediaSeeds, MEDIA_READERS, quietStderr } from '../../scripts/fuzz/fuzz-media.js';
import { corpusDir, hasCorpus, tempDir, zooDir } from './helpers.js';
import { parseNpy as zooParseNpy } from '../../packages/zoo/src/npy.js';
import { parseNpy } from './npy.js';

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
      const readers = [...READERS, npyReader(parseNpy), npyReader(zooParseNpy, 'zoo parseNpy')];
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
      expect(summary.readers['zoo parseNpy']!.ok).toBeGreaterThan(0);
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
      for (const reader of ['HDF5Data layer', 'readHdf5Datasets', 'copyTrainedLayersFromHdf5', 'readSolverStateHdf5', 'decodeImage', 'readImage(resize)', 'zoo loadImage', 'decodeDatumImage']) {
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
