import type { Blob } from '@caffe-ts/blob';
import { ReductionParameter_ReductionOp as ReductionOp } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Reduction (Caffe's ReductionLayer): reduces all axes from `axis` (default 0) on, so the top
 * has the bottom's leading `axis` dims (a scalar blob for axis 0). `operation`: SUM (default),
 * ASUM (Σ|x|), SUMSQ (Σx²) or MEAN; the result is scaled by `coeff` (default 1).
 */
export class ReductionLayer extends Layer {
  readonly type: string = 'Reduction';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  private op: ReductionOp = ReductionOp.SUM;
  /** coeff, divided by dim for MEAN. */
  private coeff = 1;
  private num = 0;
  private dim = 0;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    this.op = this.param.reduction_param?.operation ?? ReductionOp.SUM;
    this.check(ReductionOp[this.op] !== undefined, () => `Unknown reduction op: ${this.op}`);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const rp = this.param.reduction_param;
    const n = b.numAxes;
    const axisParam = rp?.axis ?? 0;
    this.check(
      axisParam >= -n && axisParam < Math.max(n, 1),
      () => `axis ${axisParam} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`,
    );
    const axis = b.canonicalAxisIndex(axisParam);
    this.check(top[0] !== b, () => 'Reduction layer does not allow in-place computation.');
    top[0]!.reshape(b.shape.slice(0, axis));
    this.num = b.count(0, axis);
    this.dim = b.count(axis);
    this.coeff = rp?.coeff ?? 1;
    if (this.op === ReductionOp.MEAN) this.coeff /= this.dim;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const D = this.dim;
    for (let i = 0; i < this.num; i++) {
      let acc = 0;
      const base = i * D;
      switch (this.op) {
        case ReductionOp.SUM:
        case ReductionOp.MEAN:
          for (let j = 0; j < D; j++) acc += x[base + j]!;
          break;
        case ReductionOp.ASUM:
          for (let j = 0; j < D; j++) acc += Math.abs(x[base + j]!);
          break;
        case ReductionOp.SUMSQ:
          for (let j = 0; j < D; j++) acc += x[base + j]! * x[base + j]!;
          break;
      }
      y[i] = acc * this.coeff;
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const x = bottom[0]!.cpuData();
    const dx = bottom[0]!.mutableCpuDiff();
    const dy = top[0]!.cpuDiff();
    const D = this.dim;
    for (let i = 0; i < this.num; i++) {
      const g = dy[i]! * this.coeff;
      const base = i * D;
      switch (this.op) {
        case ReductionOp.SUM:
        case ReductionOp.MEAN:
          dx.fill(g, base, base + D);
          break;
        case ReductionOp.ASUM:
          // Caffe's sign(): 0 at 0.
          for (let j = 0; j < D; j++) dx[base + j] = g * Math.sign(x[base + j]!);
          break;
        case ReductionOp.SUMSQ:
          for (let j = 0; j < D; j++) dx[base + j] = 2 * g * x[base + j]!;
          break;
      }
    }
  }
}

export const reductionLayerDef: LayerDef<ReductionLayer> = { type: 'Reduction', create: (p, ctx) => new ReductionLayer(p, ctx) };
