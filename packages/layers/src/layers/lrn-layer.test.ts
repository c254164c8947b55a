import { Blob, Rng } from '@caffe-ts/blob';
import { LRNParameter_NormRegion as NormRegion, parseText, type LayerParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { LayerError } from '../errors.js';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { LRNLayer, lrnLayerDef } from './lrn-layer.js';

type Props = Record<string, unknown>;
type DType = 'float32' | 'float64';

function lrn(p: Props = {}, dtype: DType = 'float64'): LRNLayer {
  return createLayer(lrnLayerDef, { name: 'norm1', lrn_param: p }, { dtype });
}

/** Caffe's test reference (test_lrn_layer.cpp ReferenceLRNForward), written out loop by loop. */
function referenceLRN(
  bottom: Blob,
  { size, alpha, beta, k, within }: { size: number; alpha: number; beta: number; k: number; within: boolean },
): Float64Array {
  const [N, C, H, W] = bottom.shape as [number, number, number, number];
  const x = bottom.cpuData();
  const at = (n: number, c: number, h: number, w: number) => x[((n * C + c) * H + h) * W + w]!;
  const y = new Float64Array(x.length);
  const pre = (size - 1) / 2;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let h = 0; h < H; h++) {
        for (let w = 0; w < W; w++) {
          let scale: number;
          if (!within) {
            const c0 = c - pre;
            const c1 = Math.min(c0 + size, C);
            scale = k;
            for (let i = Math.max(c0, 0); i < c1; i++) scale += (at(n, i, h, w) ** 2 * alpha) / size;
          } else {
            const h0 = h - pre;
            const w0 = w - pre;
            const h1 = Math.min(h0 + size, H);
            const w1 = Math.min(w0 + size, W);
            scale = 1;
            for (let i = Math.max(h0, 0); i < h1; i++) {
              for (let j = Math.max(w0, 0); j < w1; j++) scale += (at(n, c, i, j) ** 2 * alpha) / (size * size);
            }
          }
          y[((n * C + c) * H + h) * W + w] = at(n, c, h, w) * Math.pow(scale, -beta);
        }
      }
    }
  }
  return y;
}

