import { describe, expect, it } from 'vitest';
import { setMaxBlobBytes } from '@caffe-ts/blob';
import { createContext, emptySummary, loadSeeds, makeInput, npyReader, READERS, runInput } from '../../scripts/fuzz/fuzz-core.js';
import { corpusDir, zooDir } from './helpers.js';
import { parseNpy as zooParseNpy } from '../../packages/zoo/src/npy.js';
import { parseNpy } from './npy.js';

// A fixed-seed slice of `pnpm fuzz`: every reader must return or throw a typed caffe-ts error.
const COUNT = Number(process.env['FUZZ_SMOKE_COUNT'] ?? 3000);
const BUDGET_MS = 45_000;

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
});
