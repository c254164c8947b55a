import type { Blob, FloatArray } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

function sigmoid(x: number): number {
  // The tanh form is the logistic function without overflow for large |x|.
  return 0.5 * Math.tanh(0.5 * x) + 0.5;
}

/**
 * One LSTM time step for `num` streams of `dim` cells (the arithmetic of LSTMUnit, shared with
 * the LSTM layer). `x` holds each stream's 4·dim gate inputs in the order (i, f, o, g):
 * i, f, o = σ(·), g = tanh(·), c = cont·f·c_prev + i·g, h = o·tanh(c).
 * Arrays are read from index 0 (pass subarray views).
 */
export function lstmUnitForward(
  num: number, dim: number, cPrev: FloatArray, x: FloatArray, cont: FloatArray, c: FloatArray, h: FloatArray,
): void {
  for (let n = 0; n < num; n++) {
    const xo = n * 4 * dim;
    const so = n * dim;
    const k = cont[n]!;
    for (let d = 0; d < dim; d++) {
      const i = sigmoid(x[xo + d]!);
      const f = k === 0 ? 0 : k * sigmoid(x[xo + dim + d]!);
      const o = sigmoid(x[xo + 2 * dim + d]!);
      const g = Math.tanh(x[xo + 3 * dim + d]!);
      const cell = f * cPrev[so + d]! + i * g;
      c[so + d] = cell;
      h[so + d] = o * Math.tanh(cell);
    }
  }
}

/**
 * The exact gradient of `lstmUnitForward`: from dc and dh (the diffs of c and h) and the
 * forward's inputs and c, writes dx (4·dim per stream) and, when given, dcPrev.
 * For the forget gate it uses ∂(cont·σ(x_f))/∂x_f = cont·σ(1 − σ); Caffe writes f(1 − f) with
 * f = cont·σ, which is the same for the usual cont ∈ {0, 1}.
 */
export function lstmUnitBackward(
  num: number, dim: number, cPrev: FloatArray, x: FloatArray, cont: FloatArray, c: FloatArray,
  dc: FloatArray, dh: FloatArray, dx: FloatArray | null, dcPrev: FloatArray | null,
): void {
  for (let n = 0; n < num; n++) {
    const xo = n * 4 * dim;
    const so = n * dim;
    const k = cont[n]!;
    for (let d = 0; d < dim; d++) {
      const i = sigmoid(x[xo + d]!);
      const sf = sigmoid(x[xo + dim + d]!);
      const f = k === 0 ? 0 : k * sf;
      const o = sigmoid(x[xo + 2 * dim + d]!);
      const g = Math.tanh(x[xo + 3 * dim + d]!);
      const tanhC = Math.tanh(c[so + d]!);
      const dH = dh[so + d]!;
      const cTerm = dc[so + d]! + dH * o * (1 - tanhC * tanhC);
      if (dcPrev) dcPrev[so + d] = cTerm * f;
      if (dx) {
        dx[xo + d] = cTerm * g * i * (1 - i);
        dx[xo + dim + d] = k === 0 ? 0 : cTerm * cPrev[so + d]! * k * sf * (1 - sf);
        dx[xo + 2 * dim + d] = dH * tanhC * o * (1 - o);
        dx[xo + 3 * dim + d] = cTerm * i * (1 - g * g);
      }
    }
  }
}

/**
 * LSTMUnit: one LSTM time step, the cell of Caffe's unrolled LSTM.
 * - Bottoms: c_prev (1×N×D), gate inputs x (1×N×4D, gates i, f, o, g), cont (1×N; 0 starts a
 *   new sequence by zeroing the forget gate).
 * - Tops: c and h (1×N×D each): c = cont·σ(x_f)·c_prev + σ(x_i)·tanh(x_g), h = σ(x_o)·tanh(c).
 * Backward reaches c_prev and x, never cont.
 */
export class LSTMUnitLayer extends Layer {
  readonly type = 'LSTMUnit';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 3, exactNumTopBlobs: 2 };

  private hiddenDim = 0;

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [cPrev, x] = [bottom[0]!, bottom[1]!];
    const names = ['c_prev', 'x', 'cont'];
    const num = cPrev.numAxes > 1 ? cPrev.shape[1]! : -1;
    bottom.forEach((b, i) => {
      const axes = i === 2 ? 2 : 3;
      this.check(
        b.numAxes === axes && b.shape[0] === 1 && b.shape[1] === num,
        () => `bottom ${i} (${names[i]}) must have shape 1×N${i === 2 ? '' : '×…'} with ${axes} axes and N = ${num} (got ${b.shapeString()})`,
      );
    });
    this.hiddenDim = cPrev.shape[2]!;
    this.check(
      x.shape[2] === 4 * this.hiddenDim,
      () => `bottom 1 (x) must hold 4·D = ${4 * this.hiddenDim} gate inputs per stream (got ${x.shapeString()})`,
    );
    top[0]!.reshapeLike(cPrev);
    top[1]!.reshapeLike(cPrev);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    lstmUnitForward(
      bottom[0]!.shape[1]!, this.hiddenDim,
      bottom[0]!.cpuData(), bottom[1]!.cpuData(), bottom[2]!.cpuData(),
      top[0]!.mutableCpuData(), top[1]!.mutableCpuData(),
    );
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[2]) this.fail('Cannot backpropagate to sequence indicators.');
    if (!propagateDown[0] && !propagateDown[1]) return;
    lstmUnitBackward(
      bottom[0]!.shape[1]!, this.hiddenDim,
      bottom[0]!.cpuData(), bottom[1]!.cpuData(), bottom[2]!.cpuData(), top[0]!.cpuData(),
      top[0]!.cpuDiff(), top[1]!.cpuDiff(),
      propagateDown[1] ? bottom[1]!.mutableCpuDiff() : null,
      propagateDown[0] ? bottom[0]!.mutableCpuDiff() : null,
    );
  }

  /** The sequence indicators (bottom 2) take no gradient. */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex !== 2;
  }
}

export const lstmUnitLayerDef: LayerDef<LSTMUnitLayer> = { type: 'LSTMUnit', create: (p, ctx) => new LSTMUnitLayer(p, ctx) };
