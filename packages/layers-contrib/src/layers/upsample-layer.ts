import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import { forkParam, type UpsampleParameter } from '../fork-types.js';

/**
 * Upsample, in the two forms fork prototxts use:
 * - SegNet (caffe-segnet), two bottoms: the data and the argmax mask of the matching MAX
 *   Pooling (its second top). Each input value goes to the position its mask names in an
 *   output plane of upsample_h × upsample_w (or scale_h·H × scale_w·W, scale by default 2;
 *   pad_out_h/pad_out_w take one row/column off, scale 2 only); every other output is 0.
 *   Backward gathers the top diff at those positions; the mask gets no gradient.
 * - YOLOv3 forks, one bottom: nearest-neighbour upsampling by `scale`; backward sums each
 *   block's diff.
 */
export class UpsampleLayer extends Layer {
  static override readonly blobCounts = { minBottomBlobs: 1, maxBottomBlobs: 2, exactNumTopBlobs: 1 };
  readonly type = 'Upsample';
  scaleH = 2;
  scaleW = 2;
  upsampleH = 0;
  upsampleW = 0;
  padOutH = false;
  padOutW = false;

  override layerSetUp(bottom: Blob[]): void {
    const p = forkParam<UpsampleParameter>(this.param, 'upsample_param', 'UpsampleParameter');
    const has = (f: string) => hasField(p, f);
    if (has('upsample_h') || has('upsample_w')) {
      this.check(has('upsample_h') && has('upsample_w'), () => 'upsample_h and upsample_w must be given together.');
      this.check(bottom.length === 2, () => 'upsample_h/upsample_w need the pooling mask as bottom[1].');
      this.upsampleH = p.upsample_h;
      this.upsampleW = p.upsample_w;
      this.check(this.upsampleH > 0 && this.upsampleW > 0, () => `upsample_h and upsample_w must be positive (got ${this.upsampleH}×${this.upsampleW}).`);
      return;
    }
    if (has('scale_h') || has('scale_w')) {
      this.check(!has('scale'), () => 'Either scale or scale_h/scale_w should be specified; not both.');
      this.check(has('scale_h') && has('scale_w'), () => 'scale_h and scale_w must be given together.');
      this.scaleH = p.scale_h;
      this.scaleW = p.scale_w;
    } else this.scaleH = this.scaleW = p.scale;
    this.check(this.scaleH > 0 && this.scaleW > 0, () => `scale must be positive (got ${this.scaleH}×${this.scaleW}).`);
    this.padOutH = p.pad_out_h;
    this.padOutW = p.pad_out_w;
    this.check(!this.padOutH || this.scaleH === 2, () => 'pad_out_h is only supported with scale 2.');
    this.check(!this.padOutW || this.scaleW === 2, () => 'pad_out_w is only supported with scale 2.');
    this.check(bottom.length === 2 || (!this.padOutH && !this.padOutW), () => 'pad_out_h/pad_out_w need the pooling mask as bottom[1].');
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes === 4, () => `bottom[0] must have 4 axes (got ${b.shapeString()}).`);
    if (bottom.length === 2) {
      this.check(
        bottom[1]!.count() === b.count(),
        () => `the mask bottom[1] must have the shape of bottom[0] (${bottom[1]!.shapeString()} vs ${b.shapeString()}).`,
      );
    }
    const [n, c, h, w] = b.shape as [number, number, number, number];
    const outH = this.upsampleH || h * this.scaleH - (this.padOutH ? 1 : 0);
    const outW = this.upsampleW || w * this.scaleW - (this.padOutW ? 1 : 0);
    top[0]!.reshape([n, c, outH, outW]);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const [, , h, w] = bottom[0]!.shape as [number, number, number, number];
    const [n, c, oh, ow] = top[0]!.shape as [number, number, number, number];
    if (bottom.length === 2) {
      const mask = bottom[1]!.cpuData();
      y.fill(0);
      for (let plane = 0; plane < n * c; plane++) {
        for (let i = 0; i < h * w; i++) {
          const k = plane * h * w + i;
          const idx = mask[k]!;
          if (!(idx >= 0 && idx < oh * ow && Number.isInteger(idx))) {
            this.fail(`mask value ${idx} at ${k} is outside the ${oh}×${ow} output plane (upsample_h/upsample_w too small?).`);
          }
          y[plane * oh * ow + idx] = x[k]!;
        }
      }
      return;
    }
    for (let plane = 0; plane < n * c; plane++) {
      for (let r = 0; r < oh; r++) {
        const src = plane * h * w + Math.floor(r / this.scaleH) * w;
        for (let q = 0; q < ow; q++) y[(plane * oh + r) * ow + q] = x[src + Math.floor(q / this.scaleW)]!;
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('cannot backpropagate to the pooling mask (bottom[1]).');
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    const [, , h, w] = bottom[0]!.shape as [number, number, number, number];
    const [n, c, oh, ow] = top[0]!.shape as [number, number, number, number];
    if (bottom.length === 2) {
      const mask = bottom[1]!.cpuData();
      for (let plane = 0; plane < n * c; plane++) {
        for (let i = 0; i < h * w; i++) dx[plane * h * w + i] = dy[plane * oh * ow + mask[plane * h * w + i]!]!;
      }
      return;
    }
    dx.fill(0);
    for (let plane = 0; plane < n * c; plane++) {
      for (let r = 0; r < oh; r++) {
        const dst = plane * h * w + Math.floor(r / this.scaleH) * w;
        for (let q = 0; q < ow; q++) dx[dst + Math.floor(q / this.scaleW)]! += dy[(plane * oh + r) * ow + q]!;
      }
    }
  }

  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex === 0;
  }
}

export const upsampleLayerDef: LayerDef<UpsampleLayer> = { type: 'Upsample', create: (p, ctx) => new UpsampleLayer(p, ctx) };
