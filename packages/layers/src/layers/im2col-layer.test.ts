import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { Im2colLayer, im2colLayerDef } from './im2col-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function im2colLayer(p: Record<string, unknown>, name = 'im2col'): Im2colLayer {
  return createLayer(im2colLayerDef, { name, convolution_param: p });
}

function run(layer: Im2colLayer, bottom: Blob): Blob {
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

/** top[n, (c·kh + i)·kw + j, oh, ow] = bottom[n, c, oh·s − p + i·d, ow·s − p + j·d] (0 outside). */
function naive(b: Blob, k: [number, number], s: [number, number], p: [number, number], d: [number, number]) {
  const [N, C, H, W] = b.shape as [number, number, number, number];
  const OH = Math.floor((H + 2 * p[0] - (d[0] * (k[0] - 1) + 1)) / s[0]) + 1;
  const OW = Math.floor((W + 2 * p[1] - (d[1] * (k[1] - 1) + 1)) / s[1]) + 1;
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < k[0]; i++) {
        for (let j = 0; j < k[1]; j++) {
          for (let oh = 0; oh < OH; oh++) {
            for (let ow = 0; ow < OW; ow++) {
              const h = oh * s[0] - p[0] + i * d[0];
              const w = ow * s[1] - p[1] + j * d[1];
              out.push(h >= 0 && h < H && w >= 0 && w < W ? b.cpuData()[b.offset(n, c, h, w)]! : 0);
            }
          }
        }
      }
    }
  }
  return { shape: [N, C * k[0] * k[1], OH, OW], values: out };
}

describe('Im2colLayer', () => {
  it('Caffe TestSetup: 2×3×10×11, k3 s2 dilation 3 → 2×27×2×3', () => {
    expect(run(im2colLayer({ kernel_size: [3], stride: [2], dilation: [3] }), makeBlob([2, 3, 10, 11])).shape).toEqual([2, 27, 2, 3]);
  });

  it('forward equals a direct unfolding: square, rectangular (kernel_h 5, kernel_w 3), padded, dilated, and N-d forced', () => {
    const bottom = makeBlob([2, 3, 6, 5]);
    const cases: [Record<string, unknown>, [number, number], [number, number], [number, number], [number, number]][] = [
      [{ kernel_size: [3], stride: [2] }, [3, 3], [2, 2], [0, 0], [1, 1]],
      [{ kernel_h: 5, kernel_w: 3, stride: [2] }, [5, 3], [2, 2], [0, 0], [1, 1]],
      [{ kernel_size: [3, 2], stride: [1, 2], pad: [1], dilation: [2, 1] }, [3, 2], [1, 2], [1, 1], [2, 1]],
      [{ kernel_size: [3], stride: [2], pad: [1], force_nd_im2col: true }, [3, 3], [2, 2], [1, 1], [1, 1]],
    ];
    for (const [p, k, s, pad, d] of cases) {
      const top = run(im2colLayer(p), bottom);
      const want = naive(bottom, k, s, pad, d);
      expect(top.shape).toEqual(want.shape);
      expect(Array.from(top.cpuData())).toEqual(want.values);
    }
  });

  it('3-D input and a non-default channel axis', () => {
    const top = run(im2colLayer({ kernel_size: [2], stride: [1, 2, 1] }), makeBlob([1, 2, 3, 4, 2]));
    expect(top.shape).toEqual([1, 16, 2, 2, 1]);
    const axis2 = run(im2colLayer({ kernel_size: [2], axis: 2 }), makeBlob([2, 3, 2, 4]));
    expect(axis2.shape).toEqual([2, 3, 4, 3]);
  });

  it('gradient, Caffe (1e-2, 1e-2) exhaustive: k3 s2, dilated, forced N-d, rectangular', () => {
    const checker = new GradientChecker(1e-2, 1e-2);
    checker.checkGradientExhaustive(im2colLayer({ kernel_size: [3], stride: [2] }), [makeBlob([1, 2, 5, 4])], [f64()]);
    checker.checkGradientExhaustive(im2colLayer({ kernel_size: [2], stride: [2], dilation: [2], pad: [1] }), [makeBlob([1, 2, 4, 4])], [f64()]);
    checker.checkGradientExhaustive(im2colLayer({ kernel_size: [3], stride: [2], force_nd_im2col: true }), [makeBlob([1, 2, 5, 4])], [f64()]);
    checker.checkGradientExhaustive(im2colLayer({ kernel_h: 3, kernel_w: 2, stride: [2] }), [makeBlob([1, 1, 5, 4])], [f64()]);
  });

  it('defaults (stride 1, pad 0, dilation 1) and Caffe\'s messages', () => {
    const layer = im2colLayer({ kernel_size: [2] });
    run(layer, makeBlob([1, 1, 3, 3]));
    expect([layer.kernelShape, layer.stride, layer.pad, layer.dilation]).toEqual([[2, 2], [1, 1], [0, 0], [1, 1]]);
    expect(() => run(im2colLayer({}, 'i1'), makeBlob([1, 1, 3, 3]))).toThrow(
      "Im2col layer 'i1': kernel_size must be specified once, or once per spatial dimension (kernel_size specified 0 times; 2 spatial dims).",
    );
    expect(() => run(im2colLayer({ kernel_size: [3], kernel_h: 3, kernel_w: 3 }, 'i1'), makeBlob([1, 1, 3, 3]))).toThrow(
      "Im2col layer 'i1': Either kernel_size or kernel_h/w should be specified; not both.",
    );
    expect(() => run(im2colLayer({ kernel_size: [4] }, 'i1'), makeBlob([1, 1, 3, 3]))).toThrow(
      "Im2col layer 'i1': output spatial dim 0 would be 0 (input 3, kernel 4, pad 0, stride 1, dilation 1)",
    );
  });
});
