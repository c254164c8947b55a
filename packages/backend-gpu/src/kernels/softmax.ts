import type { LayerKernel } from '@caffe-ts/layers';
import { probSpec } from './softmax-with-loss.js';
import { dataOf, deviceOf, diffOf, writeData, writeDiff, IDIV } from './util.js';

function dims(layer: Parameters<LayerKernel['forward']>[0], shape: { canonicalAxisIndex(a: number): number; count(s?: number, e?: number): number; shape: readonly number[] }) {
  const axis = shape.canonicalAxisIndex(layer.param.softmax_param?.axis ?? 1);
  return { C: shape.shape[axis]!, inner: shape.count(axis + 1) };
}

/** dx = (dy − Σ_c dy·y) · y over the softmax axis. */
const backwardSpec = (C: number) => ({
  name: 'softmax-bwd',
  loop: C,
  source: `function (Y, DY, count, C, inner) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const o = ${IDIV('i', '(C * inner)')};
    const rest = i - o * C * inner;
    const c = ${IDIV('rest', 'inner')};
    const j = rest - c * inner;
    const base = o * C * inner + j;
    let dot = 0.0;
    for (let k = 0; k < C; k++) { dot += DY[base + k * inner] * Y[base + k * inner]; }
    return (DY[i] - dot) * Y[i];
  }`,
});

export const softmaxKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const d = dims(layer, bottom[0]!);
    writeData(dev, top[0]!, probSpec(d), [dataOf(dev, bottom[0]!), top[0]!.count(), d.C, d.inner]);
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const d = dims(layer, top[0]!);
    writeDiff(dev, bottom[0]!, backwardSpec(d.C), [dataOf(dev, top[0]!), diffOf(dev, top[0]!), bottom[0]!.count(), d.C, d.inner]);
  },
};
