import type { LayerKernel } from '@caffe-ts/layers';
import { dataOf, deviceOf, diffOf, writeData, writeDiff } from './util.js';

const forwardSpec = {
  name: 'relu-fwd',
  source: `function (X, slope, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const v = X[i];
    return Math.max(v, 0) + slope * Math.min(v, 0);
  }`,
};

/** Uses the bottom data, which for an in-place ReLU is the top: positive exactly where the input was (slope ≥ 0). */
const backwardSpec = {
  name: 'relu-bwd',
  source: `function (X, DY, slope, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    if (X[i] > 0) { return DY[i]; }
    return DY[i] * slope;
  }`,
};

const slopeOf = (layer: { param: { relu_param: { negative_slope: number } | null } }) => layer.param.relu_param?.negative_slope ?? 0;

export const reluKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    writeData(dev, top[0]!, forwardSpec, [dataOf(dev, bottom[0]!), slopeOf(layer), top[0]!.count()]);
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    writeDiff(dev, bottom[0]!, backwardSpec, [dataOf(dev, bottom[0]!), diffOf(dev, top[0]!), slopeOf(layer), bottom[0]!.count()]);
  },
};
