/*
 * The same random_seed gives the same initial weights (Caffe's reproducibility) whichever way
 * `caffe train` runs: the default (split replicas, reading a LevelDB on this thread alone in
 * chunked split, or one thread where the net cannot be divided, e.g. a LevelDB with the static
 * split), `--workers 1`, and `--workers N --split_batch`; and the Solver API
 * agrees with the CLI. A fallback used to build the train net twice, so the weights came from
 * the filler draws after a discarded net's.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultLayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { formatKey, openDatumDb, registerDataLayers } from '@caffe-ts/io-leveldb';
import { createMessage, decodeNetParameter, encodeDatum, parseNetParameter, type Datum, type SolverParameter } from '@caffe-ts/proto';
import { createNodeSolver, loadSolverFromFile } from '@caffe-ts/solver/node';
import { availableCores, createParallelSolver } from '@caffe-ts/solver/parallel';
import { createSolver, type Solver } from '@caffe-ts/solver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffe, tempDir, withWorkersEnv } from './helpers.js';

const REGISTER = ['@caffe-ts/io-leveldb/register'];
let dir: ReturnType<typeof tempDir>;

/** Two fillers that draw from the RNG (gaussian, xavier) and a data layer whose transformer forks it. */
function net(source: string, backend: 'LMDB' | 'LEVELDB'): string {
  return `name: "seeded"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "${source}" backend: ${backend} batch_size: 4 } transform_param { scale: 0.00390625 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "uniform" min: -0.1 max: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
`;
}

function solver(netFile: string, prefix: string, maxIter: number): string {
  return `net: "${netFile}"\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: ${maxIter}\ndisplay: 1\nrandom_seed: 1701\nsnapshot_prefix: "${prefix}"\n`;
}

beforeAll(async () => {
  registerBuiltinLayers(defaultLayerRegistry());
  registerDataLayers(defaultLayerRegistry());
  dir = tempDir('caffe-ts-parallel-seed-');
  // The same 16 records in an LMDB (which replicas can share) and a LevelDB (which they cannot).
  for (const backend of ['lmdb', 'leveldb'] as const) {
    const db = await openDatumDb(join(dir.path, backend), { mode: 'new', backend });
    const w = db.writer();
    for (let i = 0; i < 16; i++) {
      const data = Uint8Array.from({ length: 4 }, (_, p) => (p * 53 + i * 29) % 256);
      await w.put(formatKey(i), encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 2, width: 2, data, label: i % 3 })));
    }
    await w.close();
    await db.close();
  }
  writeFileSync(join(dir.path, 'lmdb.prototxt'), net('lmdb', 'LMDB'));
  writeFileSync(join(dir.path, 'leveldb.prototxt'), net('leveldb', 'LEVELDB'));
});
afterAll(() => dir?.remove());


/** The learnable blobs of a .caffemodel, as raw float32 bits. */
function modelBits(file: string): Uint32Array[] {
  const model = decodeNetParameter(readFileSync(file));
  return model.layer.flatMap((l) => l.blobs.map((b) => new Uint32Array(Float32Array.from(b.data).buffer)));
}

/** The solver's learnable params, as raw bits. */
function paramBits(s: Solver): Uint32Array[] {
  return s.net.learnableParams.map((b) => new Uint32Array(Float32Array.from(b.cpuData()).buffer));
}

interface Path {
  name: string;
  net: 'lmdb' | 'leveldb';
  args: string[];
  /** What the log must say about data parallelism (the fallback must be the one under test). */
  expect?: RegExp;
  /** Environment variables set while it runs. */
  env?: Record<string, string>;
}

