import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { readNetParameter } from '@caffe-ts/net/node';
import { Phase } from '@caffe-ts/proto';
import { channelMean, CIFAR10_LABELS, encodeWeights, loadMean, zooModel } from '@caffe-ts/zoo';
import { caffe, corpus, hasCorpus, tempDir } from './helpers.js';

const tmp = tempDir('caffe-classify-');
// The 244-MB CaffeNet weights go to memory-backed /dev/shm where there is one (no disk I/O).
const big = existsSync('/dev/shm') ? { path: mkdtempSync('/dev/shm/caffe-classify-'), remove: () => rmSync(big.path, { recursive: true, force: true }) } : tmp;
afterAll(() => {
  tmp.remove();
  big.remove();
});

const catJpg = corpus('images', 'cat.jpg');

/**
 * Write CaffeNet weights (zoo deploy, 61M params) with pseudo-random values to `path`. The values
 * are one block from a cheap generator, tiled at shifting offsets: a gaussian filler takes a
 * minute on the shared machine, a per-element loop over 61M a second. The file is written as
 * saveWeights writes it but without its fsync of 244 MB (atomic saving is tested in zoo-weights).
 */
function writeRandomCaffeNet(path: string): void {
  const param = readNetParameter(zooModel('caffenet').files.deploy!, { log: false });
  // Batch 1 for the file: classify reshapes the input to the crops it feeds anyway.
  param.layer[0]!.input_param!.shape[0]!.dim[0] = 1;
  const net = new Net(param, { phase: Phase.TEST, log: false });
  const block = new Float32Array(1 << 20);
  let state = 12345;
  for (let i = 0; i < block.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    block[i] = (state / 2 ** 32 - 0.5) * 0.02;
  }
  let shift = 0;
  for (const blobs of net.params.values()) {
    for (const blob of blobs) {
      const d = blob.mutableCpuData();
      for (let i = 0; i < d.length; ) {
        const n = Math.min(block.length - shift, d.length - i);
        d.set(block.subarray(shift, shift + n), i);
        i += n;
        shift = (shift + 7919) % (block.length >> 1);
      }
    }
  }
  // fc8's biases spread over ±2 so the 1000 scores differ visibly (random ±0.01 weights alone give
  // an all-but-uniform softmax, 0.0010 each, which the deploy net's zero params would give too).
  const bias = net.params.get('fc8')![1]!.mutableCpuData();
  for (let i = 0; i < bias.length; i++) bias[i] = block[i]! * 200;
  writeFileSync(path, encodeWeights(net));
}

describe('caffe classify', () => {
  it.skipIf(!existsSync(catJpg) || !hasCorpus)('runs CaffeNet (zoo deploy, random weights) end to end on cat.jpg and prints the top 5', async () => {
    const weights = join(big.path, 'caffenet_random.caffemodel');
    writeRandomCaffeNet(weights);
    // Caffe's synset_words.txt format: WordNet ID, then comma-separated names.
    const labels = join(tmp.path, 'synset_words.txt');
    writeFileSync(labels, Array.from({ length: 1000 }, (_, i) => `n${String(i).padStart(8, '0')} class ${i}, alias ${i}`).join('\n') + '\n');
    const run = await caffe(
      ['classify', '--model', zooModel('caffenet').files.deploy!, '--weights', weights, '--image', catJpg, '--labels', labels, '--mean', corpus('data', 'ilsvrc_2012_mean.npy'), '--center_only'],
      tmp.path,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(5);
    const scores = lines.map((l) => {
      const m = /^(\d\.\d{4}) - "n\d{8} class (\d+), alias \2"$/.exec(l);
      expect(m, l).not.toBeNull();
      return Number(m![1]);
    });
    for (let i = 1; i < 5; i++) expect(scores[i]).toBeLessThanOrEqual(scores[i - 1]!);
    // The weights were loaded: with the deploy net's own (zero) params every class scores 0.0010.
    expect(scores[0]).toBeGreaterThan(0.003);
    expect(run.log.some((l) => /Classified .*cat\.jpg .* \(centre crop\)/.test(l))).toBe(true);
  }, 120_000);

  it.skipIf(!hasCorpus)('classifies cat10.png as a cat with the corpus CIFAR-10 quick V1 weights', async () => {
    const dir = corpus('weights', 'cifar10_quick_ikkichung');
    const labels = join(tmp.path, 'cifar10_labels.txt');
    writeFileSync(labels, CIFAR10_LABELS.join('\n') + '\n');
    const expected: Record<string, string> = { cat10: 'cat', dog10: 'dog', truck10: 'truck' };
    for (const [image, label] of Object.entries(expected)) {
      // Caffe's own CIFAR-10 quick deploy net; the per-channel means stand in for the training
      // mean.binaryproto (not published), in the order that model's Caffe pipeline subtracted them.
      const run = await caffe(
        [
          'classify', '--model', corpus('nets', 'cifar10', 'cifar10_quick.prototxt'),
          '--weights', join(dir, 'cifar10_quick_iter_5000.caffemodel'),
          '--image', join(dir, `${image}.png`), '--labels', labels,
          '--mean_values', '125.3,123.0,113.9', '--images_dim', '32,32', '--center_only',
        ],
        tmp.path,
      );
      expect(run.stderr).toBe('');
      const lines = run.stdout.trim().split('\n');
      expect(lines).toHaveLength(5);
      expect(lines[0], `${image}: ${run.stdout}`).toMatch(new RegExp(`^\\d\\.\\d{4} - "${label}"$`));
    }
  });

  it.skipIf(!hasCorpus)('reads mean files: ImageNet mean .npy and a .binaryproto', () => {
    const npy = loadMean(corpus('data', 'ilsvrc_2012_mean.npy'));
    expect(npy.shape).toEqual([3, 256, 256]);
    // BVLC's per-channel values (B, G, R) are the rounded averages of this image.
    expect(channelMean(npy).map(Math.round)).toEqual([104, 117, 123]);
    const proto = loadMean(corpus('nets', 'age_net', 'mean.binaryproto'));
    expect(proto.shape).toEqual([3, 256, 256]);
    for (const v of channelMean(proto)) expect(v).toBeGreaterThan(50);
  });

  it('reports usage mistakes in one line', async () => {
    const run = await caffe(['classify', '--model', 'x.prototxt', '--weights', 'w.caffemodel'], tmp.path);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/Need an image to classify/);
    const both = await caffe(['classify', '--model', 'x', '--weights', 'w', '--image', 'a.jpg', '--mean', 'm.npy', '--mean_values', '1,2,3'], tmp.path);
    expect(both.stderr).toMatch(/either --mean or --mean_values/);
  });
});
