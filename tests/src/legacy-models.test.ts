import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { setLogSink } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, loadNetFromFile, readNetParameter, readNetWeights } from '@caffe-ts/net/node';
import { createMessage, Phase, type LayerParameter } from '@caffe-ts/proto';
import { corpus, hasCorpus, messages } from './helpers.js';

// Real V1 files: BVLC-era nets written with `layers { type: CONVOLUTION ... }` and a caffemodel
// saved in the V1 binary format. They must upgrade on read, as Caffe's UpgradeNetAsNeeded does.
const registry = registerBuiltinLayers(new LayerRegistry());

/** Run `fn`, returning the Caffe log messages it produced. */
function logged<T>(fn: () => T): { result: T; log: string[] } {
  const lines: string[] = [];
  const prev = setLogSink((line) => {
    lines.push(line);
  });
  try {
    return { result: fn(), log: messages(lines) };
  } finally {
    setLogSink(prev);
  }
}

describe.skipIf(!hasCorpus)('legacy V1 models from the corpus', () => {
  it.each([
    ['age_net', 1, 8],
    ['gender_net', 10, 2],
  ])('%s/deploy.prototxt (V1 text) upgrades and builds', (name, batch, classes) => {
    const file = corpus('nets', name, 'deploy.prototxt');
    const { result: net, log } = logged(() => loadNetFromFile(file, { registry }));
    expect(log).toContain(`Attempting to upgrade input file specified using deprecated V1LayerParameter: ${file}`);
    expect(log).toContain('Successfully upgraded file specified using deprecated V1LayerParameter');
    expect(net.layerNames[0]).toBe('input');
    expect(net.layerNames).toContain('conv1');
    expect(net.blob('data').shape).toEqual([batch, 3, 227, 227]);
    expect(net.blob('prob').shape).toEqual([batch, classes]);
    expect(net.params.get('conv1')!.map((b) => b.shape)).toEqual([
      [96, 3, 7, 7],
      [96],
    ]);
  });

  describe('cifar10_quick_iter_5000.caffemodel (V1 binary) in its V1 prediction_example.prototxt', () => {
    const dir = corpus('weights', 'cifar10_quick_ikkichung');
    const images = ['cat10', 'dog10', 'truck10'] as const;
    // CIFAR-10 class indices: 3 cat, 5 dog, 9 truck.
    const expected = [3, 5, 9];

    /**
     * The prototxt reads its images with an ImageData layer from paths of its own repository;
     * put an Input layer with the same tops in its place and feed the PNGs ourselves.
     */
    function buildNet(): Net {
      const param = readNetParameter(`${dir}/prediction_example.prototxt`, { log: false });
      const data = param.layer[0]!;
      expect(data.type).toBe('ImageData');
      expect(data.image_data_param!.new_height).toBe(32);
      const input = createMessage<LayerParameter>('LayerParameter', {
        name: 'data',
        type: 'Input',
        top: data.top.slice(),
        input_param: { shape: [{ dim: [images.length, 3, 32, 32] }, { dim: [images.length] }] },
      });
      param.layer = [input, ...param.layer.slice(1)];
      return new Net(param, { registry, phase: Phase.TEST, log: false });
    }

    /**
     * What C++ Caffe computes with these files: its ImageData layer reads with OpenCV, so the
     * image's channels come in B, G, R order (0..255), and transform_param subtracts
     * mean.binaryproto channel by channel (no scale in this prototxt). That mean was made by
     * compute_image_mean from the CIFAR-10 LMDB, whose channels keep the CIFAR binary's R, G, B
     * order. The file is not in the corpus; CIFAR-10's per-channel training means in that order
     * (R 125.3, G 123.0, B 113.9) stand in for the per-pixel image.
     */
    const MEAN = [125.3, 123.0, 113.9];
    function loadImage(name: string, out: Float32Array | Float64Array, offset: number): void {
      const png = PNG.sync.read(readFileSync(`${dir}/${name}.png`));
      expect([png.width, png.height]).toEqual([32, 32]);
      const plane = 32 * 32;
      for (let i = 0; i < plane; i++) {
        for (let c = 0; c < 3; c++) {
          // BGR plane c holds RGBA byte 2 - c. (Fed in RGB order, the cat comes out a dog.)
          out[offset + c * plane + i] = png.data[i * 4 + (2 - c)]! - MEAN[c]!;
        }
      }
    }

    it('loads the V1 weights by layer name and classifies cat, dog and truck', () => {
      const net = buildNet();
      const weights = logged(() => readNetWeights(`${dir}/cifar10_quick_iter_5000.caffemodel`));
      expect(weights.log).toContain(
        `Attempting to upgrade input file specified using deprecated V1LayerParameter: ${dir}/cifar10_quick_iter_5000.caffemodel`,
      );
      // Every learnable layer of the model carries its blobs through the upgrade.
      const withBlobs = weights.result.layer.filter((l) => l.blobs.length > 0).map((l) => l.name);
      expect(withBlobs).toEqual(['conv1', 'conv2', 'conv3', 'ip1', 'ip2']);

      logged(() => copyTrainedLayersFromFile(net, `${dir}/cifar10_quick_iter_5000.caffemodel`));
      const conv1 = net.params.get('conv1')![0]!.cpuData();
      expect(conv1.some((v) => v !== 0)).toBe(true);

      const data = net.blob('data').mutableCpuData();
      images.forEach((name, n) => loadImage(name, data, n * 3 * 32 * 32));
      net.blob('label').mutableCpuData().set(expected);
      net.forward();

      const prob = net.blob('prob').cpuData();
      const predicted = images.map((_, n) => {
        const row = Array.from(prob.subarray(n * 10, n * 10 + 10));
        return row.indexOf(Math.max(...row));
      });
      expect(predicted).toEqual(expected);
      // The test-phase layers agree: ArgMax's top-1 and a perfect accuracy.
      const argmax = net.blob('argmax').cpuData();
      expect(images.map((_, n) => argmax[n * 5])).toEqual(expected);
      expect(net.blob('accuracy').cpuData()[0]).toBe(1);
    });
  });
});
