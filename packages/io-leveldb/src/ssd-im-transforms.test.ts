import { Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import type { PixelImage } from './image-io.js';
import { RESIZE_FIT_LARGE_SIZE_AND_PAD, RESIZE_FIT_SMALL_SIZE, RESIZE_WARP, makeBox } from './ssd-bbox.js';
import {
  adjustHue,
  adjustSaturation,
  applyDistort,
  applyNoise,
  applyResize,
  bgrToHsv,
  cropToBox,
  expandImage,
  hsvToBgr,
  INTERP_AREA,
  INTERP_CUBIC,
  INTERP_LANCZOS4,
  INTERP_LINEAR,
  INTERP_NEAREST,
  PAD_CONSTANT,
  PAD_MIRRORED,
  PAD_REPEAT_NEAREST,
  padImage,
  resizeWith,
  saturateU8,
  type DistortSpec,
  type ResizeSpec,
} from './ssd-im-transforms.js';

/** A BGR image whose pixel (y, x) is (y·10 + x, 100 + y, 200 − x). */
function gradient(height: number, width: number): PixelImage {
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      data[p] = y * 10 + x;
      data[p + 1] = 100 + y;
      data[p + 2] = 200 - x;
    }
  }
  return { height, width, channels: 3, data };
}
const px = (img: PixelImage, y: number, x: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
const uniformImage = (h: number, w: number, v: number[]): PixelImage => {
  const data = new Uint8Array(h * w * 3);
  for (let p = 0; p < h * w; p++) data.set(v, p * 3);
  return { height: h, width: w, channels: 3, data };
};
const resizeSpec = (over: Partial<ResizeSpec>): ResizeSpec => ({
  mode: RESIZE_WARP,
  height: 30,
  width: 30,
  heightScale: 0,
  widthScale: 0,
  padMode: PAD_CONSTANT,
  padValue: [],
  interpModes: [],
  ...over,
});
const NO_DISTORT: DistortSpec = {
  brightnessProb: 0,
  brightnessDelta: 32,
  contrastProb: 0,
  contrastLower: 0.5,
  contrastUpper: 1.5,
  hueProb: 0,
  hueDelta: 18,
  saturationProb: 0,
  saturationLower: 0.5,
  saturationUpper: 1.5,
  randomOrderProb: 0,
};

describe('resize policies', () => {
  it('FIT_LARGE_SIZE_AND_PAD: the long side to the target, the short side centred between pad rows', () => {
    // 10 high × 20 wide into 30 × 30: resized to 15 × 30, 7 rows of padding above and 8 below.
    const out = applyResize(gradient(10, 20), resizeSpec({ mode: RESIZE_FIT_LARGE_SIZE_AND_PAD, padValue: [1, 2, 3] }), new Rng(1));
    expect([out.height, out.width]).toEqual([30, 30]);
    for (const y of [0, 6, 22, 29]) expect(px(out, y, 5)).toEqual([1, 2, 3]);
    const content = resizeWith(gradient(10, 20), 15, 30, INTERP_LINEAR);
    for (const y of [7, 14, 21]) for (const x of [0, 13, 29]) expect(px(out, y, x)).toEqual(px(content, y - 7, x));
    // A tall image is padded left and right; one pad_value fills every channel.
    const tall = applyResize(gradient(20, 10), resizeSpec({ mode: RESIZE_FIT_LARGE_SIZE_AND_PAD, padValue: [9] }), new Rng(1));
    expect(px(tall, 10, 0)).toEqual([9, 9, 9]);
    expect(px(tall, 10, 6)).toEqual([9, 9, 9]);
    expect(px(tall, 10, 29)).toEqual([9, 9, 9]);
    expect(px(tall, 10, 7)).not.toEqual([9, 9, 9]);
  });

  it('FIT_SMALL_SIZE keeps the aspect; WARP gives the target size', () => {
    const small = applyResize(gradient(10, 20), resizeSpec({ mode: RESIZE_FIT_SMALL_SIZE, height: 30, width: 30 }), new Rng(1));
    expect([small.height, small.width]).toEqual([30, 60]);
    const warp = applyResize(gradient(10, 20), resizeSpec({ height: 7, width: 9 }), new Rng(1));
    expect([warp.height, warp.width]).toEqual([7, 9]);
  });

  it('picks among the listed interpolations with one draw each, every one giving the target size', () => {
    const modes = [INTERP_LINEAR, INTERP_AREA, INTERP_NEAREST, INTERP_CUBIC, INTERP_LANCZOS4];
    for (const m of modes) {
      for (const [h, w] of [
        [5, 7],
        [23, 31],
      ] as const) {
        const out = resizeWith(gradient(10, 20), h, w, m);
        expect([out.height, out.width, out.data.length]).toEqual([h, w, h * w * 3]);
      }
    }
    // Constant images stay constant under every interpolation (weights sum to 1).
    for (const m of modes) expect(new Set(resizeWith(uniformImage(9, 13, [40, 80, 120]), 17, 5, m).data)).toEqual(new Set([40, 80, 120]));
    // NEAREST picks source pixel floor(d · src/dst); AREA halving averages 2×2 blocks.
    expect(px(resizeWith(gradient(10, 20), 5, 10, INTERP_NEAREST), 1, 3)).toEqual(px(gradient(10, 20), 2, 6));
    const area = resizeWith(gradient(10, 20), 5, 10, INTERP_AREA);
    expect(px(area, 1, 3)).toEqual([saturateU8((26 + 27 + 36 + 37) / 4), saturateU8((102 + 102 + 103 + 103) / 4), saturateU8((194 + 193 + 194 + 193) / 4)]);
    const rng = new Rng(5);
    const before = rng.getState();
    applyResize(gradient(10, 20), resizeSpec({ interpModes: modes }), rng);
    const after = new Rng(0);
    after.setState(before);
    after.uniform();
    expect(rng.getState()).toEqual(after.getState());
  });

  it('pads with constant, mirrored (reflect 101) or repeated edges', () => {
    const row: PixelImage = { height: 1, width: 3, channels: 1, data: Uint8Array.of(1, 2, 3) };
    expect([...padImage(row, 0, 0, 2, 2, PAD_CONSTANT, [7]).data]).toEqual([7, 7, 1, 2, 3, 7, 7]);
    expect([...padImage(row, 0, 0, 2, 2, PAD_MIRRORED, []).data]).toEqual([3, 2, 1, 2, 3, 2, 1]);
    expect([...padImage(row, 0, 0, 2, 2, PAD_REPEAT_NEAREST, []).data]).toEqual([1, 1, 1, 2, 3, 3, 3]);
  });
});

describe('distortions', () => {
  it('with every probability 0 the image is unchanged', () => {
    const img = gradient(6, 8);
    for (let seed = 0; seed < 20; seed++) expect(applyDistort(img, NO_DISTORT, new Rng(seed)).data).toEqual(img.data);
  });

  it('brightness adds one delta in [−brightness_delta, brightness_delta] to every value', () => {
    const deltas = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const out = applyDistort(uniformImage(4, 4, [100, 100, 100]), { ...NO_DISTORT, brightnessProb: 1 }, new Rng(seed));
      const values = new Set(out.data);
      expect(values.size).toBe(1);
      const v = [...values][0]!;
      expect(v).toBeGreaterThanOrEqual(100 - 32);
      expect(v).toBeLessThanOrEqual(100 + 32);
      deltas.add(v - 100);
    }
    expect(Math.min(...deltas)).toBeLessThan(-20);
    expect(Math.max(...deltas)).toBeGreaterThan(20);
    // Saturates at 0 and 255.
    const bright = applyDistort(uniformImage(2, 2, [250, 5, 128]), { ...NO_DISTORT, brightnessProb: 1, brightnessDelta: 100 }, new Rng(3));
    expect(bright.data.every((v) => v >= 0 && v <= 255)).toBe(true);
  });

  it('contrast scales values by a factor in [lower, upper]; a factor of 1 is the identity', () => {
    for (let seed = 0; seed < 50; seed++) {
      const out = applyDistort(uniformImage(2, 2, [100, 50, 20]), { ...NO_DISTORT, contrastProb: 1 }, new Rng(seed));
      expect(out.data[0]).toBeGreaterThanOrEqual(50);
      expect(out.data[0]).toBeLessThanOrEqual(150);
      expect(Math.abs(out.data[1]! * 2 - out.data[0]!)).toBeLessThanOrEqual(2);
    }
    const img = gradient(5, 5);
    expect(applyDistort(img, { ...NO_DISTORT, contrastProb: 1, contrastLower: 1, contrastUpper: 1 }, new Rng(1)).data).toEqual(img.data);
  });

  it("converts to and from OpenCV's 8-bit HSV (hue in [0, 180))", () => {
    // red, green, blue, yellow, gray, magenta (hue 300° → 150)
    const colours: PixelImage = { height: 1, width: 6, channels: 3, data: Uint8Array.of(0, 0, 255, 0, 255, 0, 255, 0, 0, 0, 255, 255, 64, 64, 64, 255, 0, 255) };
    expect([...bgrToHsv(colours).data]).toEqual([0, 255, 255, 60, 255, 255, 120, 255, 255, 30, 255, 255, 0, 0, 64, 150, 255, 255]);
    expect(hsvToBgr(bgrToHsv(colours)).data).toEqual(colours.data);
    const img = gradient(8, 8);
    const back = hsvToBgr(bgrToHsv(img));
    for (let i = 0; i < img.data.length; i++) expect(Math.abs(back.data[i]! - img.data[i]!)).toBeLessThanOrEqual(3);
  });

  it('hue shifts and saturation leave grays alone; hue wraps modulo 180 on the way back', () => {
    const gray = uniformImage(3, 3, [77, 77, 77]);
    expect(adjustHue(gray, 17).data).toEqual(gray.data);
    expect(adjustSaturation(gray, 1.4).data).toEqual(gray.data);
    // Red (hue 0) shifted by +60 is green; blue (120) shifted by +60 wraps to red.
    expect(px(adjustHue(uniformImage(1, 1, [0, 0, 255]), 60), 0, 0)).toEqual([0, 255, 0]);
    expect(px(adjustHue(uniformImage(1, 1, [255, 0, 0]), 60), 0, 0)).toEqual([0, 0, 255]);
    // Saturation 0 turns a colour gray (its value).
    expect(px(adjustSaturation(uniformImage(1, 1, [40, 90, 200]), 0), 0, 0)).toEqual([200, 200, 200]);
    expect(() => adjustHue({ height: 1, width: 1, channels: 1, data: Uint8Array.of(5) }, 3)).toThrow('hue distortion needs a 3-channel BGR image (got 1 channels)');
  });
});

