import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { parseNetParameter } from '@caffe-ts/proto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detect, DetectError, drawDetections, readLabels, resizeBilinear, type DetectImage } from './detect.js';
import { registerContribLayers } from './index.js';

/**
 * A detector whose answer is known: loc predictions are 0 (the prior box itself), the class-1
 * logit is the mean of the blue channel minus 100, and one prior of min_size 4 sits at the
 * centre of the 1×1 map: the box (0.25, 0.25)–(0.75, 0.75) of an 8×8 input.
 */
const NET = `
  input: 'data' input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
  layer { name: 'loc' type: 'Convolution' bottom: 'data' top: 'loc'
          convolution_param { num_output: 4 kernel_size: 8 weight_filler { type: 'constant' value: 0 } } }
  layer { name: 'logit' type: 'Convolution' bottom: 'data' top: 'logit'
          convolution_param { num_output: 2 kernel_size: 8 weight_filler { type: 'constant' value: 0 }
                              bias_filler { type: 'constant' value: 0 } } }
  layer { name: 'conf' type: 'Softmax' bottom: 'logit' top: 'conf' }
  layer { name: 'loc_flat' type: 'Flatten' bottom: 'loc' top: 'loc_flat' }
  layer { name: 'conf_flat' type: 'Flatten' bottom: 'conf' top: 'conf_flat' }
  layer { name: 'prior' type: 'PriorBox' bottom: 'loc' bottom: 'data' top: 'prior' prior_box_param { min_size: 4 } }
  layer { name: 'det' type: 'DetectionOutput' bottom: 'loc_flat' bottom: 'conf_flat' bottom: 'prior' top: 'det'
          detection_output_param { num_classes: 2 confidence_threshold: 0.01 code_type: CENTER_SIZE } }
`;

function makeNet(): Net {
  const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
  const net = new Net(parseNetParameter(NET), { registry, log: false });
  // logit[1] = mean(B) − 100 = Σ_B / 64 − 100.
  const w = net.layer('logit').blobs[0]!.mutableCpuData();
  for (let i = 0; i < 64; i++) w[192 + i] = 1 / 64;
  net.layer('logit').blobs[1]!.mutableCpuData().set([0, -100]);
  return net;
}

const solid = (h: number, w: number, bgr: [number, number, number]): DetectImage => {
  const data = new Uint8Array(h * w * 3);
  for (let i = 0; i < h * w; i++) data.set(bgr, i * 3);
  return { height: h, width: w, channels: 3, data };
};

describe('detect()', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'contrib-detect-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('resizes, subtracts the mean, runs the net and maps boxes to image pixels', () => {
    const net = makeNet();
    // Blue 150, mean 50 → logit 100 − 100 = 0 vs class 0's 0: score 0.5.
    const { detections, inputSize } = detect(net, solid(20, 40, [150, 0, 0]), { mean: [50, 0, 0], confidence: 0.4, labels: ['bg', 'thing'] });
    expect(inputSize).toEqual({ height: 8, width: 8 });
    expect(detections).toHaveLength(1);
    const [d] = detections;
    expect(d!.label).toBe(1);
    expect(d!.name).toBe('thing');
    expect(d!.score).toBeCloseTo(0.5, 6);
    expect(d!.normalized).toEqual({ xmin: 0.25, ymin: 0.25, xmax: 0.75, ymax: 0.75 });
    expect(d!.box).toEqual({ xmin: 10, ymin: 5, xmax: 30, ymax: 15 });
    // scale 2 doubles the logit: 200 − 100 = 100, score ≈ 1; a threshold above 0.5 drops the first.
    expect(detect(net, solid(8, 8, [100, 0, 0]), { scale: 2, confidence: 0.9 }).detections[0]!.score).toBeCloseTo(1, 6);
    expect(detect(net, solid(8, 8, [100, 0, 0]), { confidence: 0.9 }).detections).toEqual([]);
  });

  it('reshapes the input to inputSize and explains misuse', () => {
    const net = makeNet();
    expect(() => detect(net, solid(8, 8, [0, 0, 0]), { mean: [1, 2] })).toThrow(DetectError);
    expect(() => detect(net, solid(8, 8, [0, 0, 0]), { mean: [1, 2] })).toThrow('give 1 or 3 mean values (got 2)');
    expect(() => detect(net, { height: 8, width: 8, channels: 1, data: new Uint8Array(64) })).toThrow(
      "the net's input 'data' takes 3 channel(s) but the image has 1",
    );
    expect(() => detect(net, solid(8, 8, [0, 0, 0]), { output: 'conf' })).toThrow(/blob 'conf' is a detection blob/);
  });

  it('resizeBilinear keeps a constant image constant and interpolates a ramp', () => {
    expect(Array.from(resizeBilinear(solid(3, 5, [7, 8, 9]), 4, 2).data)).toEqual(Array.from(solid(4, 2, [7, 8, 9]).data));
    const ramp: DetectImage = { height: 1, width: 2, channels: 1, data: new Uint8Array([0, 100]) };
    // Pixel centres: output x = 0..3 samples input x = −0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1).
    expect(Array.from(resizeBilinear(ramp, 1, 4).data)).toEqual([0, 25, 75, 100]);
  });

  it('reads labels from a LabelMap prototxt or a plain list', () => {
    const map = join(dir, 'labelmap.prototxt');
    writeFileSync(map, "item { name: 'none_of_the_above' label: 0 display_name: 'background' }\nitem { name: 'face' label: 1 }\n");
    expect(readLabels(map)).toEqual(['background', 'face']);
    const list = join(dir, 'names.txt');
    writeFileSync(list, 'background\naeroplane\nbicycle\n');
    expect(readLabels(list)).toEqual(['background', 'aeroplane', 'bicycle']);
    expect(() => readLabels(join(dir, 'missing.txt'))).toThrow(/cannot read labels file .*missing\.txt/);
  });

  it('draws the boxes onto a PNG of the same size', async () => {
    const img = solid(40, 60, [255, 255, 255]);
    const png = await drawDetections(img, [
      { label: 1, name: 'a<b>', score: 0.9, box: { xmin: 10, ymin: 10, xmax: 30, ymax: 30 }, normalized: { xmin: 0, ymin: 0, xmax: 0, ymax: 0 } },
    ]);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([60, 40]);
    // The box edge is drawn (not white); the far corner is untouched.
    const px = (x: number, y: number) => Array.from(data.subarray((y * 60 + x) * info.channels, (y * 60 + x) * info.channels + 3));
    expect(px(10, 20)).not.toEqual([255, 255, 255]);
    expect(px(55, 35)).toEqual([255, 255, 255]);
  });
});
