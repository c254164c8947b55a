import { Blob, defaultWasmConv2d, defaultWasmInfer, defaultWasmInferConv, defaultWasmTrain, Rng, type FloatArray } from '@caffe-ts/blob';
import { parseText, Phase, type LayerParameter } from '@caffe-ts/proto';
import { describe, expect, it, vi } from 'vitest';
import { LayerError } from '../errors.js';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { countingPackedConv2d, float64Twin } from '../testing/float64-twin.js';
import { ConvolutionLayer, convolutionLayerDef, DEFAULT_SMALL_CONV_TAPS, PACKED_DGRAD_MAX_AREA_RATIO } from './convolution-layer.js';

type Props = Record<string, unknown>;

function conv(convParam: Props, dtype: 'float32' | 'float64' = 'float64', rngSeed = 1701): ConvolutionLayer {
  return createLayer(convolutionLayerDef, { convolution_param: convParam }, { dtype, rng: new Rng(rngSeed) });
}

const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

/** Direct N-d convolution (Caffe's caffe_conv reference): channel axis 1, the rest spatial. */
function naiveConv(
  bottom: Blob,
  weight: Blob,
  bias: Blob | null,
  o: { pad: number[]; stride: number[]; dilation: number[]; group: number },
): { data: Float64Array; shape: number[] } {
  const [N, C, ...sp] = bottom.shape as number[];
  const [O, Cg, ...k] = weight.shape as number[];
  const out = sp.map((d, i) => Math.floor((d + 2 * o.pad[i]! - (o.dilation[i]! * (k[i]! - 1) + 1)) / o.stride[i]!) + 1);
  const x = bottom.cpuData();
  const w = weight.cpuData();
  const b = bias?.cpuData();
  const inCount = prod(sp);
  const outCount = prod(out);
  const kCount = prod(k);
  const Og = O! / o.group;
  const y = new Float64Array(N! * O! * outCount);
  const unflat = (i: number, dims: number[]) => {
    const r = new Array<number>(dims.length);
    for (let d = dims.length - 1; d >= 0; d--) {
      r[d] = i % dims[d]!;
      i = Math.floor(i / dims[d]!);
    }
    return r;
  };
  for (let n = 0; n < N!; n++) {
    for (let oc = 0; oc < O!; oc++) {
      const g = Math.floor(oc / Og);
      for (let op = 0; op < outCount; op++) {
        const oi = unflat(op, out);
        let sum = b ? b[oc]! : 0;
        for (let ci = 0; ci < Cg!; ci++) {
          const c = g * Cg! + ci;
          for (let kp = 0; kp < kCount; kp++) {
            const ki = unflat(kp, k);
            let flat = 0;
            let inside = true;
            for (let d = 0; d < sp.length; d++) {
              const pos = oi[d]! * o.stride[d]! - o.pad[d]! + ki[d]! * o.dilation[d]!;
              if (pos < 0 || pos >= sp[d]!) inside = false;
              flat = flat * sp[d]! + pos;
            }
            if (!inside) continue;
            sum += x[(n * C! + c) * inCount + flat]! * w[(oc * Cg! + ci) * kCount + kp]!;
          }
        }
        y[(n * O! + oc) * outCount + op] = sum;
      }
    }
  }
  return { data: y, shape: [N!, O!, ...out] };
}

