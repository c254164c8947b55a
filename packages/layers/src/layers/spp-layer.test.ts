import { Blob } from '@caffe-ts/blob';
import { Phase, SPPParameter_PoolMethod as SPPPool } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { SPPLayer, sppLayerDef, sppLevelGeometry } from './spp-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function spp(p: Record<string, unknown> | null, name = 'spp', phase = Phase.TRAIN): SPPLayer {
  return createLayer(sppLayerDef, p ? { name, phase, spp_param: p } : { name, phase });
}

/** Caffe's legacy num/channels/height/width view of a blob (missing axes read as 1). */
const legacy = (b: Blob) => [0, 1, 2, 3].map((i) => b.shape[i] ?? 1);

/**
 * Independent reference: for each level, kernel ceil(in/bins), pad (kernel·bins − in + 1)/2,
 * stride kernel, Caffe's pooled size with the last-window rule; MAX or AVE (divisor clipped to
 * in + pad); items laid out level after level.
 */
function naiveSPP(b: Blob, height: number, ave: boolean): number[][] {
  const [N, C, H, W] = b.shape as [number, number, number, number];
  const x = b.cpuData();
  const rows: number[][] = [];
  for (let n = 0; n < N; n++) {
    const row: number[] = [];
    for (let l = 0; l < height; l++) {
      const bins = 2 ** l;
      const [kh, kw] = [Math.ceil(H / bins), Math.ceil(W / bins)];
      const [padH, padW] = [Math.floor((kh * bins - H + 1) / 2), Math.floor((kw * bins - W + 1) / 2)];
      let ph = Math.ceil((H + 2 * padH - kh) / kh) + 1;
      let pw = Math.ceil((W + 2 * padW - kw) / kw) + 1;
      if ((padH || padW) && (ph - 1) * kh >= H + padH) ph--;
      if ((padH || padW) && (pw - 1) * kw >= W + padW) pw--;
      for (let c = 0; c < C; c++) {
        for (let y = 0; y < ph; y++) {
          for (let z = 0; z < pw; z++) {
            const hs = y * kh - padH;
            const ws = z * kw - padW;
            const he = Math.min(hs + kh, H + padH);
            const we = Math.min(ws + kw, W + padW);
            const size = (he - hs) * (we - ws);
            let best = -Infinity;
            let sum = 0;
            for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) {
              for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) {
                const v = x[((n * C + c) * H + h) * W + w]!;
                best = Math.max(best, v);
                sum += v;
              }
            }
            row.push(ave ? sum / size : best);
          }
        }
      }
    }
    rows.push(row);
  }
  return rows;
}

