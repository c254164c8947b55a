import { BackendError, type Blob } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';
import { LRNParameter_NormRegion as NormRegion } from '@caffe-ts/proto';
import { dataOf, deviceOf, diffOf, writeData, writeDiff, IDIV } from './util.js';

interface LrnDims {
  C: number;
  H: number;
  W: number;
  size: number;
  pre: number;
  alpha: number;
  beta: number;
  /** k across channels; 1 within a channel (Caffe builds that one from pooling and Power with shift 1). */
  shift: number;
  /** alpha / size (across) or alpha / size² (within). */
  coef: number;
  across: number;
  count: number;
}

function dims(layer: Layer, bottom: Blob): LrnDims {
  const p = layer.param.lrn_param;
  const size = p?.local_size ?? 5;
  const region = p?.norm_region ?? NormRegion.ACROSS_CHANNELS;
  if (bottom.numAxes !== 4) throw new BackendError(`LRN layer '${layer.name}': bottom must be 4-D, got ${bottom.shapeString()}`);
  const across = region === NormRegion.ACROSS_CHANNELS;
  const alpha = p?.alpha ?? 1;
  return {
    C: bottom.shape[1]!,
    H: bottom.shape[2]!,
    W: bottom.shape[3]!,
    size,
    pre: (size - 1) / 2,
    alpha,
    beta: p?.beta ?? 0.75,
    shift: across ? (p?.k ?? 1) : 1,
    coef: alpha / (across ? size : size * size),
    across: across ? 1 : 0,
    count: bottom.count(),
  };
}

const ARGS = 'count, C, H, W, size, pre, shift, coef, across';
const args = (d: LrnDims) => [d.count, d.C, d.H, d.W, d.size, d.pre, d.shift, d.coef, d.across];

/**
 * Σ over element i's window of f(j), where f reads T: channels c±pre (across) or the size×size
 * square centred on (h, w) (within), clipped to the blob. The loop runs size² steps either way
 * (the channel window uses the first `size`).
 */
const windowSum = (f: (j: string) => string) => `
    const t1 = ${IDIV('i', 'W')};
    const w = i - t1 * W;
    const t2 = ${IDIV('t1', 'H')};
    const h = t1 - t2 * H;
    const n = ${IDIV('t2', 'C')};
    const c = t2 - n * C;
    let sum = 0.0;
    for (let q = 0; q < size * size; q++) {
      if (across > 0) {
        if (q < size) {
          const cc = c - pre + q;
          if (cc >= 0 && cc < C) {
            const j = ((n * C + cc) * H + h) * W + w;
            sum += ${f('j')};
          }
        }
      } else {
        const dh = ${IDIV('q', 'size')};
        const hh = h - pre + dh;
        const ww = w - pre + (q - dh * size);
        if (hh >= 0 && hh < H && ww >= 0 && ww < W) {
          const j = ((n * C + c) * H + hh) * W + ww;
          sum += ${f('j')};
        }
      }
    }`;

/** y = x · s^(−β), s = shift + coef · Σ x² over the window. */
const forwardSpec = (d: LrnDims) => ({
  name: 'lrn-fwd',
  loop: d.size * d.size,
  source: `function (X, beta, ${ARGS}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${windowSum((j) => `X[${j}] * X[${j}]`)}
    return X[i] * Math.pow(shift + coef * sum, -beta);
  }`,
});

/** The scale s per element (backward needs it at every element of a window). */
const scaleSpec = (d: LrnDims) => ({
  name: 'lrn-scale',
  loop: d.size * d.size,
  source: `function (X, ${ARGS}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${windowSum((j) => `X[${j}] * X[${j}]`)}
    return shift + coef * sum;
  }`,
});

/** dx = dy·s^(−β) − (2αβ/m)·x·Σ_window dy·y/s (the windows are symmetric). */
const backwardSpec = (d: LrnDims) => ({
  name: 'lrn-bwd',
  loop: d.size * d.size,
  source: `function (X, Y, DY, S, beta, twoCoefBeta, ${ARGS}) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${windowSum((j) => `DY[${j}] * Y[${j}] / S[${j}]`)}
    return DY[i] * Math.pow(S[i], -beta) - twoCoefBeta * X[i] * sum;
  }`,
});

export const lrnKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const d = dims(layer, bottom[0]!);
    writeData(dev, top[0]!, forwardSpec(d), [dataOf(dev, bottom[0]!), d.beta, ...args(d)]);
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const d = dims(layer, bottom[0]!);
    const x = dataOf(dev, bottom[0]!);
    const s = dev.adopt(dev.run(scaleSpec(d), d.count, [x, ...args(d)]));
    try {
      writeDiff(dev, bottom[0]!, backwardSpec(d), [x, dataOf(dev, top[0]!), diffOf(dev, top[0]!), s, d.beta, 2 * d.coef * d.beta, ...args(d)]);
    } finally {
      dev.release(s);
    }
  },
};
