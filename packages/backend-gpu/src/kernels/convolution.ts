import { BackendError, type Blob } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import type { GpuBuffer, GpuDevice } from '../device.js';
import type { GpuValue } from '../runtime.js';
import { ceil4, col2imPacked, packedGemm, packIm2col, packMatrix, unpack, type ConvGeom, type MatrixLayout, type PackedGemm } from './packed.js';
import { dataOf, derivedOf, deviceOf, diffOf, placeholder, writeData, writeDiff, IDIV } from './util.js';

/** The convolution's geometry and whether it adds a bias. */
interface ConvDims extends ConvGeom {
  bias: boolean;
}

/** 2-D convolution geometry from the layer's param and blobs (N-d convolution has no gpu kernel yet). */
function dims(layer: Layer, bottom: Blob, top: Blob): ConvDims {
  const p = layer.param.convolution_param;
  const fail = (m: string): never => {
    throw new BackendError(`Convolution layer '${layer.name}' on the gpu backend: ${m}`);
  };
  if (!p) return fail('missing convolution_param');
  if (bottom.numAxes !== 4 || p.axis !== 1 && p.axis !== -3) fail(`only 2-D NCHW convolution has a gpu kernel (bottom ${bottom.shapeString()}, axis ${p.axis})`);
  const w = layer.blobs[0]!;
  const pick = (rep: number[], h: string, wName: string, dflt: number): [number, number] => {
    if (hasField(p, h) || hasField(p, wName)) {
      const rec = p as unknown as Record<string, number>;
      return [rec[h]!, rec[wName]!];
    }
    if (rep.length === 0) return [dflt, dflt];
    return [rep[0]!, rep[rep.length > 1 ? 1 : 0]!];
  };
  const [SH, SW] = pick(p.stride, 'stride_h', 'stride_w', 1);
  const [PH, PW] = pick(p.pad, 'pad_h', 'pad_w', 0);
  const dil = p.dilation;
  const [DH, DW] = dil.length === 0 ? [1, 1] : [dil[0]!, dil[dil.length > 1 ? 1 : 0]!];
  return {
    N: bottom.shape[0]!,
    C: bottom.shape[1]!,
    H: bottom.shape[2]!,
    W: bottom.shape[3]!,
    O: top.shape[1]!,
    OH: top.shape[2]!,
    OW: top.shape[3]!,
    KH: w.shape[2]!,
    KW: w.shape[3]!,
    SH,
    SW,
    PH,
    PW,
    DH,
    DW,
    G: p.group,
    bias: p.bias_term,
  };
}

const GEOM = 'C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, G';
const geom = (d: ConvDims) => [d.C, d.H, d.W, d.O, d.OH, d.OW, d.KH, d.KW, d.SH, d.SW, d.PH, d.PW, d.DH, d.DW, d.G];

/** Direct convolution: each output sums its (C/G)·KH·KW window; no im2col buffer on the device. */
const forwardSpec = (d: ConvDims) => ({
  name: 'conv-fwd',
  loop: (d.C / d.G) * d.KH * d.KW,
  source: `function (X, Wt, Bias, hasBias, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const t1 = ${IDIV('i', 'OW')};
    const ow = i - t1 * OW;
    const t2 = ${IDIV('t1', 'OH')};
    const oh = t1 - t2 * OH;
    const n = ${IDIV('t2', 'O')};
    const o = t2 - n * O;
    const Cg = C / G;
    const g = ${IDIV('o', '(O / G)')};
    const KK = KH * KW;
    let s = 0.0;
    for (let r = 0; r < Cg * KK; r++) {
      const c = ${IDIV('r', 'KK')};
      const kk = r - c * KK;
      const kh = ${IDIV('kk', 'KW')};
      const kw = kk - kh * KW;
      const h = oh * SH - PH + kh * DH;
      const w = ow * SW - PW + kw * DW;
      if (h >= 0 && h < H && w >= 0 && w < Wd) {
        s += X[((n * C + g * Cg + c) * H + h) * Wd + w] * Wt[((o * Cg + c) * KH + kh) * KW + kw];
      }
    }
    if (hasBias > 0) { s += Bias[o]; }
    return s;
  }`,
});