/** Run `fn` with `env` set in process.env (restored after). */
async function withEnv<T>(env: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = Object.keys(env ?? {}).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env ?? {});
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const PATHS: Path[] = [
  // The default on a LevelDB: split in chunks, this thread alone reading the database.
  { name: 'default-leveldb', net: 'leveldb', args: [], expect: /Data-parallel training: \d+ replicas \(each batch split among them\).*each batch read on this thread in \d+ chunks/ },
  // Split with each replica reading its shard (no chunks): no LevelDB there, so it trains on this thread.
  { name: 'static-leveldb', net: 'leveldb', args: [], env: { CAFFE_TS_PARALLEL_CHUNKS: 'off' }, expect: /Data-parallel training off \(Data layer 'data' reads a LevelDB/ },
  { name: 'one-leveldb', net: 'leveldb', args: ['--workers', '1'] },
  { name: 'one-lmdb', net: 'lmdb', args: ['--workers', '1'] },
  { name: 'split-lmdb', net: 'lmdb', args: ['--workers', '2', '--split_batch'], expect: /Data-parallel training: 2 replicas \(each batch split among them\)/ },
];

describe('random_seed gives the same initial weights with and without workers', () => {
  it('caffe train: default fallback, --workers 1 and split ×2 start from the same weights and iteration-0 loss', async () => {
    const weights: Uint32Array[][] = [];
    const loss0: string[] = [];
    for (const p of PATHS) {
      // max_iter 0: the snapshot after training holds the initial weights.
      writeFileSync(join(dir.path, `${p.name}_init.prototxt`), solver(`${p.net}.prototxt`, `${p.name}_init`, 0));
      const init = await withEnv(p.env, () =>
        withWorkersEnv(undefined, () => caffe(['train', '--solver', `${p.name}_init.prototxt`, ...p.args], dir.path)),
      );
      expect(init.stderr).toBe('');
      expect(init.code).toBe(0);
      // On one core the default has no workers to fall back from (still the same weights).
      if (p.expect && availableCores() >= 2) expect(init.log.join('\n')).toMatch(p.expect);
      weights.push(modelBits(join(dir.path, `${p.name}_init_iter_0.caffemodel`)));
      // max_iter 1: the first step's loss, over the whole batch on every path.
      writeFileSync(join(dir.path, `${p.name}_step.prototxt`), solver(`${p.net}.prototxt`, `${p.name}_step`, 1) + 'snapshot_after_train: false\n');
      const step = await withEnv(p.env, () =>
        withWorkersEnv(undefined, () => caffe(['train', '--solver', `${p.name}_step.prototxt`, ...p.args], dir.path)),
      );
      expect(step.code).toBe(0);
      const line = step.log.map((l) => /Iteration 0 \([^)]*\), loss = (\S+)/.exec(l)?.[1]).find((v) => v !== undefined);
      expect(line).toBeDefined();
      loss0.push(line!);
    }
    expect(weights[0]!.length).toBe(4);
    for (let i = 1; i < weights.length; i++) {
      expect({ path: PATHS[i]!.name, bits: weights[i] }).toEqual({ path: PATHS[i]!.name, bits: weights[0] });
      expect({ path: PATHS[i]!.name, loss: loss0[i] }).toEqual({ path: PATHS[i]!.name, loss: loss0[0] });
    }
  });

  it('the Solver API (sync and async, with the optional fallback) matches the CLI', async () => {
    const param = (backend: 'lmdb' | 'leveldb') =>
      createMessage<SolverParameter>('SolverParameter', {
        net_param: parseNetParameter(net(join(dir.path, backend), backend === 'lmdb' ? 'LMDB' : 'LEVELDB')),
        base_lr: 0.1,
        lr_policy: 'fixed',
        max_iter: 0,
        random_seed: 1701,
      });
    const common = { log: false, rootDir: dir.path };
    const cli = modelBits(join(dir.path, 'one-leveldb_init_iter_0.caffemodel'));
    const solvers: [string, Solver][] = [];
    try {
      writeFileSync(join(dir.path, 'api.prototxt'), solver('leveldb.prototxt', 'api', 0));
      solvers.push(['loadSolverFromFile', await loadSolverFromFile(join(dir.path, 'api.prototxt'), common)]);
      solvers.push(['createNodeSolver', await createNodeSolver(param('leveldb'), common)]);
      // Chunked split reads the LevelDB on this thread alone; the static split falls back to one thread.
      solvers.push(['createParallelSolver split, LevelDB (chunked)', await createParallelSolver(param('leveldb'), { workers: 2, mode: 'split', register: REGISTER, log: false }, common)]);
      solvers.push(['createParallelSolver optional (fallback)', await createParallelSolver(param('leveldb'), { workers: 2, mode: 'split', chunks: 0, optional: true, register: REGISTER, log: false }, common)]);
      solvers.push(['createParallelSolver split', await createParallelSolver(param('lmdb'), { workers: 2, mode: 'split', register: REGISTER, log: false }, common)]);
      for (const [name, s] of solvers) expect({ name, bits: paramBits(s) }).toEqual({ name, bits: cli });
    } finally {
      for (const [, s] of solvers) await s.close();
    }
    // The synchronous constructor (no async data layers): the same draws as the async build.
    const input = (): SolverParameter =>
      createMessage<SolverParameter>('SolverParameter', {
        net_param: parseNetParameter(net('unused', 'LMDB').replace(/layer \{ name: "data".*\n/, 'layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 1 dim: 2 dim: 2 } shape { dim: 4 } } }\n')),
        base_lr: 0.1,
        lr_policy: 'fixed',
        max_iter: 0,
        random_seed: 1701,
      });
    const sync = createSolver(input(), common);
    const async = await createNodeSolver(input(), common);
    try {
      expect(paramBits(sync)).toEqual(paramBits(async));
    } finally {
      await sync.close();
      await async.close();
    }
  });
});
