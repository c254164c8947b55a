import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { describe, expect, it } from 'vitest';
import { convolutionDepthwiseLayerDef, depthwiseConvolutionLayerDef } from './depthwise-convolution-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('DepthwiseConvolution / ConvolutionDepthwise', () => {
  const conv = { num_output: 3, kernel_size: [3], pad: [1], stride: [2], weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };

  for (const def of [depthwiseConvolutionLayerDef, convolutionDepthwiseLayerDef]) {
    it(`${def.type}: each output channel convolves its own input channel`, () => {
      const layer = createLayer(def, { convolution_param: conv });
      const bottom = makeBlob([2, 3, 5, 5]);
      const top = f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      expect(layer.type).toBe(def.type);
      expect(layer.blobs[0]!.shape).toEqual([3, 1, 3, 3]);
      expect(top.shape).toEqual([2, 3, 3, 3]);
      const x = blobValues(bottom);
      const w = blobValues(layer.blobs[0]!);
      const b = blobValues(layer.blobs[1]!);
      const y = blobValues(top);
      for (let n = 0; n < 2; n++)
        for (let c = 0; c < 3; c++)
          for (let oh = 0; oh < 3; oh++)
            for (let ow = 0; ow < 3; ow++) {
              let s = b[c]!;
              for (let kh = 0; kh < 3; kh++)
                for (let kw = 0; kw < 3; kw++) {
                  const ih = oh * 2 - 1 + kh;
                  const iw = ow * 2 - 1 + kw;
                  if (ih >= 0 && ih < 5 && iw >= 0 && iw < 5) s += w[c * 9 + kh * 3 + kw]! * x[((n * 3 + c) * 5 + ih) * 5 + iw]!;
                }
              expect(y[((n * 3 + c) * 3 + oh) * 3 + ow]).toBeCloseTo(s, 12);
            }
    });
  }

  it('passes the gradient check with a channel multiplier of 2 (1e-2, 1e-3)', () => {
    const layer = createLayer(depthwiseConvolutionLayerDef, { convolution_param: { ...conv, num_output: 4, stride: [1] } });
    new GradientChecker(1e-2, 1e-3).checkGradient(layer, [makeBlob([2, 2, 4, 4])], [f64()]);
  });

  it('rejects a group other than the channels and a num_output not a multiple of them, naming the layer', () => {
    const setUp = (p: Record<string, unknown>) => () =>
      createLayer(convolutionDepthwiseLayerDef, { name: 'dw', convolution_param: { ...conv, ...p } }).setUp([makeBlob([1, 3, 4, 4])], [f64()]);
    expect(setUp({ group: 1 })).toThrow("ConvolutionDepthwise layer 'dw': group must equal the input channels for a depthwise convolution (group 1, 3 channels).");
    expect(setUp({ num_output: 4 })).toThrow("ConvolutionDepthwise layer 'dw': num_output (4) must be a multiple of the input channels (3).");
  });
});
