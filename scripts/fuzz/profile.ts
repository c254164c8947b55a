/** `node scripts/fuzz/run.mjs profile.ts [count]`: where the fuzzer's time goes, per reader and per seed kind. */
import { setLogSink, setMaxBlobBytes } from '@caffe-ts/blob';
import { createContext, emptySummary, loadSeeds, makeInput, READERS, type Reader } from './fuzz-core.js';

const count = Number(process.argv[2] ?? 1000);
setMaxBlobBytes(Number(process.env['CAFFE_TS_MAX_BLOB_BYTES'] ?? 16 * 2 ** 20));
setLogSink(() => {});
const seeds = loadSeeds(process.env['CAFFE_TS_CORPUS'] ?? new URL('../../../shared/corpus', import.meta.url).pathname, new URL('../../packages/zoo/models', import.meta.url).pathname);
const ctx = createContext(seeds);
const byReader: Record<string, number> = {};
const byKind: Record<string, number> = {};
const bySeed: Record<string, number> = {};
let gen = 0;
emptySummary(1, count, seeds, {});
for (let i = 0; i < count; i++) {
  const g0 = performance.now();
  const input = makeInput(seeds, 99, i);
  gen += performance.now() - g0;
  ctx.scratch.clear();
  for (const r of READERS as Reader[]) {
    const t = performance.now();
    try {
      r.run(input, ctx);
    } catch {
      /* counted by the real runner */
    }
    const ms = performance.now() - t;
    byReader[r.name] = (byReader[r.name] ?? 0) + ms;
    byKind[input.kind] = (byKind[input.kind] ?? 0) + ms;
    bySeed[input.seed] = (bySeed[input.seed] ?? 0) + ms + (performance.now() - g0 > 0 ? 0 : 0);
  }
}
console.log({ count, generateMs: Math.round(gen), byReader, byKind, topSeeds: Object.entries(bySeed).sort((a, b) => b[1] - a[1]).slice(0, 8) });
