import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { CropLayer, cropLayerDef } from './crop-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function crop(p: Record<string, unknown> | null, name = 'crop'): CropLayer {
  return createLayer(cropLayerDef, p ? { name, crop_param: p } : { name });
}

/** top[i…] = bottom[i + offset…], by brute force over every top index. */
function naiveCrop(b: Blob, topShape: readonly number[], offsets: number[]): number[] {
  const out: number[] = [];
  const count = topShape.reduce((a, d) => a * d, 1);
  for (let flat = 0; flat < count; flat++) {
    let rem = flat;
    const idx = new Array<number>(topShape.length);
    for (let a = topShape.length - 1; a >= 0; a--) {
      idx[a] = rem % topShape[a]!;
      rem = Math.floor(rem / topShape[a]!);
    }
    out.push(b.cpuData()[b.offset(...idx.map((v, a) => v + offsets[a]!))]!);
  }
  return out;
}

function run(layer: CropLayer, b0: Blob, b1: Blob): Blob {
  const top = f64();
  layer.setUp([b0, b1], [top]);
  layer.forward([b0, b1], [top]);
  return top;
}

describe('CropLayer', () => {
  it('shapes and values (Caffe 2×4×5×4 cropped to 2×3×4×2): axis 0, axis 1 with offsets, default axis 2, 5-D', () => {
    const b0 = makeBlob([2, 4, 5, 4]);
    const b1 = makeBlob([2, 3, 4, 2]);
    const all = run(crop({ axis: 0 }), b0, b1);
    expect(all.shape).toEqual([2, 3, 4, 2]);
    expect(Array.from(all.cpuData())).toEqual(naiveCrop(b0, all.shape, [0, 0, 0, 0]));
    const off = run(crop({ axis: 1, offset: [0, 1, 1] }), b0, b1);
    expect(Array.from(off.cpuData())).toEqual(naiveCrop(b0, off.shape, [0, 0, 1, 1]));
    const one = run(crop({ axis: 1, offset: [1] }), b0, b1);
    expect(Array.from(one.cpuData())).toEqual(naiveCrop(b0, one.shape, [0, 1, 1, 1]));
    const hw = run(crop({ offset: [1, 2] }), b0, makeBlob([1, 1, 4, 2]));
    expect(hw.shape).toEqual([2, 4, 4, 2]);
    expect(Array.from(hw.cpuData())).toEqual(naiveCrop(b0, hw.shape, [0, 0, 1, 2]));
    const b5 = makeBlob([2, 4, 5, 4, 3]);
    const five = run(crop({ axis: 2, offset: [1, 2, 1] }), b5, makeBlob([2, 3, 4, 2, 2]));
    expect(five.shape).toEqual([2, 4, 4, 2, 2]);
    expect(Array.from(five.cpuData())).toEqual(naiveCrop(b5, five.shape, [0, 0, 1, 2, 1]));
  });

  it('backward writes the window and zeros the rest', () => {
    const b0 = makeBlob([1, 1, 3, 3]);
    const layer = crop({ offset: [1] });
    const top = run(layer, b0, makeBlob([1, 1, 2, 2]));
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    b0.mutableCpuDiff().fill(9);
    layer.backward([top], [true, false], [b0, makeBlob([1, 1, 2, 2])]);
    expect(Array.from(b0.cpuDiff())).toEqual([0, 0, 0, 0, 1, 2, 0, 3, 4]);
  });

  it('gradient, Caffe (1e-2, 1e-3) exhaustive over both bottoms: crop all, crop HW, 5-D', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    checker.checkGradientExhaustive(crop({ axis: 0 }), [makeBlob([2, 3, 3, 2]), makeBlob([1, 2, 2, 2])], [f64()]);
    checker.checkGradientExhaustive(crop({ axis: 2, offset: [1, 2] }), [makeBlob([1, 2, 3, 4]), makeBlob([1, 2, 2, 2])], [f64()]);
    checker.checkGradientExhaustive(crop({ axis: 2, offset: [1, 0, 0] }), [makeBlob([1, 2, 3, 2, 2]), makeBlob([1, 1, 2, 2, 1])], [f64()]);
  });

  it('defaults (axis 2, no offset) and Caffe\'s messages', () => {
    expect(crop({}).param.crop_param!.axis).toBe(2);
    expect(() => run(crop({ offset: [1, 1, 1] }, 'c1'), makeBlob([1, 1, 4, 4]), makeBlob([1, 1, 2, 2]))).toThrow(
      "Crop layer 'c1': number of offset values specified must be equal to the number of dimensions following axis (3 offsets, axis 2, bottom 1 1 4 4 (16)).",
    );
    expect(() => run(crop({ offset: [3] }, 'c1'), makeBlob([1, 1, 4, 4]), makeBlob([1, 1, 2, 2]))).toThrow(
      "Crop layer 'c1': the crop for dimension 2 is out-of-bounds with size 2 and offset 3 (bottom 0 1 1 4 4 (16))",
    );
  });
});
