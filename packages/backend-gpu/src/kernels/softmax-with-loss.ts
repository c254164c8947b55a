import { BackendError, type Blob } from '@caffe-ts/blob';
import { lossNormalization, NormalizationMode, type Layer, type LayerKernel } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import { GpuBuffer, type GpuDevice } from '../device.js';
import { checkLabels } from './labels.js';
import { dataOf, deviceOf, diffOf, writeData, writeDiff, IDIV } from './util.js';

interface Dims {
  outer: number;
  C: number;
  inner: number;
  ignore: number | null;
  mode: number;
}

function dims(layer: Layer, bottom: Blob[]): Dims {
  const axis = bottom[0]!.canonicalAxisIndex(layer.param.softmax_param?.axis ?? 1);
  const outer = bottom[0]!.count(0, axis);
  const inner = bottom[0]!.count(axis + 1);
  if (bottom[1]!.count() !== outer * inner) {
    throw new BackendError(
      `SoftmaxWithLoss layer '${layer.name}': number of labels must match number of predictions (${bottom[1]!.count()} labels for ${outer * inner} positions)`,
    );
  }
  const lp = layer.param.loss_param;
  return {
    outer,
    C: bottom[0]!.shape[axis]!,
    inner,
    ignore: lp && hasField(lp, 'ignore_label') ? lp.ignore_label : null,
    mode: lossNormalization(lp),
  };
}

export const probSpec = (d: { C: number }) => ({
  name: 'softmax',
  loop: d.C,
  source: `function (X, count, C, inner) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const o = ${IDIV('i', '(C * inner)')};
    const rest = i - o * C * inner;
    const c = ${IDIV('rest', 'inner')};
    const j = rest - c * inner;
    const base = o * C * inner + j;
    let mx = -3.4028234e38;
    for (let k1 = 0; k1 < C; k1++) { mx = Math.max(mx, X[base + k1 * inner]); }
    let s = 0.0;
    for (let k2 = 0; k2 < C; k2++) { s += Math.exp(X[base + k2 * inner] - mx); }
    return Math.exp(X[i] - mx) / s;
  }`,
});

/** Thread 0: the loss over every kept position divided by the normalizer; thread 1: the normalizer (Caffe's GetNormalizer, at least 1). */
const lossSpec = (d: Dims) => ({
  name: 'softmax-loss',
  loop: d.outer * d.inner,
  source: `function (P, L, outer, C, inner, hasIgnore, ignore, mode) {
    let loss = 0.0;
    let valid = 0.0;
    for (let r = 0; r < outer * inner; r++) {
      // Labels are truncated to integers (Caffe's static_cast<int>): DummyData's uniform labels are fractional.
      const lraw = L[r];
      let label = Math.floor(Math.abs(lraw));
      if (lraw < 0) { label = -label; }
      if (hasIgnore == 0 || label != ignore) {
        const o = ${IDIV('r', 'inner')};
        const j = r - o * inner;
        loss -= Math.log(Math.max(P[(o * C + label) * inner + j], 1.17549435e-38));
        valid += 1;
      }
    }
    let norm = 1.0;
    if (mode == 0) { norm = outer * inner; }
    if (mode == 1) { norm = valid; if (hasIgnore == 0) { norm = outer * inner; } }
    if (mode == 2) { norm = outer; }
    norm = Math.max(norm, 1);
    if (this.thread.x == 0) { return loss / norm; }
    return norm;
  }`,
});

const backwardSpec = {
  name: 'softmax-loss-bwd',
  source: `function (P, L, TD, LS, count, C, inner, hasIgnore, ignore) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const o = ${IDIV('i', '(C * inner)')};
    const rest = i - o * C * inner;
    const c = ${IDIV('rest', 'inner')};
    const j = rest - c * inner;
    const lraw = L[o * inner + j];
    let label = Math.floor(Math.abs(lraw));
    if (lraw < 0) { label = -label; }
    if (hasIgnore > 0 && label == ignore) { return 0; }
    let g = P[i];
    if (c == label) { g -= 1; }
    return g * TD[0] / LS[1];
  }`,
};

interface State {
  prob: GpuBuffer;
  /** [loss, normalizer] from the last forward. */
  lossNorm: GpuBuffer;
}
const states = new WeakMap<Layer, State>();

/** Frees the layer's probabilities and loss buffers (Backend.releaseLayer). */
export function releaseSoftmaxLossState(dev: GpuDevice, layer: Layer): void {
  const s = states.get(layer);
  if (!s) return;
  states.delete(layer);
  dev.free(s.prob);
  dev.free(s.lossNorm);
}

function state(dev: GpuDevice, layer: Layer, n: number): State {
  let s = states.get(layer);
  if (!s || s.prob.length !== n) {
    if (s) {
      dev.free(s.prob);
      dev.free(s.lossNorm);
    }
    s = { prob: dev.allocate(n, 'float32'), lossNorm: dev.allocate(2, 'float32') };
    states.set(layer, s);
  }
  return s;
}

const modeCode = (m: number): number => {
  switch (m) {
    case NormalizationMode.FULL:
      return 0;
    case NormalizationMode.VALID:
      return 1;
    case NormalizationMode.BATCH_SIZE:
      return 2;
    default:
      return 3;
  }
};

/**
 * Softmax probabilities stay on the device for backward; the loss is written to the top on the
 * device (Layer.forward then reads that one float back to return it: one counted readback).
 */
export const softmaxWithLossKernel: LayerKernel = {
  forward(layer, bottom, top) {
    if (top.length > 1) throw new BackendError(`SoftmaxWithLoss layer '${layer.name}': the gpu kernel does not produce the probability top yet`);
    const dev = deviceOf(layer);
    const d = dims(layer, bottom);
    checkLabels(layer, bottom[1]!, d.C, d.ignore);
    const n = bottom[0]!.count();
    const s = state(dev, layer, n);
    dev.runInto(s.prob, probSpec(d), [dataOf(dev, bottom[0]!), n, d.C, d.inner]);
    const args = [dev.read(s.prob), dataOf(dev, bottom[1]!), d.outer, d.C, d.inner, d.ignore === null ? 0 : 1, d.ignore ?? 0, modeCode(d.mode)];
    dev.runInto(s.lossNorm, lossSpec(d), args);
    writeData(dev, top[0]!, lossSpec(d), args);
  },
  backward(layer, top, propagateDown, bottom) {
    if (propagateDown[1]) throw new BackendError(`SoftmaxWithLoss layer '${layer.name}' cannot backpropagate to label inputs.`);
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const d = dims(layer, bottom);
    const n = bottom[0]!.count();
    const s = state(dev, layer, n);
    writeDiff(dev, bottom[0]!, backwardSpec, [
      dev.read(s.prob),
      dataOf(dev, bottom[1]!),
      diffOf(dev, top[0]!),
      dev.read(s.lossNorm),
      n,
      d.C,
      d.inner,
      d.ignore === null ? 0 : 1,
      d.ignore ?? 0,
    ]);
  },
};
