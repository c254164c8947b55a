import type { Blob, FloatArray } from '@caffe-ts/blob';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';

/**
 * Softmax over `channels` values spaced `inner` apart, for each of `outer` × `inner`
 * positions: dst = exp(src − max) / Σ exp(src − max). Subtracting the max keeps exp from
 * overflowing. `src` and `dst` may be the same array.
 */
export function softmaxForward(src: FloatArray, dst: FloatArray, outer: number, channels: number, inner: number): void {
  const dim = channels * inner;
  for (let i = 0; i < outer; i++) {
    const base = i * dim;
    for (let j = 0; j < inner; j++) {
      let max = -Infinity;
      for (let c = 0; c < channels; c++) max = Math.max(max, src[base + c * inner + j]!);
      let sum = 0;
      for (let c = 0; c < channels; c++) {
        const k = base + c * inner + j;
        const e = Math.exp(src[k]! - max);
        dst[k] = e;
        sum += e;
      }
      for (let c = 0; c < channels; c++) dst[base + c * inner + j]! /= sum;
    }
  }
}

/** Softmax's axis split: [outer, channels, inner] = [count(0, axis), shape[axis], count(axis + 1)]. */
export function softmaxDims(blob: Blob, axis: number): [number, number, number] {
  const a = blob.canonicalAxisIndex(axis);
  return [blob.count(0, a), blob.shape[a]!, blob.count(a + 1)];
}

/**
 * Softmax along `softmax_param.axis` (default 1); every other axis indexes an independent
 * softmax. Backward: dx = (dy − ⟨dy, y⟩) ⊙ y along the axis, from the top only, so it also
 * works in place.
 */
export class SoftmaxLayer extends Layer {
  readonly type = 'Softmax';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  private outer = 0;
  private channels = 0;
  private inner = 0;

  get axis(): number {
    return this.param.softmax_param?.axis ?? 1;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes > 0, () => `Softmax needs a bottom with at least one axis (bottom shape ${b.shapeString()})`);
    const axis = this.axis;
    this.check(axis >= -b.numAxes && axis < b.numAxes, () => `axis ${axis} out of range for bottom shape ${b.shapeString()}`);
    [this.outer, this.channels, this.inner] = softmaxDims(b, axis);
    if (top[0] !== b) top[0]!.reshapeLike(b);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    softmaxForward(bottom[0]!.cpuData(), top[0]!.mutableCpuData(), this.outer, this.channels, this.inner);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    const { outer, channels, inner } = this;
    const dim = channels * inner;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < inner; j++) {
        const base = i * dim + j;
        let dot = 0;
        for (let c = 0; c < channels; c++) dot += dy[base + c * inner]! * y[base + c * inner]!;
        for (let c = 0; c < channels; c++) {
          const k = base + c * inner;
          dx[k] = (dy[k]! - dot) * y[k]!;
        }
      }
    }
  }
}

export const softmaxLayerDef: LayerDef<SoftmaxLayer> = { type: 'Softmax', create: (p, ctx) => new SoftmaxLayer(p, ctx) };
