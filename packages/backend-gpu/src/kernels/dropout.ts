import type { LayerKernel } from '@caffe-ts/layers';
import { Phase } from '@caffe-ts/proto';
import type { GpuBuffer } from '../device.js';
import { dataOf, deviceOf, diffOf, layerPart, scratchBlob, writeData, writeDiff } from './util.js';

const scaleSpec = {
  name: 'dropout',
  source: `function (X, M, scale, useMask, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    if (useMask > 0) { return X[i] * M[i] * scale; }
    return X[i] * scale;
  }`,
};

interface DropoutFields {
  ratio: number;
  scale: number;
  testScale: number;
  mask: Uint8Array;
}

/**
 * Dropout. TEST is the identity (nothing to do in place, a copy otherwise), or a scaling by
 * 1 − ratio with caffe-fast-rcnn's scale_train false. TRAIN draws the mask
 * on the host from the layer's rng, exactly as the CPU layer does (so both backends drop the same
 * units from the same seed), and uploads it: one upload per TRAIN forward, no readback.
 */
export const dropoutKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const x = bottom[0]!;
    const n = x.count();
    const f = layer as unknown as DropoutFields;
    if (layer.phase !== Phase.TRAIN) {
      if (top[0] !== x || f.testScale !== 1) writeData(dev, top[0]!, scaleSpec, [dataOf(dev, x), dataOf(dev, x), f.testScale, 0, n]);
      return;
    }
    const keep = 1 - f.ratio;
    // The layer's scratch mask (one per part of images when run by parts; reshaping, not a new
    // blob, frees the old texture when it grows). Parts run in image order, so the draws match
    // the CPU layer's over the whole batch.
    const mask = scratchBlob(layer, 'mask', n);
    const at = layerPart(layer)?.offset ?? 0;
    const m = mask.mutableCpuData();
    for (let i = 0; i < n; i++) {
      const kept = layer.rng.bernoulli(keep) ? 1 : 0;
      f.mask[at + i] = kept;
      m[i] = kept;
    }
    writeData(dev, top[0]!, scaleSpec, [dataOf(dev, x), dev.read(mask.gpuData() as GpuBuffer), f.scale, 1, n]);
  },
  backward(layer, top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dev = deviceOf(layer);
    const n = top[0]!.count();
    const f = layer as unknown as DropoutFields;
    if (layer.phase !== Phase.TRAIN) {
      if (top[0] !== bottom[0] || f.testScale !== 1) writeDiff(dev, bottom[0]!, scaleSpec, [diffOf(dev, top[0]!), diffOf(dev, top[0]!), f.testScale, 0, n]);
      return;
    }
    const mask = scratchBlob(layer, 'mask', n);
    writeDiff(dev, bottom[0]!, scaleSpec, [diffOf(dev, top[0]!), dev.read(mask.gpuData() as GpuBuffer), f.scale, 1, n]);
  },
};
