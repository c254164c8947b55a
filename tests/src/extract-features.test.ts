import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { closeDataSources, convertBundledMnist, registerDataLayers } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, readNetParameter, saveNet } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { caffe, messages, readDatums, tempDir, zooDir } from './helpers.js';

// `caffe extract_features` end to end: the zoo's LeNet train/test net (its TEST data layer reads the
// bundled digits' LMDB, batches of 100), weights from a caffemodel written here, two blobs into two
// databases; every stored feature equals the same blob of the same net run forward in this process.

const lenet = join(zooDir, 'lenet/lenet_train_test.prototxt');


describe('caffe extract_features', () => {
  const dir = tempDir('caffe-ts-extract-');
  const weights = join(dir.path, 'lenet.caffemodel');
  const registry = new LayerRegistry();
  registerBuiltinLayers(registry);
  registerDataLayers(registry);

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'data/mnist'), { recursive: true });
    await convertBundledMnist('test', join(dir.path, 'data/mnist/mnist_test_lmdb'), { backend: 'lmdb' });
    // Weights from the net's own fillers (a fixed seed), saved as a caffemodel.
    const cwd = process.cwd();
    process.chdir(dir.path);
    try {
      const net = await Net.create(readNetParameter(lenet), { phase: Phase.TEST, registry, log: false, rng: new Rng(5) });
      saveNet(net, weights);
      await net.close();
    } finally {
      process.chdir(cwd);
    }
  }, 120_000);
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  it('stores ip2 and pool2 of three batches as Datums equal to an in-process forward', async () => {
    const run = await caffe(['extract_features', weights, lenet, 'ip2,pool2', 'feat_ip2,feat_pool2', '3', 'lmdb', 'CPU'], dir.path);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const said = messages(run.log);
    expect(said).toContain('Using CPU');
    expect(said).toContain('Extracting Features');
    expect(said).toContain('Extracted features of 300 query images for feature blob ip2');
    expect(said).toContain('Extracted features of 300 query images for feature blob pool2');
    expect(said[said.length - 1]).toBe('Successfully extracted the features!');

    const ip2 = await readDatums(join(dir.path, 'feat_ip2'), 'lmdb');
    const pool2 = await readDatums(join(dir.path, 'feat_pool2'), 'lmdb');
    expect(ip2).toHaveLength(300);
    expect(pool2).toHaveLength(300);
    expect(ip2[0]!.key).toBe('0000000000');
    expect(ip2[299]!.key).toBe('0000000299');
    expect(ip2[0]!.datum).toMatchObject({ channels: 10, height: 1, width: 1 });
    expect(pool2[0]!.datum).toMatchObject({ channels: 50, height: 4, width: 4 });

    // The same net, weights and digits here: the TEST data layer reads the LMDB from its start.
    const cwd = process.cwd();
    process.chdir(dir.path);
    const net = await Net.create(readNetParameter(lenet), { phase: Phase.TEST, registry, log: false });
    let worst = 0;
    try {
      copyTrainedLayersFromFile(net, weights);
      for (let b = 0; b < 3; b++) {
        await net.prepare();
        net.forward();
        for (const [name, stored] of [['ip2', ip2], ['pool2', pool2]] as const) {
          const data = net.blob(name).cpuData();
          const dim = data.length / 100;
          for (let n = 0; n < 100; n++) {
            const got = stored[b * 100 + n]!.datum.float_data;
            expect(got.length).toBe(dim);
            for (let d = 0; d < dim; d++) worst = Math.max(worst, Math.abs(got[d]! - data[n * dim + d]!));
          }
        }
      }
    } finally {
      await net.close();
      process.chdir(cwd);
    }
    expect(worst).toBeLessThan(1e-5);
  }, 120_000);

  it('says what is wrong: argument count, db type, an unknown blob, an existing database', async () => {
    const few = await caffe(['extract_features', weights, lenet, 'ip2', 'x', '1'], dir.path);
    expect(few.code).not.toBe(0);
    expect(few.stderr).toMatch(/expected WEIGHTS NET blob1\[,blob2,\.\.\.\] db1\[,db2,\.\.\.\] NUM_MINI_BATCHES DB_TYPE \[CPU\|GPU\] \[DEVICE_ID\], got 5 argument\(s\)/);
    const badType = await caffe(['extract_features', weights, lenet, 'ip2', 'x', '1', 'rocksdb'], dir.path);
    expect(badType.stderr).toMatch(/Unknown db backend rocksdb \(expected leveldb or lmdb\)/);
    const unknown = await caffe(['extract_features', weights, lenet, 'fc7', 'feat_fc7', '1', 'leveldb'], dir.path);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain(`Unknown feature blob name fc7 in the network ${lenet}`);
    const again = await caffe(['extract_features', weights, lenet, 'ip2', 'feat_ip2', '1', 'lmdb'], dir.path);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/cannot create LMDB database '.*feat_ip2' for the features: it already exists/);
  }, 60_000);
});
