import type { Blob } from '@caffe-ts/blob';
import { LayerError, type BiasLayer, type LayerKernel, type ScaleLayer } from '@caffe-ts/layers';
import type { GpuBuffer } from '../device.js';
import { channelSumSpec, CHANNEL_OF_I, copySpec, dataOf, deviceOf, diffOf, placeholder, scratchBuffer, writeDiff } from './util.js';

/** y = x·s[d] (when hasS) + b[d] (when hasB), d the channel of an (outer, D, inner) layout. */
export const affineSpec = {
  name: 'chan-affine',
  source: `function (X, S, hasS, B, hasB, D, inner, count) {
    const i = this.thread.x;
    if (i >= count) { return 0; }
    ${CHANNEL_OF_I}
    let v = X[i];
    if (hasS > 0) { v = v * S[d]; }
    if (hasB > 0) { v = v + B[d]; }
    return v;
  }`,
};

/** Layers whose last in-place forward kept its input (in the 'input' scratch buffer). */
const keptInput = new WeakSet<ScaleLayer>();

/**
 * Write a top from its bottom by `args`' kernel. In place, the input's value is not freed but
 * moved into the layer's 'input' scratch buffer (no copy), since the scale gradient needs it;
 * unless the net never runs this layer's backward (`backwardNeeded` false, as the CPU layer).
 */
function writeTop(layer: ScaleLayer, bottom: Blob, top: Blob, args: unknown[]): void {
  const dev = deviceOf(layer);
  const handle = top.mutableGpuData() as GpuBuffer;
  const out = dev.run(affineSpec, handle.length, args);
  if (bottom === top && layer.backwardNeeded) {
    dev.setKeeping(handle, out, scratchBuffer(layer, 'input', handle.length));
    keptInput.add(layer);
  } else {
    dev.set(handle, out);
    // Let go of an input kept by an earlier forward.
    if (keptInput.delete(layer)) dev.clear(scratchBuffer(layer, 'input', handle.length));
  }
}

/** The learned (or bottom[1]) scale, and the bias blob when bias_term. */
const scaleOf = (layer: ScaleLayer, bottom: Blob[]): Blob => (bottom.length > 1 ? bottom[1]! : layer.blobs[0]!);
const biasOf = (layer: ScaleLayer): Blob | null => (layer.biasParamId >= 0 ? layer.blobs[layer.biasParamId]! : null);

/**
 * Scale (+ bias): one elementwise pass forward. Backward: the bias and scale gradients are
 * per-channel reductions (learned ones accumulate, a bottom's is overwritten), then dx = s·dy.
 */
export const scaleKernel: LayerKernel<ScaleLayer> = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const b0 = bottom[0]!;
    const bias = biasOf(layer);
    const ph = placeholder(dev);
    const args = [dataOf(dev, b0), dataOf(dev, scaleOf(layer, bottom)), 1, bias ? dataOf(dev, bias) : ph, bias ? 1 : 0, layer.scaleDim, layer.innerDim, top[0]!.count()];
    writeTop(layer, b0, top[0]!, args);
  },
  backward(layer, top, propagateDown, bottom) {
    const dev = deviceOf(layer);
    const t = top[0]!;
    const b0 = bottom[0]!;
    const { scaleDim, innerDim } = layer;
    const n = t.count();
    // From the blob, not the layer: run by parts of images, the blob holds fewer than the batch.
    const outerDim = n / (scaleDim * innerDim);
    const dy = diffOf(dev, t);
    const ph = placeholder(dev);
    const sum = channelSumSpec(outerDim, innerDim);
    const bias = biasOf(layer);
    if (bias && (layer.paramPropagateDown[layer.biasParamId] ?? true)) {
      dev.runInto(bias.mutableGpuDiff() as GpuBuffer, sum, [dy, ph, 0, diffOf(dev, bias), 1, outerDim, scaleDim, innerDim]);
    }
    const learned = bottom.length === 1;
    const s = scaleOf(layer, bottom);
    if (learned ? (layer.paramPropagateDown[0] ?? true) : propagateDown[1]) {
      if (b0 === t && !keptInput.has(layer)) {
        throw new LayerError(`Scale layer '${layer.name}': the scale gradient needs the bottom of the last in-place forward, which was not kept (backwardNeeded was false)`);
      }
      const x = b0 === t ? dev.read(scratchBuffer(layer, 'input', (t.gpuData() as GpuBuffer).length)) : dataOf(dev, b0);
      dev.runInto(s.mutableGpuDiff() as GpuBuffer, sum, [dy, x, 1, learned ? diffOf(dev, s) : ph, learned ? 1 : 0, outerDim, scaleDim, innerDim]);
    }
    if (propagateDown[0]) {
      writeDiff(dev, b0, affineSpec, [dy, dataOf(dev, s), 1, ph, 0, scaleDim, innerDim, n]);
    }
  },
};

/**
 * Whether a Scale or Bias keeps images apart, so it can run by parts of images: one bottom (a
 * second one's gradient is overwritten, not summed over parts) applied within each image.
 */
export const affineSplitsByImage = (layer: ScaleLayer | BiasLayer, bottom: Blob[]): boolean =>
  bottom.length === 1 && layer.outerDim % bottom[0]!.shape[0]! === 0;

/** Bias: y = x + b[d]; backward db (+)= Σ dy per channel, dx = dy (nothing to do in place). */
export const biasKernel: LayerKernel<BiasLayer> = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const b = bottom.length > 1 ? bottom[1]! : layer.blobs[0]!;
    const ph = placeholder(dev);
    const t = top[0]!;
    dev.runInto(t.mutableGpuData() as GpuBuffer, affineSpec, [dataOf(dev, bottom[0]!), ph, 0, dataOf(dev, b), 1, layer.biasDim, layer.innerDim, t.count()]);
  },
  backward(layer, top, propagateDown, bottom) {
    const dev = deviceOf(layer);
    const t = top[0]!;
    const dy = diffOf(dev, t);
    const learned = bottom.length === 1;
    if (learned ? (layer.paramPropagateDown[0] ?? true) : propagateDown[1]) {
      const b = learned ? layer.blobs[0]! : bottom[1]!;
      const ph = placeholder(dev);
      const outerDim = t.count() / (layer.biasDim * layer.innerDim);
      const sum = channelSumSpec(outerDim, layer.innerDim);
      dev.runInto(b.mutableGpuDiff() as GpuBuffer, sum, [dy, ph, 0, learned ? diffOf(dev, b) : ph, learned ? 1 : 0, outerDim, layer.biasDim, layer.innerDim]);
    }
    if (propagateDown[0] && bottom[0] !== t) writeDiff(dev, bottom[0]!, copySpec, [dy, t.count()]);
  },
};
