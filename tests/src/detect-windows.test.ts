import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { encodeImage } from '@caffe-ts/io-leveldb';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { copyTrainedLayersFromFile, saveNet } from '@caffe-ts/net/node';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { Detector, loadImage } from '@caffe-ts/zoo';
import { caffe, tempDir } from './helpers.js';

// `caffe detect_windows` (Caffe's detect.py --crop_mode list) end to end: two PNGs, windows in a
// CSV (columns in another order than detect.py's), a small deploy net with weights written here;
// every output row must equal the zoo Detector's prediction for that window.

const DEPLOY = `name: "windows"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
`;

describe('caffe detect_windows', () => {
  const dir = tempDir('caffe-ts-windows-');
  const registry = new LayerRegistry();
  registerBuiltinLayers(registry);

  beforeAll(async () => {
    writeFileSync(join(dir.path, 'deploy.prototxt'), DEPLOY);
    saveNet(new Net(parseNetParameter(DEPLOY), { phase: Phase.TEST, registry, log: false, rng: new Rng(3) }), join(dir.path, 'w.caffemodel'));
    const rng = new Rng(11);
    for (const [name, h, w] of [['a.png', 30, 40], ['b.png', 24, 24]] as const) {
      const data = Uint8Array.from({ length: h * w * 3 }, () => rng.int(256));
      writeFileSync(join(dir.path, name), await encodeImage({ height: h, width: w, channels: 3, data }, 'png'));
    }
    writeFileSync(
      join(dir.path, 'windows.csv'),
      ['filename,xmin,ymin,xmax,ymax', 'a.png,2,3,20,25', 'b.png,0,0,24,24', 'a.png,10,0,40,30', 'a.png,30,20,38,29', ''].join('\n'),
    );
  });
  afterAll(() => dir.remove());

  it('writes one row per window: the image, ymin, xmin, ymax, xmax and the scores, as the Detector computes them', async () => {
    const run = await caffe(['detect_windows', 'windows.csv', 'out.csv', '--model_def', 'deploy.prototxt', '--pretrained_model', 'w.caffemodel', '--context_pad', '2'], dir.path);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^CPU mode\nLoading input\.\.\.\nProcessed 4 windows in [\d.]+ s\.\nSaved to out\.csv in [\d.]+ s\.\n$/);
    const rows = readFileSync(join(dir.path, 'out.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    expect(rows[0]).toEqual(['filename', 'ymin', 'xmin', 'ymax', 'xmax', 'class0', 'class1', 'class2']);
    // Images in the order of their first window, each image's windows in file order.
    expect(rows.slice(1).map((r) => r.slice(0, 5))).toEqual([
      ['a.png', '3', '2', '25', '20'],
      ['a.png', '0', '10', '30', '40'],
      ['a.png', '20', '30', '29', '38'],
      ['b.png', '0', '0', '24', '24'],
    ]);

    const net = new Net(parseNetParameter(DEPLOY), { phase: Phase.TEST, registry, log: false });
    copyTrainedLayersFromFile(net, join(dir.path, 'w.caffemodel'));
    const detector = new Detector(net, { rawScale: 255, channelSwap: [2, 1, 0], contextPad: 2 });
    const a = await loadImage(join(dir.path, 'a.png')), b = await loadImage(join(dir.path, 'b.png'));
    const want = detector.detectWindows([
      { name: 'a.png', image: a, windows: [[3, 2, 25, 20], [0, 10, 30, 40], [20, 30, 29, 38]] },
      { name: 'b.png', image: b, windows: [[0, 0, 24, 24]] },
    ]);
    want.forEach((d, i) => {
      const got = rows[i + 1]!.slice(5).map(Number);
      expect(got.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5); // Softmax scores
      d.prediction.forEach((v, k) => expect(got[k]).toBeCloseTo(v, 6));
    });
  });

  it('says what is wrong: selective search, the CSV header or a window, the files', async () => {
    const args = ['--model_def', 'deploy.prototxt', '--pretrained_model', 'w.caffemodel', '--context_pad', '2'];
    const ss = await caffe(['detect_windows', 'windows.csv', 'out2.csv', ...args, '--crop_mode', 'selective_search'], dir.path);
    expect(ss.code).not.toBe(0);
    expect(ss.stderr).toContain('--crop_mode selective_search needs the selective_search_ijcv_with_python (MATLAB) proposals');
    writeFileSync(join(dir.path, 'no-ymax.csv'), 'filename,xmin,ymin,xmax\na.png,1,2,3\n');
    expect((await caffe(['detect_windows', 'no-ymax.csv', 'out2.csv', ...args], dir.path)).stderr).toContain("no-ymax.csv:1: the header has no 'ymax' column (found filename, xmin, ymin, xmax");
    writeFileSync(join(dir.path, 'bad.csv'), 'filename,ymin,xmin,ymax,xmax\na.png,0,0,5,5\na.png,1,x,5,5\n');
    expect((await caffe(['detect_windows', 'bad.csv', 'out2.csv', ...args], dir.path)).stderr).toContain("bad.csv:3: the window's ymin, xmin, ymax, xmax must be non-negative integers, got 1, x, 5, 5");
    writeFileSync(join(dir.path, 'outside.csv'), 'filename,ymin,xmin,ymax,xmax\nb.png,0,0,25,10\n');
    expect((await caffe(['detect_windows', 'outside.csv', 'out2.csv', ...args], dir.path)).stderr).toContain('window (0, 0, 25, 10) is not inside the 24×24 image');
    expect((await caffe(['detect_windows', 'windows.csv', 'out2.h5', ...args], dir.path)).stderr).toContain('the output is written as .csv');
    // detect.py's default context_pad (16) on a 12-pixel input.
    expect((await caffe(['detect_windows', 'windows.csv', 'out2.csv', ...args.slice(0, 4)], dir.path)).stderr).toContain('contextPad must be an integer from 0 to less than half the input width 12, got 16');
  });
});
