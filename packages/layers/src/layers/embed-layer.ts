import { fillBlob, type Blob } from '@caffe-ts/blob';
import { createMessage, type EmbedParameter } from '@caffe-ts/proto';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Embed (Caffe's EmbedLayer): a lookup table. Every bottom value is an integer index in
 * [0, input_dim) that selects a row of the weight; the top is the bottom's shape plus a last
 * axis of num_output: `top[..., :] = W[index, :] + b`.
 * Blobs: `[weight [input_dim, num_output], bias [num_output]]` (bias when bias_term).
 * The indices get no gradient.
 */
export class EmbedLayer extends Layer {
  readonly type: string = 'Embed';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  /** Number of indices (bottom count), outputs per index, vocabulary size. */
  M = 0;
  N = 0;
  K = 0;
  private biasTerm = true;

  private get embedParam(): EmbedParameter {
    return this.param.embed_param ?? createMessage<EmbedParameter>('EmbedParameter', {});
  }

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const ep = this.embedParam;
    this.N = ep.num_output;
    this.check(this.N > 0, () => `EmbedLayer num_output must be positive (got ${this.N}).`);
    this.K = ep.input_dim;
    this.check(this.K > 0, () => `EmbedLayer input_dim must be positive (got ${this.K}).`);
    this.biasTerm = ep.bias_term;
    const weightShape = [this.K, this.N];
    if (this.blobs.length > 0) {
      // Weights were supplied (loaded from a model): check them instead of filling.
      const want = this.biasTerm ? 2 : 1;
      this.check(this.blobs.length === want, () => `Incorrect number of weight blobs (expected ${want}, got ${this.blobs.length}).`);
      const w = this.blobs[0]!;
      this.check(
        w.shapeEquals(weightShape),
        () => `Incorrect weight shape: expected shape ${this.K} ${this.N} (${this.K * this.N}); instead, shape was ${w.shapeString()}`,
      );
      if (this.biasTerm) {
        const b = this.blobs[1]!;
        this.check(b.shapeEquals([this.N]), () => `Incorrect bias shape: expected shape ${this.N} (${this.N}); instead, shape was ${b.shapeString()}`);
      }
    } else {
      const weight = this.newBlob(weightShape);
      fillBlob(weight, ep.weight_filler, this.rng);
      this.blobs = [weight];
      if (this.biasTerm) {
        const bias = this.newBlob([this.N]);
        fillBlob(bias, ep.bias_filler, this.rng);
        this.blobs.push(bias);
      }
    }
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(top[0] !== b, () => 'Embed layer does not allow in-place computation.');
    this.M = b.count();
    top[0]!.reshape([...b.shape, this.N]);
  }

  override allowForceBackward(_bottomIndex: number): boolean {
    return false;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const w = this.blobs[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const N = this.N;
    const bias = this.biasTerm ? this.blobs[1]!.cpuData() : null;
    for (let n = 0; n < this.M; n++) {
      const index = this.index(x[n]!, n);
      y.set(w.subarray(index * N, (index + 1) * N), n * N);
      if (bias) for (let j = 0; j < N; j++) y[n * N + j] = y[n * N + j]! + bias[j]!;
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    this.check(!propagateDown[0], () => "Can't backpropagate to EmbedLayer input.");
    const dy = top[0]!.cpuDiff();
    const N = this.N;
    if (this.paramPropagateDown[0] ?? true) {
      const x = bottom[0]!.cpuData();
      const dw = this.blobs[0]!.mutableCpuDiff();
      for (let n = 0; n < this.M; n++) {
        const base = this.index(x[n]!, n) * N;
        for (let j = 0; j < N; j++) dw[base + j] = dw[base + j]! + dy[n * N + j]!;
      }
    }
    if (this.biasTerm && (this.paramPropagateDown[1] ?? true)) {
      const db = this.blobs[1]!.mutableCpuDiff();
      for (let n = 0; n < this.M; n++) for (let j = 0; j < N; j++) db[j] = db[j]! + dy[n * N + j]!;
    }
  }

  private index(v: number, n: number): number {
    this.check(
      Number.isInteger(v) && v >= 0 && v < this.K,
      () => `input ${n} is ${v}; indices must be integers in [0, input_dim = ${this.K})`,
    );
    return v;
  }
}

export const embedLayerDef: LayerDef<EmbedLayer> = { type: 'Embed', create: (p, ctx) => new EmbedLayer(p, ctx) };
