import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { hasField } from '@caffe-ts/proto';
import { forkParam, type InterpParameter } from '../fork-types.js';

/**
 * Interp (DeepLab v2, PSPNet): bilinear resize of each plane with align-corners sampling (the
 * corner pixels of input and output coincide: output row r samples input row r·(H−1)/(H'−1)).
 * The input is first cropped by pad_beg/pad_end (≤ 0, as in the fork). The output size comes
 * from exactly one of: shrink_factor and/or zoom_factor (H' = (H−1)/shrink + 1, then
 * H' + (H'−1)(zoom−1)), height and width, or a second bottom's H×W.
 */
export class InterpLayer extends Layer {
  static override readonly blobCounts = { minBottomBlobs: 1, maxBottomBlobs: 2, exactNumTopBlobs: 1 };
  readonly type = 'Interp';
  padBeg = 0;
  padEnd = 0;
  private spec: 'factor' | 'size' | 'bottom' = 'factor';
  private zoom = 1;
  private shrink = 1;
  private height = 0;
  private width = 0;
  private inH = 0;
  private inW = 0;

  override layerSetUp(bottom: Blob[]): void {
    const p = forkParam<InterpParameter>(this.param, 'interp_param', 'InterpParameter');
    const has = (f: string) => hasField(p, f);
    const specs: string[] = [];
    if (has('zoom_factor') || has('shrink_factor')) specs.push('zoom_factor/shrink_factor');
    if (has('height') || has('width')) specs.push('height/width');
    if (bottom.length === 2) specs.push('a second bottom');
    this.check(specs.length === 1, () => `give the output size in exactly one way: zoom_factor/shrink_factor, height and width, or a second bottom (got ${specs.length === 0 ? 'none' : specs.join(', ')}).`);
    this.padBeg = p.pad_beg;
    this.padEnd = p.pad_end;
    this.check(this.padBeg <= 0 && this.padEnd <= 0, () => `Only supports non-pos padding (cropping) for now (pad_beg ${this.padBeg}, pad_end ${this.padEnd}).`);
    if (has('zoom_factor') || has('shrink_factor')) {
      this.spec = 'factor';
      this.zoom = p.zoom_factor;
      this.shrink = p.shrink_factor;
      this.check(this.zoom >= 1, () => `Zoom factor must be positive (got ${this.zoom}).`);
      this.check(this.shrink >= 1, () => `Shrink factor must be positive (got ${this.shrink}).`);
    } else if (has('height') || has('width')) {
      this.spec = 'size';
      this.check(has('height') && has('width'), () => 'height and width must be given together.');
      this.height = p.height;
      this.width = p.width;
    } else this.spec = 'bottom';
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes === 4, () => `bottom[0] must have 4 axes (got ${b.shapeString()}).`);
    this.inH = b.shape[2]! + this.padBeg + this.padEnd;
    this.inW = b.shape[3]! + this.padBeg + this.padEnd;
    this.check(this.inH > 0 && this.inW > 0, () => `the cropped input is empty (${this.inH}×${this.inW}).`);
    let h: number;
    let w: number;
    if (this.spec === 'factor') {
      h = Math.floor((this.inH - 1) / this.shrink) + 1;
      w = Math.floor((this.inW - 1) / this.shrink) + 1;
      h += (h - 1) * (this.zoom - 1);
      w += (w - 1) * (this.zoom - 1);
    } else if (this.spec === 'size') {
      h = this.height;
      w = this.width;
    } else {
      h = bottom[1]!.shape[2]!;
      w = bottom[1]!.shape[3]!;
    }
    this.check(h > 0 && w > 0, () => `output size must be positive (got ${h}×${w}).`);
    top[0]!.reshape([b.shape[0]!, b.shape[1]!, h, w]);
  }

  /** Calls f(outIndex, inIndex, weight) for the four taps of every output pixel of one plane. */
  private taps(bottom: Blob, top: Blob, f: (o: number, i: number, wgt: number) => void): void {
    const W = bottom.shape[3]!;
    const h1 = this.inH;
    const w1 = this.inW;
    const h2 = top.shape[2]!;
    const w2 = top.shape[3]!;
    const rh = h2 > 1 ? (h1 - 1) / (h2 - 1) : 0;
    const rw = w2 > 1 ? (w1 - 1) / (w2 - 1) : 0;
    const off = -this.padBeg;
    for (let r = 0; r < h2; r++) {
      const hr = rh * r;
      const y0 = Math.floor(hr);
      const dy = y0 < h1 - 1 ? 1 : 0;
      const ly = hr - y0;
      for (let q = 0; q < w2; q++) {
        const wr = rw * q;
        const x0 = Math.floor(wr);
        const dx = x0 < w1 - 1 ? 1 : 0;
        const lx = wr - x0;
        const o = r * w2 + q;
        const i = (y0 + off) * W + x0 + off;
        f(o, i, (1 - ly) * (1 - lx));
        f(o, i + dx, (1 - ly) * lx);
        f(o, i + dy * W, ly * (1 - lx));
        f(o, i + dy * W + dx, ly * lx);
      }
    }
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const planes = bottom[0]!.shape[0]! * bottom[0]!.shape[1]!;
    const inSize = bottom[0]!.count(2);
    const outSize = top[0]!.count(2);
    y.fill(0);
    for (let p = 0; p < planes; p++) {
      const xo = p * inSize;
      const yo = p * outSize;
      this.taps(bottom[0]!, top[0]!, (o, i, wgt) => {
        y[yo + o]! += wgt * x[xo + i]!;
      });
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (propagateDown[1]) this.fail('cannot backpropagate to the size reference (bottom[1]).');
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    const planes = bottom[0]!.shape[0]! * bottom[0]!.shape[1]!;
    const inSize = bottom[0]!.count(2);
    const outSize = top[0]!.count(2);
    // Cropped-away input gets no gradient.
    dx.fill(0);
    for (let p = 0; p < planes; p++) {
      const xo = p * inSize;
      const yo = p * outSize;
      this.taps(bottom[0]!, top[0]!, (o, i, wgt) => {
        dx[xo + i]! += wgt * dy[yo + o]!;
      });
    }
  }

  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex === 0;
  }
}

export const interpLayerDef: LayerDef<InterpLayer> = { type: 'Interp', create: (p, ctx) => new InterpLayer(p, ctx) };
