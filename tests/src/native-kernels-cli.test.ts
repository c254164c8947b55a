/* `caffe … --kernels native`: the commands on @caffe-ts/backend-native's OpenBLAS kernels (the built CLI, as users run it). */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAvailability } from '@caffe-ts/backend-native';
import { formatKey, openDatumDb } from '@caffe-ts/io-leveldb';
import { createMessage, encodeDatum, type Datum } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const bin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));
const caffe = (args: string[], workers = '1') => {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir.path, encoding: 'utf8', env: { ...process.env, CAFFE_TS_WORKERS: workers } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, log: r.stderr.split('\n') };
};

let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  dir = tempDir('caffe-ts-native-cli-');
  const db = await openDatumDb(join(dir.path, 'lmdb'), { mode: 'new', backend: 'lmdb' });
  const w = db.writer();
  for (let i = 0; i < 64; i++) {
    const label = i % 2;
    // Label 0 lights the left half of an 8×8 image, label 1 the right half.
    const data = Uint8Array.from({ length: 64 }, (_, p) => ((p % 8 < 4) === (label === 0) ? 200 : 20) + ((i * 7 + p) % 23));
    await w.put(formatKey(i), encodeDatum(createMessage<Datum>('Datum', { channels: 1, height: 8, width: 8, data, label })));
  }
  await w.close();
  await db.close();
  writeFileSync(
    join(dir.path, 'net.prototxt'),
    `name: "tiny-conv"
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "lmdb" backend: LMDB batch_size: 8 } transform_param { scale: 0.00390625 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 6 kernel_size: 3 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
`,
  );
  writeFileSync(join(dir.path, 'solver.prototxt'), `net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 20\ndisplay: 5\nrandom_seed: 3\nsnapshot_after_train: false\n`);
});

afterAll(() => dir?.remove());

const losses = (r: { log: string[] }) => r.log.flatMap((l) => /Iteration \d+(?: \([^)]*\))?, loss = (\S+)/.exec(l)?.slice(1, 2).map(Number) ?? []);

describe.skipIf(!nativeAvailability().available)('caffe --kernels native', () => {
  it('device_query names the native kernels it runs on', () => {
    const r = caffe(['device_query', '--kernels', 'native']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/GEMM kernel \(float32\): native-openblas/);
    expect(r.stdout).toMatch(/Convolution passes \(float32\): native-openblas/);
    expect(r.stdout).toMatch(/Inference forwards \(float32\): native-openblas/);
    const plain = caffe(['device_query']).stdout;
    expect(plain).toMatch(/Convolution passes \(float32\): the WebAssembly kernels/);
    expect(plain).toMatch(/Inference forwards \(float32\): the WebAssembly packed runner/);
  });

  it('trains as the WebAssembly kernels do, to rounding, on one thread and in two replicas', () => {
    const wasm = caffe(['train', '--solver', 'solver.prototxt']);
    expect(wasm.code, wasm.stderr).toBe(0);
    const a = losses(wasm);
    expect(a).toHaveLength(5);
    expect(a[4]!).toBeLessThan(a[0]! / 2);
    for (const workers of ['1', '2']) {
      const native = caffe(['train', '--solver', 'solver.prototxt', '--kernels', 'native', '--workers', workers, ...(workers === '2' ? ['--split_batch'] : [])]);
      expect(native.code, native.stderr).toBe(0);
      const b = losses(native);
      expect(b).toHaveLength(5);
      b.forEach((l, i) => expect(Math.abs(l - a[i]!), `${workers} worker(s), display ${i}`).toBeLessThan(1e-4 * Math.max(1, a[i]!)));
    }
  });
});

describe('caffe --kernels', () => {
  it('refuses a kernel set it does not know', () => {
    const r = caffe(['device_query', '--kernels', 'cuda']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--kernels expects wasm or native, got 'cuda'/);
  });
});
