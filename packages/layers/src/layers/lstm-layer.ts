import { gemm, type Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { lstmUnitBackward, lstmUnitForward } from './lstm-unit-layer.js';
import { RecurrentLayer, type RecurrenceBackward, type RecurrenceForward, type RecurrentParamSpec } from './recurrent-layer.js';

/**
 * LSTM (Caffe's, after Graves 2013 without peepholes): for t = 1…T, with O = num_output,
 *   [i; f; o; g]' = W_hc·(cont_t·h_{t−1}) + W_xc·x_t + b_c [+ W_xc_static·x_static],
 *   i, f, o = σ(·), g = tanh(·), c_t = cont_t·f·c_{t−1} + i·g, h_t = o·tanh(c_t)
 * (each step is an LSTMUnit). Top 0 is h (T×N×O); the recurrent state is (h, c), exposed as
 * h_0, c_0 → h_T, c_T with `expose_hidden`.
 * Params, in the order of Caffe's unrolled net: W_xc (4O×input), b_c (4O), [W_xc_static
 * (4O×static_input)], W_hc (4O×O); rows are grouped by gate in the order i, f, o, g.
 */
export class LSTMLayer extends RecurrentLayer {
  readonly type = 'LSTM';
  protected readonly recurrentInputNames = ['h_0', 'c_0'];
  protected readonly inputWeightName = 'W_xc';
  protected readonly inputBiasName = 'b_c';

  /** Per step, kept for backward: cont_t·h_{t−1} (T×N×O), gate inputs (T×N×4O), cells (T×N×O). */
  private readonly hConted: Blob = this.newBlob();
  private readonly gates: Blob = this.newBlob();
  private readonly cells: Blob = this.newBlob();
  /** Backward scratch for one step: ∂E/∂h_t, ∂E/∂c_t, ∂E/∂(cont_t·h_{t−1}). */
  private readonly hDiff: Blob = this.newBlob();
  private readonly cDiff: Blob = this.newBlob();
  private readonly hcDiff: Blob = this.newBlob();

  protected gateDim(numOutput: number): number {
    return 4 * numOutput;
  }

  protected recurrentParamSpecs(o: number): RecurrentParamSpec[] {
    return [{ name: 'W_hc', shape: [4 * o, o], filler: 'weight' }];
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    this.hConted.reshape([this.T, this.N, this.O]);
    this.cells.reshape([this.T, this.N, this.O]);
    this.gates.reshape([this.T, this.N, this.G]);
    for (const b of [this.hDiff, this.cDiff, this.hcDiff]) b.reshape([this.N, this.O]);
  }

  protected forwardRecurrence({ T, N, O, G, inputProjection, cont, initial, final, output }: RecurrenceForward): void {
    const whc = this.recurrentParam(0).cpuData();
    const hc = this.hConted.mutableCpuData();
    const gates = this.gates.mutableCpuData();
    const cells = this.cells.mutableCpuData();
    const step = N * O;
    let hPrev = initial[0]!;
    let cPrev = initial[1]!;
    for (let t = 0; t < T; t++) {
      const hcT = hc.subarray(t * step, (t + 1) * step);
      for (let n = 0; n < N; n++) {
        const k = cont[t * N + n]!;
        for (let d = 0; d < O; d++) hcT[n * O + d] = k * hPrev[n * O + d]!;
      }
      const gT = gates.subarray(t * N * G, (t + 1) * N * G);
      gT.set(inputProjection.subarray(t * N * G, (t + 1) * N * G));
      gemm(false, true, N, G, O, 1, hcT, whc, 1, gT);
      const cT = cells.subarray(t * step, (t + 1) * step);
      const hT = output.subarray(t * step, (t + 1) * step);
      lstmUnitForward(N, O, cPrev, gT, cont.subarray(t * N, (t + 1) * N), cT, hT);
      hPrev = hT;
      cPrev = cT;
    }
    final[0]!.set(hPrev);
    final[1]!.set(cPrev);
  }

  protected backwardRecurrence(b: RecurrenceBackward): void {
    const { T, N, O, G, cont, initial, outputDiff, finalDiff, inputProjectionDiff: dGates, initialDiff } = b;
    const whc = this.recurrentParam(0).cpuData();
    const gates = this.gates.cpuData();
    const cells = this.cells.cpuData();
    const step = N * O;
    const dh = this.hDiff.mutableCpuData();
    const dc = this.cDiff.mutableCpuData();
    const dhc = this.hcDiff.mutableCpuData();
    // dh holds the recurrent share of ∂E/∂h_t until the output's share is added below.
    dh.set(finalDiff[0]!);
    dc.set(finalDiff[1]!);
    for (let t = T - 1; t >= 0; t--) {
      for (let k = 0; k < step; k++) dh[k]! += outputDiff[t * step + k]!;
      const cPrev = t > 0 ? cells.subarray((t - 1) * step, t * step) : initial[1]!;
      const contT = cont.subarray(t * N, (t + 1) * N);
      const dgT = dGates.subarray(t * N * G, (t + 1) * N * G);
      // dc is read and then overwritten element by element with ∂E/∂c_{t−1}.
      lstmUnitBackward(N, O, cPrev, gates.subarray(t * N * G, (t + 1) * N * G), contT, cells.subarray(t * step, (t + 1) * step), dc, dh, dgT, dc);
      gemm(false, false, N, O, G, 1, dgT, whc, 0, dhc);
      for (let n = 0; n < N; n++) {
        const k = contT[n]!;
        for (let d = 0; d < O; d++) dh[n * O + d] = k * dhc[n * O + d]!;
      }
    }
    if (this.wantsParamDiff(this.recurrentParamOffset)) {
      gemm(true, false, G, O, T * N, 1, dGates, this.hConted.cpuData(), 1, this.recurrentParam(0).mutableCpuDiff());
    }
    initialDiff[0]!.set(dh);
    initialDiff[1]!.set(dc);
  }
}

export const lstmLayerDef: LayerDef<LSTMLayer> = { type: 'LSTM', create: (p, ctx) => new LSTMLayer(p, ctx) };
