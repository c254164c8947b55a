import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import type { PriorBoxParameter } from '../fork-types.js';
import { forkParam } from '../fork-types.js';

/**
 * PriorBox (SSD fork): the default boxes of one feature map, in normalised image coordinates.
 * Bottoms: the feature map (its H×W) and the image (its size, unless img_size/img_h/img_w set).
 * Top: `[1, 2, H·W·numPriors·4]`, channel 0 the boxes (xmin, ymin, xmax, ymax), channel 1 the
 * matching variances. At each location the boxes come in the fork's order: for every min_size,
 * the min_size square, then (with max_size) the √(min·max) square, then one box per extra
 * aspect ratio. Nothing to learn and nothing to backpropagate.
 */
export class PriorBoxLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };
  readonly type = 'PriorBox';
  minSizes: number[] = [];
  maxSizes: number[] = [];
  aspectRatios: number[] = [];
  variance: number[] = [];
  flip = true;
  clip = false;
  imgH = 0;
  imgW = 0;
  stepH = 0;
  stepW = 0;
  offset = 0.5;
  numPriors = 0;

  override layerSetUp(): void {
    const p = forkParam<PriorBoxParameter>(this.param, 'prior_box_param', 'PriorBoxParameter');
    this.check(p.min_size.length > 0, () => 'must provide min_size.');
    this.minSizes = [...p.min_size];
    for (const s of this.minSizes) this.check(s > 0, () => `min_size must be positive (got ${s}).`);
    this.flip = p.flip;
    this.aspectRatios = [1];
    for (const ar of p.aspect_ratio) {
      this.check(ar > 0, () => `aspect_ratio must be positive (got ${ar}).`);
      if (this.aspectRatios.some((r) => Math.abs(ar - r) < 1e-6)) continue;
      this.aspectRatios.push(ar);
      if (this.flip) this.aspectRatios.push(1 / ar);
    }
    this.numPriors = this.aspectRatios.length * this.minSizes.length;
    if (p.max_size.length > 0) {
      this.check(
        p.max_size.length === this.minSizes.length,
        () => `needs as many max_size as min_size (${p.max_size.length} max_size, ${this.minSizes.length} min_size).`,
      );
      this.maxSizes = [...p.max_size];
      this.maxSizes.forEach((m, i) =>
        this.check(m > this.minSizes[i]!, () => `max_size must be greater than min_size (max_size ${m}, min_size ${this.minSizes[i]}).`),
      );
      this.numPriors += this.maxSizes.length;
    }
    this.clip = p.clip;
    if (p.variance.length > 1) {
      this.check(p.variance.length === 4, () => `must provide 1 or 4 variances (got ${p.variance.length}).`);
      this.variance = [...p.variance];
    } else this.variance = p.variance.length === 1 ? [p.variance[0]!] : [0.1];
    for (const v of this.variance) this.check(v > 0, () => `variance must be positive (got ${v}).`);
    const has = (f: string) => hasField(p, f);
    if (has('img_h') || has('img_w')) {
      this.check(!has('img_size'), () => 'Either img_size or img_h/img_w should be specified; not both.');
      this.check(p.img_h > 0 && p.img_w > 0, () => `img_h and img_w must be positive (got ${p.img_h}×${p.img_w}).`);
      this.imgH = p.img_h;
      this.imgW = p.img_w;
    } else if (has('img_size')) {
      this.check(p.img_size > 0, () => 'img_size should be larger than 0.');
      this.imgH = this.imgW = p.img_size;
    } else this.imgH = this.imgW = 0;
    if (has('step_h') || has('step_w')) {
      this.check(!has('step'), () => 'Either step or step_h/step_w should be specified; not both.');
      this.check(p.step_h > 0 && p.step_w > 0, () => `step_h and step_w must be positive (got ${p.step_h}×${p.step_w}).`);
      this.stepH = p.step_h;
      this.stepW = p.step_w;
    } else if (has('step')) {
      this.check(p.step > 0, () => 'step should be larger than 0.');
      this.stepH = this.stepW = p.step;
    } else this.stepH = this.stepW = 0;
    this.offset = p.offset;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const f = bottom[0]!;
    this.check(f.numAxes === 4, () => `bottom[0] must have 4 axes (got ${f.shapeString()}).`);
    top[0]!.reshape([1, 2, f.shape[2]! * f.shape[3]! * this.numPriors * 4]);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const layerH = bottom[0]!.shape[2]!;
    const layerW = bottom[0]!.shape[3]!;
    const imgH = this.imgH || bottom[1]!.shape[2]!;
    const imgW = this.imgW || bottom[1]!.shape[3]!;
    const stepH = this.stepH || imgH / layerH;
    const stepW = this.stepW || imgW / layerW;
    const out = top[0]!.mutableCpuData();
    let k = 0;
    const put = (cx: number, cy: number, bw: number, bh: number) => {
      out[k++] = (cx - bw / 2) / imgW;
      out[k++] = (cy - bh / 2) / imgH;
      out[k++] = (cx + bw / 2) / imgW;
      out[k++] = (cy + bh / 2) / imgH;
    };
    for (let h = 0; h < layerH; h++) {
      for (let w = 0; w < layerW; w++) {
        const cx = (w + this.offset) * stepW;
        const cy = (h + this.offset) * stepH;
        this.minSizes.forEach((minSize, s) => {
          put(cx, cy, minSize, minSize);
          if (this.maxSizes.length > 0) {
            const size = Math.sqrt(minSize * this.maxSizes[s]!);
            put(cx, cy, size, size);
          }
          for (const ar of this.aspectRatios) {
            if (Math.abs(ar - 1) < 1e-6) continue;
            put(cx, cy, minSize * Math.sqrt(ar), minSize / Math.sqrt(ar));
          }
        });
      }
    }
    const dim = k;
    if (this.clip) for (let i = 0; i < dim; i++) out[i] = Math.min(Math.max(out[i]!, 0), 1);
    const v = this.variance;
    for (let i = 0; i < dim; i++) out[dim + i] = v.length === 1 ? v[0]! : v[i % 4]!;
  }

  // The fork's backward does nothing: the boxes do not depend on the bottoms' values.
  protected override backwardCpu(): void {}
}

export const priorBoxLayerDef: LayerDef<PriorBoxLayer> = { type: 'PriorBox', create: (p, ctx) => new PriorBoxLayer(p, ctx) };
