import { BackendError, type Blob, type DeviceSolverOps, type SgdStepSettings } from '@caffe-ts/blob';
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

/**
 * The new history of Caffe's SGD with regularization folded in:
 * h = rate·(scale·g + decay·reg(w)) + momentum·h, reg(w) = w (L2) or sign(w) (L1).
 */
const sgdHistorySpec = {
  name: 'sgd-history',
  source: `function (G, W, H, rate, momentum, decay, l1, scale, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    const w = W[i];
    let reg = w;
    if (l1 > 0) {
      reg = 0;
      if (w > 0) { reg = 1; }
      if (w < 0) { reg = -1; }
    }
    return rate * (scale * G[i] + decay * reg) + momentum * H[i];
  }`,
};

/** Device vector ops a solver can use without reading parameters back to the host. */
export interface GpuOps extends DeviceSolverOps {
  /** y ← alpha·x + beta·y over the first `count` elements of two device buffers. */
  axpby(alpha: number, x: GpuBuffer, beta: number, y: GpuBuffer, count?: number): void;
  /**
   * Caffe's SGD step for one param: history ← lr·diff + momentum·history; diff ← history;
   * data ← data − diff. `history` is a blob of the same count on the same backend.
   */
  sgdUpdate(param: Blob, history: Blob, lr: number, momentum: number): void;
  /** data ← data − diff (Blob.update on the device). */
  update(param: Blob): void;
}

/**
 * Run an elementwise step part by part over buffers of one length: split buffers (longer than
 * the exact-index limit) are first cut like the first one; `fn` gets each part's index and the
 * number of its elements below `count`.
 */
function perPart(dev: GpuDevice, bufs: GpuBuffer[], count: number, fn: (p: number, n: number) => void): void {
  const lead = bufs[0]!;
  if (!lead.parts) {
    fn(0, count);
    return;
  }
  for (const b of bufs.slice(1)) {
    if (!b.parts || b.length !== lead.length) {
      throw new BackendError(`gpu backend: elementwise update over a split buffer of ${lead.length} floats and a buffer of ${b.length} floats laid out differently`);
    }
    dev.repartition(b, lead.partLength);
  }
  for (const [p, [start, size]] of dev.partRanges(lead).entries()) fn(p, Math.max(0, Math.min(size, count - start)));
}

export function createGpuOps(dev: GpuDevice): GpuOps {
  const axpby = (alpha: number, x: GpuBuffer, beta: number, y: GpuBuffer, count = Math.min(x.length, y.length)): void => {
    perPart(dev, [y, x], count, (p, n) => dev.setPart(y, p, dev.run(axpbySpec, y.parts ? y.partSize(p) : y.length, [dev.readPart(x, p), dev.readPart(y, p), alpha, beta, n])));
  };
  const sgdStep = (param: Blob, history: Blob, s: SgdStepSettings): void => {
    const n = param.count();
    const data = param.gpuData() as GpuBuffer;
    const diff = param.gpuDiff() as GpuBuffer;
    const hist = history.mutableGpuData() as GpuBuffer;
    perPart(dev, [data, diff, hist], n, (p, c) => {
      const len = data.parts ? data.partSize(p) : hist.length;
      const g = dev.readPart(diff, p);
      const w = dev.readPart(data, p);
      dev.setPart(hist, p, dev.run(sgdHistorySpec, len, [g, w, dev.readPart(hist, p), s.localRate, s.momentum, s.localDecay, s.regularization === 'L1' ? 1 : 0, s.diffScale, c]));
    });
    // Caffe leaves the step in the diff; the data then moves by it.
    axpby(1, hist, 0, param.mutableGpuDiff() as GpuBuffer, n);
    axpby(-1, hist, 1, param.mutableGpuData() as GpuBuffer, n);
  };
  return {
    axpby,
    sgdStep,
    sgdUpdate(param, history, lr, momentum) {
      sgdStep(param, history, { localRate: lr, momentum, localDecay: 0, regularization: 'L2', diffScale: 1 });
    },
    clearDiff(param) {
      const mem = param.diff;
      // A diff that lives only on the host is cleared there: zeroing it on the device would cost an upload.
      if (mem.head === 'cpu') {
        param.mutableCpuDiff().fill(0);
        return;
      }
      const diff = param.mutableGpuDiff() as GpuBuffer;
      perPart(dev, [diff], diff.length, (p) => {
        const len = diff.parts ? diff.partSize(p) : diff.length;
        dev.setPart(diff, p, dev.run(zeroSpec, len, [len]));
      });
    },
    update(param) {
      axpby(-1, param.gpuDiff() as GpuBuffer, 1, param.mutableGpuData() as GpuBuffer, param.count());
    },
  };
}
