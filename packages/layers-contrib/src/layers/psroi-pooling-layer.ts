import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { checkRegionsShape, dtypeRounding, regionImage, roundHalfAway } from '../fork-math.js';
import { forkParam, type PSROIPoolingParameter } from '../fork-types.js';

/**
 * PSROIPooling (R-FCN, daijifeng001/caffe-rfcn): position-sensitive average pooling of regions.
 * - Bottoms: score maps N × (output_dim · group_size²) × H × W, and the regions R × 5
 *   ([batch index, x1, y1, x2, y2] in input pixels).
 * - Top: R × output_dim × group_size × group_size. Bin (ph, pw) of output channel c averages the
 *   region's bin over input channel (c · group_size + ph) · group_size + pw.
 * - As the fork's kernels: corners rounded (halves away from zero), the far ones plus 1, then
 *   scaled by spatial_scale, in the blob's float type; sides at least 0.1; bin edges floor and
 *   ceil of the float bin positions, clipped to the map; an empty bin gives 0.
 * - Backward spreads each output's gradient evenly over its bin (overwriting the map's diff).
 */
export class PSROIPoolingLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };
  readonly type = 'PSROIPooling';
  outputDim = 0;
  groupSize = 0;
  spatialScale = 1;

  override layerSetUp(): void {
    const p = forkParam<PSROIPoolingParameter>(this.param, 'psroi_pooling_param', 'PSROIPoolingParameter');
    this.check(Number.isInteger(p.output_dim) && p.output_dim > 0, () => `output_dim must be > 0 (got ${p.output_dim}).`);
    this.check(Number.isInteger(p.group_size) && p.group_size > 0, () => `group_size must be > 0 (got ${p.group_size}).`);
    this.check(Number.isFinite(p.spatial_scale) && p.spatial_scale > 0, () => `spatial_scale must be a positive number (got ${p.spatial_scale}).`);
    this.outputDim = p.output_dim;
    this.groupSize = p.group_size;
    this.spatialScale = p.spatial_scale;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [map, rois] = [bottom[0]!, bottom[1]!];
    const want = this.outputDim * this.groupSize * this.groupSize;
    this.check(
      map.numAxes === 4 && map.shape[1] === want,
      () => `bottom 0 (the score maps) must be N × ${want} × H × W for output_dim ${this.outputDim} and group_size ${this.groupSize} (got ${map.shapeString()}).`,
    );
    checkRegionsShape(rois, (c, m) => this.check(c, m));
    top[0]!.reshape([rois.shape[0]!, this.outputDim, this.groupSize, this.groupSize]);
  }

  /**
   * Calls visit(out, plane, h0, h1, w0, w1) for every output of every region: its index in the
   * top, the offset of the input channel plane it averages, and its bin (empty where h1 ≤ h0 or
   * w1 ≤ w0).
   */
  private bins(map: Blob, rois: ArrayLike<number>, R: number, visit: (out: number, plane: number, h0: number, h1: number, w0: number, w1: number) => void): void {
    const [num, C, H, W] = map.shape as [number, number, number, number];
    const f = dtypeRounding(map.dtype);
    const G = this.groupSize, scale = f(this.spatialScale);
    for (let r = 0; r < R; r++) {
      const at = 5 * r;
      const n = regionImage(rois, r, num, (c, m) => this.check(c, m));
      const x0 = f(roundHalfAway(rois[at + 1]!) * scale), y0 = f(roundHalfAway(rois[at + 2]!) * scale);
      const x1 = f((roundHalfAway(rois[at + 3]!) + 1) * scale), y1 = f((roundHalfAway(rois[at + 4]!) + 1) * scale);
      const binH = f(Math.max(f(y1 - y0), f(0.1)) / G), binW = f(Math.max(f(x1 - x0), f(0.1)) / G);
      const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
      for (let c = 0; c < this.outputDim; c++) {
        for (let ph = 0; ph < G; ph++) {
          const h0 = clip(Math.floor(f(f(ph * binH) + y0)), H), h1 = clip(Math.ceil(f(f((ph + 1) * binH) + y0)), H);
          for (let pw = 0; pw < G; pw++) {
            const w0 = clip(Math.floor(f(f(pw * binW) + x0)), W), w1 = clip(Math.ceil(f(f((pw + 1) * binW) + x0)), W);
            const channel = (c * G + ph) * G + pw;
            visit(((r * this.outputDim + c) * G + ph) * G + pw, (n * C + channel) * H * W, h0, h1, w0, w1);
          }
        }
      }
    }
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const map = bottom[0]!, W = map.shape[3]!;
    const x = map.cpuData(), y = top[0]!.mutableCpuData();
    this.bins(map, bottom[1]!.cpuData(), bottom[1]!.shape[0]!, (out, plane, h0, h1, w0, w1) => {
      if (h1 <= h0 || w1 <= w0) {
        y[out] = 0;
        return;
      }
      let sum = 0;
      for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) sum += x[plane + h * W + w]!;
      y[out] = sum / ((h1 - h0) * (w1 - w0));
    });
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const map = bottom[0]!, W = map.shape[3]!;
    const dy = top[0]!.cpuDiff(), dx = map.mutableCpuDiff();
    dx.fill(0);
    this.bins(map, bottom[1]!.cpuData(), bottom[1]!.shape[0]!, (out, plane, h0, h1, w0, w1) => {
      if (h1 <= h0 || w1 <= w0) return;
      const g = dy[out]! / ((h1 - h0) * (w1 - w0));
      for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) dx[plane + h * W + w] = dx[plane + h * W + w]! + g;
    });
  }

  /** The regions are coordinates, not values a gradient could move. */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex === 0;
  }
}

export const psroiPoolingLayerDef: LayerDef<PSROIPoolingLayer> = {
  type: 'PSROIPooling',
  create: (p, ctx) => new PSROIPoolingLayer(p, ctx),
};
