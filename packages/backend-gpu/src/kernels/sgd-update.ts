import type { Blob } from '@caffe-ts/blob';
import type { GpuBuffer, GpuDevice } from '../device.js';

const axpbySpec = {
  name: 'axpby',
  source: `function (X, Y, alpha, beta, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    return alpha * X[i] + beta * Y[i];
  }`,
};

const zeroSpec = {
  name: 'fill0',
  source: `function (count) {
    return 0;
  }`,
};

/** Device vector ops a solver can use without reading parameters back to the host. */
export interface GpuOps {
  /** y ← alpha·x + beta·y over the first `count` elements of two device buffers. */
  axpby(alpha: number, x: GpuBuffer, beta: number, y: GpuBuffer, count?: number): void;
  /**
   * Caffe's SGD step for one param: history ← lr·diff + momentum·history; diff ← history;
   * data ← data − diff. `history` is a blob of the same count on the same backend.
   */
  sgdUpdate(param: Blob, history: Blob, lr: number, momentum: number): void;
  /** data ← data − diff (Blob.update on the device). */
  update(param: Blob): void;
  /** diff ← 0 on the device (Net.clearParamDiffs without a readback). */
  clearDiff(param: Blob): void;
}

export function createGpuOps(dev: GpuDevice): GpuOps {
  const axpby = (alpha: number, x: GpuBuffer, beta: number, y: GpuBuffer, count = Math.min(x.length, y.length)): void => {
    dev.runInto(y, axpbySpec, [dev.read(x), dev.read(y), alpha, beta, count]);
  };
  return {
    axpby,
    sgdUpdate(param, history, lr, momentum) {
      const n = param.count();
      const hist = history.mutableGpuData() as GpuBuffer;
      axpby(lr, param.gpuDiff() as GpuBuffer, momentum, hist, n);
      const diff = param.mutableGpuDiff() as GpuBuffer;
      axpby(1, hist, 0, diff, n);
      axpby(-1, diff, 1, param.mutableGpuData() as GpuBuffer, n);
    },
    clearDiff(param) {
      const diff = param.mutableGpuDiff() as GpuBuffer;
      dev.runInto(diff, zeroSpec, [diff.length]);
    },
    update(param) {
      axpby(-1, param.gpuDiff() as GpuBuffer, 1, param.mutableGpuData() as GpuBuffer, param.count());
    },
  };
}
