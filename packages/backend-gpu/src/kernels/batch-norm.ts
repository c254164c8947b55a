import type { BatchNormLayer, LayerKernel } from '@caffe-ts/layers';
import type { GpuBuffer } from '../device.js';
import { channelSumSpec, CHANNEL_OF_I, copySpec, dataOf, deviceOf, diffOf, scratchBuffer, writeData, writeDiff, IDIV } from './util.js';

/** Global statistics: y = (x − f·mean) / √(f·var + eps), f = 1/s (0 when s = 0), per channel. */
const globalForwardSpec = {
  name: 'bn-global-fwd',
  source: `function (X, M, V, S, eps, D, inner, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${CHANNEL_OF_I}
    let f = 0.0;
    if (S[0] != 0) { f = 1.0 / S[0]; }
    return (X[i] - f * M[d]) / Math.sqrt(f * V[d] + eps);
  }`,
};

/** Global statistics are constants: dx = dy / √(f·var + eps). */
const globalBackwardSpec = {
  name: 'bn-global-bwd',
  source: `function (DY, V, S, eps, D, inner, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${CHANNEL_OF_I}
    let f = 0.0;
    if (S[0] != 0) { f = 1.0 / S[0]; }
    return DY[i] / Math.sqrt(f * V[d] + eps);
  }`,
};

/** Batch variance (biased): Σ (x − μ_d)² / m over every axis but the channel. */
const varianceSpec = (outer: number, inner: number) => ({
  name: 'bn-var',
  loop: outer * inner,
  source: `function (X, Mean, outer, D, inner) {
    const d = this.thread.x;
    if (d >= D) { return 0; }
    const mu = Mean[d];
    let s = 0.0;
    for (let r = 0; r < outer * inner; r++) {
      const n = ${IDIV('r', 'inner')};
      const j = r - n * inner;
      const v = X[(n * D + d) * inner + j] - mu;
      s += v * v;
    }
    return s / (outer * inner);
  }`,
});

const normalizeSpec = {
  name: 'bn-norm',
  source: `function (X, Mean, Var, eps, D, inner, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${CHANNEL_OF_I}
    return (X[i] - Mean[d]) / Math.sqrt(Var[d] + eps);
  }`,
};

/** out = a·A + b·B, elementwise (scaling the batch mean and the running averages). */
const axpbySpec = {
  name: 'bn-axpby',
  source: `function (A, B, a, b, c, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return a * A[i] + b * B[i] + c;
  }`,
};

/** Training backward: dx = (dy − mean(dy) − mean(dy·ŷ)·ŷ) / √(σ² + eps), means per channel. */
const trainBackwardSpec = {
  name: 'bn-train-bwd',
  source: `function (DY, Y, SumDy, SumDyY, Var, eps, m, D, inner, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${CHANNEL_OF_I}
    return (DY[i] - SumDy[d] / m - (SumDyY[d] / m) * Y[i]) / Math.sqrt(Var[d] + eps);
  }`,
};

function dims(layer: BatchNormLayer, shape: readonly number[], count: number) {
  const D = layer.channels;
  const outer = shape[0]!;
  // A 1-D bottom is one channel of `count` values (the CPU layer's rule).
  const inner = shape.length === 1 ? 1 : count / (outer * D);
  return { D, outer: shape.length === 1 ? count : outer, inner };
}

/**
 * BatchNorm. With global statistics (use_global_stats, the TEST default) one elementwise pass.
 * In training, the batch mean and variance are per-channel reductions on the device, the running
 * averages are updated there, and the normalised output is kept in a scratch buffer (a later
 * in-place layer, such as ResNet's Scale, overwrites the top) for the backward pass.
 */
export const batchNormKernel: LayerKernel<BatchNormLayer> = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const b = bottom[0]!;
    const n = b.count();
    const { D, outer, inner } = dims(layer, b.shape, n);
    const [mean, variance, factor] = layer.blobs as [typeof b, typeof b, typeof b];
    const x = dataOf(dev, b);
    if (layer.useGlobalStats) {
      writeData(dev, top[0]!, globalForwardSpec, [x, dataOf(dev, mean), dataOf(dev, variance), dataOf(dev, factor), layer.eps, D, inner, n]);
      return;
    }
    const mu = scratchBuffer(layer, 'mean', D);
    const sigma2 = scratchBuffer(layer, 'var', D);
    const ph = dev.read(dev.placeholder);
    dev.runInto(mu, channelSumSpec(outer, inner), [x, ph, 0, ph, 0, outer, D, inner]);
    dev.runInto(mu, axpbySpec, [dev.read(mu), dev.read(mu), 1 / (outer * inner), 0, 0, D]);
    dev.runInto(sigma2, varianceSpec(outer, inner), [x, dev.read(mu), outer, D, inner]);
    // Running averages: s ← f·s + 1, mean ← f·mean + μ, var ← f·var + σ²·m/(m − 1).
    const f = layer.movingAverageFraction;
    const m = n / D;
    const correction = m > 1 ? m / (m - 1) : 1;
    writeData(dev, factor, axpbySpec, [dataOf(dev, factor), dataOf(dev, factor), f, 0, 1, 1]);
    writeData(dev, mean, axpbySpec, [dataOf(dev, mean), dev.read(mu), f, 1, 0, D]);
    writeData(dev, variance, axpbySpec, [dataOf(dev, variance), dev.read(sigma2), f, correction, 0, D]);
    const yHat = scratchBuffer(layer, 'x-norm', n);
    dev.runInto(yHat, normalizeSpec, [x, dev.read(mu), dev.read(sigma2), layer.eps, D, inner, n]);
    writeData(dev, top[0]!, copySpec, [dev.read(yHat), n]);
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const b = bottom[0]!;
    const n = b.count();
    const { D, outer, inner } = dims(layer, b.shape, n);
    const dy = diffOf(dev, top[0]!);
    if (layer.useGlobalStats) {
      const [, variance, factor] = layer.blobs as [typeof b, typeof b, typeof b];
      writeDiff(dev, b, globalBackwardSpec, [dy, dataOf(dev, variance), dataOf(dev, factor), layer.eps, D, inner, n]);
      return;
    }
    const yHat = dev.read(scratchBuffer(layer, 'x-norm', n));
    const ph = dev.read(dev.placeholder);
    const sumDy = scratchBuffer(layer, 'sum-dy', D);
    const sumDyY = scratchBuffer(layer, 'sum-dy-y', D);
    dev.runInto(sumDy, channelSumSpec(outer, inner), [dy, ph, 0, ph, 0, outer, D, inner]);
    dev.runInto(sumDyY, channelSumSpec(outer, inner), [dy, yHat, 1, ph, 0, outer, D, inner]);
    const sigma2 = dev.read(scratchBuffer(layer, 'var', D));
    writeDiff(dev, b, trainBackwardSpec, [dy, yHat, dev.read(sumDy), dev.read(sumDyY), sigma2, layer.eps, outer * inner, D, inner, n]);
  },
};