describe('geometry and noise', () => {
  it('expand places the image on a mean-filled canvas and returns the canvas box in image coordinates', () => {
    const img = gradient(10, 20);
    const stub = () => {
      const draws = [0.5, 0.25];
      return { uniformIn: (a: number, b: number) => a + (b - a) * draws.shift()! } as unknown as Rng;
    };
    const { image, box } = expandImage(img, 2, [104, 117, 123.5], stub());
    expect([image.height, image.width]).toEqual([20, 40]);
    // The row offset is drawn first: floor(0.5·10) = 5 rows, then floor(0.25·20) = 5 columns.
    expect([box.xmin, box.ymin, box.xmax, box.ymax]).toEqual([-0.25, -0.5, 1.75, 1.5]);
    expect(px(image, 5, 5)).toEqual(px(img, 0, 0));
    expect(px(image, 14, 24)).toEqual(px(img, 9, 19));
    expect(px(image, 0, 0)).toEqual([104, 117, 124]); // 123.5 rounds half to even
    expect(px(image, 19, 39)).toEqual([104, 117, 124]);
    expect(px(expandImage(img, 2, [], stub()).image, 0, 0)).toEqual([0, 0, 0]);
  });

  it('crops to a normalised box: corners scaled and truncated, clipped to the image', () => {
    const img = gradient(10, 20);
    const c = cropToBox(img, makeBox(0.26, 0.31, 0.76, 0.9));
    // x: 5.2 → 5, width trunc(15.2 − 5.2) = 10; y: 3.1 → 3, height trunc(9 − 3.1) = 5
    expect([c.height, c.width]).toEqual([5, 10]);
    expect(px(c, 0, 0)).toEqual(px(img, 3, 5));
    const clipped = cropToBox(img, makeBox(-0.5, -0.5, 0.5, 0.5));
    expect([clipped.height, clipped.width]).toEqual([5, 10]);
    expect(px(clipped, 0, 0)).toEqual(px(img, 0, 0));
  });

  it('noise: inverse, posterize, decolorize and salt-and-pepper', () => {
    const base = { decolorize: false, erode: false, posterize: false, inverse: false, saltpepper: false, saltpepperFraction: 0, saltpepperValues: [], convertToHsv: false };
    const img = uniformImage(4, 5, [10, 100, 200]);
    expect(px(applyNoise(img, { ...base, inverse: true }, new Rng(1)), 0, 0)).toEqual([245, 155, 55]);
    expect(px(applyNoise(img, { ...base, posterize: true }, new Rng(1)), 0, 0)).toEqual([32, 96, 224]);
    const g = Math.round(0.299 * 200 + 0.587 * 100 + 0.114 * 10);
    expect(px(applyNoise(img, { ...base, decolorize: true }, new Rng(1)), 0, 0)).toEqual([g, g, g]);
    const sp = applyNoise(img, { ...base, saltpepper: true, saltpepperFraction: 0.5, saltpepperValues: [255] }, new Rng(1));
    const white = Array.from({ length: 20 }, (_, p) => sp.data[p * 3] === 255).filter(Boolean).length;
    expect(white).toBeGreaterThan(0);
    expect(white).toBeLessThanOrEqual(10);
  });
});
