import { BackendError, type Blob } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';
import type { GpuBuffer, GpuDevice } from '../device.js';
import { concatInto } from './concat.js';
import { affineSpec } from './scale.js';
import { gemmArgs, gemmSpec } from './gemm.js';
import type { GpuValue } from '../runtime.js';
import { ceil4, packedGemm, packMatrix, unpack, type MatrixLayout } from './packed.js';
import { dataOf, derivedOf, deviceOf, diffOf, placeholder, writeData, writeDiff } from './util.js';

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
 * A weight matrix longer than the device's exact-index limit (AlexNet's fc6: 4096 × 9216) is held
 * in parts of whole rows (N×K: rows of K); each part is one GEMM, the outputs are assembled
 * column block by column block. Transposed (K×N) weights that large are refused.
 */
function splitWeight(layer: Layer, dev: GpuDevice, w: GpuBuffer, N: number, K: number, transpose: boolean): { r0: number; rows: number; p: number }[] {
  if (transpose) {
    throw new BackendError(`InnerProduct layer '${layer.name}': a transposed weight of ${N * K} floats is over the gpu backend's exact-index limit (${dev.splitLimit})`);
  }
  const rowsPer = Math.floor(dev.splitLimit / K);
  if (rowsPer < 1) throw new BackendError(`InnerProduct layer '${layer.name}': one weight row of ${K} floats is over the gpu backend's exact-index limit (${dev.splitLimit})`);
  dev.repartition(w, rowsPer * K);
  const out: { r0: number; rows: number; p: number }[] = [];
  for (let p = 0; p * rowsPer < N; p++) out.push({ r0: p * rowsPer, rows: Math.min(rowsPer, N - p * rowsPer), p });
  return out;
}

/** Whether the packed GEMM path takes this layer (GL modes; operands within the exact-index limit). */
function usePacked(dev: GpuDevice, M: number, K: number, N: number): boolean {
  if (!dev.packed) return false;
  const r4 = (n: number) => 4 * ceil4(n);
  return Math.max(r4(M) * ceil4(K), r4(K) * ceil4(N), r4(N) * ceil4(M), r4(M) * ceil4(N), r4(N) * ceil4(K)) <= dev.splitLimit;
}

/**
 * out = alpha·(A·B) (+ beta·old, + bias[col]) with A (M×K) and B (K×N) read from scalar buffers
 * through their layouts (which express transposes), as one packed GEMM.
 */
function productPacked(
  dev: GpuDevice,
  x: GpuValue,
  la: { sr: number; sc: number },
  y: GpuValue,
  lb: { sr: number; sc: number },
  M: number,
  K: number,
  N: number,
  target: GpuBuffer,
  count: number,
  extra: { old?: GpuValue; bias?: GpuValue; weights?: PackedWeights } = {},
): void {
  dev.set(target, productValue(dev, x, la, y, lb, M, K, N, target.length, count, extra));
}

/**
 * B is a layer's weights (`part`: which part of a split weight buffer, and the parts' length; ''
 * for a whole one): its packed form is kept on the device while they are unchanged (derivedOf).
 */
interface PackedWeights {
  blob: Blob;
  part: string;
}

/** The same product as a fresh scalar value of `length` floats (the caller stores or frees it). */
function productValue(
  dev: GpuDevice,
  x: GpuValue,
  la: { sr: number; sc: number },
  y: GpuValue,
  lb: { sr: number; sc: number },
  M: number,
  K: number,
  N: number,
  length: number,
  count: number,
  extra: { old?: GpuValue; bias?: GpuValue; weights?: PackedWeights } = {},
): GpuValue {
  const a = packMatrix(dev, x, { rows: M, cols: K, ...la } satisfies MatrixLayout);
  const packB = () => packMatrix(dev, y, { rows: 4 * ceil4(K), validRows: K, cols: N, ...lb } satisfies MatrixLayout);
  const w = extra.weights;
  const b = w ? derivedOf(dev, w.blob, `ip ${w.part} ${K} ${N} ${lb.sr} ${lb.sc}`, packB) : packB();
  const c = packedGemm(dev, a, b, M, ceil4(N), ceil4(K));
  dev.release(a);
  if (!w) dev.release(b);
  const out = unpack(dev, c, { length, count, cols: N, layout: 'matrix', old: extra.old ? { value: extra.old, beta: 1 } : undefined, bias: extra.bias });
  dev.release(c.value);
  return out;
}

/**
 * Weights are N×K (K×N with `transpose`); top = bottom·Wᵀ + b. Backward accumulates into the
 * param diffs (beta = 1), as Caffe's layers do, and overwrites the bottom diff.
 */
