import type { GpuDevice, KernelSpec } from '../device.js';
import type { GpuValue } from '../runtime.js';
import { IDIV } from './util.js';

/**
 * out[m·N + n] = alpha · Σ_k A[aOff + m·sAm + k·sAk] · B[bOff + k·sBk + n·sBn] + beta · C[m·N + n] + bias[n]·hasBias.
 * Strides express transposes, so one kernel serves every product a layer needs.
 */
export const gemmSpec = (K: number): KernelSpec => ({
  name: 'gemm',
  loop: K,
  source: `function (A, B, C, bias, M, N, K, sAm, sAk, sBk, sBn, alpha, beta, hasBias, aOff, bOff) {
    const idx = this.thread.x;
    if (idx >= M * N) { return 0; }
    const m = ${IDIV('idx', 'N')};
    const n = idx - m * N;
    let s = 0.0;
    for (let k = 0; k < K; k++) {
      s += A[aOff + m * sAm + k * sAk] * B[bOff + k * sBk + n * sBn];
    }
    let r = alpha * s;
    if (beta != 0) { r += beta * C[idx]; }
    if (hasBias > 0) { r += bias[n]; }
    return r;
  }`,
});

export interface GemmArgs {
  A: GpuValue;
  B: GpuValue;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha?: number;
  beta?: number;
  C?: GpuValue;
  bias?: GpuValue;
  /** Element offsets of A and B (a column block of a row-major matrix). */
  aOff?: number;
  bOff?: number;
  /** Strides overriding the packed ones (a block of a wider matrix). */
  sAm?: number;
  sAk?: number;
  sBk?: number;
}

/** Argument list for gemmSpec; A is M×K (or K×M when transposed), B is K×N (or N×K). */
export function gemmArgs(dev: GpuDevice, g: GemmArgs): unknown[] {
  const ph = dev.read(dev.placeholder);
  const [sAm, sAk] = g.transA ? [1, g.M] : [g.K, 1];
  const [sBk, sBn] = g.transB ? [1, g.K] : [g.N, 1];
  return [g.A, g.B, g.C ?? ph, g.bias ?? ph, g.M, g.N, g.K, g.sAm ?? sAm, g.sAk ?? sAk, g.sBk ?? sBk, sBn, g.alpha ?? 1, g.beta ?? 0, g.bias ? 1 : 0, g.aOff ?? 0, g.bOff ?? 0];
}