describe('SPPLayer', () => {
  it('level geometry follows Caffe\'s GetPoolingParam', () => {
    expect(sppLevelGeometry(0, 9, 8)).toEqual({ bins: 1, kernelH: 9, kernelW: 8, padH: 0, padW: 0 });
    expect(sppLevelGeometry(1, 9, 8)).toEqual({ bins: 2, kernelH: 5, kernelW: 4, padH: 1, padW: 0 });
    expect(sppLevelGeometry(2, 9, 8)).toEqual({ bins: 4, kernelH: 3, kernelW: 2, padH: 2, padW: 0 });
    expect(sppLevelGeometry(4, 1024, 765)).toEqual({ bins: 16, kernelH: 64, kernelW: 48, padH: 0, padW: 2 });
  });

  it('pyramid_height 3 on 2×3×9×8 → 2×63 (Caffe reads 2×63×1×1); pyramid_height 5 on 4×3×1024×765 → 4×1023 (caffe-spec §2.3 case 4)', () => {
    const top = f64();
    spp({ pyramid_height: 3 }).setUp([makeBlob([2, 3, 9, 8])], [top]);
    expect(top.shape).toEqual([2, 63]);
    expect(legacy(top)).toEqual([2, 63, 1, 1]);
    // Shape only: the set-up reads the bottom's shape and never touches its (lazy) memory.
    const big = new Blob([4, 3, 1024, 765], { dtype: 'float64' });
    const bigTop = f64();
    spp({ pyramid_height: 5 }).setUp([big], [bigTop]);
    expect(legacy(bigTop)).toEqual([4, 1023, 1, 1]);
    // Caffe's TestEqualOutputDims2 case: 10×3×7×7, pyramid_height 3.
    const t3 = f64();
    spp({ pyramid_height: 3 }).setUp([makeBlob([10, 3, 7, 7], { filler: 0 })], [t3]);
    expect(legacy(t3)).toEqual([10, 63, 1, 1]);
  });

  it('pyramid_height 1 is a global pooling written straight to the top (N×C×1×1)', () => {
    const bottom = makeBlob([2, 3, 4, 5]);
    const top = f64();
    const layer = spp({ pyramid_height: 1 });
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(top.shape).toEqual([2, 3, 1, 1]);
    const x = bottom.cpuData();
    for (let p = 0; p < 6; p++) expect(top.cpuData()[p]).toBe(Math.max(...x.subarray(p * 20, (p + 1) * 20)));
  });

  it('forward matches an independent pyramid (MAX and AVE), and follows a new input size', () => {
    for (const ave of [false, true]) {
      const layer = spp({ pyramid_height: 3, pool: ave ? SPPPool.AVE : SPPPool.MAX });
      const top = f64();
      for (const [i, shape] of [[2, 3, 9, 8], [1, 2, 7, 11]].entries()) {
        const bottom = makeBlob(shape);
        if (i === 0) layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        const want = naiveSPP(bottom, 3, ave);
        expect(top.shape).toEqual([shape[0], want[0]!.length]);
        want.forEach((row, n) => row.forEach((v, j) => expect(top.cpuData()[n * row.length + j]).toBeCloseTo(v, 12)));
      }
    }
  });

  it('gradient, Caffe (1e-4, 1e-2) exhaustive, pyramid_height 3 (MAX; also AVE)', () => {
    new GradientChecker(1e-4, 1e-2).checkGradientExhaustive(spp({ pyramid_height: 3 }), [makeBlob([1, 2, 9, 8])], [f64()]);
    new GradientChecker(1e-4, 1e-2).checkGradientExhaustive(spp({ pyramid_height: 2, pool: SPPPool.AVE }), [makeBlob([2, 1, 5, 4])], [f64()]);
  });

  it('STOCHASTIC levels use the layer\'s phase (TEST: weighted averages, deterministic)', () => {
    const bottom = makeBlob([1, 1, 4, 4], { filler: 'uniform', min: 0.1, max: 1 });
    const top = f64();
    const layer = spp({ pyramid_height: 2, pool: SPPPool.STOCHASTIC }, 'spp', Phase.TEST);
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const x = Array.from(bottom.cpuData());
    const wavg = (v: number[]) => v.reduce((a, b) => a + b * b, 0) / v.reduce((a, b) => a + b, 0);
    expect(top.cpuData()[0]).toBeCloseTo(wavg(x), 12);
    expect(top.cpuData()[1]).toBeCloseTo(wavg([x[0]!, x[1]!, x[4]!, x[5]!]), 12);
  });

  it('defaults (pool MAX) and errors naming the layer', () => {
    expect(spp({ pyramid_height: 2 }).param.spp_param!.pool).toBe(SPPPool.MAX);
    expect(() => spp(null, 's1').setUp([makeBlob([1, 1, 4, 4])], [f64()])).toThrow("SPP layer 's1': pyramid_height must be positive (got 0)");
    expect(() => spp({ pyramid_height: 2 }, 's1').setUp([makeBlob([1, 4, 4])], [f64()])).toThrow(
      "SPP layer 's1': Input must have 4 axes, corresponding to (num, channels, height, width); bottom is 1 4 4 (16)",
    );
    // 5 rows in 4 bins: kernel 2, pad 2 — Caffe's Pooling refuses pad ≥ kernel.
    expect(() => spp({ pyramid_height: 3 }, 's1').setUp([makeBlob([1, 1, 5, 8])], [f64()])).toThrow(
      "SPP layer 's1': pyramid level 2 (4×4 bins, kernel 2×2, pad 2×0) cannot pool a 5×8 input: Pooling layer 's1/level2': pad_h (2) must be less than kernel_h (2)",
    );
  });
});
