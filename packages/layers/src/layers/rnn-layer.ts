import { gemm, type Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { RecurrentLayer, type RecurrenceBackward, type RecurrenceForward, type RecurrentParamSpec } from './recurrent-layer.js';

/**
 * RNN (Caffe's "vanilla" recurrent layer): for t = 1…T, with O = num_output,
 *   h_t = tanh(W_hh·(cont_t·h_{t−1}) + W_xh·x_t + b_h [+ W_xh_static·x_static]),
 *   o_t = tanh(W_ho·h_t + b_o);
 * top 0 is o (T×N×O); the recurrent state is h (exposed as h_0 → h_T with `expose_hidden`).
 * Params, in the order of Caffe's unrolled net: W_xh (O×input), b_h (O), [W_xh_static
 * (O×static_input)], W_hh (O×O), W_ho (O×O), b_o (O).
 */
export class RNNLayer extends RecurrentLayer {
  readonly type = 'RNN';
  protected readonly recurrentInputNames = ['h_0'];
  protected readonly inputWeightName = 'W_xh';
  protected readonly inputBiasName = 'b_h';

  /** cont_t·h_{t−1} and h_t for every step (T×N×O), kept for backward. */
  private readonly hConted: Blob = this.newBlob();
  private readonly hidden: Blob = this.newBlob();
  /** Backward scratch: ∂E/∂(W_ho·h + b_o), ∂E/∂h from the outputs, one step's recurrent diffs. */
  private readonly outPreDiff: Blob = this.newBlob();
  private readonly hiddenDiff: Blob = this.newBlob();
  private readonly stepDiff: Blob = this.newBlob();
  private readonly carryDiff: Blob = this.newBlob();

  protected gateDim(numOutput: number): number {
    return numOutput;
  }

  protected recurrentParamSpecs(o: number): RecurrentParamSpec[] {
    return [
      { name: 'W_hh', shape: [o, o], filler: 'weight' },
      { name: 'W_ho', shape: [o, o], filler: 'weight' },
      { name: 'b_o', shape: [o], filler: 'bias' },
    ];
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const seq = [this.T, this.N, this.O];
    for (const b of [this.hConted, this.hidden, this.outPreDiff, this.hiddenDiff]) b.reshape(seq);
    this.stepDiff.reshape([this.N, this.O]);
    this.carryDiff.reshape([this.N, this.O]);
  }

  protected forwardRecurrence({ T, N, O, inputProjection, cont, initial, final, output }: RecurrenceForward): void {
    const whh = this.recurrentParam(0).cpuData();
    const who = this.recurrentParam(1).cpuData();
    const bo = this.recurrentParam(2).cpuData();
    const hc = this.hConted.mutableCpuData();
    const h = this.hidden.mutableCpuData();
    const step = N * O;
    let hPrev = initial[0]!;
    for (let t = 0; t < T; t++) {
      const hcT = hc.subarray(t * step, (t + 1) * step);
      for (let n = 0; n < N; n++) {
        const k = cont[t * N + n]!;
        for (let d = 0; d < O; d++) hcT[n * O + d] = k * hPrev[n * O + d]!;
      }
      const hT = h.subarray(t * step, (t + 1) * step);
      hT.set(inputProjection.subarray(t * step, (t + 1) * step));
      gemm(false, true, N, O, O, 1, hcT, whh, 1, hT);
      for (let k = 0; k < step; k++) hT[k] = Math.tanh(hT[k]!);
      hPrev = hT;
    }
    final[0]!.set(hPrev);
    // o = tanh(W_ho·h + b_o) for all steps at once.
    gemm(false, true, T * N, O, O, 1, h, who, 0, output);
    for (let r = 0; r < T * N; r++) for (let d = 0; d < O; d++) output[r * O + d] = Math.tanh(output[r * O + d]! + bo[d]!);
  }

  protected backwardRecurrence(b: RecurrenceBackward): void {
    const { T, N, O, cont, output, outputDiff, finalDiff, inputProjectionDiff: dPre, initialDiff } = b;
    const off = this.recurrentParamOffset;
    const whh = this.recurrentParam(0).cpuData();
    const who = this.recurrentParam(1).cpuData();
    const h = this.hidden.cpuData();
    const hc = this.hConted.cpuData();
    const dz = this.outPreDiff.mutableCpuData();
    for (let k = 0; k < dz.length; k++) dz[k] = outputDiff[k]! * (1 - output[k]! * output[k]!);
    if (this.wantsParamDiff(off + 1)) gemm(true, false, O, O, T * N, 1, dz, h, 1, this.recurrentParam(1).mutableCpuDiff());
    if (this.wantsParamDiff(off + 2)) {
      const db = this.recurrentParam(2).mutableCpuDiff();
      for (let r = 0; r < T * N; r++) for (let d = 0; d < O; d++) db[d]! += dz[r * O + d]!;
    }
    const dh = this.hiddenDiff.mutableCpuData();
    gemm(false, false, T * N, O, O, 1, dz, who, 0, dh);
    // Through time: dh_t gets the output's share and the next step's recurrent share.
    const step = N * O;
    const carry = this.carryDiff.mutableCpuData();
    const dhc = this.stepDiff.mutableCpuData();
    carry.set(finalDiff[0]!);
    for (let t = T - 1; t >= 0; t--) {
      const da = dPre.subarray(t * step, (t + 1) * step);
      for (let k = 0; k < step; k++) {
        const ht = h[t * step + k]!;
        da[k] = (dh[t * step + k]! + carry[k]!) * (1 - ht * ht);
      }
      gemm(false, false, N, O, O, 1, da, whh, 0, dhc);
      for (let n = 0; n < N; n++) {
        const k = cont[t * N + n]!;
        for (let d = 0; d < O; d++) carry[n * O + d] = k * dhc[n * O + d]!;
      }
    }
    if (this.wantsParamDiff(off)) gemm(true, false, O, O, T * N, 1, dPre, hc, 1, this.recurrentParam(0).mutableCpuDiff());
    initialDiff[0]!.set(carry);
  }
}

export const rnnLayerDef: LayerDef<RNNLayer> = { type: 'RNN', create: (p, ctx) => new RNNLayer(p, ctx) };
