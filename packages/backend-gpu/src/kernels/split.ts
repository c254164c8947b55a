import type { LayerKernel } from '@caffe-ts/layers';
import type { GpuBuffer } from '../device.js';
import { deviceOf, diffOf, placeholder } from './util.js';

const addSpec = {
  name: 'add2',
  source: `function (A, B, hasB, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    if (hasB > 0) { return A[i] + B[i]; }
    return A[i];
  }`,
};

/** Split: tops share the bottom's data (no work forward); backward sums the tops' diffs on the device. */
export const splitKernel: LayerKernel = {
  forward(_layer, bottom, top) {
    for (const t of top) t.shareData(bottom[0]!);
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const n = bottom[0]!.count();
    // Pairwise so each kernel has two inputs: dx = dy0 + dy1, then dx += dy_t.
    const target = bottom[0]!.mutableGpuDiff() as GpuBuffer;
    const second = top.length > 1 ? diffOf(dev, top[1]!) : placeholder(dev);
    dev.runInto(target, addSpec, [diffOf(dev, top[0]!), second, top.length > 1 ? 1 : 0, n]);
    for (let t = 2; t < top.length; t++) {
      dev.runInto(target, addSpec, [dev.read(target), diffOf(dev, top[t]!), 1, n]);
    }
  },
};
