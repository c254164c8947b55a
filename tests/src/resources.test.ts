/**
 * Resources stay bounded: a 1,000-layer net builds quickly, memory stays flat over a few hundred
 * training iterations (in a child process with --expose-gc; the 20,000-iteration run is
 * scripts/fuzz/long-run.sh), and opening and closing data sources does not leak file handles.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatumDb } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { corpus, hasCorpus, tempDir } from './helpers.js';

const openFds = () => readdirSync('/proc/self/fd').length;
const hasProcFd = existsSync('/proc/self/fd');

describe('resources', () => {
  it('a net of 1,000 layers builds in under 5 s', () => {
    let text = 'name: "deep"\nlayer { name: "data" type: "Input" top: "x0" input_param { shape { dim: 2 dim: 8 } } }\n';
    for (let i = 1; i < 1000; i++) {
      const type = i % 3 === 0 ? 'InnerProduct' : i % 3 === 1 ? 'ReLU' : 'TanH';
      const extra = type === 'InnerProduct' ? ' inner_product_param { num_output: 8 }' : '';
      text += `layer { name: "l${i}" type: "${type}" bottom: "x${i - 1}" top: "x${i}"${extra} }\n`;
    }
    const t0 = performance.now();
    const net = new Net(parseNetParameter(text), { log: false, registry: registerBuiltinLayers(new LayerRegistry()) });
    const ms = performance.now() - t0;
    expect(net.numLayers).toBe(1000);
    net.forward();
    expect(net.blobs.get('x999')!.shape).toEqual([2, 8]);
    expect(ms).toBeLessThan(5000);
  });

  const solverDist = fileURLToPath(new URL('../../packages/solver/dist/index.js', import.meta.url));
  it.skipIf(!existsSync(solverDist))('memory is flat over a few hundred training iterations (RSS after warm-up vs end within 10 %)', () => {
    // A child with --expose-gc, on the built packages: gc before each reading makes RSS comparable.
    const script = `
      const { createSolver } = await import(${JSON.stringify(solverDist)});
      const { parseNetParameter, createMessage } = await import(${JSON.stringify(fileURLToPath(new URL('../../packages/proto/dist/index.js', import.meta.url)))});
      const { setLogSink } = await import(${JSON.stringify(fileURLToPath(new URL('../../packages/blob/dist/index.js', import.meta.url)))});
      await import(${JSON.stringify(fileURLToPath(new URL('../../packages/layers/dist/register.js', import.meta.url)))});
      setLogSink(() => {});
      const net = parseNetParameter(\`
        layer { name: "d" type: "DummyData" top: "x" top: "t" dummy_data_param { shape { dim: 16 dim: 64 } shape { dim: 16 dim: 4 } data_filler { type: "gaussian" } } }
        layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 64 weight_filler { type: "xavier" } } }
        layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
        layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y" inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }\`);
      const s = createSolver(createMessage('SolverParameter', { net_param: net, base_lr: 0.001, lr_policy: 'fixed', momentum: 0.9, max_iter: 100000, display: 0 }), { log: false });
      const rss = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().rss; };
      await s.step(100);
      const warm = rss();
      await s.step(400);
      const end = rss();
      process.stdout.write(JSON.stringify({ warm, end }));
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const { warm, end } = JSON.parse(r.stdout) as { warm: number; end: number };
    expect(Math.abs(end - warm) / warm).toBeLessThan(0.1);
  }, 60_000);

  it.skipIf(!hasProcFd || !hasCorpus)('opening and closing data sources 50 times leaks no file handles', async () => {
    const lmdb = corpus('data/caffe-made/fashion100_lmdb');
    // LevelDB writes a LOCK file and compacts its log on open: use a copy, never the corpus.
    const tmp = tempDir('caffe-ts-resources-');
    const leveldb = join(tmp.path, 'fashion100_leveldb');
    cpSync(corpus('data/caffe-made/fashion100_leveldb'), leveldb, { recursive: true });
    chmodSync(leveldb, 0o755); // the copy keeps the corpus folder's read-only mode
    const cycle = async (path: string, backend: 'lmdb' | 'leveldb') => {
      const db = await openDatumDb(path, { backend, mode: 'read', ...(backend === 'lmdb' ? { noLock: true } : {}) });
      const cur = db.cursor();
      await cur.next();
      await cur.close();
      await db.close();
    };
    // Warm up (lazy module loads, native handles created once per process).
    await cycle(lmdb, 'lmdb');
    await cycle(leveldb, 'leveldb');
    const before = openFds();
    for (let i = 0; i < 50; i++) {
      await cycle(lmdb, 'lmdb');
      await cycle(leveldb, 'leveldb');
    }
    expect(openFds()).toBe(before);
    tmp.remove();
  }, 60_000);
});
