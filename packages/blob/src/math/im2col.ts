import type { FloatArray } from '../dtype.js';
import { MathError } from './errors.js';

/**
 * Output extent of a convolution along one axis, with Caffe's integer arithmetic:
 * (in + 2·pad − (dilation·(kernel − 1) + 1)) / stride + 1, the division truncating like C's.
 */
export function convOutputSize(input: number, kernel: number, pad: number, stride: number, dilation: number): number {
  const extent = dilation * (kernel - 1) + 1;
  return Math.trunc((input + 2 * pad - extent) / stride) + 1;
}

function checkPositive(what: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 1) throw new MathError(`${what}: ${k} must be a positive integer, got ${v}`);
  }
}

function checkNonNegative(what: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0) throw new MathError(`${what}: ${k} must be a non-negative integer, got ${v}`);
  }
}

function checkLength(what: string, name: string, arr: FloatArray, need: number, shape: string): void {
  if (arr.length < need) throw new MathError(`${what}: ${name} has ${arr.length} elements, ${shape} needs ${need}`);
}

/** [owLo, owHi): the output columns whose input column −pad + off + ow·stride lies in [0, width). */
function validRange(width: number, pad: number, off: number, stride: number, outW: number): [number, number] {
  const first = off - pad; // input column at ow = 0
  const lo = first >= 0 ? 0 : Math.ceil(-first / stride);
  const hi = width - first <= 0 ? 0 : Math.ceil((width - first) / stride);
  return [Math.min(lo, outW), Math.min(Math.max(hi, 0), outW)];
}

/**
 * Caffe's im2col_cpu: unfold a channels×height×width image into col, a
 * (channels·kernelH·kernelW) × (outH·outW) row-major matrix; row (c·kernelH + kh)·kernelW + kw,
 * column oh·outW + ow holds data[c, −padH + kh·dilationH + oh·strideH, −padW + kw·dilationW +
 * ow·strideW], or 0 where that falls in the padding.
 */
export function im2col(
  data: FloatArray, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  col: FloatArray,
): void {
  im2colCore(true, data, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col);
}

/**
 * Caffe's col2im_cpu, the adjoint of im2col: zero data (channels×height×width), then add every
 * entry of col into the image element it was copied from (overlapping windows accumulate).
 */
export function col2im(
  col: FloatArray, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  data: FloatArray,
): void {
  im2colCore(false, data, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col);
}

function im2colCore(
  forward: boolean, data: FloatArray, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  col: FloatArray,
): void {
  const what = forward ? 'im2col' : 'col2im';
  checkNonNegative(what, { channels, height, width, padH, padW });
  checkPositive(what, { kernelH, kernelW, strideH, strideW, dilationH, dilationW });
  const outH = convOutputSize(height, kernelH, padH, strideH, dilationH);
  const outW = convOutputSize(width, kernelW, padW, strideW, dilationW);
  if (outH < 1 || outW < 1) {
    throw new MathError(
      `${what}: kernel ${kernelH}×${kernelW} (dilation ${dilationH}×${dilationW}) does not fit image ${height}×${width} padded by ${padH}×${padW}`,
    );
  }
  const imSize = height * width;
  checkLength(what, 'data', data, channels * imSize, `${channels}×${height}×${width}`);
  checkLength(what, 'col', col, channels * kernelH * kernelW * outH * outW,
    `${channels * kernelH * kernelW}×${outH * outW}`);
  if (!forward) data.fill(0, 0, channels * imSize);
  let idx = 0;
  for (let c = 0; c < channels; c++) {
    const base = c * imSize;
    for (let kh = 0; kh < kernelH; kh++) {
      const rowOff = kh * dilationH - padH;
      for (let kw = 0; kw < kernelW; kw++) {
        const [lo, hi] = validRange(width, padW, kw * dilationW, strideW, outW);
        const colOff = kw * dilationW - padW;
        for (let oh = 0; oh < outH; oh++) {
          const r = rowOff + oh * strideH;
          if (r < 0 || r >= height) {
            if (forward) col.fill(0, idx, idx + outW);
            idx += outW;
            continue;
          }
          const src = base + r * width + colOff;
          if (forward) {
            for (let ow = 0; ow < lo; ow++) col[idx + ow] = 0;
            for (let ow = lo; ow < hi; ow++) col[idx + ow] = data[src + ow * strideW]!;
            for (let ow = Math.max(hi, lo); ow < outW; ow++) col[idx + ow] = 0;
          } else {
            for (let ow = lo; ow < hi; ow++) {
              const d = src + ow * strideW;
              data[d] = data[d]! + col[idx + ow]!;
            }
          }
          idx += outW;
        }
      }
    }
  }
}

/**
 * Caffe's im2col_nd_cpu for numSpatialAxes ≥ 1. imShape is [channels, ...spatial] and colShape
 * [channels·Πkernel, ...outSpatial], as Caffe's conv layers pass them; kernelShape, pad, stride and
 * dilation have numSpatialAxes entries. Row c_col of col holds channel ⌊c_col / Πkernel⌋ at
 * kernel offset (c_col mod Πkernel, last axis fastest), sampled at every output position.
 */
export function im2colNd(
  data: FloatArray, numSpatialAxes: number, imShape: ArrayLike<number>, colShape: ArrayLike<number>,
  kernelShape: ArrayLike<number>, pad: ArrayLike<number>, stride: ArrayLike<number>,
  dilation: ArrayLike<number>, col: FloatArray,
): void {
  im2colNdCore(true, data, numSpatialAxes, imShape, colShape, kernelShape, pad, stride, dilation, col);
}

