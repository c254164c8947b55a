import { describe, expect, it } from 'vitest';
import { createMessage, type ConvolutionParameter } from '@caffe-ts/proto';
import { convWindow } from './conv-window.js';

const param = (fields: Partial<ConvolutionParameter>) => createMessage<ConvolutionParameter>('ConvolutionParameter', fields);
const check = (ok: boolean, message: () => string) => {
  if (!ok) throw new Error(message());
};

describe('convWindow', () => {
  it('applies a value given once to every axis and fills the defaults', () => {
    expect(convWindow(param({ kernel_size: [3] }), 3, check)).toEqual({
      kernelShape: [3, 3, 3],
      stride: [1, 1, 1],
      pad: [0, 0, 0],
      dilation: [1, 1, 1],
    });
  });

  it('takes one value per axis, and the _h/_w fields in 2-D', () => {
    expect(convWindow(param({ kernel_size: [5, 3], stride: [2, 1], pad: [1, 0], dilation: [2, 1] }), 2, check)).toEqual({
      kernelShape: [5, 3],
      stride: [2, 1],
      pad: [1, 0],
      dilation: [2, 1],
    });
    const hw = convWindow(param({ kernel_h: 7, kernel_w: 1, stride_h: 1, stride_w: 2, pad_h: 3 }), 2, check);
    expect(hw).toEqual({ kernelShape: [7, 1], stride: [1, 2], pad: [3, 0], dilation: [1, 1] });
  });

  it("refuses what Caffe refuses, with Caffe's messages", () => {
    expect(() => convWindow(param({}), 2, check)).toThrow('kernel_size must be specified once, or once per spatial dimension (kernel_size specified 0 times; 2 spatial dims).');
    expect(() => convWindow(param({ kernel_size: [3], kernel_h: 3, kernel_w: 3 }), 2, check)).toThrow('Either kernel_size or kernel_h/w should be specified; not both.');
    expect(() => convWindow(param({ kernel_h: 3, kernel_w: 3 }), 3, check)).toThrow('kernel_h & kernel_w can only be used for 2D convolution (3 spatial dims).');
    expect(() => convWindow(param({ kernel_size: [0] }), 2, check)).toThrow('Filter dimensions must be nonzero.');
    expect(() => convWindow(param({ kernel_size: [3], stride: [0] }), 2, check)).toThrow('Stride dimensions must be nonzero.');
    expect(() => convWindow(param({ kernel_size: [3], dilation: [1, 1, 1] }), 2, check)).toThrow('dilation must be specified once');
    expect(() => convWindow(param({ kernel_size: [3], dilation: [0] }), 2, check)).toThrow('Dilation dimensions must be nonzero.');
  });
});
