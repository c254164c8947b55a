import { BackendError } from '@caffe-ts/blob';
import { EltwiseOp, type EltwiseLayer, type LayerKernel } from '@caffe-ts/layers';
import type { GpuBuffer } from '../device.js';
import { dataOf, deviceOf, diffOf, scratchBuffer, writeDiff } from './util.js';

const sum2Spec = {
  name: 'eltwise-sum2',
  source: `function (A, B, ca, cb, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return ca * A[i] + cb * B[i];
  }`,
};

const prod2Spec = {
  name: 'eltwise-prod2',
  source: `function (A, B, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return A[i] * B[i];
  }`,
};

const max2Spec = {
  name: 'eltwise-max2',
  source: `function (A, B, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return Math.max(A[i], B[i]);
  }`,
};

/**
 * MAX's mask (which bottom won each element), updated before the running max: the first pair
 * gives bottom 1 the ties (Caffe's `a > b ? a : b`), later bottoms win only when strictly larger.
 */
const maxIndexSpec = {
  name: 'eltwise-max-idx',
  source: `function (Y, X, Idx, k, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    if (k == 1) {
      if (Y[i] > X[i]) { return 0; }
      return 1;
    }
    if (X[i] > Y[i]) { return k; }
    return Idx[i];
  }`,
};

const maxBackwardSpec = {
  name: 'eltwise-max-bwd',
  source: `function (DY, Idx, k, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    if (Idx[i] == k) { return DY[i]; }
    return 0;
  }`,
};

/** PROD without stable_prod_grad: dx = dy · y / x. */
const prodDivSpec = {
  name: 'eltwise-prod-div',
  source: `function (DY, Y, X, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return DY[i] * Y[i] / X[i];
  }`,
};

interface EltwiseFields {
  op: EltwiseOp;
  coeffs: number[];
  stableProdGrad: boolean;
}
/** The layer's settings, read at set-up (private on the CPU layer; its layerSetUp validated them). */
const fields = (layer: EltwiseLayer) => layer as unknown as EltwiseFields;

/**
 * Eltwise SUM (coefficients), PROD and MAX, pairwise on the device: bottoms 0 and 1 into the top,
 * then each further bottom into the running result. MAX keeps its argmax mask in a scratch buffer.
 */
export const eltwiseKernel: LayerKernel<EltwiseLayer> = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const { op, coeffs } = fields(layer);
    const t = top[0]!;
    const n = t.count();
    const target = t.mutableGpuData() as GpuBuffer;
    const xs = bottom.map((b) => dataOf(dev, b));
    switch (op) {
      case EltwiseOp.SUM:
        dev.runInto(target, sum2Spec, [xs[0], xs[1], coeffs[0]!, coeffs[1]!, n]);
        for (let k = 2; k < xs.length; k++) dev.runInto(target, sum2Spec, [dev.read(target), xs[k], 1, coeffs[k]!, n]);
        return;
      case EltwiseOp.PROD:
        dev.runInto(target, prod2Spec, [xs[0], xs[1], n]);
        for (let k = 2; k < xs.length; k++) dev.runInto(target, prod2Spec, [dev.read(target), xs[k], n]);
        return;
      case EltwiseOp.MAX: {
        const mask = scratchBuffer(layer, 'max-mask', n);
        dev.runInto(mask, maxIndexSpec, [xs[0], xs[1], dev.read(mask), 1, n]);
        dev.runInto(target, max2Spec, [xs[0], xs[1], n]);
        for (let k = 2; k < xs.length; k++) {
          dev.runInto(mask, maxIndexSpec, [dev.read(target), xs[k], dev.read(mask), k, n]);
          dev.runInto(target, max2Spec, [dev.read(target), xs[k], n]);
        }
        return;
      }
      default:
        throw new BackendError(`Eltwise layer '${layer.name}': no gpu kernel for operation ${String(op)}`);
    }
  },
  backward(layer, top, propagateDown, bottom) {
    const dev = deviceOf(layer);
    const { op, coeffs, stableProdGrad } = fields(layer);
    const t = top[0]!;
    const n = t.count();
    bottom.forEach((b, k) => {
      if (!propagateDown[k]) return;
      // Read dy afresh: a bottom written earlier in this loop may share the top's diff (in place).
      const dy = diffOf(dev, t);
      switch (op) {
        case EltwiseOp.SUM:
          writeDiff(dev, b, sum2Spec, [dy, dy, coeffs[k]!, 0, n]);
          return;
        case EltwiseOp.PROD: {
          if (!stableProdGrad) {
            writeDiff(dev, b, prodDivSpec, [dy, dataOf(dev, t), dataOf(dev, b), n]);
            return;
          }
          const target = b.mutableGpuDiff() as GpuBuffer;
          let first = true;
          bottom.forEach((other, j) => {
            if (j === k) return;
            dev.runInto(target, prod2Spec, [first ? dy : dev.read(target), dataOf(dev, other), n]);
            first = false;
          });
          return;
        }
        case EltwiseOp.MAX:
          writeDiff(dev, b, maxBackwardSpec, [dy, dev.read(scratchBuffer(layer, 'max-mask', n)), k, n]);
          return;
      }
    });
  },
};