/** dX[n,c,h,w] = Σ over the group's outputs and taps that read (h, w). */
const backwardDataSpec = (d: ConvDims) => ({
  name: 'conv-bwd-data',
  loop: (d.O / d.G) * d.KH * d.KW,
  source: `function (DY, Wt, count, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const t1 = ${IDIV('i', 'Wd')};
    const w = i - t1 * Wd;
    const t2 = ${IDIV('t1', 'H')};
    const h = t1 - t2 * H;
    const n = ${IDIV('t2', 'C')};
    const c = t2 - n * C;
    const Cg = C / G;
    const Og = O / G;
    const g = ${IDIV('c', 'Cg')};
    const cg = c - g * Cg;
    const KK = KH * KW;
    let s = 0.0;
    for (let r = 0; r < Og * KK; r++) {
      const oo = ${IDIV('r', 'KK')};
      const kk = r - oo * KK;
      const kh = ${IDIV('kk', 'KW')};
      const kw = kk - kh * KW;
      const hh = h + PH - kh * DH;
      const ww = w + PW - kw * DW;
      const oh = ${IDIV('hh', 'SH')};
      const ow = ${IDIV('ww', 'SW')};
      if (hh >= 0 && ww >= 0 && oh * SH == hh && ow * SW == ww && oh < OH && ow < OW) {
        const o = g * Og + oo;
        s += DY[((n * O + o) * OH + oh) * OW + ow] * Wt[((o * Cg + cg) * KH + kh) * KW + kw];
      }
    }
    return s;
  }`,
});

/** dW[o,c,kh,kw] += Σ_{n,oh,ow} dY·X (accumulates, as Caffe's param diffs do). */
const backwardWeightSpec = (d: ConvDims) => ({
  name: 'conv-bwd-weight',
  loop: d.N * d.OH * d.OW,
  source: `function (DY, X, Old, count, N, ${GEOM}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const Cg = C / G;
    const t1 = ${IDIV('i', 'KW')};
    const kw = i - t1 * KW;
    const t2 = ${IDIV('t1', 'KH')};
    const kh = t1 - t2 * KH;
    const o = ${IDIV('t2', 'Cg')};
    const c = t2 - o * Cg;
    const g = ${IDIV('o', '(O / G)')};
    const S = OH * OW;
    let s = 0.0;
    for (let r = 0; r < N * S; r++) {
      const n = ${IDIV('r', 'S')};
      const sp = r - n * S;
      const oh = ${IDIV('sp', 'OW')};
      const ow = sp - oh * OW;
      const h = oh * SH - PH + kh * DH;
      const w = ow * SW - PW + kw * DW;
      if (h >= 0 && h < H && w >= 0 && w < Wd) {
        s += DY[((n * O + o) * OH + oh) * OW + ow] * X[((n * C + g * Cg + c) * H + h) * Wd + w];
      }
    }
    return Old[i] + s;
  }`,
});

/**
 * The bias gradient, db[o] += Σ over images and positions of dY, in two passes. One thread per
 * channel summing N·OH·OW values left the device almost idle: on an H200 it took 15 of LeNet's
 * 38 ms of kernel time. Pass 1 sums each (image, channel) over its positions, in chunks of at
 * most 1,024 (one chunk, as Caffe's per-image gemv sums, up to that size); pass 2 adds the
 * partial sums to the old diff image by image.
 */
const BIAS_CHUNK = 1024;

const biasPartialSpec = (S: number, chunk: number, K: number) => ({
  name: 'conv-bwd-bias-partial',
  loop: chunk,
  constants: { S, CH: chunk, K },
  source: `function (DY) {
    const t = this.thread.x;
    const q = ${IDIV('t', '$K')};
    const start = (t - q * $K) * $CH;
    let s = 0.0;
    for (let j = 0; j < $CH; j++) {
      if (start + j < $S) { s += DY[q * $S + start + j]; }
    }
    return s;
  }`,
});

const biasSumSpec = (O: number, K: number, N: number) => ({
  name: 'conv-bwd-bias-sum',
  loop: N * K,
  constants: { O, K, NK: N * K },
  source: `function (P, Old) {
    const o = this.thread.x;
    let s = Old[o];
    for (let r = 0; r < $NK; r++) {
      const n = ${IDIV('r', '$K')};
      s += P[(n * $O + o) * $K + (r - n * $K)];
    }
    return s;
  }`,
});

