import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter, readNetWeights, saveNet } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { encodeWeights, fetchWeights, loadWeights, saveWeights, weightsCacheDir, zooModel } from '@caffe-ts/zoo';
import { corpus, hasCorpus, tempDir } from './helpers.js';

const tmp = tempDir('caffe-weights-');
let server: Server;
let base = '';
const requests: string[] = [];
let modelBytes: Uint8Array;

/** LeNet (zoo deploy) with gaussian params, and a fresh unfilled copy to load into. */
function lenet(filled: boolean): Net {
  const param = readNetParameter(zooModel('lenet').files.deploy!, { log: false });
  if (filled) {
    for (const l of param.layer) {
      const p = l.convolution_param ?? l.inner_product_param;
      if (p) p.weight_filler = { type: 'gaussian', std: 0.1 } as never;
      if (p) p.bias_filler = { type: 'gaussian', std: 0.1 } as never;
    }
  }
  return new Net(param, { phase: Phase.TEST, log: false });
}
const source = lenet(true);

beforeAll(async () => {
  const file = join(tmp.path, 'lenet.caffemodel');
  saveNet(source, file);
  modelBytes = readFileSync(file);
  // A local server only: nothing leaves the machine in tests.
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/models/lenet.caffemodel') {
      res.writeHead(200, { 'content-length': String(modelBytes.length) });
      res.end(Buffer.from(modelBytes));
    } else {
      res.writeHead(404);
      res.end('not here');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  tmp.remove();
});

/** Positions where two arrays differ (a count: deep-equal on 400k elements is slow). */
function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function expectSameParams(a: Net, b: Net): void {
  for (const [name, blobs] of a.params) blobs.forEach((blob, j) => expect(mismatches(b.params.get(name)![j]!.cpuData(), blob.cpuData()), `${name}[${j}]`).toBe(0));
}

describe('loadWeights', () => {
  it('downloads a checksummed URL once into the cache and loads it', async () => {
    const cacheDir = join(tmp.path, 'cache');
    const sha256 = createHash('sha256').update(modelBytes).digest('hex');
    const net = lenet(false);
    const path = await loadWeights(net, { url: `${base}/models/lenet.caffemodel`, sha256 }, { cacheDir, progress: false });
    expect(path.startsWith(cacheDir)).toBe(true);
    expectSameParams(source, net);
    // Second time: from the cache, no request.
    const sha1 = createHash('sha1').update(modelBytes).digest('hex');
    const again = await fetchWeights({ url: `${base}/models/lenet.caffemodel`, sha256 }, { cacheDir, progress: false });
    expect(again).toBe(path);
    expect(requests.filter((r) => r === '/models/lenet.caffemodel')).toHaveLength(1);
    // sha1 works too (its own cache entry), with the progress bar asked for (stderr here is no TTY).
    await fetchWeights({ url: `${base}/models/lenet.caffemodel`, sha1 }, { cacheDir, progress: true });
    expect(readdirSync(cacheDir).sort()).toHaveLength(2);
  });

  it('rejects a checksum mismatch without caching, HTTP errors and missing checksums', async () => {
    const cacheDir = join(tmp.path, 'cache2');
    await expect(fetchWeights({ url: `${base}/models/lenet.caffemodel`, sha1: '0'.repeat(40) }, { cacheDir, progress: false })).rejects.toThrow(
      /Checksum mismatch for .*lenet.caffemodel: expected sha1 0{40}, got [0-9a-f]{40} \(\d+ bytes\); nothing was cached/,
    );
    expect(readdirSync(cacheDir)).toEqual([]);
    await expect(fetchWeights({ url: `${base}/nope.caffemodel`, sha1: '0'.repeat(40) }, { cacheDir, progress: false })).rejects.toThrow(/HTTP 404/);
    await expect(fetchWeights({ url: `${base}/models/lenet.caffemodel` }, { cacheDir })).rejects.toThrow(/without a checksum/);
    await expect(fetchWeights({ path: join(tmp.path, 'missing.caffemodel') })).rejects.toThrow(/does not exist/);
  });

  it('uses $CAFFE_TS_CACHE_DIR, else ~/.cache/caffe-ts', () => {
    const prev = process.env.CAFFE_TS_CACHE_DIR;
    try {
      process.env.CAFFE_TS_CACHE_DIR = '/tmp/somewhere';
      expect(weightsCacheDir()).toBe('/tmp/somewhere');
      delete process.env.CAFFE_TS_CACHE_DIR;
      expect(weightsCacheDir()).toMatch(/\.cache\/caffe-ts$/);
    } finally {
      if (prev === undefined) delete process.env.CAFFE_TS_CACHE_DIR;
      else process.env.CAFFE_TS_CACHE_DIR = prev;
    }
  });

  it.skipIf(!hasCorpus)('loads V1 binary weights from a path (cifar10_quick_iter_5000 into the zoo net)', async () => {
    const net = new Net(readNetParameter(zooModel('cifar10_quick').files.deploy!, { log: false }), { log: false });
    await loadWeights(net, { path: corpus('weights', 'cifar10_quick_ikkichung', 'cifar10_quick_iter_5000.caffemodel') });
    for (const name of ['conv1', 'conv2', 'conv3', 'ip1', 'ip2']) expect(net.params.get(name)![0]!.asumData()).toBeGreaterThan(0);
  });
});

describe('saveWeights', () => {
  it('writes a caffemodel that decodes to the same blobs as saveNet', () => {
    const file = join(tmp.path, 'fast.caffemodel');
    saveWeights(source, file);
    expect(existsSync(file)).toBe(true);
    const fast = readNetWeights(file, { log: false });
    const slow = readNetWeights(join(tmp.path, 'lenet.caffemodel'), { log: false });
    const withBlobs = (p: typeof fast) => p.layer.filter((l) => l.blobs.length > 0);
    expect(withBlobs(fast).map((l) => [l.name, l.type])).toEqual(withBlobs(slow).map((l) => [l.name, l.type]));
    withBlobs(fast).forEach((l, i) =>
      l.blobs.forEach((b, j) => {
        const s = withBlobs(slow)[i]!.blobs[j]!;
        expect(b.shape!.dim.map(Number)).toEqual(s.shape!.dim.map(Number));
        expect(b.data.length).toBeGreaterThan(0);
        expect(mismatches(b.data, s.data)).toBe(0);
      }),
    );
    const net = lenet(false);
    net.copyTrainedLayersFrom(readNetWeights(file, { log: false }));
    expectSameParams(source, net);
    expect(encodeWeights(source).length).toBeLessThan(modelBytes.length + 1000);
  });
});
