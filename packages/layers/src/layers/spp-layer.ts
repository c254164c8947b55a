import type { Blob } from '@caffe-ts/blob';
import {
  createMessage,
  PoolingParameter_PoolMethod as PoolMethod,
  SPPParameter_PoolMethod as SPPPoolMethod,
  type LayerParameter,
} from '@caffe-ts/proto';
import { LayerError } from '../errors.js';
import { Layer, type BlobCounts } from '../layer.js';
import type { LayerDef } from '../registry.js';
import { PoolingLayer } from './pooling-layer.js';

/** Kernel, stride and pad of one pyramid level (Caffe's SPPLayer::GetPoolingParam). */
export interface SPPLevelGeometry {
  bins: number;
  kernelH: number;
  kernelW: number;
  padH: number;
  padW: number;
}

/**
 * Geometry of pyramid level `level` (2^level bins per side) on an H×W input: kernel
 * ceil(in / bins), stride = kernel, pad (kernel·bins − in + 1) / 2 (integer division), so the
 * bins tile the padded input.
 */
export function sppLevelGeometry(level: number, height: number, width: number): SPPLevelGeometry {
  const bins = 2 ** level;
  const kernelH = Math.ceil(height / bins);
  const kernelW = Math.ceil(width / bins);
  return {
    bins,
    kernelH,
    kernelW,
    padH: Math.floor((kernelH * bins - height + 1) / 2),
    padW: Math.floor((kernelW * bins - width + 1) / 2),
  };
}

/**
 * SPP (Caffe's SPPLayer), spatial pyramid pooling: for each level l < `pyramid_height`, pool
 * the N×C×H×W bottom into about 2^l × 2^l bins (method `pool`, default MAX) with the geometry
 * of `sppLevelGeometry`, flatten each item, and concatenate the levels: the top is
 * N × C·Σ bins_l (a 2-D blob, as Caffe's internal Flatten + Concat make it; Caffe's legacy
 * accessors read it as N × C·Σ bins × 1 × 1). With pyramid_height 1 the single Pooling layer
 * writes the top directly, which is then N × C × 1 × 1.
 * The pooling runs in internal PoolingLayers that share this layer's backend, dtype, phase and
 * rng; they are rebuilt when the input's shape changes.
 */
