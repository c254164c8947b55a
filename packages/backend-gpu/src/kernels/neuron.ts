import type { LayerKernel } from '@caffe-ts/layers';
import type { KernelSpec } from '../device.js';
import { dataOf, deviceOf, diffOf, writeData, writeDiff } from './util.js';

/**
 * Elementwise neuron layers whose backward uses the top only (y), so in place is safe. Sources
 * avoid Math.tanh (not in every gpu.js target) and never overflow: exp of a non-positive number.
 */
function neuron(name: string, fwd: string, bwd: string): LayerKernel {
  const forwardSpec: KernelSpec = {
    name: `${name}-fwd`,
    source: `function (X, count) {
      const i = this.thread.x;
      if (i >= count) { return 0; }
      const x = X[i];
      ${fwd}
    }`,
  };
  const backwardSpec: KernelSpec = {
    name: `${name}-bwd`,
    source: `function (Y, DY, count) {
      const i = this.thread.x;
      if (i >= count) { return 0; }
      const y = Y[i];
      ${bwd}
    }`,
  };
  return {
    forward(layer, bottom, top) {
      const dev = deviceOf(layer);
      writeData(dev, top[0]!, forwardSpec, [dataOf(dev, bottom[0]!), top[0]!.count()]);
    },
    backward(layer, top, propagateDown, bottom) {
      if (!propagateDown[0]) return;
      const dev = deviceOf(layer);
      writeDiff(dev, bottom[0]!, backwardSpec, [dataOf(dev, top[0]!), diffOf(dev, top[0]!), bottom[0]!.count()]);
    },
  };
}

/** y = 1 / (1 + e^−x), as e^−|x| so the exponent never overflows. */
export const sigmoidKernel = neuron(
  'sigmoid',
  `const e = Math.exp(-Math.abs(x));
      if (x >= 0) { return 1.0 / (1.0 + e); }
      return e / (1.0 + e);`,
  'return DY[i] * y * (1.0 - y);',
);

/** y = tanh x = sign(x)·(1 − e^−2|x|) / (1 + e^−2|x|). */
export const tanhKernel = neuron(
  'tanh',
  `const e = Math.exp(-2.0 * Math.abs(x));
      const t = (1.0 - e) / (1.0 + e);
      if (x >= 0) { return t; }
      return -t;`,
  'return DY[i] * (1.0 - y * y);',
);
