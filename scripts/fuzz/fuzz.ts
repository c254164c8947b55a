/**
 * `pnpm fuzz [--count N] [--seed S] [--timeout-ms T] [--max-blob-bytes B] [--heap-mb M] [--corpus DIR] [--only KINDS]`
 *
 * Mutates real Caffe files and feeds each input to every reader (see fuzz-core.ts). The inputs run
 * in a worker thread watched from here: an input that runs past the timeout, or a worker that runs
 * out of heap, is recorded as a crash, its input saved, and a fresh worker carries on from the next
 * input. Blob allocations are capped (CAFFE_TS_MAX_BLOB_BYTES) so a file claiming a huge shape must
 * fail with a typed error instead of exhausting memory.
 *
 * Writes scripts/fuzz/last-run.json (inputs per reader, outcomes by error class, seeds, crashes)
 * and saves crashing inputs under scripts/fuzz/crashes/. Exits 1 on any crash.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, threadId, Worker, workerData } from 'node:worker_threads';
import { setMaxBlobBytes } from '@caffe-ts/blob';
import { setLogSink } from '@caffe-ts/blob';
import { parseNpy } from '../../packages/zoo/src/npy.js';
import {
  createContext,
  describeError,
  emptySummary,
  loadSeeds,
  makeInput,
  mergeSummary,
  npyReader,
  READERS,
  runInputAsync,
  type CrashRecord,
  type FuzzSummary,
  type InputKind,
  type Seed,
} from './fuzz-core.js';
import { createMediaContext, hdf5WasmBytes, isHdf5Running, loadMediaSeeds, MEDIA_READERS, quietStderr } from './fuzz-media.js';
import { loadSsdSeeds, SSD_READERS } from './fuzz-ssd.js';

interface Settings {
  count: number;
  seed: number;
  timeoutMs: number;
  maxBlobBytes: number;
  heapMb: number;
  corpus: string;
  zoo: string;
  outDir: string;
  /** Input kinds whose seeds are used (all when empty), e.g. h5,image,datum. */
  only: InputKind[];
  /** Scratch folder: the generated HDF5 seeds and each input written for the file readers. */
  scratch: string;
}

interface WorkerData {
  settings: Settings;
  /** The main thread's seeds (the generated ones included), so crash inputs are rebuilt exactly. */
  seeds: Seed[];
  start: number;
  /** [0]: index of the input being run (-1 when idle). */
  progress: Int32Array;
  /** [0]: time (ms since the epoch) the current input started. */
  started: Float64Array;
}

type WorkerMessage = { type: 'crash'; crash: CrashRecord } | { type: 'done'; summary: FuzzSummary } | { type: 'partial'; summary: FuzzSummary };

async function seedsFor(s: Settings): Promise<Seed[]> {
  const all = [...loadSeeds(s.corpus, s.zoo), ...(await loadMediaSeeds(s.corpus, join(s.scratch, 'seeds'))), ...loadSsdSeeds()];
  return s.only.length > 0 ? all.filter((seed) => s.only.includes(seed.kind)) : all;
}

async function workerMain(data: WorkerData): Promise<void> {
  const { settings, seeds, start, progress, started } = data;
  setMaxBlobBytes(settings.maxBlobBytes);
  setLogSink(() => {});
  const readers = [...READERS, npyReader(parseNpy), ...SSD_READERS];
  const ctx = createContext(seeds);
  const media = await createMediaContext(join(settings.scratch, `worker-${threadId}`));
  // libhdf5's error stacks (printed straight to fd 2) are dropped while an HDF5 reader runs.
  quietStderr(createRequire(import.meta.url)('node:fs'), isHdf5Running);
  let summary = emptySummary(settings.seed, settings.count, seeds, {});
  let lastPost = Date.now();
  for (let i = start; i < settings.count; i++) {
    const input = makeInput(seeds, settings.seed, i);
    started[0] = Date.now();
    Atomics.store(progress, 0, i);
    for (const crash of await runInputAsync(input, readers, ctx, MEDIA_READERS, media, summary)) parentPort!.postMessage({ type: 'crash', crash } satisfies WorkerMessage);
    summary.crashes = [];
    // Hand counts over now and then, so a worker that dies later loses little.
    if (Date.now() - lastPost > 2000 || i === settings.count - 1) {
      const mib = (n: number) => Math.round(n / 2 ** 20);
      summary.memory = { wasmHeapMiB: mib(await hdf5WasmBytes()), rssMiB: mib(process.memoryUsage().rss) };
      parentPort!.postMessage({ type: 'partial', summary } satisfies WorkerMessage);
      summary = emptySummary(settings.seed, settings.count, seeds, {});
      lastPost = Date.now();
    }
  }
  Atomics.store(progress, 0, -1);
  parentPort!.postMessage({ type: 'done', summary } satisfies WorkerMessage);
}