export class SPPLayer extends Layer {
  readonly type: string = 'SPP';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };

  pyramidHeight = 0;
  /** One pooling layer per level, and its output. */
  private pools: PoolingLayer[] = [];
  private pooled: Blob[] = [];
  /** Per-level bottom-diff scratch: shares the bottom's data, owns its diff. */
  private scratch: Blob | null = null;
  /** The bottom shape the pooling layers were built for. */
  private builtFor: readonly number[] | null = null;

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const sp = this.param.spp_param;
    this.pyramidHeight = sp?.pyramid_height ?? 0;
    this.check(this.pyramidHeight > 0, () => `pyramid_height must be positive (got ${this.pyramidHeight})`);
    const pool = sp?.pool ?? SPPPoolMethod.MAX;
    this.check(SPPPoolMethod[pool] !== undefined, () => 'Unknown pooling method.');
    this.checkInput(bottom[0]!);
    this.builtFor = null;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.checkInput(b);
    this.check(top[0] !== b, () => 'SPP layer does not allow in-place computation.');
    const num = b.shape[0]!;
    if (!this.builtFor || !b.shapeEquals(this.builtFor)) this.build(b, top);
    if (this.pyramidHeight === 1) {
      this.pools[0]!.reshape(bottom, top);
      return;
    }
    let perItem = 0;
    for (let l = 0; l < this.pyramidHeight; l++) {
      this.pools[l]!.reshape(bottom, [this.pooled[l]!]);
      perItem += this.pooled[l]!.count(1);
    }
    top[0]!.reshape([num, perItem]);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    if (this.pyramidHeight === 1) {
      this.pools[0]!.forward(bottom, top);
      return;
    }
    const y = top[0]!.mutableCpuData();
    const num = bottom[0]!.shape[0]!;
    const perItem = top[0]!.shape[1]!;
    let offset = 0;
    for (let l = 0; l < this.pyramidHeight; l++) {
      const out = this.pooled[l]!;
      this.pools[l]!.forward(bottom, [out]);
      const dim = out.count(1);
      const v = out.cpuData();
      for (let n = 0; n < num; n++) y.set(v.subarray(n * dim, (n + 1) * dim), n * perItem + offset);
      offset += dim;
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    if (this.pyramidHeight === 1) {
      this.pools[0]!.backward(top, propagateDown, bottom);
      return;
    }
    const b = bottom[0]!;
    const scratch = this.scratch!;
    scratch.reshape(b.shape);
    scratch.shareData(b);
    const dx = b.mutableCpuDiff();
    dx.fill(0);
    const dy = top[0]!.cpuDiff();
    const num = b.shape[0]!;
    const perItem = top[0]!.shape[1]!;
    let offset = 0;
    for (let l = 0; l < this.pyramidHeight; l++) {
      const out = this.pooled[l]!;
      const dim = out.count(1);
      const g = out.mutableCpuDiff();
      for (let n = 0; n < num; n++) g.set(dy.subarray(n * perItem + offset, n * perItem + offset + dim), n * dim);
      offset += dim;
      // Each level overwrites the scratch diff; the levels' gradients add up (Caffe's Split).
      this.pools[l]!.backward([out], [true], [scratch]);
      const s = scratch.cpuDiff();
      for (let i = 0; i < dx.length; i++) dx[i] = dx[i]! + s[i]!;
    }
  }

  /** (Re)create the per-level pooling layers for the bottom's current shape. */
  private build(b: Blob, top: Blob[]): void {
    const [, , height, width] = b.shape as [number, number, number, number];
    this.pools = [];
    this.pooled = [];
    for (let l = 0; l < this.pyramidHeight; l++) {
      const g = sppLevelGeometry(l, height, width);
      const pool = new PoolingLayer(this.levelParam(l, g), {
        backend: this.backend,
        dtype: this.dtype,
        phase: this.phase,
        rng: this.rng,
      });
      const out = this.pyramidHeight === 1 ? top[0]! : this.newBlob();
      try {
        pool.setUp([b], [out]);
      } catch (e) {
        if (!(e instanceof LayerError)) throw e;
        this.fail(
          `pyramid level ${l} (${g.bins}×${g.bins} bins, kernel ${g.kernelH}×${g.kernelW}, pad ${g.padH}×${g.padW}) cannot pool a ${height}×${width} input: ${e.message}`,
        );
      }
      this.pools.push(pool);
      this.pooled.push(out);
    }
    this.scratch ??= this.newBlob();
    this.builtFor = b.shape.slice();
  }

  private levelParam(level: number, g: SPPLevelGeometry): LayerParameter {
    const sppPool = this.param.spp_param?.pool ?? SPPPoolMethod.MAX;
    const pool =
      sppPool === SPPPoolMethod.AVE ? PoolMethod.AVE : sppPool === SPPPoolMethod.STOCHASTIC ? PoolMethod.STOCHASTIC : PoolMethod.MAX;
    return createMessage<LayerParameter>('LayerParameter', {
      name: `${this.name}/level${level}`,
      type: 'Pooling',
      phase: this.phase,
      pooling_param: {
        pool,
        kernel_h: g.kernelH,
        kernel_w: g.kernelW,
        stride_h: g.kernelH,
        stride_w: g.kernelW,
        pad_h: g.padH,
        pad_w: g.padW,
      },
    });
  }

  private checkInput(b: Blob): void {
    this.check(
      b.numAxes === 4,
      () => `Input must have 4 axes, corresponding to (num, channels, height, width); bottom is ${b.shapeString()}`,
    );
    this.check(b.shape[2]! > 0 && b.shape[3]! > 0, () => `Input dimensions cannot be zero (bottom ${b.shapeString()}).`);
  }
}

export const sppLayerDef: LayerDef<SPPLayer> = { type: 'SPP', create: (p, ctx) => new SPPLayer(p, ctx) };
