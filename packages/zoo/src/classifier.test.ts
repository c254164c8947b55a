import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter } from '@caffe-ts/proto';
import { Classifier, topK } from './classifier.js';
import { cropFloatImage, oversample, oversampleOrigins, resizeFloatImage, Transformer, type FloatImage } from './transformer.js';

/** An H×W×3 image whose pixel (y, x) holds (y, x, 0.5) so crops reveal where they came from. */
function coordImage(h: number, w: number): FloatImage {
  const data = new Float32Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([y, x, 0.5], (y * w + x) * 3);
  return { height: h, width: w, channels: 3, data };
}
const at = (img: FloatImage, y: number, x: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('oversample', () => {
  it('takes 4 corners, the centre, then their mirrors (pycaffe geometry)', () => {
    // 256×256 → 227×227, as CaffeNet: centre starts at trunc(128 − 113.5) = 14.
    expect(oversampleOrigins(256, 256, 227, 227)).toEqual([[0, 0], [0, 29], [29, 0], [29, 29], [14, 14]]);
    const crops = oversample([coordImage(8, 10)], 5, 4);
    expect(crops).toHaveLength(10);
    for (const c of crops) expect([c.height, c.width, c.channels]).toEqual([5, 4, 3]);
    const origins = [[0, 0], [0, 6], [3, 0], [3, 6], [1, 3]];
    origins.forEach(([y, x], i) => {
      expect(at(crops[i]!, 0, 0)).toEqual([y, x, 0.5]);
      expect(at(crops[i]!, 4, 3)).toEqual([y! + 4, x! + 3, 0.5]);
      // The mirror: same window, columns reversed.
      expect(at(crops[i + 5]!, 0, 0)).toEqual([y, x! + 3, 0.5]);
      expect(at(crops[i + 5]!, 2, 3)).toEqual([y! + 2, x, 0.5]);
    });
    // Two images: each one's 10 crops are consecutive.
    const two = oversample([coordImage(8, 10), { ...coordImage(8, 10), data: coordImage(8, 10).data.map((v) => v + 100) }], 5, 4);
    expect(two).toHaveLength(20);
    expect(at(two[10]!, 0, 0)).toEqual([100, 100, 100.5]);
  });

  it('crops refuse windows that do not fit', () => {
    expect(() => cropFloatImage(coordImage(4, 4), 1, 1, 4, 2)).toThrow(/crop 4×2 at \(1, 1\) does not fit in a 4×4 image/);
  });
});

describe('Transformer', () => {
  it('transposes, swaps channels, scales, subtracts the mean, scales the input, and inverts', () => {
    const t = new Transformer({ data: [1, 3, 2, 2] });
    t.setTranspose('data', [2, 0, 1]);
    t.setChannelSwap('data', [2, 1, 0]);
    t.setRawScale('data', 255);
    t.setMean('data', [10, 20, 30]);
    t.setInputScale('data', 0.5);
    const img: FloatImage = { height: 2, width: 2, channels: 3, data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 0, 0.2]) };
    const out = t.preprocess('data', img);
    // Output channel 0 = input channel 2 (B of RGB), ×255, −10, ×0.5.
    expect(out[0]).toBeCloseTo((0.3 * 255 - 10) * 0.5, 4);
    expect(out[3]).toBeCloseTo((0.2 * 255 - 10) * 0.5, 4);
    expect(out[4 + 1]).toBeCloseTo((0.5 * 255 - 20) * 0.5, 4);
    expect(out[8 + 2]).toBeCloseTo((0.7 * 255 - 30) * 0.5, 4);
    const back = t.deprocess('data', out);
    for (let i = 0; i < 12; i++) expect(back.data[i]).toBeCloseTo(img.data[i]!, 5);
    expect(() => t.setMean('data', { shape: [3, 4, 4], data: new Float32Array(48) })).toThrow(/Mean shape \(3, 4, 4\) incompatible with input shape \(3, 2, 2\)/);
    expect(() => t.setChannelSwap('data', [1, 0])).toThrow(/same number of dimensions as the input channels/);
    expect(() => t.preprocess('image', img)).toThrow(/image is not one of the net inputs: data/);
  });

  it('resizes bilinearly with aligned pixel centres', () => {
    const img: FloatImage = { height: 1, width: 2, channels: 1, data: Float32Array.from([0, 1]) };
    expect(Array.from(resizeFloatImage(img, 1, 4).data)).toEqual([0, 0.25, 0.75, 1]);
  });
});

describe('Classifier', () => {
  // A 1×1 convolution that copies channel 0, then global average pooling: the score of "class 0"
  // is the mean of the crop's channel 0 after preprocessing.
  const net = () => {
    const n = new Net(
      parseNetParameter(`name: "probe"
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
        layer { name: "pool" type: "Pooling" bottom: "conv" top: "score" pooling_param { pool: AVE global_pooling: true } }`),
      { log: false },
    );
    const w = n.params.get('conv')![0]!.mutableCpuData();
    w.set([1, 0, 0, 0, 1, 0]); // class 0 ← channel 0, class 1 ← channel 1
    return n;
  };

  it('feeds 10 crops per image and averages their scores', () => {
    const c = new Classifier(net(), { imageDims: [6, 6], channelSwap: [2, 1, 0], rawScale: 1 });
    const img = coordImage(6, 6);
    const crops = c.crops([img]);
    expect(crops).toHaveLength(10);
    const [scores] = c.predict([img]);
    // Class 1 reads G = x: averaged over the 10 crops' pixels (mirrors have the same x values).
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const expected = mean(crops.map((cr) => mean(Array.from({ length: 16 }, (_, i) => cr.data[i * 3 + 1]!))));
    expect(scores![1]).toBeCloseTo(expected, 5);
    expect(c.net.blob('data').shape).toEqual([10, 3, 4, 4]);
    // Class 0 reads input channel 2 = the constant 0.5 after the swap.
    expect(scores![0]).toBeCloseTo(0.5, 6);
    // Centre only: one crop, at rows/cols 1..4.
    const [centre] = c.predict([img], false);
    expect(centre![1]).toBeCloseTo(2.5, 5);
    expect(c.net.blob('data').shape).toEqual([1, 3, 4, 4]);
  });

  it('topK orders by score, ties by index', () => {
    expect(topK([0.1, 0.5, 0.5, 0.9, 0], 3)).toEqual([3, 1, 2]);
  });
});