function backwardBias(dev: GpuDevice, d: ConvDims, dy: GpuValue, bias: Blob): void {
  const S = d.OH * d.OW;
  const chunk = Math.min(S, BIAS_CHUNK);
  const K = Math.ceil(S / chunk);
  const partial = dev.adopt(dev.run(biasPartialSpec(S, chunk, K), d.N * d.O * K, [dy]));
  writeDiff(dev, bias, biasSumSpec(d.O, K, d.N), [partial, diffOf(dev, bias)]);
  dev.release(partial);
}

/**
 * Whether the packed GEMM path takes this convolution: GL modes, and every packed operand (the
 * column matrix is the largest) within the device's exact-index limit in texels.
 */
function usePacked(dev: GpuDevice, d: ConvDims): boolean {
  if (!dev.packed) return false;
  const R = (d.C / d.G) * d.KH * d.KW;
  const J = d.N * d.OH * d.OW;
  const Og = d.O / d.G;
  const biggest = Math.max(d.G * 4 * ceil4(R) * ceil4(J), d.G * 4 * ceil4(J) * ceil4(R), d.G * R * ceil4(Og), d.G * 4 * ceil4(Og) * ceil4(J), d.O * ceil4(J));
  return biggest <= dev.splitLimit;
}

/** The dY matrix of group g: rows o (output channels), columns j = (n, s) over the batch. */
const dyLayout = (d: ConvDims, S: number) => ({ sr: S, sc: 1, cs: S, cn: d.O * S, cols: d.N * S });

/**
 * Forward as one GEMM over the batch: top[o, (n, s)] = W[o, :]·col[:, (n, s)] (+ bias). Without
 * groups it computes the transpose, colᵀ·Wᵀ: the GEMM fetches its B operand 4 times as often as
 * A, so B is the small weight matrix (it stays in cache) and A the large column matrix.
 */
function forwardPacked(dev: GpuDevice, layer: Layer, d: ConvDims, x: GpuValue, top: Blob): void {
  const R = (d.C / d.G) * d.KH * d.KW;
  const S = d.OH * d.OW;
  const J = d.N * S;
  const weights = layer.blobs[0]!;
  const w = dataOf(dev, weights);
  // The packed weights stay on the device while the weights are unchanged (every forward of an
  // inference net).
  const packedW = (layout: MatrixLayout) => derivedOf(dev, weights, `conv ${layout.rows} ${layout.cols} ${layout.sr} ${layout.sc}`, () => packMatrix(dev, w, layout));
  let c: PackedGemm;
  if (d.G === 1) {
    const a = packIm2col(dev, x, d, true);
    const b = packedW({ rows: 4 * ceil4(R), validRows: R, cols: d.O, sr: 1, sc: R });
    c = packedGemm(dev, a, b, 4 * ceil4(J), ceil4(d.O), ceil4(R));
    dev.release(a);
  } else {
    const a = packedW({ rows: d.O, cols: R, sr: R, sc: 1 });
    const b = packIm2col(dev, x, d, false);
    c = packedGemm(dev, a, b, d.O, ceil4(J), ceil4(R), d.O / d.G);
    dev.release(b);
  }
  const target = top.mutableGpuData() as GpuBuffer;
  const bias = d.bias ? dataOf(dev, layer.blobs[1]!) : undefined;
  dev.set(target, unpack(dev, c, { length: target.length, count: top.count(), cols: J, layout: 'conv', spatial: S, channels: d.O, bias, transposed: d.G === 1 }));
  dev.release(c.value);
}

/**
 * dW[o, r] += Σ_(n,s) dY[o, (n, s)]·col[r, (n, s)]: the batch is the (long) inner dimension.
 * Without groups it computes dWᵀ = col·dYᵀ, so the large column matrix is the GEMM's A operand.
 */
function weightGradPacked(dev: GpuDevice, d: ConvDims, dy: GpuValue, x: GpuValue, w: Blob): void {
  const R = (d.C / d.G) * d.KH * d.KW;
  const S = d.OH * d.OW;
  const J = d.N * S;
  let c: PackedGemm;
  if (d.G === 1) {
    const a = packIm2col(dev, x, d, false);
    const b = packMatrix(dev, dy, { rows: 4 * ceil4(J), validRows: J, cols: d.O, sr: 1, rs: S, rn: d.O * S, sc: S });
    c = packedGemm(dev, a, b, R, ceil4(d.O), ceil4(J));
    dev.release(a);
    dev.release(b);
  } else {
    const a = packMatrix(dev, dy, { rows: d.O, ...dyLayout(d, S) });
    const b = packIm2col(dev, x, d, true);
    c = packedGemm(dev, a, b, d.O, ceil4(R), ceil4(J), d.O / d.G);
    dev.release(a);
    dev.release(b);
  }
  const target = w.mutableGpuDiff() as GpuBuffer;
  const old = dev.read(target);
  dev.set(target, unpack(dev, c, { length: target.length, count: w.count(), cols: R, layout: 'matrix', old: { value: old, beta: 1 }, transposed: d.G === 1 }));
  dev.release(c.value);
}