function parseArgs(argv: string[], here: string): Settings {
  const repo = join(here, '../..');
  const s: Settings = {
    count: 10000,
    seed: Date.now() % 2147483647,
    timeoutMs: 10000,
    maxBlobBytes: 64 * 2 ** 20,
    heapMb: 2048,
    corpus: process.env['CAFFE_TS_CORPUS'] ?? join(repo, '../shared/corpus'),
    zoo: join(repo, 'packages/zoo/models'),
    outDir: here,
    only: [],
    scratch: join(tmpdir(), `caffe-ts-fuzz-${process.pid}`),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--') continue;
    else if (a === '--count') s.count = Number(v());
    else if (a === '--seed') s.seed = Number(v());
    else if (a === '--timeout-ms') s.timeoutMs = Number(v());
    else if (a === '--max-blob-bytes') s.maxBlobBytes = Number(v());
    else if (a === '--heap-mb') s.heapMb = Number(v());
    else if (a === '--corpus') s.corpus = v();
    else if (a === '--out') s.outDir = v();
    else if (a === '--only') s.only = v().split(',').filter((k) => k) as InputKind[];
    else throw new Error(`unknown option ${a} (options: --count --seed --timeout-ms --max-blob-bytes --heap-mb --corpus --out --only)`);
  }
  for (const k of ['count', 'seed', 'timeoutMs', 'maxBlobBytes', 'heapMb'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 0) throw new Error(`--${k}: expected a non-negative integer, got ${s[k]}`);
  }
  return s;
}

async function main(): Promise<number> {
  const self = fileURLToPath(import.meta.url);
  const here = process.env['FUZZ_DIR'] ?? dirname(self);
  const settings = parseArgs(process.argv.slice(2), here);
  setMaxBlobBytes(settings.maxBlobBytes);
  setLogSink(() => {});
  const seeds = await seedsFor(settings);
  if (seeds.length === 0) throw new Error(`no seeds of the kinds ${settings.only.join(', ')}`);
  const summary = emptySummary(settings.seed, settings.count, seeds, { ...settings });
  const crashDir = join(settings.outDir, 'crashes');
  const t0 = Date.now();
  const save = (c: CrashRecord) => {
    const input = makeInput(seeds, settings.seed, c.index);
    mkdirSync(crashDir, { recursive: true });
    const file = join(crashDir, `${settings.seed}-${c.index}-${c.kind}.bin`);
    writeFileSync(file, input.bytes);
    c.savedAs = file;
    summary.crashes.push(c);
    console.error(`CRASH #${c.index} [${c.kind}] ${c.reader} on ${c.seed} (${c.mutation}): ${c.error.split('\n')[0]} → ${file}`);
  };
  console.log(`fuzz: ${settings.count} inputs from ${seeds.length} seeds, run seed ${settings.seed}, timeout ${settings.timeoutMs} ms, blob limit ${settings.maxBlobBytes} bytes`);

  let next = 0;
  while (next < settings.count) {
    const progress = new Int32Array(new SharedArrayBuffer(4)).fill(-1);
    const started = new Float64Array(new SharedArrayBuffer(8));
    const worker = new Worker(self, {
      workerData: { settings, seeds, start: next, progress, started } satisfies WorkerData,
      resourceLimits: { maxOldGenerationSizeMb: settings.heapMb },
      env: { ...process.env, CAFFE_TS_MAX_BLOB_BYTES: String(settings.maxBlobBytes) },
    });
    const resume = await new Promise<number>((resolve) => {
      let finished = false;
      const finish = (n: number) => {
        if (finished) return;
        finished = true;
        clearInterval(watch);
        resolve(n);
      };
      const current = () => Atomics.load(progress, 0);
      const watch = setInterval(() => {
        const i = current();
        if (i >= 0 && Date.now() - started[0]! > settings.timeoutMs) {
          const input = makeInput(seeds, settings.seed, i);
          save({ index: i, reader: '(all)', seed: input.seed, mutation: input.mutation, kind: 'timeout', error: `no result after ${settings.timeoutMs} ms` });
          void worker.terminate();
          finish(i + 1);
        }
      }, 200);
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'crash') save(m.crash);
        else {
          mergeSummary(summary, m.summary);
          if (m.type === 'done') finish(settings.count);
          else process.stdout.write(`  ${summary.inputsDone} inputs, ${summary.crashes.length} crashes, ${Math.round((Date.now() - t0) / 1000)} s\n`);
        }
      });
      worker.on('error', (e) => {
        const i = current();
        if (i < 0) {
          console.error(`worker failed outside an input: ${describeError(e)}`);
          finish(settings.count);
          return;
        }
        const input = makeInput(seeds, settings.seed, i);
        const oom = (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
        save({ index: i, reader: '(all)', seed: input.seed, mutation: input.mutation, kind: oom ? 'out-of-memory' : 'worker-exit', error: describeError(e) });
        finish(i + 1);
      });
      worker.on('exit', (code) => {
        const i = current();
        if (!finished && i >= 0) {
          const input = makeInput(seeds, settings.seed, i);
          save({ index: i, reader: '(all)', seed: input.seed, mutation: input.mutation, kind: 'worker-exit', error: `worker exited with code ${code}` });
          finish(i + 1);
        } else finish(settings.count);
      });
    });
    next = resume;
  }
  summary.elapsedMs = Date.now() - t0;
  rmSync(settings.scratch, { recursive: true, force: true });
  mkdirSync(settings.outDir, { recursive: true });
  const out = join(settings.outDir, 'last-run.json');
  writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  console.log(`fuzz: ${summary.inputsDone} inputs in ${(summary.elapsedMs / 1000).toFixed(1)} s, ${summary.crashes.length} crash(es); summary in ${out}`);
  for (const [name, st] of Object.entries(summary.readers)) {
    const typed = Object.entries(st.typed)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(`  ${name}: ${st.tried} tried, ${st.ok} ok, ${st.crashes} crashes; typed errors: ${typed || 'none'}`);
  }
  return summary.crashes.length > 0 ? 1 : 0;
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(describeError(e));
      process.exit(2);
    },
  );
} else {
  // A failure outside an input (loading h5wasm, the scratch folder) reaches the main thread as the worker's error.
  void workerMain(workerData as WorkerData);
}
