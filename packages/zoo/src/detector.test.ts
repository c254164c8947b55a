import { describe, expect, it } from 'vitest';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { contextBox, Detector, type DetectionWindow } from './detector.js';
import { resizeFloatImage, type FloatImage } from './transformer.js';

/** Input 3×10×10 in batches of 2, one inner product of 4 outputs: scores that depend on every pixel. */
const NET = `name: "windows"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 10 dim: 10 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.5 } } }
`;
const net = () => new Net(parseNetParameter(NET), { phase: Phase.TEST, log: false });

/** A 20×20 RGB image, pixel (y, x) = (y/20, x/20, (y + x)/40). */
function image(): FloatImage {
  const data = new Float32Array(20 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) data.set([y / 20, x / 20, (y + x) / 40], (y * 20 + x) * 3);
  return { height: 20, width: 20, channels: 3, data };
}
/** Rows y0 … y1 − 1 and columns x0 … x1 − 1. */
function region(img: FloatImage, y0: number, x0: number, y1: number, x1: number): FloatImage {
  const out = new Float32Array((y1 - y0) * (x1 - x0) * 3);
  for (let y = y0; y < y1; y++) out.set(img.data.subarray((y * img.width + x0) * 3, (y * img.width + x1) * 3), (y - y0) * (x1 - x0) * 3);
  return { height: y1 - y0, width: x1 - x0, channels: 3, data: out };
}
const pixel = (img: FloatImage, y: number, x: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x + 1) * 3));

