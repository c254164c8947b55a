import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { caffe, messages, tempDir, zooDir } from './helpers.js';

// CaffeNet's deploy net (grouped convolutions, LRN, dropout in TEST, InnerProduct, Softmax) on
// the gpu backend, with one 67×67 image instead of ten 227×227 ones so gpu.js's wasm or software
// GL mode times it in seconds. The full-size run is in packages/backend-gpu's test:gpu-slow.
describe('caffe time --backend gpu on CaffeNet', () => {
  it('prints per-layer forward and backward times, every layer on the device', async () => {
    const dir = tempDir('caffe-ts-time-gpu-');
    try {
      const model = join(dir.path, 'caffenet.prototxt');
      writeFileSync(model, readFileSync(join(zooDir, 'caffenet/deploy.prototxt'), 'utf8').replace('dim: 10 dim: 3 dim: 227 dim: 227', 'dim: 1 dim: 3 dim: 67 dim: 67'));
      const r = await caffe(['time', '--model', model, '--iterations', '1', '-gpu', '0'], dir.path);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const m = messages(r.log);
      expect(m).toContain('Use backend gpu.');
      for (const layer of ['conv1', 'norm1', 'conv2', 'fc6', 'drop6', 'fc8', 'prob']) {
        expect(m.some((line) => new RegExp(`^\\s*${layer}\\tforward: [\\d.e+-]+ ms\\.$`).test(line)), `${layer} forward time`).toBe(true);
        expect(m.some((line) => new RegExp(`^\\s*${layer}\\tbackward: [\\d.e+-]+ ms\\.$`).test(line)), `${layer} backward time`).toBe(true);
      }
      expect(m.some((line) => /^Average Forward pass: [\d.]+ ms\.$/.test(line))).toBe(true);
    } finally {
      dir.remove();
    }
  }, 120_000);
});
