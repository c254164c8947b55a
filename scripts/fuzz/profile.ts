/** `node scripts/fuzz/run.mjs profile.ts [count]`: outcomes per reader and where the time goes per seed kind and seed. */
import { join } from 'node:path';
import { setLogSink, setMaxBlobBytes } from '@caffe-ts/blob';
import { createContext, emptySummary, loadSeeds, makeInput, READERS, runInput } from './fuzz-core.js';

const count = Number(process.argv[2] ?? 1000);
setMaxBlobBytes(Number(process.env['CAFFE_TS_MAX_BLOB_BYTES'] ?? 16 * 2 ** 20));
setLogSink(() => {});
// run.mjs sets FUZZ_DIR to scripts/fuzz (this file runs from scripts/fuzz/.build).
const here = process.env['FUZZ_DIR'] ?? process.cwd();
const seeds = loadSeeds(process.env['CAFFE_TS_CORPUS'] ?? join(here, '../../../shared/corpus'), join(here, '../../packages/zoo/models'));
const ctx = createContext(seeds);
const summary = emptySummary(99, count, seeds, {});
const byKind: Record<string, number> = {};
const bySeed: Record<string, number> = {};
let gen = 0;
for (let i = 0; i < count; i++) {
  const g0 = performance.now();
  const input = makeInput(seeds, 99, i);
  const t = performance.now();
  gen += t - g0;
  runInput(input, READERS, ctx, summary);
  const ms = performance.now() - t;
  byKind[input.kind] = (byKind[input.kind] ?? 0) + ms;
  bySeed[input.seed] = (bySeed[input.seed] ?? 0) + ms;
}
const readers = Object.fromEntries(Object.entries(summary.readers).map(([k, v]) => [k, `${v.tried} tried, ${v.ok} ok, ${v.crashes} crashes`]));
const round = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)]));
console.log({ count, readers, generateMs: Math.round(gen), msByKind: round(byKind), slowestSeeds: Object.entries(round(bySeed)).sort((a, b) => b[1] - a[1]).slice(0, 6), mutations: summary.mutations });
