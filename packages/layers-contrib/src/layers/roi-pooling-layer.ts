import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { checkRegionsShape, dtypeRounding, regionImage, roundHalfAway } from '../fork-math.js';
import { forkParam, type ROIPoolingParameter } from '../fork-types.js';

/**
 * ROIPooling (Fast R-CNN): max pooling of each region of interest into a fixed
 * pooled_h × pooled_w grid.
 * - Bottoms: the feature map N × C × H × W, and the regions R × 5 (any shape of R rows of 5),
 *   each `[batch index, x1, y1, x2, y2]` in input-image coordinates.
 * - Top: R × C × pooled_h × pooled_w.
 * - A region's corners are scaled by spatial_scale and rounded half away from zero (C's
 *   `round`). Its height and width count both corners and are at least 1. Bin (ph, pw) covers
 *   rows floor(ph·h/pooled_h) … ceil((ph+1)·h/pooled_h) − 1 from the region's top, and likewise
 *   for columns. Bins are clipped to the map, and an empty bin gives 0.
 * - Backward routes each output's gradient to the input it took (the argmax of the last forward),
 *   summed over the regions and overwriting the map's diff. The regions get no gradient.
 */
/** The largest finite float32, where Caffe starts each bin's maximum. */
const FLT_MAX = 3.4028234663852886e38;

export class ROIPoolingLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };
  readonly type = 'ROIPooling';
  pooledH = 0;
  pooledW = 0;
  spatialScale = 1;
  /** Per output, the index h·W + w in its region's channel plane of the value it took; −1 for an empty bin. */
  private argmax = new Int32Array(0);

  override layerSetUp(): void {
    const p = forkParam<ROIPoolingParameter>(this.param, 'roi_pooling_param', 'ROIPoolingParameter');
    this.check(p.pooled_h > 0, () => `pooled_h must be > 0 (got ${p.pooled_h}).`);
    this.check(p.pooled_w > 0, () => `pooled_w must be > 0 (got ${p.pooled_w}).`);
    this.check(Number.isFinite(p.spatial_scale) && p.spatial_scale > 0, () => `spatial_scale must be a positive number (got ${p.spatial_scale}).`);
    this.pooledH = p.pooled_h;
    this.pooledW = p.pooled_w;
    this.spatialScale = p.spatial_scale;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [map, rois] = [bottom[0]!, bottom[1]!];
    this.check(map.numAxes === 4, () => `bottom 0 (the feature map) must be N × C × H × W (got ${map.shapeString()}).`);
    checkRegionsShape(rois, (c, m) => this.check(c, m));
    top[0]!.reshape([rois.shape[0]!, map.shape[1]!, this.pooledH, this.pooledW]);
    if (this.argmax.length !== top[0]!.count()) this.argmax = new Int32Array(top[0]!.count());
  }

  /**
   * Region r's rounded corners on the map, after checking its batch index. `f` rounds to the
   * blob's float type: Caffe scales the corners in that type before rounding them.
   */
  private region(rois: ArrayLike<number>, r: number, num: number, f: (v: number) => number): { n: number; x0: number; y0: number; w: number; h: number } {
    const at = 5 * r;
    const n = regionImage(rois, r, num, (c, m) => this.check(c, m));
    const scaled = (v: number) => roundHalfAway(f(v * f(this.spatialScale)));
    const x0 = scaled(rois[at + 1]!), y0 = scaled(rois[at + 2]!), x1 = scaled(rois[at + 3]!), y1 = scaled(rois[at + 4]!);
    return { n, x0, y0, w: Math.max(x1 - x0 + 1, 1), h: Math.max(y1 - y0 + 1, 1) };
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const [map, roisBlob] = [bottom[0]!, bottom[1]!];
    const [num, C, H, W] = map.shape as [number, number, number, number];
    const x = map.cpuData(), rois = roisBlob.cpuData(), y = top[0]!.mutableCpuData();
    const PH = this.pooledH, PW = this.pooledW, R = roisBlob.shape[0]!;
    const f = dtypeRounding(map.dtype);
    const bins = (size: number, pooled: number, start: number, limit: number): Int32Array => {
      const step = f(size / pooled);
      const edges = new Int32Array(2 * pooled);
      for (let p = 0; p < pooled; p++) {
        edges[2 * p] = Math.min(Math.max(Math.floor(f(p * step)) + start, 0), limit);
        edges[2 * p + 1] = Math.min(Math.max(Math.ceil(f((p + 1) * step)) + start, 0), limit);
      }
      return edges;
    };
    for (let r = 0; r < R; r++) {
      const { n, x0, y0, w, h } = this.region(rois, r, num, f);
      const rowsOf = bins(h, PH, y0, H), colsOf = bins(w, PW, x0, W);
      for (let c = 0; c < C; c++) {
        const plane = (n * C + c) * H * W;
        const out = (r * C + c) * PH * PW;
        for (let ph = 0; ph < PH; ph++) {
          const h0 = rowsOf[2 * ph]!, h1 = rowsOf[2 * ph + 1]!;
          for (let pw = 0; pw < PW; pw++) {
            const w0 = colsOf[2 * pw]!, w1 = colsOf[2 * pw + 1]!;
            let best = -FLT_MAX, arg = -1;
            for (let yy = h0; yy < h1; yy++) {
              for (let xx = w0; xx < w1; xx++) {
                const v = x[plane + yy * W + xx]!;
                if (v > best) {
                  best = v;
                  arg = yy * W + xx;
                }
              }
            }
            // An empty bin gives 0. As in Caffe, one whose values never beat −FLT_MAX (−∞, NaN)
            // gives −FLT_MAX and no argmax.
            y[out + ph * PW + pw] = h1 <= h0 || w1 <= w0 ? 0 : best;
            this.argmax[out + ph * PW + pw] = arg;
          }
        }
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const [map, roisBlob] = [bottom[0]!, bottom[1]!];
    const [num, C, H, W] = map.shape as [number, number, number, number];
    const dy = top[0]!.cpuDiff(), rois = roisBlob.cpuData(), dx = map.mutableCpuDiff();
    dx.fill(0);
    const per = this.pooledH * this.pooledW, f = dtypeRounding(map.dtype);
    for (let r = 0; r < roisBlob.shape[0]!; r++) {
      const n = this.region(rois, r, num, f).n;
      for (let c = 0; c < C; c++) {
        const plane = (n * C + c) * H * W, out = (r * C + c) * per;
        for (let k = 0; k < per; k++) {
          const arg = this.argmax[out + k]!;
          if (arg >= 0) dx[plane + arg] = dx[plane + arg]! + dy[out + k]!;
        }
      }
    }
  }

  /** The regions are coordinates, not values a gradient could move. */
  override allowForceBackward(bottomIndex: number): boolean {
    return bottomIndex === 0;
  }
}

export const roiPoolingLayerDef: LayerDef<ROIPoolingLayer> = {
  type: 'ROIPooling',
  create: (p, ctx) => new ROIPoolingLayer(p, ctx),
};
