import { BackendError, Blob } from '@caffe-ts/blob';
import type { Layer, LayerKernel } from '@caffe-ts/layers';
import type { GpuBuffer, GpuDevice } from '../device.js';
import type { GpuValue } from '../runtime.js';
import { deviceOf, setLayerPart } from './util.js';

/**
 * Activations longer than the device's exact-index limit (AlexNet at batch 256: conv1's top is
 * 74M floats) are held as parts of whole images. A layer whose images are independent
 * (convolution, pooling, LRN, neurons) runs once per part: its bottoms and tops are cut into the
 * same image ranges, and the layer's kernel runs on part-sized stand-in blobs that borrow each
 * part's texture. Params are shared, so param diffs accumulate over the parts as over a batch.
 * Scratch buffers (masks, kept inputs) are per part (util.ts's scratchBlob), so a part's backward
 * finds what the same part's forward left.
 */

type Side = 'data' | 'diff';

const handleOf = (b: Blob, side: Side, write: boolean): GpuBuffer =>
  (side === 'data' ? (write ? b.mutableGpuData() : b.gpuData()) : write ? b.mutableGpuDiff() : b.gpuDiff()) as GpuBuffer;

/** Whether this call needs parts: a buffer already held in parts, or a blob too long for one texture. */
function needsParts(dev: GpuDevice, blobs: Blob[]): boolean {
  for (const b of blobs) {
    if (b.count() > dev.splitLimit) return true;
    const d = b.gpuData() as GpuBuffer;
    if (d.parts) return true;
  }
  return false;
}

/** Images per part: as many as fit the limit in the largest per-image blob. */
function imagesPerPart(layer: Layer, dev: GpuDevice, blobs: Blob[]): number {
  const n = blobs[0]!.shape[0]!;
  let per = 1;
  for (const b of blobs) {
    if (b.shape[0] !== n) throw new BackendError(`${layer.type} layer '${layer.name}': cannot cut blobs of different batch sizes into parts (${b.shapeString()} vs ${n})`);
    per = Math.max(per, b.count() / n);
  }
  const k = Math.floor(dev.splitLimit / per);
  if (k < 1) throw new BackendError(`${layer.type} layer '${layer.name}': one image of ${per} floats is over the gpu backend's exact-index limit (${dev.splitLimit})`);
  return k;
}

/** A part-sized stand-in for `b` (images [n0, n0 + n)), its buffers borrowing the parts' values. */
class Standin {
  readonly blob: Blob;
  constructor(
    private readonly dev: GpuDevice,
    private readonly real: Blob,
    readonly p: number,
    n: number,
  ) {
    this.blob = new Blob([n, ...real.shape.slice(1)], { dtype: 'float32', device: real.device });
  }

  /** Lend part p of the real blob's `side` (read), or only make room for the kernel to write it. */
  borrow(side: Side, read: boolean): void {
    const h = handleOf(this.blob, side, true);
    if (read) {
      const src = handleOf(this.real, side, false);
      h.value = this.dev.readPart(src, this.p);
    }
  }

  /**
   * Hand the stand-in's value back to the real blob's part when the kernel wrote it, or just end
   * the loan. A kernel writing a borrowed buffer (in place) already freed the part's old value
   * when it stored its output, so that old value is not freed again.
   */
  giveBack(side: Side, read: boolean, written: boolean): void {
    const h = handleOf(this.blob, side, false);
    const v: GpuValue | null = h.value;
    h.value = null;
    if (!written || v === null) return;
    const target = handleOf(this.real, side, false);
    const old = target.parts![this.p] ?? null;
    if (old === v) return;
    if (read) target.parts![this.p] = v;
    else this.dev.setPart(target, this.p, v, true);
  }

  dispose(): void {
    this.blob.dispose();
  }
}

/**
 * Run `fn` once per part of whole images over stand-ins of `blobs`. `reads`/`writes` name the
 * buffers each blob's kernel reads and writes; blobs appearing twice (in place) share one stand-in.
 */