describe('Detector (caffe.Detector)', () => {
  it('without context, a window is its own pixels (ends excluded)', () => {
    const d = new Detector(net());
    const crop = d.crop(image(), [5, 6, 9, 8]);
    expect([crop.height, crop.width]).toEqual([4, 2]);
    expect(Array.from(crop.data)).toEqual(Array.from(region(image(), 5, 6, 9, 8).data));
    expect(() => d.crop(image(), [5, 6, 21, 8])).toThrow(/window \(5, 6, 21, 8\) is not inside the 20×20 image/);
    expect(() => d.crop(image(), [5, 6, 5, 8])).toThrow(/is empty/);
  });

  it("contextBox follows pycaffe's arithmetic, Python's rounding (halves to even) included", () => {
    // [window, input size, pad, image H, W] → [box, padY, padX, warpH, warpW], worked out with
    // Detector.crop's formulas in NumPy.
    const cases: [DetectionWindow, number, number, number, number, [number[], number, number, number, number]][] = [
      [[5, 5, 11, 9], 10, 2, 20, 20, [[3, 3, 14, 12], 0, 0, 10, 10]],
      [[0, 0, 4, 4], 10, 2, 20, 20, [[0, 0, 7, 7], 2, 2, 8, 8]],
      [[3, 4, 15, 12], 10, 1, 20, 20, [[1, 3, 18, 14], 0, 0, 10, 10]],
      [[10, 10, 20, 20], 10, 1, 20, 20, [[9, 9, 20, 20], 0, 0, 9, 9]],
      [[0, 0, 20, 20], 227, 16, 20, 20, [[0, 0, 20, 20], 17, 17, 183, 183]],
      [[100, 50, 290, 199], 227, 16, 300, 200, [[84, 38, 300, 200], 0, 0, 220, 211]],
      // The grown top edge is −1.5: it rounds to −2 (half to even), not −1.
      [[0, 0, 1, 5], 10, 3, 20, 20, [[0, 0, 4, 10], 3, 3, 7, 7]],
      [[0, 0, 2, 5], 10, 3, 20, 20, [[0, 0, 5, 10], 2, 3, 8, 7]],
    ];
    for (const [window, size, pad, h, w, [box, padY, padX, warpH, warpW]] of cases) {
      expect(contextBox(window, size, pad, h, w), `window ${window.join(',')} pad ${pad}`).toEqual({ box, padY, padX, warpH, warpW });
    }
  });

  it("with context_pad, R-CNN's box: the window grown by size / (size − 2·pad), warped in", () => {
    const d = new Detector(net(), { contextPad: 2 });
    // Window rows 5…10, columns 5…8: half sizes 3.5 and 2.5 around (8.5, 7.5), grown by 10/6:
    // the box rounds to rows 3…14, columns 3…12 (ends as pycaffe slices them), all inside.
    const crop = d.crop(image(), [5, 5, 11, 9]);
    expect([crop.height, crop.width]).toEqual([10, 10]);
    const want = resizeFloatImage(region(image(), 3, 3, 14, 12), 10, 10);
    expect(Array.from(crop.data)).toEqual(Array.from(want.data));
  });

  it('context past the image edge is the mean, in the image space (before channel swap and raw scale)', () => {
    const mean = [104, 117, 123]; // BGR, as the net's channels
    const d = new Detector(net(), { contextPad: 2, mean, rawScale: 255, channelSwap: [2, 1, 0] });
    expect(Array.from(d.cropMean)).toEqual([123 / 255, 117 / 255, 104 / 255].map(Math.fround));
    // Window 0…3 square: box −2…7, so 2 rows and columns of padding, then the 7×7 corner warped to 8×8.
    const crop = d.crop(image(), [0, 0, 4, 4]);
    expect(pixel(crop, 0, 0)).toEqual(Array.from(d.cropMean));
    expect(pixel(crop, 1, 9)).toEqual(Array.from(d.cropMean));
    expect(pixel(crop, 9, 1)).toEqual(Array.from(d.cropMean));
    const warped = resizeFloatImage(region(image(), 0, 0, 7, 7), 8, 8);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(pixel(crop, 2 + y, 2 + x)).toEqual(pixel(warped, y, x));
    // Preprocessed, the padding is the mean taken off itself: zero in every channel.
    const input = d.transformer.preprocess('data', crop);
    for (let c = 0; c < 3; c++) expect(Math.abs(input[c * 100]!)).toBeLessThan(1e-4);
  });

  it('detectWindows: every window of every image, in order, in batches of the input, equal to a forward of the crops', () => {
    const n = net();
    const d = new Detector(n, { contextPad: 1, rawScale: 255, channelSwap: [2, 1, 0] });
    const second = { ...image(), data: image().data.map((v) => 1 - v) };
    const windows = [
      { name: 'a.jpg', image: image(), windows: [[0, 0, 5, 5], [3, 4, 15, 12], [10, 10, 20, 20]] as [number, number, number, number][] },
      { name: 'b.jpg', image: second, windows: [[2, 2, 18, 9], [0, 0, 20, 20]] as [number, number, number, number][] },
    ];
    const found = d.detectWindows(windows);
    expect(found.map((f) => [f.name, f.window])).toEqual(windows.flatMap((w) => w.windows.map((win) => [w.name, win])));
    // The same crops one at a time, through a batch-1 copy of the net with the same weights.
    const one = net();
    one.shareTrainedLayersWith(n);
    one.blob('data').reshape([1, 3, 10, 10]);
    one.reshape();
    windows.forEach((w) => {
      w.windows.forEach((win, i) => {
        one.blob('data').mutableCpuData().set(d.transformer.preprocess('data', d.crop(w.image, win)));
        one.forward();
        const got = found.find((f) => f.name === w.name && f.window === win)!;
        expect(got.prediction).toHaveLength(4);
        const want = one.blob('ip').cpuData();
        for (let k = 0; k < 4; k++) expect(got.prediction[k]).toBeCloseTo(want[k]!, 5);
        expect(i).toBeGreaterThanOrEqual(0);
      });
    });
    // Five windows in batches of two: the input is back at two afterwards.
    expect(n.blob('data').shape).toEqual([2, 3, 10, 10]);
    expect(() => d.detectWindows([{ name: 'gray.png', image: { height: 4, width: 4, channels: 1, data: new Float32Array(16) }, windows: [[0, 0, 2, 2]] }])).toThrow(/image gray\.png has 1 channels, input data takes 3/);
    expect(() => new Detector(n, { contextPad: 5 })).toThrow(/contextPad must be an integer from 0 to less than half the input width 10, got 5/);
  });
});
