import { allocArray, customGemmKernelInstalled, defaultWasmInfer, defaultWasmInferConv, fillBlob, gemm, type Blob, type FloatArray } from '@caffe-ts/blob';
import { createMessage, Phase, type InnerProductParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * InnerProduct (Caffe's InnerProductLayer, "fully connected"): the bottom's axes from `axis`
 * on are flattened into K inputs, the axes before it are M independent rows, and
 * `top [.., N] = bottom (M×K) · Wᵀ + b`.
 * Blobs: `[weight, bias]`, weight `[N, K]`, or `[K, N]` when `transpose` (then used as is,
 * without the transpose); bias `[N]` when bias_term.
 */
export class InnerProductLayer extends Layer {
  readonly type: string = 'InnerProduct';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  /** Rows (product of the axes before `axis`), outputs, inputs. */
  M = 0;
  N = 0;
  K = 0;
  private biasTerm = true;
  private transpose = false;

  private get ipParam(): InnerProductParameter {
    return this.param.inner_product_param ?? createMessage<InnerProductParameter>('InnerProductParameter', {});
  }

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const ip = this.ipParam;
    this.N = ip.num_output;
    this.check(this.N > 0, () => `num_output must be positive (got ${this.N})`);
    this.biasTerm = ip.bias_term;
    this.transpose = ip.transpose;
    const axis = this.axisOf(bottom[0]!);
    this.K = bottom[0]!.count(axis);
    const weightShape = this.transpose ? [this.K, this.N] : [this.N, this.K];
    if (this.blobs.length > 0) {
      // Weights were supplied (loaded from a model): check them instead of filling.
      const want = this.biasTerm ? 2 : 1;
      this.check(this.blobs.length === want, () => `Incorrect number of weight blobs (expected ${want}, got ${this.blobs.length}).`);
      const w = this.blobs[0]!;
      this.check(
        w.shapeEquals(weightShape),
        () => `Incorrect weight shape: expected shape ${shapeString(weightShape)}; instead, shape was ${w.shapeString()}`,
      );
      if (this.biasTerm) {
        const b = this.blobs[1]!;
        this.check(
          b.shapeEquals([this.N]),
          () => `Incorrect bias shape: expected shape ${shapeString([this.N])}; instead, shape was ${b.shapeString()}`,
        );
      }
    } else {
      const weight = this.newBlob(weightShape);
      fillBlob(weight, ip.weight_filler, this.rng);
      this.blobs = [weight];
      if (this.biasTerm) {
        const bias = this.newBlob([this.N]);
        fillBlob(bias, ip.bias_filler, this.rng);
        this.blobs.push(bias);
      }
    }
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const axis = this.axisOf(b);
    const k = b.count(axis);
    this.check(
      k === this.K,
      () => `Input size incompatible with inner product parameters (expected ${this.K} inputs from axis ${axis}, bottom ${b.shapeString()} gives ${k}).`,
    );
    this.M = b.count(0, axis);
    top[0]!.reshape([...b.shape.slice(0, axis), this.N]);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    // No rows (a Faster R-CNN image without proposals): nothing to compute, as with BLAS.
    if (this.M === 0) return;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const w = this.blobs[0]!.cpuData();
    if (!this.transpose && this.M <= ROWDOT_MAX_ROWS && y instanceof Float32Array) {
      // A few input rows (inference at small batch): the weights stream through a dot-product
      // kernel once, bias added there, instead of being packed whole for a GEMM. At inference
      // (TEST phase) the weights stay in the kernel's memory per version of their blob, so a
      // call reads them once, in place, instead of staging them. An installed GEMM kernel
      // (setGemmKernel) takes the training rows; the inference runner keeps these (CaffeNet's
      // fc6 at batch 1, two threads: 8.7 ms there against 10.7 in OpenBLAS's sgemv).
      const bias = this.biasTerm ? (this.blobs[1]!.cpuData() as Float32Array) : null;
      const packed = this.phase === Phase.TEST ? defaultWasmInferConv() : null;
      if (packed?.innerProduct(this.M, this.N, this.K, x as Float32Array, w as Float32Array, this.blobs[0]!.dataVersion, bias, y)) return;
      const k = customGemmKernelInstalled() ? null : defaultWasmInfer();
      if (k) {
        k.rowdot(this.M, this.N, this.K, x as Float32Array, w as Float32Array, bias, y);
        return;
      }
    }
    if (!this.biasTerm) {
      gemm(false, !this.transpose, this.M, this.N, this.K, 1, x, w, 0, y);
      return;
    }
    // Each row starts as the bias and the product adds to it (beta 1), as Caffe adds its bias by
    // a product: a copy per row rather than a JavaScript loop over every output (LeNet's ip1 at
    // batch 64 spent 0.2 ms a step in that loop).
    const b = this.blobs[1]!.cpuData();
    for (let m = 0; m < this.M; m++) y.set(b, m * this.N);
    gemm(false, !this.transpose, this.M, this.N, this.K, 1, x, w, 1, y);
  }

  /** M ones: the bias gradient is dyᵀ · ones (Caffe's bias_multiplier). */
  private ones: FloatArray | null = null;

  private onesOf(M: number): FloatArray {
    if (!this.ones || this.ones.length < M) this.ones = allocArray(this.dtype, M).fill(1);
    return this.ones.length === M ? this.ones : this.ones.subarray(0, M);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (this.M === 0) return;
    const dy = top[0]!.cpuDiff();
    if (this.paramPropagateDown[0] ?? true) {
      const x = bottom[0]!.cpuData();
      const dw = this.blobs[0]!.mutableCpuDiff();
      // Param diffs accumulate (beta = 1).
      if (this.transpose) gemm(true, false, this.K, this.N, this.M, 1, x, dy, 1, dw);
      else gemm(true, false, this.N, this.K, this.M, 1, dy, x, 1, dw);
    }
    if (this.biasTerm && (this.paramPropagateDown[1] ?? true)) {
      // db += dyᵀ · ones, accumulating (beta = 1).
      gemm(true, false, this.N, 1, this.M, 1, dy, this.onesOf(this.M), 1, this.blobs[1]!.mutableCpuDiff());
    }
    if (propagateDown[0]) {
      const w = this.blobs[0]!.cpuData();
      gemm(false, this.transpose, this.M, this.K, this.N, 1, dy, w, 0, bottom[0]!.mutableCpuDiff());
    }
  }

  private axisOf(b: Blob): number {
    const axis = this.ipParam.axis;
    const n = b.numAxes;
    this.check(axis >= -n && axis < n, () => `axis ${axis} out of range for ${n}-D bottom blob with shape ${b.shapeString()}`);
    return axis < 0 ? axis + n : axis;
  }
}


/**
 * Most input rows (M) for which the forward runs the dot-product kernel (defaultWasmInfer's
 * rowdot) rather than the GEMM.
 */
export const ROWDOT_MAX_ROWS = 12;

function shapeString(shape: readonly number[]): string {
  return `${shape.join(' ')} (${shape.reduce((a, b) => a * b, 1)})`;
}

export const innerProductLayerDef: LayerDef<InnerProductLayer> = {
  type: 'InnerProduct',
  create: (param, context) => new InnerProductLayer(param, context),
};