function perPart(
  layer: Layer,
  blobs: Blob[],
  sides: { reads: Side[]; writes: Side[] }[],
  fn: (standins: Blob[]) => void,
): void {
  const dev = deviceOf(layer);
  const unique = [...new Set(blobs)];
  const reads = new Map<Blob, Set<Side>>();
  const writes = new Map<Blob, Set<Side>>();
  blobs.forEach((b, i) => {
    for (const s of sides[i]!.reads) (reads.get(b) ?? reads.set(b, new Set()).get(b)!).add(s);
    for (const s of sides[i]!.writes) (writes.get(b) ?? writes.set(b, new Set()).get(b)!).add(s);
  });
  const k = imagesPerPart(layer, dev, unique);
  const n = unique[0]!.shape[0]!;
  const firstPer = blobs[0]!.count() / n;
  for (const b of unique) {
    const per = b.count() / n;
    for (const s of ['data', 'diff'] as Side[]) {
      const r = reads.get(b)?.has(s) ?? false;
      const w = writes.get(b)?.has(s) ?? false;
      if (r || w) dev.toParts(handleOf(b, s, w), k * per, !r);
    }
  }
  for (let p = 0; p * k < n; p++) {
    const count = Math.min(k, n - p * k);
    const standins = new Map(unique.map((b) => [b, new Standin(dev, b, p, count)]));
    setLayerPart(layer, { index: p, offset: p * k * firstPer });
    try {
      for (const [b, st] of standins) {
        for (const s of ['data', 'diff'] as Side[]) {
          const r = reads.get(b)?.has(s) ?? false;
          if (r || writes.get(b)?.has(s)) st.borrow(s, r);
        }
      }
      fn(blobs.map((b) => standins.get(b)!.blob));
    } finally {
      setLayerPart(layer, null);
      for (const [b, st] of standins) {
        for (const s of ['data', 'diff'] as Side[]) {
          const r = reads.get(b)?.has(s) ?? false;
          const w = writes.get(b)?.has(s) ?? false;
          if (r || w) st.giveBack(s, r, w);
        }
        st.dispose();
      }
    }
  }
}

/** When a layer type can run part by part. */
export interface PartOptions<L extends Layer> {
  /** Whether the layer's images are independent at its settings (e.g. a softmax across channels, not across the batch). Default: always. */
  splits?(layer: L, bottom: Blob[]): boolean;
  /** The forward only shares the bottom with the tops (Split): it runs whole, only the backward by parts. */
  forwardShares?: boolean;
}

/**
 * `kernel` run part by part (whole images) when a bottom or top is longer than the exact-index
 * limit or already held in parts; unchanged otherwise. For layers whose images are independent.
 * A layer whose settings tie images together runs whole, and an over-limit buffer then fails with
 * the device's error naming the layers that take parts.
 */
export function perImageParts<L extends Layer>(kernel: LayerKernel<L>, options: PartOptions<L> = {}): LayerKernel<L> {
  const splits = (layer: L, bottom: Blob[]): boolean => options.splits?.(layer, bottom) ?? true;
  const wrapped: LayerKernel<L> = {
    forward(layer, bottom, top) {
      const dev = deviceOf(layer);
      if (options.forwardShares || !needsParts(dev, [...bottom, ...top]) || !splits(layer, bottom)) return kernel.forward(layer, bottom, top);
      const sides = [...bottom.map(() => ({ reads: ['data'] as Side[], writes: [] as Side[] })), ...top.map(() => ({ reads: [] as Side[], writes: ['data'] as Side[] }))];
      // In place (top === bottom): the stand-in is read and written.
      perPart(layer, [...bottom, ...top], sides, (s) => kernel.forward(layer, s.slice(0, bottom.length), s.slice(bottom.length)));
    },
  };
  if (kernel.backward) {
    const backward = kernel.backward;
    wrapped.backward = (layer, top, propagateDown, bottom) => {
      const dev = deviceOf(layer);
      if (!needsParts(dev, [...bottom, ...top]) || !splits(layer, bottom)) return backward(layer, top, propagateDown, bottom);
      const sides = [
        ...top.map(() => ({ reads: ['data', 'diff'] as Side[], writes: [] as Side[] })),
        ...bottom.map((_, i) => ({ reads: ['data'] as Side[], writes: propagateDown[i] ? (['diff'] as Side[]) : [] })),
      ];
      perPart(layer, [...top, ...bottom], sides, (s) => backward(layer, s.slice(0, top.length), propagateDown, s.slice(top.length)));
    };
  }
  return wrapped;
}