function expectClose(actual: FloatArray, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

const gaussianFiller = { type: 'gaussian', std: 1 };
const biasFiller = { type: 'constant', value: 0.1 };

/** Sets the layer up on `bottoms` and checks every top against the naive reference. */
function checkAgainstNaive(
  layer: ConvolutionLayer,
  bottoms: Blob[],
  o: { pad: number[]; stride: number[]; dilation: number[]; group: number },
  tol = 1e-4,
): Blob[] {
  const tops = bottoms.map(() => new Blob([], { dtype: layer.dtype }));
  layer.setUp(bottoms, tops);
  layer.forward(bottoms, tops);
  bottoms.forEach((b, i) => {
    const ref = naiveConv(b, layer.blobs[0]!, layer.blobs[1] ?? null, o);
    expect(tops[i]!.shape).toEqual(ref.shape);
    expectClose(tops[i]!.cpuData(), ref.data, tol);
  });
  return tops;
}

describe('ConvolutionLayer', () => {
  describe('shapes', () => {
    it('2×3×6×4, k3 s2, num_output 4 → 2×4×2×1; weight 4 3 3 3, bias 4', () => {
      const layer = conv({ num_output: 4, kernel_size: [3], stride: [2] });
      const bottoms = [makeBlob([2, 3, 6, 4]), makeBlob([2, 3, 6, 4])];
      const tops = [new Blob(), new Blob()];
      layer.setUp(bottoms, tops);
      expect(tops[0]!.shape).toEqual([2, 4, 2, 1]);
      expect(tops[1]!.shape).toEqual([2, 4, 2, 1]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[4, 3, 3, 3], [4]]);
      expect(layer.type).toBe('Convolution');
    });

    it('group 3 with num_output 3 → 2×3×2×1; weight 3 1 3 3', () => {
      const layer = conv({ num_output: 3, kernel_size: [3], stride: [2], group: 3 });
      const top = new Blob();
      layer.setUp([makeBlob([2, 3, 6, 4])], [top]);
      expect(top.shape).toEqual([2, 3, 2, 1]);
      expect(layer.blobs[0]!.shape).toEqual([3, 1, 3, 3]);
    });

    it('uses (in + 2p − (d(k−1)+1))/s + 1 with floor, per axis', () => {
      const layer = conv({ num_output: 2, kernel_h: 3, kernel_w: 2, pad_h: 1, pad_w: 0, stride_h: 2, stride_w: 3, bias_term: false });
      const top = new Blob();
      layer.setUp([makeBlob([1, 1, 7, 8])], [top]);
      // h: (7 + 2 − 3)/2 + 1 = 4; w: (8 − 2)/3 + 1 = 3
      expect(top.shape).toEqual([1, 2, 4, 3]);
      const dil = conv({ num_output: 1, kernel_size: [3], dilation: [2, 3] });
      dil.setUp([makeBlob([1, 1, 8, 9])], [top]);
      // h: (8 − 5)/1 + 1 = 4; w: (9 − 7)/1 + 1 = 3
      expect(top.shape).toEqual([1, 1, 4, 3]);
    });

    it('reshapes with the bottom and reuses the column buffer', () => {
      const layer = conv({ num_output: 2, kernel_size: [3], weight_filler: gaussianFiller });
      const top = new Blob([], { dtype: 'float64' });
      const big = makeBlob([1, 2, 6, 6]);
      layer.setUp([big], [top]);
      layer.forward([big], [top]);
      const small = makeBlob([1, 2, 4, 5]);
      layer.forward([small], [top]);
      expect(top.shape).toEqual([1, 2, 2, 3]);
      const ref = naiveConv(small, layer.blobs[0]!, layer.blobs[1]!, { pad: [0, 0], stride: [1, 1], dilation: [1, 1], group: 1 });
      expectClose(top.cpuData(), ref.data, 1e-12);
    });
  });

  describe('forward against a direct convolution', () => {
    const o2 = (p: Partial<{ pad: number[]; stride: number[]; dilation: number[]; group: number }> = {}) => ({
      pad: [0, 0],
      stride: [1, 1],
      dilation: [1, 1],
      group: 1,
      ...p,
    });

    it('simple: two bottoms, k3 s2, gaussian weights, constant bias (float32 and float64)', () => {
      for (const dtype of ['float32', 'float64'] as const) {
        const layer = conv({ num_output: 4, kernel_size: [3], stride: [2], weight_filler: gaussianFiller, bias_filler: biasFiller }, dtype);
        const bottoms = [makeBlob([2, 3, 6, 4], { dtype }), makeBlob([2, 3, 6, 4], { dtype, rng: new Rng(7) })];
        checkAgainstNaive(layer, bottoms, o2({ stride: [2, 2] }));
        expect(layer.blobs[1]!.cpuData()[0]).toBeCloseTo(0.1, 6);
      }
    });

    it('padded, non-square kernel and stride', () => {
      const layer = conv({
        num_output: 3,
        kernel_h: 3,
        kernel_w: 2,
        pad_h: 2,
        pad_w: 1,
        stride_h: 2,
        stride_w: 1,
        weight_filler: gaussianFiller,
        bias_filler: gaussianFiller,
      });
      checkAgainstNaive(layer, [makeBlob([2, 2, 5, 6])], o2({ pad: [2, 1], stride: [2, 1] }), 1e-12);
    });

    it('dilated: 2×3×8×7, k3, dilation 2', () => {
      const layer = conv({ num_output: 4, kernel_size: [3], dilation: [2], weight_filler: gaussianFiller, bias_filler: biasFiller });
      const tops = checkAgainstNaive(layer, [makeBlob([2, 3, 8, 7])], o2({ dilation: [2, 2] }), 1e-12);
      expect(tops[0]!.shape).toEqual([2, 4, 4, 3]);
    });

    it('3-D: 2×3×5×6×4, k3 s2, with and without dilation', () => {
      const layer = conv({ num_output: 4, kernel_size: [3], stride: [2], weight_filler: gaussianFiller, bias_filler: biasFiller });
      const tops = checkAgainstNaive(layer, [makeBlob([2, 3, 5, 6, 4])], { pad: [0, 0, 0], stride: [2, 2, 2], dilation: [1, 1, 1], group: 1 }, 1e-12);
      expect(tops[0]!.shape).toEqual([2, 4, 2, 2, 1]);
      const dil = conv({ num_output: 2, kernel_size: [3, 2, 2], pad: [1, 0, 1], dilation: [2, 1, 2], weight_filler: gaussianFiller, bias_filler: gaussianFiller });
      checkAgainstNaive(dil, [makeBlob([1, 2, 6, 5, 4])], { pad: [1, 0, 1], stride: [1, 1, 1], dilation: [2, 1, 2], group: 1 }, 1e-12);
    });

    it('1×1: the image is its own column matrix', () => {
      const layer = conv({ num_output: 4, kernel_size: [1], weight_filler: gaussianFiller, bias_filler: biasFiller });
      checkAgainstNaive(layer, [makeBlob([2, 3, 6, 4])], o2(), 1e-12);
      // A 1×1 kernel with stride 2 still needs im2col.
      const strided = conv({ num_output: 2, kernel_size: [1], stride: [2], weight_filler: gaussianFiller });
      checkAgainstNaive(strided, [makeBlob([2, 3, 5, 4])], o2({ stride: [2, 2] }), 1e-12);
    });

    it('grouped: group 3, num_output 3 and 6', () => {
      for (const numOutput of [3, 6]) {
        const layer = conv({ num_output: numOutput, kernel_size: [3], stride: [2], group: 3, weight_filler: gaussianFiller, bias_filler: biasFiller });
        checkAgainstNaive(layer, [makeBlob([2, 3, 6, 4])], o2({ stride: [2, 2], group: 3 }), 1e-12);
      }
      const g2 = conv({ num_output: 4, kernel_size: [2], group: 2, pad: [1], weight_filler: gaussianFiller, bias_filler: gaussianFiller });
      checkAgainstNaive(g2, [makeBlob([1, 4, 3, 3])], o2({ pad: [1, 1], group: 2 }), 1e-12);
    });

    it('force_nd_im2col gives the 2-D result', () => {
      const p = { num_output: 3, kernel_size: [3, 2], pad: [1, 2], stride: [2, 1], dilation: [1, 2], weight_filler: gaussianFiller, bias_filler: biasFiller };
      const bottom = makeBlob([2, 3, 6, 5]);
      const a = conv(p);
      const b = conv({ ...p, force_nd_im2col: true });
      const ta = new Blob([], { dtype: 'float64' });
      const tb = new Blob([], { dtype: 'float64' });
      a.setUp([bottom], [ta]);
      b.setUp([bottom], [tb]);
      b.blobs[0]!.copyFrom(a.blobs[0]!);
      a.forward([bottom], [ta]);
      b.forward([bottom], [tb]);
      expectClose(tb.cpuData(), ta.cpuData(), 1e-12);
    });

    it('axis: 1-D convolution over the last axis of N×M×C×L', () => {
      const layer = conv({ num_output: 2, kernel_size: [3], stride: [2], pad: [1], axis: 2, weight_filler: gaussianFiller, bias_filler: gaussianFiller });
      const bottom = makeBlob([2, 3, 4, 7]);
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      expect(top.shape).toEqual([2, 3, 2, 4]);
      expect(layer.blobs[0]!.shape).toEqual([2, 4, 3]);
      // Same as a 1-D convolution of the 6 images of shape 4×7.
      const flat = new Blob([6, 4, 7], { dtype: 'float64' });
      flat.mutableCpuData().set(bottom.cpuData());
      const ref = naiveConv(flat, layer.blobs[0]!, layer.blobs[1]!, { pad: [1], stride: [2], dilation: [1], group: 1 });
      expectClose(top.cpuData(), ref.data, 1e-12);
    });

    it('Sobel Gx (3×3, stride 2) equals [1 2 1]ᵀ (stride_h 2) then [−1 0 1] (stride_w 2)', () => {
      const bottom = makeBlob([2, 3, 6, 4], { dtype: 'float32' });
      const sobel = conv({ num_output: 1, kernel_size: [3], stride: [2], bias_term: false }, 'float32');
      const top = new Blob();
      sobel.setUp([bottom], [top]);
      const gx = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
      const w = sobel.blobs[0]!.mutableCpuData();
      for (let c = 0; c < 3; c++) w.set(gx, c * 9);
      sobel.forward([bottom], [top]);

      const vert = conv({ num_output: 1, kernel_h: 3, kernel_w: 1, stride_h: 2, stride_w: 1, bias_term: false }, 'float32');
      const mid = new Blob();
      vert.setUp([bottom], [mid]);
      const wv = vert.blobs[0]!.mutableCpuData();
      for (let c = 0; c < 3; c++) wv.set([1, 2, 1], c * 3);
      vert.forward([bottom], [mid]);
      const horiz = conv({ num_output: 1, kernel_h: 1, kernel_w: 3, stride_h: 1, stride_w: 2, bias_term: false }, 'float32');
      const sep = new Blob();
      horiz.setUp([mid], [sep]);
      horiz.blobs[0]!.mutableCpuData().set([-1, 0, 1]);
      horiz.forward([mid], [sep]);

      expect(sep.shape).toEqual(top.shape);
      expect(top.shape).toEqual([2, 1, 2, 1]);
      expectClose(sep.cpuData(), top.cpuData(), 1e-4);
    });
  });

  describe('backward', () => {
    it('accumulates param diffs and overwrites the bottom diff', () => {
      const layer = conv({ num_output: 2, kernel_size: [2], weight_filler: gaussianFiller, bias_filler: gaussianFiller });
      const bottom = makeBlob([1, 2, 3, 3]);
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      top.mutableCpuDiff().fill(1);
      bottom.mutableCpuDiff().fill(123);
      layer.backward([top], [true], [bottom]);
      const w1 = Array.from(layer.blobs[0]!.cpuDiff());
      const b1 = Array.from(layer.blobs[1]!.cpuDiff());
      const x1 = Array.from(bottom.cpuDiff());
      expect(b1).toEqual([4, 4]);
      layer.backward([top], [true], [bottom]);
      expectClose(layer.blobs[0]!.cpuDiff(), w1.map((v) => 2 * v), 1e-12);
      expectClose(layer.blobs[1]!.cpuDiff(), [8, 8], 0);
      expectClose(bottom.cpuDiff(), x1, 0);
      // Corner input pixel feeds one output per channel: Σ_o w[o, c, 0, 0].
      const w = layer.blobs[0]!.cpuData();
      expect(x1[0]).toBeCloseTo(w[0]! + w[8]!, 12);
    });

    it('skips frozen params', () => {
      const layer = conv({ num_output: 2, kernel_size: [2], weight_filler: gaussianFiller });
      const bottom = makeBlob([1, 2, 3, 3]);
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([bottom], [top]);
      layer.setParamPropagateDown(0, false);
      layer.setParamPropagateDown(1, false);
      layer.forward([bottom], [top]);
      top.mutableCpuDiff().fill(1);
      layer.backward([top], [true], [bottom]);
      expect(layer.blobs[0]!.asumDiff()).toBe(0);
      expect(layer.blobs[1]!.asumDiff()).toBe(0);
      expect(bottom.asumDiff()).toBeGreaterThan(0);
    });
  });

  // CAFFE_TS_GEMM=js turns the WebAssembly kernels off, these among them.
  describe.skipIf(process.env.CAFFE_TS_GEMM === 'js')('few-tap float32 backward without a bottom gradient runs the small-convolution kernels', () => {
    /**
     * Forward and two backwards (param diffs accumulate) of a float32 layer with the small
     * kernels (smallConvMaxTaps default) and without (0: the batched GEMM pass); returns both
     * runs' param diffs and how often smallConvBackward ran.
     */
    const run = (p: Props, shape: number[], propagate: boolean) => {
      const train = defaultWasmTrain();
      expect(train).not.toBeNull();
      const spy = vi.spyOn(train!, 'smallConvBackward');
      try {
        const diffs = [DEFAULT_SMALL_CONV_TAPS, 0].map((taps) => {
          const layer = conv({ ...p, weight_filler: gaussianFiller, bias_filler: gaussianFiller }, 'float32');
          layer.smallConvMaxTaps = taps;
          const bottom = makeBlob(shape, { dtype: 'float32', rng: new Rng(9) });
          const top = new Blob([], { dtype: 'float32' });
          layer.setUp([bottom], [top]);
          layer.forward([bottom], [top]);
          const dy = top.mutableCpuDiff();
          const rng = new Rng(4);
          for (let i = 0; i < dy.length; i++) dy[i] = rng.gaussian(0, 1);
          layer.backward([top], [propagate], [bottom]);
          layer.backward([top], [propagate], [bottom]);
          return layer.blobs.map((b) => Array.from(b.cpuDiff()));
        });
        return { small: diffs[0]!, batched: diffs[1]!, calls: spy.mock.calls.length };
      } finally {
        spy.mockRestore();
      }
    };
    const expectSame = (got: number[][], want: number[][]) => {
      expect(got.length).toBe(want.length);
      got.forEach((g, k) => {
        const scale = Math.max(1, ...want[k]!.map(Math.abs));
        g.forEach((v, i) => expect(Math.abs(v - want[k]![i]!)).toBeLessThanOrEqual(2e-5 * scale));
      });
    };

    it('LeNet conv1 shape (1 channel, k5, 20 outputs): weight and bias diffs equal the batched pass, accumulating', () => {
      const { small, batched, calls } = run({ num_output: 20, kernel_size: [5] }, [3, 1, 14, 13], false);
      expect(calls).toBe(2);
      expectSame(small, batched);
    });

    it('padded, non-square, 3 channels, outputs not a multiple of 4, no bias', () => {
      const { small, batched, calls } = run({ num_output: 5, kernel_h: 3, kernel_w: 2, pad_h: 1, pad_w: 2, bias_term: false }, [2, 3, 7, 9], false);
      expect(calls).toBe(2);
      expectSame(small, batched);
    });

    it('not where the bottom needs a gradient, the stride is not 1 or there are more taps than smallConvMaxTaps', () => {
      expect(run({ num_output: 4, kernel_size: [3] }, [2, 2, 6, 6], true).calls).toBe(0);
      expect(run({ num_output: 4, kernel_size: [3], stride: [2] }, [2, 2, 7, 7], false).calls).toBe(0);
      expect(run({ num_output: 4, kernel_size: [5] }, [2, 4, 7, 7], false).calls).toBe(0);
    });
  });

  describe('batched GEMMs equal the per-image path', () => {
    /**
     * Runs forward and two backwards (diffs accumulate) with every image in one chunk, with chunks
     * of two images (the last one short) and per image; results may differ only by summation order.
     */
    const compare = (p: Props, shape: number[], dtype: 'float32' | 'float64') => {
      const tol = dtype === 'float32' ? 2e-5 : 1e-12;
      // The last run forces N-d im2col: the per-image path, the reference for the batched ones.
      const runs = [Infinity, 2, 1, 0].map((images) => {
        const layer: ConvolutionLayer = conv(images === 0 ? { ...p, force_nd_im2col: true } : p, dtype);
        const bottom = makeBlob(shape, { dtype, rng: new Rng(9) });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        // Budget for `images` images' columns: kernelDim·group rows × the GEMM side's spatial size.
        const perImage = layer.blobs[0]!.count(1) * ((p.group as number | undefined) ?? 1) * prod(top.shape.slice(2));
        layer.maxBatchColFloats = images * perImage;
        layer.reshape([bottom], [top]);
        layer.forward([bottom], [top]);
        const dy = top.mutableCpuDiff();
        const rng = new Rng(4);
        for (let i = 0; i < dy.length; i++) dy[i] = rng.gaussian(0, 1);
        layer.backward([top], [true], [bottom]);
        layer.backward([top], [true], [bottom]);
        return [top.cpuData(), bottom.cpuDiff(), ...layer.blobs.map((b) => b.cpuDiff())].map((a) => Array.from(a));
      });
      for (const other of runs.slice(1)) {
        runs[0]!.forEach((want, k) => {
          const got = other[k]!;
          expect(got.length).toBe(want.length);
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!)));
        });
      }
    };
    it('float32 layers run their backward as a batched WebAssembly pass, their forward on the packed runner (CAFFE_TS_GEMM unset)', () => {
      const wasm = defaultWasmConv2d();
      if (process.env.CAFFE_TS_GEMM === 'js') {
        expect(wasm).toBeNull();
        return;
      }
      const run = wasm!.run;
      let calls = 0;
      wasm!.run = (...args) => {
        calls++;
        run(...args);
      };
      try {
        const layer = conv({ num_output: 2, kernel_size: [3] }, 'float32');
        const bottom = makeBlob([3, 2, 5, 5], { dtype: 'float32' });
        const top = new Blob([], { dtype: 'float32' });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        // The forward (training too, on any number of kernel threads) packs the weights once per
        // version and unfolds the images itself: no batched pass.
        expect(calls).toBe(0);
        layer.backward([top], [true], [bottom]);
        expect(calls).toBe(1);
        // float64 stays on the JS loops.
        const f64Layer = conv({ num_output: 2, kernel_size: [3] });
        const f64Bottom = makeBlob([3, 2, 5, 5]);
        const f64Top = new Blob([], { dtype: 'float64' });
        f64Layer.setUp([f64Bottom], [f64Top]);
        f64Layer.forward([f64Bottom], [f64Top]);
      } catch (e) {
        wasm!.run = run;
        throw e;
      }
      wasm!.run = run;
      expect(calls).toBe(1);
    });
    const filler = { weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };
    for (const dtype of ['float32', 'float64'] as const) {
      it(`k3 s1 (LeNet-like), ${dtype}`, () => compare({ num_output: 4, kernel_size: [3], ...filler }, [5, 3, 7, 6], dtype));
      it(`padded, strided, dilated, non-square, ${dtype}`, () =>
        compare({ num_output: 3, kernel_h: 3, kernel_w: 2, pad_h: 2, pad_w: 1, stride_h: 2, stride_w: 1, dilation: [1, 2], ...filler }, [3, 2, 7, 6], dtype));
      it(`grouped, no bias, ${dtype}`, () =>
        compare({ num_output: 4, kernel_size: [2], group: 2, stride: [2], bias_term: false, ...filler }, [3, 4, 5, 5], dtype));
    }
  });

  it('1×1 float32 with bias over ≥ 2048 outputs per image (the WebAssembly bias pass) matches the direct convolution', () => {
    const layer = conv({ num_output: 8, kernel_size: [1], weight_filler: gaussianFiller, bias_filler: { type: 'gaussian', std: 1 } }, 'float32');
    const bottom = makeBlob([2, 3, 16, 17], { dtype: 'float32', rng: new Rng(5) });
    checkAgainstNaive(layer, [bottom], { pad: [0, 0], stride: [1, 1], dilation: [1, 1], group: 1 }, 1e-4);
  });

  describe('float32 bottom gradient of a stride-1 convolution runs on the packed runner (flipped filters)', () => {
    const filler = { weight_filler: gaussianFiller, bias_filler: { type: 'gaussian', std: 1 } };
    /** A float32 layer and a float64 twin; backward() steps both and compares every gradient. */
    const twins = (p: Props, shape: number[]) => {
      // Sums of Cg·taps products of unit-variance terms: float32 rounding stays well inside 1e-4 relative.
      const { l32, l64, step, expectClose } = float64Twin((dtype) => conv({ ...filler, ...p }, dtype, 5), shape, 1e-4);
      const backward = () => {
        step();
        expectClose();
      };
      return { l32, l64, backward };
    };

    it.each([
      ['k3 pad 1, odd sizes', { num_output: 5, kernel_size: [3], pad: [1] }, [2, 3, 7, 6]],
      ['k5 pad 2, 16 → 16 channels (Winograd F(2×2, 5×5) over the flipped filters)', { num_output: 16, kernel_size: [5], pad: [2] }, [2, 16, 8, 8]],
      ['k3 pad 1, 16 → 24 channels (Winograd F(4×4, 3×3))', { num_output: 24, kernel_size: [3], pad: [1] }, [1, 16, 12, 12]],
      ['group 2, no bias', { num_output: 6, kernel_size: [3], pad: [1], group: 2, bias_term: false }, [2, 4, 6, 5]],
      ['dilation 2, pad 2', { num_output: 3, kernel_size: [3], pad: [2], dilation: [2] }, [1, 2, 9, 8]],
      ['non-square 3×2, pad 1×0 (output one column narrower)', { num_output: 4, kernel_h: 3, kernel_w: 2, pad_h: 1, pad_w: 0 }, [2, 3, 6, 9]],
      ['1×1', { num_output: 7, kernel_size: [1] }, [2, 5, 4, 4]],
    ] as [string, Props, number[]][])('%s: every gradient equals the float64 layer', (_name, p, shape) => {
      countingPackedConv2d((calls) => {
        const { backward } = twins(p, shape);
        const before = calls();
        backward();
        // One forward and the bottom gradient (none without a runner).
        if (defaultWasmInferConv()) expect(calls() - before).toBe(2);
      });
    });

    it('follows weight updates (the flipped filters are rebuilt per weight version), and diffs accumulate', () => {
      const { l32, l64, backward } = twins({ num_output: 4, kernel_size: [3], pad: [1] }, [2, 3, 5, 5]);
      backward();
      for (const l of [l32, l64]) {
        const w = l.blobs[0]!;
        w.mutableCpuDiff().fill(0.25);
        w.update();
      }
      backward();
      // Weights set through the mutable accessor, as loading a model does.
      for (const l of [l32, l64]) {
        const w = l.blobs[0]!.mutableCpuData();
        for (let i = 0; i < w.length; i++) w[i] = Math.sin(i);
      }
      backward();
    });

    it('not where the input plane exceeds PACKED_DGRAD_MAX_AREA_RATIO × the output plane (LeNet conv2), the stride is not 1, or it is depthwise', () => {
      countingPackedConv2d((calls) => {
        for (const [p, shape] of [
          [{ num_output: 5, kernel_size: [5] }, [2, 4, 12, 12]],
          [{ num_output: 3, kernel_size: [3], pad: [1], stride: [2] }, [1, 2, 7, 7]],
          [{ num_output: 3, kernel_size: [3], pad: [1], group: 3 }, [1, 3, 6, 6]],
        ] as [Props, number[]][]) {
          const { l32, backward } = twins(p, shape);
          const H = shape[2]!, W = shape[3]!, [OH, OW] = l32.outputShape as [number, number];
          if (!p.stride && !p.group) expect(H * W).toBeGreaterThan(PACKED_DGRAD_MAX_AREA_RATIO * OH * OW);
          const before = calls();
          backward();
          // Only the forward, where it runs on the packed runner (the depthwise one has its own kernel).
          expect(calls() - before).toBeLessThanOrEqual(1);
        }
        // Nor where the layer is told not to (CAFFE_TS_PACKED_DGRAD=off sets the default): the
        // batched pass gives the same gradients.
        const { l32, backward } = twins({ num_output: 4, kernel_size: [3], pad: [1] }, [2, 3, 5, 5]);
        expect(l32.packedBottomGradient).toBe(process.env.CAFFE_TS_PACKED_DGRAD !== 'off');
        l32.packedBottomGradient = false;
        const before = calls();
        backward();
        expect(calls() - before).toBeLessThanOrEqual(1);
      });
    });
  });

  describe('depthwise (group = channels = num_output) runs a direct kernel', () => {
    const filler = { weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };
    /** The float32 layer (direct kernel) against the same layer forced onto the per-image N-d path. */
    const compare = (p: Props, shape: number[]) => {
      const run = (extra: Props) => {
        const layer = conv({ ...p, ...filler, ...extra }, 'float32');
        const bottom = makeBlob(shape, { dtype: 'float32', rng: new Rng(9) });
        const top = new Blob([], { dtype: 'float32' });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        return { layer, top: Array.from(top.cpuData()), shape: top.shape };
      };
      const fast = run({}), ref = run({ force_nd_im2col: true });
      expect(fast.shape).toEqual(ref.shape);
      for (let i = 0; i < ref.top.length; i++) expect(Math.abs(fast.top[i]! - ref.top[i]!)).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(ref.top[i]!)));
      return fast.layer;
    };
    it('is the path float32 takes (CAFFE_TS_GEMM unset), and backward still runs', () => {
      const k = defaultWasmInfer();
      if (process.env.CAFFE_TS_GEMM === 'js') {
        expect(k).toBeNull();
        return;
      }
      const depthwise = k!.depthwise;
      let calls = 0;
      k!.depthwise = (...args) => {
        calls++;
        depthwise(...args);
      };
      try {
        const layer = compare({ num_output: 3, kernel_size: [3], pad: [1], group: 3 }, [2, 3, 6, 7]);
        expect(calls).toBe(1);
        // Not depthwise: group below the channel count, or a channel multiplier.
        compare({ num_output: 4, kernel_size: [3], group: 2 }, [1, 4, 5, 5]);
        compare({ num_output: 6, kernel_size: [3], group: 3 }, [1, 3, 5, 5]);
        expect(calls).toBe(1);
        const bottom = makeBlob([2, 3, 6, 7], { dtype: 'float32', rng: new Rng(9) });
        const top = new Blob([], { dtype: 'float32' });
        layer.reshape([bottom], [top]);
        layer.forward([bottom], [top]);
        top.mutableCpuDiff().fill(1);
        layer.backward([top], [true], [bottom]);
        expect(Array.from(layer.blobs[1]!.cpuDiff())).toEqual([84, 84, 84]);
      } finally {
        k!.depthwise = depthwise;
      }
    });
    it('stride 2, odd plane (MobileNet\'s downsampling layers)', () => compare({ num_output: 4, kernel_size: [3], pad: [1], stride: [2], group: 4 }, [1, 4, 9, 11]));
    it('no padding, stride 1, wide rows', () => compare({ num_output: 2, kernel_size: [3], group: 2 }, [1, 2, 5, 13]));
    it('stride 3, dilation 2, non-square kernel, no bias, 3 images', () =>
      compare({ num_output: 3, kernel_h: 3, kernel_w: 2, pad_h: 2, pad_w: 1, stride: [3], dilation: [2], group: 3, bias_term: false }, [3, 3, 10, 9]));
    it('uneven strides and pads', () => compare({ num_output: 2, kernel_size: [5], pad_h: 2, pad_w: 0, stride_h: 2, stride_w: 1, group: 2 }, [1, 2, 11, 9]));
  });

  describe('inference (TEST phase, float32) runs with packed weights', () => {
    const filler = { weight_filler: gaussianFiller, bias_filler: { type: 'gaussian', std: 1 } };
    const testConv = (p: Props) =>
      createLayer(convolutionLayerDef, { convolution_param: { ...filler, ...p } }, { dtype: 'float32', rng: new Rng(3), phase: Phase.TEST });
    const geometry = (p: Props, spatial = 2) => {
      const per = (k: string, d: number) => {
        const v = p[k] as number[] | undefined;
        return Array.from({ length: spatial }, (_, i) => (v === undefined ? d : v[v.length === 1 ? 0 : i]!));
      };
      return { pad: per('pad', 0), stride: per('stride', 1), dilation: per('dilation', 1), group: (p.group as number | undefined) ?? 1 };
    };
    // Odd channel/output counts (tails of the 4 × 8 tiles), pads, strides, dilation, groups, 1×1
    // (flat and strided), several images, no bias.
    it.each([
      ['k3 pad 1, odd sizes', { num_output: 5, kernel_size: [3], pad: [1] }, [1, 3, 9, 11]],
      ['1×1 flat, 2 images', { num_output: 9, kernel_size: [1] }, [2, 7, 5, 13]],
      ['1×1 stride 2', { num_output: 6, kernel_size: [1], stride: [2] }, [1, 5, 9, 10]],
      ['k3 stride 2 pad 1', { num_output: 7, kernel_size: [3], pad: [1], stride: [2] }, [1, 4, 13, 17]],
      ['k5 stride 3 pad 2, no bias', { num_output: 3, kernel_size: [5], pad: [2], stride: [3], bias_term: false }, [1, 3, 20, 19]],
      ['dilation 2', { num_output: 4, kernel_size: [3], pad: [2], dilation: [2] }, [1, 3, 11, 12]],
      ['group 2', { num_output: 6, kernel_size: [3], pad: [1], group: 2 }, [2, 4, 7, 9]],
      ['depthwise-like 1×1 groups', { num_output: 4, kernel_size: [1], group: 4 }, [1, 4, 5, 5]],
      ['K past one k block (40 × 3 × 3)', { num_output: 9, kernel_size: [3], pad: [1] }, [1, 40, 6, 7]],
    ] as [string, Props, number[]][])('%s matches the direct convolution', (_name, p, shape) => {
      const layer = testConv(p);
      const bottom = makeBlob(shape, { dtype: 'float32', rng: new Rng(8) });
      checkAgainstNaive(layer, [bottom], geometry(p), 2e-4 * shape[1]!);
    });

    it('is the path inference takes, and follows weight updates (version counter)', () => {
      const runner = defaultWasmInferConv();
      if (process.env.CAFFE_TS_GEMM === 'js') {
        expect(runner).toBeNull();
        return;
      }
      const conv2d = runner!.conv2d;
      let calls = 0;
      runner!.conv2d = (...args) => {
        calls++;
        return conv2d(...args);
      };
      try {
        const p = { num_output: 4, kernel_size: [3], pad: [1] };
        const layer = testConv(p);
        const bottom = makeBlob([1, 3, 6, 5], { dtype: 'float32', rng: new Rng(8) });
        checkAgainstNaive(layer, [bottom], geometry(p), 1e-3);
        expect(calls).toBe(1);
        // A solver-style update (Blob.update → mutableCpuData) moves the version: repacked.
        const w = layer.blobs[0]!;
        w.mutableCpuDiff().fill(0.25);
        w.update();
        checkAgainstNaive(layer, [bottom], geometry(p), 1e-3);
        // Weights set through the mutable accessor (as loading a model does).
        w.mutableCpuData().fill(-0.5);
        checkAgainstNaive(layer, [bottom], geometry(p), 1e-3);
        expect(calls).toBe(3);
        // A TRAIN-phase float32 forward takes it too (its weights repacked per version); float64 keeps its path.
        const train = createLayer(convolutionLayerDef, { convolution_param: { ...filler, ...p } }, { dtype: 'float32', rng: new Rng(3), phase: Phase.TRAIN });
        checkAgainstNaive(train, [bottom], geometry(p), 1e-3);
        expect(calls).toBe(4);
        const train64 = createLayer(convolutionLayerDef, { convolution_param: { ...filler, ...p } }, { dtype: 'float64', rng: new Rng(3), phase: Phase.TRAIN });
        checkAgainstNaive(train64, [makeBlob([1, 3, 6, 5], { rng: new Rng(8) })], geometry(p), 1e-9);
        expect(calls).toBe(4);
      } finally {
        runner!.conv2d = conv2d;
      }
    });

    it('TRAIN phase: forward through the packed weights follows each solver step (forward, backward, update, forward)', () => {
      const p = { num_output: 5, kernel_size: [5], pad: [2], stride: [1] };
      const layer = createLayer(convolutionLayerDef, { convolution_param: { ...filler, ...p } }, { dtype: 'float32', rng: new Rng(5), phase: Phase.TRAIN });
      const bottom = makeBlob([3, 2, 9, 8], { dtype: 'float32', rng: new Rng(6) });
      const [top] = checkAgainstNaive(layer, [bottom], geometry(p), 1e-3);
      const w = layer.blobs[0]!;
      for (let step = 0; step < 2; step++) {
        top!.mutableCpuDiff().fill(0.01);
        layer.backward([top!], [true], [bottom]);
        // Param diffs accumulate over the two backward passes: the second update moves further.
        w.update();
        layer.blobs[1]!.update();
        checkAgainstNaive(layer, [bottom], geometry(p), 1e-3);
      }
    });

    it('forwardWithEpilogue folds a per-channel affine and a ReLU (and declines where the path does not apply)', () => {
      const p = { num_output: 5, kernel_size: [3], pad: [1], stride: [2] };
      const layer = testConv(p);
      const bottom = makeBlob([1, 3, 9, 8], { dtype: 'float32', rng: new Rng(4) });
      const top = new Blob([], { dtype: 'float32' });
      layer.setUp([bottom], [top]);
      const ref = naiveConv(bottom, layer.blobs[0]!, layer.blobs[1]!, geometry(p));
      const a = Float32Array.from([1, -2, 0.5, 3, 0]), b = Float32Array.from([0.1, 0.2, -0.3, 0, 1]);
      if (!layer.forwardWithEpilogue(bottom, top, a, b, 0.1)) {
        expect(defaultWasmInferConv()).toBeNull();
        return;
      }
      const S = ref.data.length / 5;
      const want = ref.data.map((v, i) => {
        const o = Math.floor(i / S);
        const u = a[o]! * v + b[o]!;
        return Math.max(u, 0) + 0.1 * Math.min(u, 0);
      });
      expectClose(top.cpuData(), want, 1e-3);
      const train = createLayer(convolutionLayerDef, { convolution_param: { ...filler, ...p } }, { dtype: 'float32', rng: new Rng(3), phase: Phase.TRAIN });
      train.setUp([bottom], [top]);
      expect(train.forwardWithEpilogue(bottom, top, a, b, 0)).toBe(false);
    });
  });

  describe('gradient (float64, Caffe (1e-2, 1e-3) exhaustive)', () => {
    const checker = () => new GradientChecker(1e-2, 1e-3);
    const run = (p: Props, shapes: number[][]) => {
      const layer = conv({ weight_filler: gaussianFiller, bias_filler: gaussianFiller, ...p });
      const bottoms = shapes.map((s, i) => makeBlob(s, { rng: new Rng(100 + i) }));
      checker().checkGradientExhaustive(layer, bottoms, bottoms.map(() => new Blob([], { dtype: 'float64' })));
    };

    it('two bottoms, k3 s2', () => run({ num_output: 2, kernel_size: [3], stride: [2] }, [[2, 3, 6, 4], [2, 3, 6, 4]]));
    it('padded, non-square', () => run({ num_output: 2, kernel_h: 3, kernel_w: 2, pad_h: 1, pad_w: 1, stride_h: 2, stride_w: 1 }, [[1, 2, 5, 4]]));
    it('dilated', () => run({ num_output: 2, kernel_size: [3], dilation: [2] }, [[1, 2, 6, 5]]));
    it('3-D', () => run({ num_output: 2, kernel_size: [3, 2, 2], stride: [2, 1, 1], pad: [1] }, [[1, 2, 4, 3, 3]]));
    it('1×1', () => run({ num_output: 2, kernel_size: [1] }, [[2, 3, 3, 2]]));
    it('grouped', () => run({ num_output: 4, kernel_size: [2], group: 2, pad: [1], stride: [2] }, [[1, 4, 4, 3]]));
    it('force_nd_im2col', () => run({ num_output: 2, kernel_size: [3], stride: [2], force_nd_im2col: true }, [[1, 2, 5, 4]]));
  });

  describe('params', () => {
    it('defaults: bias on, group 1, stride 1, pad 0, dilation 1, constant-0 fillers', () => {
      const layer = createLayer(convolutionLayerDef, { convolution_param: { num_output: 2, kernel_size: [2] } });
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([makeBlob([1, 3, 4, 4])], [top]);
      expect(layer.stride).toEqual([1, 1]);
      expect(layer.pad).toEqual([0, 0]);
      expect(layer.dilation).toEqual([1, 1]);
      expect(layer.kernelShape).toEqual([2, 2]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[2, 3, 2, 2], [2]]);
      expect(layer.blobs[0]!.asumData()).toBe(0);
      expect(layer.blobs[1]!.asumData()).toBe(0);
      expect(top.shape).toEqual([1, 2, 3, 3]);
    });

    it('reads a prototxt layer (LeNet conv1: scalar kernel_size, xavier/constant fillers)', () => {
      const lp = parseText<LayerParameter>(
        'LayerParameter',
        'name: "conv1" type: "Convolution" bottom: "data" top: "conv1" ' +
          'convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } }',
      );
      const layer = convolutionLayerDef.create(lp, { dtype: 'float64', rng: new Rng(1) });
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([makeBlob([1, 1, 28, 28])], [top]);
      expect(top.shape).toEqual([1, 20, 24, 24]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[20, 1, 5, 5], [20]]);
      // Xavier (fan_in 25): uniform in ±sqrt(3/25).
      const w = Array.from(layer.blobs[0]!.cpuData());
      expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(3 / 25));
      expect(w.some((v) => v !== 0)).toBe(true);
    });

    it('bias_term: false has one blob', () => {
      const layer = conv({ num_output: 2, kernel_size: [2], bias_term: false });
      layer.setUp([makeBlob([1, 3, 4, 4])], [new Blob([], { dtype: 'float64' })]);
      expect(layer.blobs.length).toBe(1);
    });

    const fails = (p: Props, shape: number[], message: string) => {
      const layer = createLayer(convolutionLayerDef, { name: 'conv1', convolution_param: p });
      let err: unknown;
      try {
        layer.setUp([makeBlob(shape)], [new Blob([], { dtype: 'float64' })]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LayerError);
      expect((err as Error).message).toBe(message);
    };

    it('kernel_size given 3 times for 2 spatial dims', () =>
      fails(
        { num_output: 2, kernel_size: [3, 3, 3] },
        [1, 3, 5, 5],
        "Convolution layer 'conv1': kernel_size must be specified once, or once per spatial dimension (kernel_size specified 3 times; 2 spatial dims).",
      ));
    it('no kernel at all', () =>
      fails(
        { num_output: 2 },
        [1, 3, 5, 5],
        "Convolution layer 'conv1': kernel_size must be specified once, or once per spatial dimension (kernel_size specified 0 times; 2 spatial dims).",
      ));
    it('kernel_size and kernel_h together', () =>
      fails(
        { num_output: 2, kernel_size: [3], kernel_h: 3, kernel_w: 3 },
        [1, 3, 5, 5],
        "Convolution layer 'conv1': Either kernel_size or kernel_h/w should be specified; not both.",
      ));
    it('kernel_h on 3-D input', () =>
      fails(
        { num_output: 2, kernel_h: 3, kernel_w: 3 },
        [1, 3, 5, 5, 5],
        "Convolution layer 'conv1': kernel_h & kernel_w can only be used for 2D convolution (3 spatial dims).",
      ));
    it('stride given twice for 3 spatial dims', () =>
      fails(
        { num_output: 2, kernel_size: [3], stride: [1, 2] },
        [1, 3, 5, 5, 5],
        "Convolution layer 'conv1': stride must be specified once, or once per spatial dimension (stride specified 2 times; 3 spatial dims).",
      ));
    it('dilation given 3 times for 2 spatial dims', () =>
      fails(
        { num_output: 2, kernel_size: [3], dilation: [1, 1, 1] },
        [1, 3, 5, 5],
        "Convolution layer 'conv1': dilation must be specified once, or once per spatial dimension (dilation specified 3 times; 2 spatial dims).",
      ));
    it('zero stride', () =>
      fails({ num_output: 2, kernel_size: [3], stride: [0] }, [1, 3, 5, 5], "Convolution layer 'conv1': Stride dimensions must be nonzero."));
    it('num_output not a multiple of group', () =>
      fails(
        { num_output: 5, kernel_size: [3], group: 3 },
        [1, 3, 5, 5],
        "Convolution layer 'conv1': Number of output should be multiples of group (num_output 5, group 3).",
      ));
    it('channels not a multiple of group', () =>
      fails(
        { num_output: 4, kernel_size: [3], group: 2 },
        [1, 3, 5, 5],
        "Convolution layer 'conv1': the number of input channels (3) must be a multiple of group (2)",
      ));
    it('kernel larger than the padded input', () =>
      fails(
        { num_output: 1, kernel_size: [4] },
        [1, 1, 3, 5],
        "Convolution layer 'conv1': output spatial dim 0 would be 0 (input 3, kernel 4, pad 0, stride 1, dilation 1)",
      ));

    it('preloaded weights of the wrong shape', () => {
      const layer = createLayer(convolutionLayerDef, { name: 'conv1', convolution_param: { num_output: 2, kernel_size: [3] } });
      layer.blobs = [new Blob([2, 3, 2, 2], { dtype: 'float64' }), new Blob([2], { dtype: 'float64' })];
      expect(() => layer.setUp([makeBlob([1, 3, 5, 5])], [new Blob([], { dtype: 'float64' })])).toThrow(
        "Convolution layer 'conv1': Incorrect weight shape: expected shape 2 3 3 3 (54); instead, shape was 2 3 2 2 (24)",
      );
    });

    it('a later bottom with other channels is rejected on reshape', () => {
      const layer = conv({ num_output: 2, kernel_size: [3] });
      const top = new Blob([], { dtype: 'float64' });
      layer.setUp([makeBlob([1, 3, 5, 5])], [top]);
      expect(() => layer.forward([makeBlob([1, 4, 5, 5])], [top])).toThrow(/Input size incompatible with convolution kernel/);
    });
  });
});