/**
 * dcol = Wᵀ·dY per group, then col2im gathers each input position's taps. Without groups it
 * computes dcolᵀ = dYᵀ·W, keeping the small weight matrix as the GEMM's B operand.
 */
function dataGradPacked(dev: GpuDevice, layer: Layer, d: ConvDims, dy: GpuValue, bottom: Blob): void {
  const R = (d.C / d.G) * d.KH * d.KW;
  const S = d.OH * d.OW;
  const J = d.N * S;
  const Og = d.O / d.G;
  const w = dataOf(dev, layer.blobs[0]!);
  let c: PackedGemm;
  if (d.G === 1) {
    const a = packMatrix(dev, dy, { rows: 4 * ceil4(J), validRows: J, cols: d.O, sr: 1, rs: S, rn: d.O * S, sc: S });
    const b = packMatrix(dev, w, { rows: 4 * ceil4(d.O), validRows: d.O, cols: R, sr: R, sc: 1 });
    c = packedGemm(dev, a, b, 4 * ceil4(J), ceil4(R), ceil4(d.O), undefined, 1);
    dev.release(a);
    dev.release(b);
  } else {
    const a = packMatrix(dev, w, { groups: d.G, rows: R, cols: Og, sg: Og * R, sr: 1, sc: R });
    const b = packMatrix(dev, dy, { groups: d.G, rows: 4 * ceil4(Og), validRows: Og, sg: Og * S, ...dyLayout(d, S) });
    c = packedGemm(dev, a, b, d.G * R, ceil4(J), ceil4(Og), R, 1);
    dev.release(a);
    dev.release(b);
  }
  const target = bottom.mutableGpuDiff() as GpuBuffer;
  dev.set(target, col2imPacked(dev, c, d, target.length, bottom.count(), d.G === 1));
  dev.release(c.value);
}

/** Each bottom/top pair is convolved with the same weights, as in Caffe. */
export const convolutionKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    for (let i = 0; i < bottom.length; i++) {
      const d = dims(layer, bottom[i]!, top[i]!);
      if (usePacked(dev, d)) {
        forwardPacked(dev, layer, d, dataOf(dev, bottom[i]!), top[i]!);
        continue;
      }
      const bias = d.bias ? dataOf(dev, layer.blobs[1]!) : placeholder(dev);
      writeData(dev, top[i]!, forwardSpec(d), [
        dataOf(dev, bottom[i]!),
        dataOf(dev, layer.blobs[0]!),
        bias,
        d.bias ? 1 : 0,
        top[i]!.count(),
        ...geom(d),
      ]);
    }
  },
  backward(layer, top, propagateDown, bottom) {
    const dev = deviceOf(layer);
    for (let i = 0; i < bottom.length; i++) {
      const d = dims(layer, bottom[i]!, top[i]!);
      const dy = diffOf(dev, top[i]!);
      const packed = usePacked(dev, d);
      if (d.bias && (layer.paramPropagateDown[1] ?? true)) {
        const b = layer.blobs[1]!;
        backwardBias(dev, d, dy, b);
      }
      if (layer.paramPropagateDown[0] ?? true) {
        const w = layer.blobs[0]!;
        if (packed) weightGradPacked(dev, d, dy, dataOf(dev, bottom[i]!), w);
        else writeDiff(dev, w, backwardWeightSpec(d), [dy, dataOf(dev, bottom[i]!), diffOf(dev, w), w.count(), d.N, ...geom(d)]);
      }
      if (propagateDown[i]) {
        if (packed) dataGradPacked(dev, layer, d, dy, bottom[i]!);
        else writeDiff(dev, bottom[i]!, backwardDataSpec(d), [dy, dataOf(dev, layer.blobs[0]!), bottom[i]!.count(), ...geom(d)]);
      }
    }
  },
};
