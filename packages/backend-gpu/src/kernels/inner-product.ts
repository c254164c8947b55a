import { BackendError, type Blob } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';
import type { GpuBuffer } from '../device.js';
import { gemmArgs, gemmSpec } from './gemm.js';
import { dataOf, deviceOf, diffOf, writeData, writeDiff } from './util.js';

function dims(layer: Layer, bottom: Blob) {
  const p = layer.param.inner_product_param;
  if (!p) throw new BackendError(`InnerProduct layer '${layer.name}': missing inner_product_param`);
  const axis = bottom.canonicalAxisIndex(p.axis);
  const M = bottom.count(0, axis);
  const K = bottom.count(axis);
  const N = p.num_output;
  return { M, K, N, transpose: p.transpose, biasTerm: p.bias_term };
}

/** Column sums: out[i] = beta·old[i] + Σ_r X[r·R + i] over r < rows (bias gradients). */
const colSumSpec = (rows: number) => ({
  name: 'colsum',
  loop: rows,
  source: `function (X, old, rows, cols, beta) {
    const i = this.thread.x;
    if (i >= cols) { return 0; }
    let s = 0.0;
    for (let r = 0; r < rows; r++) { s += X[r * cols + i]; }
    return s + beta * old[i];
  }`,
});

/**
 * Weights are N×K (K×N with `transpose`); top = bottom·Wᵀ + b. Backward accumulates into the
 * param diffs (beta = 1), as Caffe's layers do, and overwrites the bottom diff.
 */
export const innerProductKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const { M, K, N, transpose, biasTerm } = dims(layer, bottom[0]!);
    const args = gemmArgs(dev, {
      A: dataOf(dev, bottom[0]!),
      B: dataOf(dev, layer.blobs[0]!),
      M,
      N,
      K,
      transA: false,
      transB: !transpose,
      bias: biasTerm ? dataOf(dev, layer.blobs[1]!) : undefined,
    });
    writeData(dev, top[0]!, gemmSpec(K), args);
  },
  backward(layer, top, propagateDown, bottom) {
    const dev = deviceOf(layer);
    const { M, K, N, transpose, biasTerm } = dims(layer, bottom[0]!);
    const dy = diffOf(dev, top[0]!);
    const x = dataOf(dev, bottom[0]!);
    if (layer.paramPropagateDown[0] ?? true) {
      const w = layer.blobs[0]!;
      // dW (N×K) += dyᵀ·x, or (K×N) += xᵀ·dy when transposed.
      const args = transpose
        ? gemmArgs(dev, { A: x, B: dy, M: K, N, K: M, transA: true, transB: false, beta: 1, C: diffOf(dev, w) })
        : gemmArgs(dev, { A: dy, B: x, M: N, N: K, K: M, transA: true, transB: false, beta: 1, C: diffOf(dev, w) });
      writeDiff(dev, w, gemmSpec(M), args);
    }
    if (biasTerm && (layer.paramPropagateDown[1] ?? true)) {
      const b = layer.blobs[1]!;
      const old = diffOf(dev, b);
      dev.runInto(b.mutableGpuDiff() as GpuBuffer, colSumSpec(M), [dy, old, M, N, 1]);
    }
    if (propagateDown[0]) {
      const args = gemmArgs(dev, { A: dy, B: dataOf(dev, layer.blobs[0]!), M, N: K, K: N, transA: false, transB: transpose });
      writeDiff(dev, bottom[0]!, gemmSpec(N), args);
    }
  },
};
