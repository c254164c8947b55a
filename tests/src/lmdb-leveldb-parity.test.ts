import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeDataSources, convertBundledMnist } from '@caffe-ts/io-leveldb';
import { caffe, messages, tempDir, zooDir } from './helpers.js';

// The same digits converted to LMDB and to LevelDB train to the same losses with a fixed seed:
// both backends hand the Data layer the same records in the same order.
describe('LMDB and LevelDB give identical training', () => {
  const dir = tempDir('caffe-ts-db-parity-');
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  const train = async (backend: 'leveldb' | 'lmdb') => {
    const folder = join(dir.path, backend);
    mkdirSync(folder, { recursive: true });
    await convertBundledMnist('train', join(folder, 'train_db'), { backend });
    await convertBundledMnist('test', join(folder, 'test_db'), { backend });
    const net = readFileSync(join(zooDir, 'lenet/lenet_train_test.prototxt'), 'utf8')
      .replace('"data/mnist/mnist_train_lmdb"', `"${join(folder, 'train_db')}"`)
      .replace('"data/mnist/mnist_test_lmdb"', `"${join(folder, 'test_db')}"`)
      .replaceAll('backend: LMDB', `backend: ${backend.toUpperCase()}`);
    writeFileSync(join(folder, 'net.prototxt'), net);
    writeFileSync(
      join(folder, 'solver.prototxt'),
      [
        `net: "${join(folder, 'net.prototxt')}"`,
        'test_iter: 2', 'test_interval: 20', 'base_lr: 0.01', 'momentum: 0.9', 'weight_decay: 0.0005',
        'lr_policy: "inv"', 'gamma: 0.0001', 'power: 0.75', 'display: 1', 'max_iter: 20',
        'snapshot_after_train: false', 'random_seed: 1701', `snapshot_prefix: "${join(folder, 'lenet')}"`,
      ].join('\n'),
    );
    const r = await caffe(['train', '--solver', join(folder, 'solver.prototxt')], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return messages(r.log).filter((m) => /^Iteration \d+[ ,].*loss = |Test net output/.test(m)).map((m) => m.replace(/\(.*iter\/s.*\), /, ''));
  };

  it('same loss at every iteration and the same test scores', async () => {
    const level = await train('leveldb');
    const lmdb = await train('lmdb');
    expect(level.length).toBeGreaterThan(20);
    expect(lmdb).toEqual(level);
  });
});
