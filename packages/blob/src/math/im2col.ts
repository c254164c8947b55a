import type { FloatArray } from '../dtype.js';
import { MathError } from './errors.js';
import { zeroFill } from '../host-memory.js';

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

/** First output index o whose input position off − pad + o·stride is ≥ 0 (clamped to [0, out]). */
function validLo(pad: number, off: number, stride: number, out: number): number {
  const first = off - pad; // input position at o = 0
  return first >= 0 ? 0 : Math.min(Math.ceil(-first / stride), out);
}

/** One past the last output index o whose input position off − pad + o·stride is < size (clamped to [0, out]). */
function validHi(size: number, pad: number, off: number, stride: number, out: number): number {
  const first = off - pad;
  return size - first <= 0 ? 0 : Math.min(Math.ceil((size - first) / stride), out);
}

/** [owLo, owHi): the output columns whose input column −pad + off + ow·stride lies in [0, width). */
function validRange(width: number, pad: number, off: number, stride: number, outW: number): [number, number] {
  return [validLo(pad, off, stride, outW), validHi(width, pad, off, stride, outW)];
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
  im2colCore(true, 1, data, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col);
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
  im2colCore(false, 1, data, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col);
}

/**
 * im2col over `num` images at once (stored one after another in data, channels×height×width
 * each), for one convolution GEMM over the whole batch: col is (channels·kernelH·kernelW) ×
 * (num·outH·outW), row-major, and column n·outH·outW + oh·outW + ow of a row holds what
 * im2col's column oh·outW + ow holds for image n. num = 1 is exactly im2col.
 */
export function im2colBatch(
  data: FloatArray, num: number, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  col: FloatArray,
): void {
  im2colCore(true, num, data, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col);
}

/** The adjoint of im2colBatch: zero the num images in data, then accumulate col into them. */
export function col2imBatch(
  col: FloatArray, num: number, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  data: FloatArray,
): void {
  im2colCore(false, num, data, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col);
}

function checkDim(what: string, name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    throw new MathError(`${what}: ${name} must be a ${min > 0 ? 'positive' : 'non-negative'} integer, got ${v}`);
  }
}

function im2colCore(
  forward: boolean, num: number, data: FloatArray, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  col: FloatArray,
): void {
  const what = forward ? (num === 1 ? 'im2col' : 'im2colBatch') : num === 1 ? 'col2im' : 'col2imBatch';
  // Positional checks (no per-call objects): these run once per GEMM.
  checkDim(what, 'num', num, 0);
  checkDim(what, 'channels', channels, 0);
  checkDim(what, 'height', height, 0);
  checkDim(what, 'width', width, 0);
  checkDim(what, 'padH', padH, 0);
  checkDim(what, 'padW', padW, 0);
  checkDim(what, 'kernelH', kernelH, 1);
  checkDim(what, 'kernelW', kernelW, 1);
  checkDim(what, 'strideH', strideH, 1);
  checkDim(what, 'strideW', strideW, 1);
  checkDim(what, 'dilationH', dilationH, 1);
  checkDim(what, 'dilationW', dilationW, 1);
  const outH = convOutputSize(height, kernelH, padH, strideH, dilationH);
  const outW = convOutputSize(width, kernelW, padW, strideW, dilationW);
  if (outH < 1 || outW < 1) {
    throw new MathError(
      `${what}: kernel ${kernelH}×${kernelW} (dilation ${dilationH}×${dilationW}) does not fit image ${height}×${width} padded by ${padH}×${padW}`,
    );
  }
  const imSize = height * width;
  const imgDim = channels * imSize;
  const outHW = outH * outW;
  const rowLen = num * outHW;
  const imgs = num === 1 ? '' : `${num}×`;
  checkLength(what, 'data', data, num * imgDim, `${imgs}${channels}×${height}×${width}`);
  checkLength(what, 'col', col, channels * kernelH * kernelW * rowLen,
    `${channels * kernelH * kernelW}×${imgs}${outH * outW}`);
  if (forward) unfold(data, num, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, col, outH, outW);
  else {
    zeroFill(data, 0, num * imgDim);
    fold(col, num, channels, height, width, kernelH, kernelW, padH, padW, strideH, strideW, dilationH, dilationW, data, outH, outW);
  }
}

/** The im2col loops (arguments checked). Windows' valid ranges are worked out once per kernel offset. */
function unfold(
  data: FloatArray, num: number, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  col: FloatArray, outH: number, outW: number,
): void {
  const imSize = height * width, imgDim = channels * imSize, outHW = outH * outW, rowLen = num * outHW;
  let row = 0;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelH; kh++) {
      const hOff = kh * dilationH - padH;
      const ohLo = validLo(padH, kh * dilationH, strideH, outH);
      const ohHi = Math.max(ohLo, validHi(height, padH, kh * dilationH, strideH, outH));
      for (let kw = 0; kw < kernelW; kw++) {
        const wOff = kw * dilationW - padW;
        const lo = validLo(padW, kw * dilationW, strideW, outW);
        const hi = Math.max(lo, validHi(width, padW, kw * dilationW, strideW, outW));
        for (let n = 0; n < num; n++) {
          const dst = row * rowLen + n * outHW;
          const base = n * imgDim + c * imSize + wOff;
          // Output rows whose input row is padding.
          if (ohLo > 0) col.fill(0, dst, dst + ohLo * outW);
          if (ohHi < outH) col.fill(0, dst + ohHi * outW, dst + outHW);
          for (let oh = ohLo; oh < ohHi; oh++) {
            const d = dst + oh * outW;
            const src = base + (hOff + oh * strideH) * width;
            for (let ow = 0; ow < lo; ow++) col[d + ow] = 0;
            if (strideW === 1) {
              for (let ow = lo; ow < hi; ow++) col[d + ow] = data[src + ow]!;
            } else {
              for (let ow = lo; ow < hi; ow++) col[d + ow] = data[src + ow * strideW]!;
            }
            for (let ow = hi; ow < outW; ow++) col[d + ow] = 0;
          }
        }
        row++;
      }
    }
  }
}

/** The col2im loops (arguments checked, data already zeroed): accumulate col into the images. */
function fold(
  col: FloatArray, num: number, channels: number, height: number, width: number,
  kernelH: number, kernelW: number, padH: number, padW: number,
  strideH: number, strideW: number, dilationH: number, dilationW: number,
  data: FloatArray, outH: number, outW: number,
): void {
  const imSize = height * width, imgDim = channels * imSize, outHW = outH * outW, rowLen = num * outHW;
  let row = 0;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelH; kh++) {
      const hOff = kh * dilationH - padH;
      const ohLo = validLo(padH, kh * dilationH, strideH, outH);
      const ohHi = validHi(height, padH, kh * dilationH, strideH, outH);
      for (let kw = 0; kw < kernelW; kw++) {
        const wOff = kw * dilationW - padW;
        const lo = validLo(padW, kw * dilationW, strideW, outW);
        const hi = validHi(width, padW, kw * dilationW, strideW, outW);
        for (let n = 0; n < num; n++) {
          const src0 = row * rowLen + n * outHW;
          const base = n * imgDim + c * imSize + wOff;
          for (let oh = ohLo; oh < ohHi; oh++) {
            const s = src0 + oh * outW;
            const d = base + (hOff + oh * strideH) * width;
            if (strideW === 1) {
              for (let ow = lo; ow < hi; ow++) data[d + ow] = data[d + ow]! + col[s + ow]!;
            } else {
              for (let ow = lo; ow < hi; ow++) {
                const at = d + ow * strideW;
                data[at] = data[at]! + col[s + ow]!;
              }
            }
          }
        }
        row++;
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