export const innerProductKernel: LayerKernel = {
  forward(layer, bottom, top) {
    const dev = deviceOf(layer);
    const { M, K, N, transpose, biasTerm } = dims(layer, bottom[0]!);
    const wBuf = layer.blobs[0]!.gpuData() as GpuBuffer;
    if (wBuf.parts) {
      const x = dataOf(dev, bottom[0]!);
      const pieces = splitWeight(layer, dev, wBuf, N, K, transpose).map(({ r0, rows, p }) => {
        if (usePacked(dev, M, K, rows)) {
          // This part's rows as a packed GEMM: x (M×K)·W_partᵀ (W_part is rows×K).
          const weights = { blob: layer.blobs[0]!, part: `${p}/${wBuf.partLength}` };
          const v = productValue(dev, x, { sr: K, sc: 1 }, dev.readPart(wBuf, p), { sr: 1, sc: K }, M, K, rows, M * rows, M * rows, { weights });
          return { value: dev.adopt(v), off: r0, slab: rows };
        }
        const args = gemmArgs(dev, { A: x, B: dev.readPart(wBuf, p), M, N: rows, K, transA: false, transB: true });
        return { value: dev.adopt(dev.run(gemmSpec(K), M * rows, args)), off: r0, slab: rows };
      });
      const target = top[0]!.mutableGpuData() as GpuBuffer;
      concatInto(dev, target, pieces, N, M * N);
      for (const piece of pieces) dev.release(piece.value);
      if (biasTerm) {
        dev.runInto(target, affineSpec, [dev.read(target), placeholder(dev), 0, dataOf(dev, layer.blobs[1]!), 1, N, 1, M * N]);
      }
      return;
    }
    if (usePacked(dev, M, K, N)) {
      // top (M×N) = x (M×K)·Wᵀ: W is N×K (K×N when transposed).
      const bias = biasTerm ? dataOf(dev, layer.blobs[1]!) : undefined;
      const wl = transpose ? { sr: N, sc: 1 } : { sr: 1, sc: K };
      const weights = { blob: layer.blobs[0]!, part: '' };
      productPacked(dev, dataOf(dev, bottom[0]!), { sr: K, sc: 1 }, dataOf(dev, layer.blobs[0]!), wl, M, K, N, top[0]!.mutableGpuData() as GpuBuffer, top[0]!.count(), { bias, weights });
      return;
    }
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
    const w = layer.blobs[0]!;
    const wBuf = w.gpuData() as GpuBuffer;
    const split = wBuf.parts ? splitWeight(layer, dev, wBuf, N, K, transpose) : null;
    const packed = !split && usePacked(dev, M, K, N);
    if (layer.paramPropagateDown[0] ?? true) {
      if (split) {
        // dW rows [r0, r0 + rows) += dy[:, r0 …]ᵀ·x, part by part (the diff cut like the data).
        const dBuf = w.mutableGpuDiff() as GpuBuffer;
        dev.repartition(dBuf, wBuf.partLength);
        for (const { r0, rows, p } of split) {
          // A[m, k] = dy[k·N + r0 + m] (m a weight row, k a batch row).
          const args = gemmArgs(dev, { A: dy, B: x, M: rows, N: K, K: M, transA: true, transB: false, beta: 1, C: dev.readPart(dBuf, p), aOff: r0, sAk: N });
          dev.setPart(dBuf, p, dev.run(gemmSpec(M), rows * K, args));
        }
      } else if (packed) {
        const dBuf = w.mutableGpuDiff() as GpuBuffer;
        const old = dev.read(dBuf);
        if (transpose) productPacked(dev, x, { sr: 1, sc: K }, dy, { sr: N, sc: 1 }, K, M, N, dBuf, w.count(), { old });
        else productPacked(dev, dy, { sr: 1, sc: N }, x, { sr: K, sc: 1 }, N, M, K, dBuf, w.count(), { old });
      } else {
        // dW (N×K) += dyᵀ·x, or (K×N) += xᵀ·dy when transposed.
        const args = transpose
          ? gemmArgs(dev, { A: x, B: dy, M: K, N, K: M, transA: true, transB: false, beta: 1, C: diffOf(dev, w) })
          : gemmArgs(dev, { A: dy, B: x, M: N, N: K, K: M, transA: true, transB: false, beta: 1, C: diffOf(dev, w) });
        writeDiff(dev, w, gemmSpec(M), args);
      }
    }
    if (biasTerm && (layer.paramPropagateDown[1] ?? true)) {
      const b = layer.blobs[1]!;
      const old = diffOf(dev, b);
      dev.runInto(b.mutableGpuDiff() as GpuBuffer, colSumSpec(M), [dy, old, M, N, 1]);
    }
    if (propagateDown[0]) {
      if (split) {
        // dx = Σ_parts dy[:, r0 …]·W_part, accumulated pass by pass.
        const target = bottom[0]!.mutableGpuDiff() as GpuBuffer;
        split.forEach(({ r0, rows, p }, i) => {
          const args = gemmArgs(dev, { A: dy, B: dev.readPart(wBuf, p), M, N: K, K: rows, transA: false, transB: false, aOff: r0, sAm: N, beta: i > 0 ? 1 : 0, C: i > 0 ? dev.read(target) : undefined });
          dev.runInto(target, gemmSpec(rows), args);
        });
        return;
      }
      if (packed) {
        // dx (M×K) = dy (M×N)·W (N×K; W is K×N when transposed).
        const wl = transpose ? { sr: 1, sc: N } : { sr: K, sc: 1 };
        productPacked(dev, dy, { sr: N, sc: 1 }, dataOf(dev, layer.blobs[0]!), wl, M, N, K, bottom[0]!.mutableGpuDiff() as GpuBuffer, bottom[0]!.count());
        return;
      }
      const args = gemmArgs(dev, { A: dy, B: dataOf(dev, layer.blobs[0]!), M, N: K, K: N, transA: false, transB: transpose });
      writeDiff(dev, bottom[0]!, gemmSpec(N), args);
    }
  },
};
