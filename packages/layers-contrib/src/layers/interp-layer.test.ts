import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { interpLayerDef } from './interp-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function run(param: Record<string, unknown>, bottom: Blob[]): Blob {
  const top = f64();
  const layer = createLayer(interpLayerDef, { interp_param: param });
  layer.setUp(bottom, [top]);
  layer.forward(bottom, [top]);
  return top;
}

describe('Interp', () => {
  beforeAll(registerContribSchema);

  it('zoom_factor 2 on 2×2: align-corners bilinear (corners kept, midpoints averaged)', () => {
    const top = run({ zoom_factor: 2 }, [makeBlob([1, 1, 2, 2], { filler: [0, 2, 4, 6] })]);
    expect(top.shape).toEqual([1, 1, 3, 3]);
    expect(blobValues(top)).toEqual([0, 1, 2, 2, 3, 4, 4, 5, 6]);
  });

  it('height/width, shrink_factor, shrink+zoom and a reference bottom give the fork sizes', () => {
    const x = makeBlob([1, 2, 5, 7]);
    expect(run({ height: 4, width: 3 }, [x]).shape).toEqual([1, 2, 4, 3]);
    expect(run({ shrink_factor: 2 }, [x]).shape).toEqual([1, 2, 3, 4]);
    expect(run({ shrink_factor: 2, zoom_factor: 3 }, [x]).shape).toEqual([1, 2, 7, 10]);
    expect(run({}, [x, makeBlob([1, 1, 9, 2])]).shape).toEqual([1, 2, 9, 2]);
  });

  it('matches a naive align-corners resize of the cropped input (pad_beg/pad_end −1)', () => {
    const x = makeBlob([1, 1, 5, 6]);
    const top = run({ height: 4, width: 7, pad_beg: -1, pad_end: -1 }, [x]);
    const v = blobValues(x);
    const H1 = 3;
    const W1 = 4;
    const at = (r: number, c: number) => v[(r + 1) * 6 + c + 1]!;
    blobValues(top).forEach((y, k) => {
      const r = Math.floor(k / 7);
      const c = k % 7;
      const fy = (r * (H1 - 1)) / 3;
      const fx = (c * (W1 - 1)) / 6;
      const y0 = Math.min(Math.floor(fy), H1 - 1);
      const x0 = Math.min(Math.floor(fx), W1 - 1);
      const y1 = Math.min(y0 + 1, H1 - 1);
      const x1 = Math.min(x0 + 1, W1 - 1);
      const ly = fy - y0;
      const lx = fx - x0;
      const want = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      expect(y).toBeCloseTo(want, 12);
    });
  });

  it('passes the gradient check (1e-2, 1e-2), cropping included', () => {
    const layer = createLayer(interpLayerDef, { interp_param: { height: 4, width: 5, pad_beg: -1 } });
    new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, [makeBlob([1, 2, 4, 3])], [f64()]);
  });

  it('needs exactly one size specification and non-positive padding, naming the layer', () => {
    const setUp = (p: Record<string, unknown>, bottoms = [makeBlob([1, 1, 3, 3])]) => () =>
      createLayer(interpLayerDef, { name: 'i', interp_param: p }).setUp(bottoms, [f64()]);
    expect(setUp({})).toThrow("Interp layer 'i': give the output size in exactly one way: zoom_factor/shrink_factor, height and width, or a second bottom (got none).");
    expect(setUp({ zoom_factor: 2, height: 3, width: 3 })).toThrow(/\(got zoom_factor\/shrink_factor, height\/width\)/);
    expect(setUp({ zoom_factor: 2, pad_beg: 1 })).toThrow("Interp layer 'i': Only supports non-pos padding (cropping) for now (pad_beg 1, pad_end 0).");
  });
});