function forward(layer: LRNLayer, bottom: Blob): Blob {
  const top = new Blob([], { dtype: layer.dtype });
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const f64 = () => new Blob([], { dtype: 'float64' });

describe('LRNLayer', () => {
  it('keeps the bottom shape', () => {
    const top = forward(lrn(), makeBlob([2, 7, 3, 3]));
    expect(top.shape).toEqual([2, 7, 3, 3]);
  });

  describe('forward against Caffe reference (2×7×3×3, within 1e-5)', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`ACROSS_CHANNELS, defaults (5, 1, 0.75) [${dtype}]`, () => {
        const bottom = makeBlob([2, 7, 3, 3], { dtype });
        const top = forward(lrn({}, dtype), bottom);
        expect(maxDiff(top.cpuData(), referenceLRN(bottom, { size: 5, alpha: 1, beta: 0.75, k: 1, within: false }))).toBeLessThan(1e-5);
      });

      it(`ACROSS_CHANNELS, local_size 15 [${dtype}]`, () => {
        const bottom = makeBlob([2, 7, 3, 3], { dtype });
        const top = forward(lrn({ local_size: 15 }, dtype), bottom);
        expect(maxDiff(top.cpuData(), referenceLRN(bottom, { size: 15, alpha: 1, beta: 0.75, k: 1, within: false }))).toBeLessThan(1e-5);
      });

      it(`WITHIN_CHANNEL, local_size 3 [${dtype}]`, () => {
        const bottom = makeBlob([2, 7, 3, 3], { dtype });
        const top = forward(lrn({ norm_region: NormRegion.WITHIN_CHANNEL, local_size: 3 }, dtype), bottom);
        expect(maxDiff(top.cpuData(), referenceLRN(bottom, { size: 3, alpha: 1, beta: 0.75, k: 1, within: true }))).toBeLessThan(1e-5);
      });
    }

    it('ACROSS_CHANNELS uses k, alpha and beta', () => {
      const bottom = makeBlob([1, 6, 2, 3]);
      const top = forward(lrn({ local_size: 3, alpha: 0.5, beta: 0.6, k: 2 }), bottom);
      const alpha = Math.fround(0.5);
      const beta = Math.fround(0.6);
      expect(maxDiff(top.cpuData(), referenceLRN(bottom, { size: 3, alpha, beta, k: 2, within: false }))).toBeLessThan(1e-12);
    });

    it('WITHIN_CHANNEL ignores k (as Caffe), uses alpha/size² with zero padding', () => {
      const bottom = makeBlob([1, 2, 5, 4]);
      const top = forward(lrn({ norm_region: NormRegion.WITHIN_CHANNEL, local_size: 5, alpha: 2, beta: 0.5, k: 10 }), bottom);
      expect(maxDiff(top.cpuData(), referenceLRN(bottom, { size: 5, alpha: 2, beta: 0.5, k: 1, within: true }))).toBeLessThan(1e-12);
    });

    it('a hand-computed value: one channel, local_size 1', () => {
      // scale = 1 + 1·x², y = x / (1 + x²)^0.75 = 2 / 5^0.75.
      const top = forward(lrn({ local_size: 1 }), makeBlob([1, 1, 1, 1], { filler: 2 }));
      expect(top.cpuData()[0]).toBeCloseTo(2 / 5 ** 0.75, 12);
    });
  });

  describe('gradient (float64, Caffe (1e-2, 1e-2) exhaustive)', () => {
    const check = (p: Props, shape: number[]) =>
      new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(lrn(p), [makeBlob(shape, { rng: new Rng(5) })], [f64()]);

    it('ACROSS_CHANNELS', () => check({}, [1, 7, 2, 3]));
    it('ACROSS_CHANNELS, local_size 15', () => check({ local_size: 15 }, [1, 7, 2, 2]));
    it('ACROSS_CHANNELS with k, alpha, beta', () => check({ local_size: 3, k: 2, alpha: 3, beta: 0.9 }, [2, 4, 2, 2]));
    it('WITHIN_CHANNEL', () => check({ norm_region: NormRegion.WITHIN_CHANNEL, local_size: 3 }, [1, 2, 4, 3]));
    it('WITHIN_CHANNEL, local_size 5, large alpha', () => check({ norm_region: NormRegion.WITHIN_CHANNEL, local_size: 5, alpha: 4 }, [1, 1, 4, 4]));
  });

  describe('params', () => {
    it('defaults: local_size 5, alpha 1, beta 0.75, k 1, ACROSS_CHANNELS', () => {
      const layer = lrn();
      forward(layer, makeBlob([1, 3, 2, 2]));
      expect([layer.size, layer.alpha, layer.beta, layer.k]).toEqual([5, 1, 0.75, 1]);
      expect(layer.type).toBe('LRN');
      const noParam = createLayer(lrnLayerDef, { name: 'n' });
      forward(noParam, makeBlob([1, 3, 2, 2]));
      expect(noParam.size).toBe(5);
    });

    it('reads a prototxt layer (CIFAR-10 full norm1: WITHIN_CHANNEL, alpha 5e-05 as float32)', () => {
      const lp = parseText<LayerParameter>(
        'LayerParameter',
        'name: "norm1" type: "LRN" lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75 norm_region: WITHIN_CHANNEL }',
      );
      const layer = lrnLayerDef.create(lp, { dtype: 'float64' });
      const bottom = makeBlob([1, 2, 4, 4]);
      const top = forward(layer, bottom);
      expect([layer.size, layer.alpha, layer.beta]).toEqual([3, Math.fround(5e-5), 0.75]);
      expect(maxDiff(top.cpuData(), referenceLRN(bottom, { size: 3, alpha: Math.fround(5e-5), beta: 0.75, k: 1, within: true }))).toBeLessThan(1e-12);
    });

    it('local_size must be odd', () => {
      let err: unknown;
      try {
        forward(lrn({ local_size: 4 }), makeBlob([1, 3, 2, 2]));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LayerError);
      expect((err as Error).message).toBe("LRN layer 'norm1': LRN only supports odd values for local_size (got 4)");
    });

    it('needs 4 axes', () => {
      expect(() => forward(lrn(), makeBlob([3, 2, 2]))).toThrow(
        "LRN layer 'norm1': Input must have 4 axes, corresponding to (num, channels, height, width); bottom is 3 2 2 (12)",
      );
    });
  });

  it('float32 across channels (WebAssembly where available) matches float64 for β 0.75, 0.5, 1 and another β', () => {
    for (const beta of [0.75, 0.5, 1, 0.6]) {
      const run = (dtype: 'float32' | 'float64') => {
        const layer = createLayer(lrnLayerDef, { lrn_param: { local_size: 5, alpha: 0.5, beta, k: 1.5 } }, { dtype });
        const bottom = makeBlob([2, 7, 3, 5], { dtype, filler: 'uniform', min: -2, max: 2, rng: new Rng(21) });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        return Array.from(top.cpuData());
      };
      const got = run('float32'), want = run('float64');
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(want[i]!)));
    }
  });
  it('keeps no scale after a forward without backward (backwardNeeded false), and then refuses backward', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      for (const norm_region of [NormRegion.ACROSS_CHANNELS, NormRegion.WITHIN_CHANNEL]) {
        const layer = createLayer(lrnLayerDef, { lrn_param: { local_size: 3, norm_region } }, { dtype });
        const bottom = makeBlob([2, 5, 3, 4], { dtype, filler: 'uniform', min: -2, max: 2, rng: new Rng(5) });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        const kept = Array.from(top.cpuData());
        expect(layer['scale'].count()).toBe(bottom.count());
        layer.backwardNeeded = false;
        top.mutableCpuData().fill(0);
        layer.forward([bottom], [top]);
        expect(Array.from(top.cpuData()), `${dtype} region ${norm_region}`).toEqual(kept);
        expect(layer['scale'].count()).toBe(0);
        // A second pass without backward reshapes its scale again.
        layer.forward([bottom], [top]);
        expect(Array.from(top.cpuData())).toEqual(kept);
        top.mutableCpuDiff().fill(1);
        expect(() => layer.backward([top], [true], [bottom])).toThrow(/LRN backward needs the scale of the last forward/);
        layer.backwardNeeded = true;
        layer.forward([bottom], [top]);
        expect(() => layer.backward([top], [true], [bottom])).not.toThrow();
      }
    }
  });
});
