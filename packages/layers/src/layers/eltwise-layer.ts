import type { Blob } from '@caffe-ts/blob';
import { EltwiseParameter_EltwiseOp as EltwiseOp } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

export { EltwiseOp };

/**
 * Eltwise: combines same-shaped bottoms element by element.
 * - SUM (default): Σ coeff_i · x_i (`coeff` once per bottom, default 1).
 * - PROD: Π x_i. Backward with `stable_prod_grad` (default) multiplies the other bottoms;
 *   otherwise it divides the top by x_i (faster for many bottoms, unstable near 0).
 * - MAX: max_i x_i; the gradient goes to the first bottom holding the max (ties go to the
 *   earlier bottom, except that bottom 1 wins a tie with bottom 0, as in Caffe).
 */
export class EltwiseLayer extends Layer {
  readonly type = 'Eltwise';
  static override readonly blobCounts: BlobCounts = { minBottomBlobs: 2, exactNumTopBlobs: 1 };

  private op: EltwiseOp = EltwiseOp.SUM;
  private coeffs: number[] = [];
  private stableProdGrad = true;
  /** For MAX: which bottom gave each top element. */
  private maxIdx = new Int32Array(0);
  /** The operation (EltwiseOp: PROD, SUM or MAX). */
  get operation(): EltwiseOp {
    return this.op;
  }

  /** SUM's coefficient per bottom (1 unless eltwise_param.coeff says otherwise). */
  coefficients(): readonly number[] {
    return this.coeffs;
  }

  /** SUM of more than three bottoms: the float64 running sum, kept between calls. */
  private sumScratch = new Float64Array(0);

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const ep = this.param.eltwise_param;
    this.op = ep?.operation ?? EltwiseOp.SUM;
    const coeff = ep?.coeff ?? [];
    this.check(
      coeff.length === 0 || coeff.length === bottom.length,
      () => `Eltwise Layer takes one coefficient per bottom blob (${coeff.length} coefficients, ${bottom.length} bottoms).`,
    );
    this.check(!(this.op === EltwiseOp.PROD && coeff.length > 0), () => 'Eltwise layer only takes coefficients for summation.');
    this.check(
      this.op === EltwiseOp.PROD || this.op === EltwiseOp.SUM || this.op === EltwiseOp.MAX,
      () => `Unknown elementwise operation ${String(this.op)}.`,
    );
    this.coeffs = bottom.map((_, i) => (coeff.length ? coeff[i]! : 1));
    this.stableProdGrad = ep?.stable_prod_grad ?? true;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b0 = bottom[0]!;
    for (let i = 1; i < bottom.length; i++) {
      this.check(bottom[i]!.shapeEquals(b0), () => `bottom[0]: ${b0.shapeString()}, bottom[${i}]: ${bottom[i]!.shapeString()}`);
    }
    top[0]!.reshapeLike(b0);
    if (this.op === EltwiseOp.MAX && this.maxIdx.length !== b0.count()) this.maxIdx = new Int32Array(b0.count());
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const y = top[0]!.mutableCpuData();
    const n = y.length;
    const xs = bottom.map((b) => b.cpuData());
    switch (this.op) {
      case EltwiseOp.PROD: {
        const [a, b] = [xs[0]!, xs[1]!];
        for (let i = 0; i < n; i++) y[i] = a[i]! * b[i]!;
        for (let k = 2; k < xs.length; k++) {
          const x = xs[k]!;
          for (let i = 0; i < n; i++) y[i]! *= x[i]!;
        }
        break;
      }
      case EltwiseOp.SUM: {
        // Σ c_k·x_k in float64, rounded once on store. Two or three bottoms go in one sweep, each
        // element read before it is written (safe when the top aliases a bottom); more
        // accumulate in a kept scratch array.
        const c = this.coeffs;
        if (xs.length === 2) {
          const a = xs[0]!, b = xs[1]!, c0 = c[0]!, c1 = c[1]!;
          for (let i = 0; i < n; i++) y[i] = 0 + c0 * a[i]! + c1 * b[i]!;
        } else if (xs.length === 3) {
          const a = xs[0]!, b = xs[1]!, d = xs[2]!, c0 = c[0]!, c1 = c[1]!, c2 = c[2]!;
          for (let i = 0; i < n; i++) y[i] = 0 + c0 * a[i]! + c1 * b[i]! + c2 * d[i]!;
        } else {
          if (this.sumScratch.length < n) this.sumScratch = new Float64Array(n);
          const acc = this.sumScratch;
          acc.fill(0, 0, n);
          for (let k = 0; k < xs.length; k++) {
            const x = xs[k]!, ck = c[k]!;
            for (let i = 0; i < n; i++) acc[i] = acc[i]! + ck * x[i]!;
          }
          for (let i = 0; i < n; i++) y[i] = acc[i]!;
        }
        break;
      }
      case EltwiseOp.MAX: {
        const mask = this.maxIdx;
        const [a, b] = [xs[0]!, xs[1]!];
        for (let i = 0; i < n; i++) {
          if (a[i]! > b[i]!) {
            y[i] = a[i]!;
            mask[i] = 0;
          } else {
            y[i] = b[i]!;
            mask[i] = 1;
          }
        }
        for (let k = 2; k < xs.length; k++) {
          const x = xs[k]!;
          for (let i = 0; i < n; i++) {
            if (x[i]! > y[i]!) {
              y[i] = x[i]!;
              mask[i] = k;
            }
          }
        }
        break;
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const n = y.length;
    for (let k = 0; k < bottom.length; k++) {
      if (!propagateDown[k]) continue;
      const x = bottom[k]!.cpuData();
      const dx = bottom[k]!.mutableCpuDiff();
      switch (this.op) {
        case EltwiseOp.PROD:
          if (this.stableProdGrad) {
            dx.fill(1);
            for (let j = 0; j < bottom.length; j++) {
              if (j === k) continue;
              const other = bottom[j]!.cpuData();
              for (let i = 0; i < n; i++) dx[i]! *= other[i]!;
            }
          } else {
            for (let i = 0; i < n; i++) dx[i] = y[i]! / x[i]!;
          }
          for (let i = 0; i < n; i++) dx[i]! *= dy[i]!;
          break;
        case EltwiseOp.SUM: {
          const c = this.coeffs[k]!;
          for (let i = 0; i < n; i++) dx[i] = c * dy[i]!;
          break;
        }
        case EltwiseOp.MAX: {
          const mask = this.maxIdx;
          for (let i = 0; i < n; i++) dx[i] = mask[i] === k ? dy[i]! : 0;
          break;
        }
      }
    }
  }
}

export const eltwiseLayerDef: LayerDef<EltwiseLayer> = { type: 'Eltwise', create: (p, ctx) => new EltwiseLayer(p, ctx) };
