import { fillBlob, type Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { createMessage, type FillerParameter } from '@caffe-ts/proto';
import { forkParam, type NormalizeParameter } from '../fork-types.js';

/**
 * Normalize (SSD fork): L2-normalise each image (across_spatial) or each pixel's channel vector
 * (across_spatial false), then multiply by a learned scale, per channel or one shared
 * (channel_shared): y = s · x / √(Σx² + eps). Blob: the scale, `[1]` or `[C]` (scale_filler,
 * default constant 1).
 */
export class NormalizeLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
  readonly type = 'Normalize';
  acrossSpatial = true;
  channelShared = true;
  eps = 1e-10;
  /** Per image (across_spatial) or per image and pixel: √(Σx² + eps). */
  private norm: Float64Array = new Float64Array(0);

  override layerSetUp(bottom: Blob[]): void {
    const p = forkParam<NormalizeParameter>(this.param, 'norm_param', 'NormalizeParameter');
    this.acrossSpatial = p.across_spatial;
    this.channelShared = p.channel_shared;
    this.eps = p.eps;
    this.check(this.eps >= 0, () => `eps must be non negative (got ${this.eps}).`);
    this.check(bottom[0]!.numAxes >= 2, () => `the input needs a channel axis (got ${bottom[0]!.shapeString()}).`);
    const channels = bottom[0]!.shape[1]!;
    if (this.blobs.length > 0) return;
    const scale = this.newBlob(this.channelShared ? [1] : [channels]);
    const filler = (p.scale_filler as FillerParameter | null) ?? createMessage<FillerParameter>('FillerParameter', { type: 'constant', value: 1 });
    fillBlob(scale, filler, this.rng);
    this.blobs = [scale];
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const channels = this.channelShared ? 1 : b.shape[1]!;
    this.check(
      this.blobs[0]!.count() === channels,
      () => `the scale has ${this.blobs[0]!.count()} values but the input has ${b.shape[1]} channels.`,
    );
    top[0]!.reshapeLike(b);
    const num = b.shape[0]!;
    const spatial = b.count(2);
    const n = this.acrossSpatial ? num : num * spatial;
    if (this.norm.length !== n) this.norm = new Float64Array(n);
  }

  private dims(b: Blob): [number, number, number] {
    return [b.shape[0]!, b.shape[1]!, b.count(2)];
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const s = this.blobs[0]!.cpuData();
    const [num, C, S] = this.dims(bottom[0]!);
    const norm = this.norm;
    for (let n = 0; n < num; n++) {
      const base = n * C * S;
      if (this.acrossSpatial) {
        let sum = 0;
        for (let i = 0; i < C * S; i++) sum += x[base + i]! * x[base + i]!;
        norm[n] = Math.sqrt(sum + this.eps);
      } else {
        for (let q = 0; q < S; q++) {
          let sum = 0;
          for (let c = 0; c < C; c++) sum += x[base + c * S + q]! ** 2;
          norm[n * S + q] = Math.sqrt(sum + this.eps);
        }
      }
      for (let c = 0; c < C; c++) {
        const sc = this.channelShared ? s[0]! : s[c]!;
        for (let q = 0; q < S; q++) {
          const i = base + c * S + q;
          y[i] = (sc * x[i]!) / (this.acrossSpatial ? norm[n]! : norm[n * S + q]!);
        }
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const s = this.blobs[0]!.cpuData();
    const [num, C, S] = this.dims(bottom[0]!);
    const norm = this.norm;
    const nrm = (n: number, q: number) => (this.acrossSpatial ? norm[n]! : norm[n * S + q]!);
    const sc = (c: number) => (this.channelShared ? s[0]! : s[c]!);
    if (this.paramPropagateDown[0] ?? true) {
      // ∂L/∂s_c = Σ dy · x / norm (accumulated, as Caffe's param diffs).
      const ds = this.blobs[0]!.mutableCpuDiff();
      for (let n = 0; n < num; n++) {
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let q = 0; q < S; q++) {
            const i = (n * C + c) * S + q;
            acc += (dy[i]! * x[i]!) / nrm(n, q);
          }
          ds[this.channelShared ? 0 : c]! += acc;
        }
      }
    }
    if (!propagateDown[0]) return;
    const dx = bottom[0]!.mutableCpuDiff();
    // With z = x/norm and g = s·dy: ∂L/∂x = (g − z·Σ(g·z)) / norm, the sum over the normalised group.
    for (let n = 0; n < num; n++) {
      const base = n * C * S;
      if (this.acrossSpatial) {
        let dot = 0;
        for (let c = 0; c < C; c++) for (let q = 0; q < S; q++) dot += sc(c) * dy[base + c * S + q]! * x[base + c * S + q]!;
        const nn = norm[n]!;
        for (let c = 0; c < C; c++) {
          for (let q = 0; q < S; q++) {
            const i = base + c * S + q;
            dx[i] = (sc(c) * dy[i]! - (x[i]! * dot) / (nn * nn)) / nn;
          }
        }
      } else {
        for (let q = 0; q < S; q++) {
          let dot = 0;
          for (let c = 0; c < C; c++) dot += sc(c) * dy[base + c * S + q]! * x[base + c * S + q]!;
          const nn = norm[n * S + q]!;
          for (let c = 0; c < C; c++) {
            const i = base + c * S + q;
            dx[i] = (sc(c) * dy[i]! - (x[i]! * dot) / (nn * nn)) / nn;
          }
        }
      }
    }
  }
}

export const normalizeLayerDef: LayerDef<NormalizeLayer> = { type: 'Normalize', create: (p, ctx) => new NormalizeLayer(p, ctx) };