/** Caffe's col2im_nd_cpu: zero data (Πim_shape), then accumulate col into it (adjoint of im2colNd). */
export function col2imNd(
  col: FloatArray, numSpatialAxes: number, imShape: ArrayLike<number>, colShape: ArrayLike<number>,
  kernelShape: ArrayLike<number>, pad: ArrayLike<number>, stride: ArrayLike<number>,
  dilation: ArrayLike<number>, data: FloatArray,
): void {
  im2colNdCore(false, data, numSpatialAxes, imShape, colShape, kernelShape, pad, stride, dilation, col);
}

function im2colNdCore(
  forward: boolean, data: FloatArray, n: number, imShape: ArrayLike<number>, colShape: ArrayLike<number>,
  kernelShape: ArrayLike<number>, pad: ArrayLike<number>, stride: ArrayLike<number>,
  dilation: ArrayLike<number>, col: FloatArray,
): void {
  const what = forward ? 'im2colNd' : 'col2imNd';
  if (!Number.isInteger(n) || n < 1) throw new MathError(`${what}: numSpatialAxes must be at least 1, got ${n}`);
  const need = (name: string, a: ArrayLike<number>, len: number) => {
    if (a.length < len) throw new MathError(`${what}: ${name} has ${a.length} entries, ${len} needed for ${n} spatial axes`);
  };
  need('imShape', imShape, n + 1);
  need('colShape', colShape, n + 1);
  need('kernelShape', kernelShape, n);
  need('pad', pad, n);
  need('stride', stride, n);
  need('dilation', dilation, n);

  const im = Array.from({ length: n }, (_, i) => imShape[i + 1]!);
  const out = Array.from({ length: n }, (_, i) => colShape[i + 1]!);
  const ker = Array.from({ length: n }, (_, i) => kernelShape[i]!);
  const pd = Array.from({ length: n }, (_, i) => pad[i]!);
  const st = Array.from({ length: n }, (_, i) => stride[i]!);
  const dl = Array.from({ length: n }, (_, i) => dilation[i]!);
  for (let i = 0; i < n; i++) {
    checkNonNegative(what, { [`imShape[${i + 1}]`]: im[i]!, [`colShape[${i + 1}]`]: out[i]!, [`pad[${i}]`]: pd[i]! });
    checkPositive(what, { [`kernelShape[${i}]`]: ker[i]!, [`stride[${i}]`]: st[i]!, [`dilation[${i}]`]: dl[i]! });
  }
  const kernelSize = ker.reduce((a, b) => a * b, 1);
  const channelsCol = colShape[0]!;
  const channels = imShape[0]!;
  if (!Number.isInteger(channelsCol) || channelsCol < 0 || channelsCol % kernelSize !== 0) {
    throw new MathError(`${what}: colShape[0] = ${channelsCol} is not a multiple of the kernel size ${kernelSize}`);
  }
  const imSpatial = im.reduce((a, b) => a * b, 1);
  const outSpatial = out.reduce((a, b) => a * b, 1);
  checkLength(what, 'data', data, channels * imSpatial, `image ${channels}×${im.join('×')}`);
  checkLength(what, 'col', col, channelsCol * outSpatial, `${channelsCol}×${out.join('×')}`);
  if (channelsCol / kernelSize > channels) {
    throw new MathError(`${what}: colShape[0] = ${channelsCol} covers ${channelsCol / kernelSize} channels, image has ${channels}`);
  }
  if (!forward) data.fill(0, 0, channels * imSpatial);
  if (outSpatial === 0) return;

  const last = n - 1;
  const outLast = out[last]!, imLast = im[last]!, stLast = st[last]!;
  // Row-major strides of the image's spatial axes.
  const imStride = new Array<number>(n);
  imStride[last] = 1;
  for (let i = last - 1; i >= 0; i--) imStride[i] = imStride[i + 1]! * im[i + 1]!;
  const kOff = new Array<number>(n); // kernel offset of this column row, per axis
  const pos = new Array<number>(n).fill(0); // odometer over output positions (all but last axis)

  let idx = 0;
  for (let cCol = 0; cCol < channelsCol; cCol++) {
    let rem = cCol;
    for (let i = last; i >= 0; i--) {
      kOff[i] = (rem % ker[i]!) * dl[i]!;
      rem = Math.floor(rem / ker[i]!);
    }
    const base = rem * imSpatial; // rem is now the image channel
    const [lo, hi] = validRange(imLast, pd[last]!, kOff[last]!, stLast, outLast);
    const lastOff = kOff[last]! - pd[last]!;
    pos.fill(0);
    const rows = outSpatial / outLast;
    for (let r = 0; r < rows; r++) {
      // Image offset of this output row along the leading axes, or -1 in the padding.
      let off = base;
      for (let i = 0; i < last; i++) {
        const p = pos[i]! * st[i]! + kOff[i]! - pd[i]!;
        if (p < 0 || p >= im[i]!) {
          off = -1;
          break;
        }
        off += p * imStride[i]!;
      }
      if (off < 0) {
        if (forward) col.fill(0, idx, idx + outLast);
      } else {
        const src = off + lastOff;
        if (forward) {
          for (let o = 0; o < lo; o++) col[idx + o] = 0;
          for (let o = lo; o < hi; o++) col[idx + o] = data[src + o * stLast]!;
          for (let o = Math.max(hi, lo); o < outLast; o++) col[idx + o] = 0;
        } else {
          for (let o = lo; o < hi; o++) {
            const d = src + o * stLast;
            data[d] = data[d]! + col[idx + o]!;
          }
        }
      }
      idx += outLast;
      for (let i = last - 1; i >= 0; i--) {
        pos[i] = pos[i]! + 1;
        if (pos[i]! < out[i]!) break;
        pos[i] = 0;
      }
    }
  }
}
