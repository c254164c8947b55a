import { Blob, defaultWasmInferConv, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { countingPackedConv2d, float64Twin } from '../testing/float64-twin.js';
import { DeconvolutionLayer, deconvolutionLayerDef } from './deconvolution-layer.js';

type Props = Record<string, unknown>;
const f64 = () => new Blob([], { dtype: 'float64' });
const prod = (a: readonly number[]) => a.reduce((x, y) => x * y, 1);

function deconv(p: Props, dtype: 'float32' | 'float64' = 'float64', name = 'deconv'): DeconvolutionLayer {
  return createLayer(deconvolutionLayerDef, { name, convolution_param: p }, { dtype, rng: new Rng(1701) });
}

function unflat(i: number, dims: readonly number[]): number[] {
  const r = new Array<number>(dims.length);
  for (let d = dims.length - 1; d >= 0; d--) {
    r[d] = i % dims[d]!;
    i = Math.floor(i / dims[d]!);
  }
  return r;
}

/** Direct transposed convolution: every input pixel scatters x·w into the output. */
function naiveDeconv(
  bottom: Blob,
  weight: Blob,
  bias: Blob | null,
  o: { pad: number[]; stride: number[]; dilation: number[]; group: number },
): { data: Float64Array; shape: number[] } {
  const [N, C, ...sp] = bottom.shape as number[];
  const [, Og, ...k] = weight.shape as number[];
  const O = Og! * o.group;
  const out = sp.map((d, i) => o.stride[i]! * (d - 1) + o.dilation[i]! * (k[i]! - 1) + 1 - 2 * o.pad[i]!);
  const x = bottom.cpuData();
  const w = weight.cpuData();
  const [inCount, outCount, kCount] = [prod(sp), prod(out), prod(k)];
  const Cg = C! / o.group;
  const y = new Float64Array(N! * O * outCount);
  for (let n = 0; n < N!; n++) {
    for (let oc = 0; oc < O; oc++) {
      const b = bias ? bias.cpuData()[oc]! : 0;
      for (let p = 0; p < outCount; p++) y[(n * O + oc) * outCount + p] = b;
    }
    for (let c = 0; c < C!; c++) {
      const g = Math.floor(c / Cg);
      for (let ip = 0; ip < inCount; ip++) {
        const ii = unflat(ip, sp);
        const xv = x[(n * C! + c) * inCount + ip]!;
        for (let og = 0; og < Og!; og++) {
          const oc = g * Og! + og;
          for (let kp = 0; kp < kCount; kp++) {
            const ki = unflat(kp, k);
            let flat = 0;
            let inside = true;
            for (let d = 0; d < sp.length; d++) {
              const pos = ii[d]! * o.stride[d]! - o.pad[d]! + ki[d]! * o.dilation[d]!;
              if (pos < 0 || pos >= out[d]!) inside = false;
              flat = flat * out[d]! + pos;
            }
            if (inside) y[(n * O + oc) * outCount + flat] += xv * w[(c * Og! + og) * kCount + kp]!;
          }
        }
      }
    }
  }
  return { data: y, shape: [N!, O, ...out] };
}

const gaussianFillers = { weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };

describe('DeconvolutionLayer', () => {
  it('2×3×6×4, k3 s2, num_output 4 → 2×4×13×9 for both bottoms; weight [3, 4, 3, 3] (caffe-spec §2.3 case 4)', () => {
    const layer = deconv({ num_output: 4, kernel_size: [3], stride: [2] });
    const tops = [f64(), f64()];
    layer.setUp([makeBlob([2, 3, 6, 4]), makeBlob([2, 3, 6, 4])], tops);
    expect(tops.map((t) => t.shape)).toEqual([
      [2, 4, 13, 9],
      [2, 4, 13, 9],
    ]);
    expect(layer.blobs.map((b) => b.shape)).toEqual([[3, 4, 3, 3], [4]]);
    // Grouped: weight [channels, num_output/group, k, k].
    const grouped = deconv({ num_output: 6, kernel_size: [3], stride: [2], group: 3 });
    const top = f64();
    grouped.setUp([makeBlob([2, 3, 6, 4])], [top]);
    expect(top.shape).toEqual([2, 6, 13, 9]);
    expect(grouped.blobs[0]!.shape).toEqual([3, 2, 3, 3]);
  });

  it('output s(in−1) + d(k−1)+1 − 2p with pad and dilation', () => {
    const layer = deconv({ num_output: 1, kernel_size: [3, 2], stride: [2, 3], pad: [1, 0], dilation: [2, 1] });
    const top = f64();
    layer.setUp([makeBlob([1, 2, 4, 3])], [top]);
    expect(top.shape).toEqual([1, 1, 2 * 3 + 2 * 2 + 1 - 2, 3 * 2 + 1 + 1]);
  });

  it('constant weights 1, bias 0.1, input 1: 3.1, +3 on one overlapping axis, +9 on both (caffe-spec §2.3 case 5)', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const layer = deconv({
        num_output: 4,
        kernel_size: [3],
        stride: [2],
        weight_filler: { type: 'constant', value: 1 },
        bias_filler: { type: 'constant', value: 0.1 },
      }, dtype);
      const bottoms = [makeBlob([2, 3, 6, 4], { filler: 1, dtype }), makeBlob([2, 3, 6, 4], { filler: 1, dtype })];
      const tops = [new Blob([], { dtype }), new Blob([], { dtype })];
      layer.setUp(bottoms, tops);
      layer.forward(bottoms, tops);
      for (const top of tops) {
        const [N, C, H, W] = top.shape as [number, number, number, number];
        const y = top.cpuData();
        for (let n = 0; n < N; n++) {
          for (let c = 0; c < C; c++) {
            for (let h = 0; h < H; h++) {
              for (let w = 0; w < W; w++) {
                const hOverlap = h % 2 === 0 && h > 0 && h < H - 1;
                const wOverlap = w % 2 === 0 && w > 0 && w < W - 1;
                const want = 3.1 + (hOverlap && wOverlap ? 9 : hOverlap || wOverlap ? 3 : 0);
                expect(Math.abs(y[((n * C + c) * H + h) * W + w]! - want)).toBeLessThan(1e-4);
              }
            }
          }
        }
      }
    }
  });

  it('matches a direct transposed convolution (pad, dilation, groups, 3-D, float32)', () => {
    const cases: { p: Props; shape: number[]; o: { pad: number[]; stride: number[]; dilation: number[]; group: number } }[] = [
      { p: { num_output: 2, kernel_size: [3], stride: [2], pad: [1] }, shape: [2, 3, 4, 3], o: { pad: [1, 1], stride: [2, 2], dilation: [1, 1], group: 1 } },
      { p: { num_output: 4, kernel_size: [2], dilation: [2], group: 2 }, shape: [1, 4, 3, 3], o: { pad: [0, 0], stride: [1, 1], dilation: [2, 2], group: 2 } },
      { p: { num_output: 2, kernel_size: [2, 1, 2], stride: [2, 1, 1] }, shape: [1, 2, 2, 3, 2], o: { pad: [0, 0, 0], stride: [2, 1, 1], dilation: [1, 1, 1], group: 1 } },
      { p: { num_output: 2, kernel_size: [1] }, shape: [2, 3, 2, 2], o: { pad: [0, 0], stride: [1, 1], dilation: [1, 1], group: 1 } },
    ];
    for (const { p, shape, o } of cases) {
      for (const dtype of ['float64', 'float32'] as const) {
        const layer = deconv({ ...p, ...gaussianFillers }, dtype);
        const bottom = makeBlob(shape, { dtype });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        const want = naiveDeconv(bottom, layer.blobs[0]!, layer.blobs[1]!, o);
        expect(top.shape).toEqual(want.shape);
        const y = top.cpuData();
        for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - want.data[i]!)).toBeLessThan(1e-4);
      }
    }
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
        const layer: DeconvolutionLayer = deconv(images === 0 ? { ...p, force_nd_im2col: true } : p, dtype);
        const bottom = makeBlob(shape, { dtype, rng: new Rng(9) });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        // Budget for `images` images' columns: kernelDim·group rows × the GEMM side's spatial size.
        const perImage = layer.blobs[0]!.count(1) * ((p.group as number | undefined) ?? 1) * prod(bottom.shape.slice(2));
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
    const filler = { weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };
    for (const dtype of ['float32', 'float64'] as const) {
      it(`k3 s1 (LeNet-like), ${dtype}`, () => compare({ num_output: 4, kernel_size: [3], ...filler }, [5, 3, 7, 6], dtype));
      it(`padded, strided, dilated, non-square, ${dtype}`, () =>
        compare({ num_output: 3, kernel_h: 3, kernel_w: 2, pad_h: 2, pad_w: 1, stride_h: 2, stride_w: 1, dilation: [1, 2], ...filler }, [3, 2, 7, 6], dtype));
      it(`grouped, no bias, ${dtype}`, () =>
        compare({ num_output: 4, kernel_size: [2], group: 2, stride: [2], bias_term: false, ...filler }, [3, 4, 5, 5], dtype));
    }
  });

  describe('float32 bottom gradient runs on the packed runner (a plain convolution of the top gradient)', () => {
    /** Float32 and float64 layers with the same weights and inputs: backward twice, diffs compared; returns conv2d calls. */
    const run = (p: Props, shape: number[], packed = true): number =>
      countingPackedConv2d((calls) => {
        const filler = { weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };
        const { l32, step, expectClose } = float64Twin((dtype) => deconv({ ...filler, ...p }, dtype), shape);
        l32.packedBottomGradient = packed;
        step();
        step();
        expectClose();
        return calls();
      });
    const expectCalls = (calls: number, n: number) => {
      if (defaultWasmInferConv()) expect(calls).toBe(n);
    };

    it.each([
      ['k3 s1 pad 1', { num_output: 4, kernel_size: [3], pad: [1] }, [2, 3, 6, 5]],
      ['2× upsampling, k4 s2 pad 1', { num_output: 5, kernel_size: [4], stride: [2], pad: [1] }, [2, 3, 5, 6]],
      ['bilinear-style: group = channels = num_output, k4 s2 pad 1, no bias', { num_output: 6, kernel_size: [4], stride: [2], pad: [1], group: 6, bias_term: false }, [1, 6, 4, 5]],
      ['dilated, non-square, strided', { num_output: 3, kernel_h: 3, kernel_w: 2, stride_h: 2, stride_w: 1, dilation: [2, 1] }, [2, 2, 4, 5]],
      ['1×1', { num_output: 3, kernel_size: [1] }, [2, 4, 3, 3]],
    ] as [string, Props, number[]][])('%s: every gradient equals the float64 layer', (_name, p, shape) => {
      // Two backwards, one packed call each.
      expectCalls(run(p, shape), 2);
    });

    it('not with packedBottomGradient false, which gives the same gradients through im2col + GEMM', () => {
      expectCalls(run({ num_output: 5, kernel_size: [4], stride: [2], pad: [1] }, [2, 3, 5, 6], false), 0);
    });
  });

  it('gradient, Caffe (1e-2, 1e-3) exhaustive over both bottoms, weight and bias (k2 s1)', () => {
    const layer = deconv({ num_output: 1, kernel_size: [2], stride: [1], ...gaussianFillers });
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([2, 2, 2, 3]), makeBlob([2, 2, 2, 3], { rng: new Rng(7) })], [f64(), f64()]);
  });

  it('gradient, Caffe (1e-2, 1e-3) exhaustive: strided, padded, grouped, and 3-D', () => {
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(
      deconv({ num_output: 2, kernel_size: [3], stride: [2], pad: [1], group: 2, ...gaussianFillers }),
      [makeBlob([1, 2, 2, 2])],
      [f64()],
    );
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(
      deconv({ num_output: 2, kernel_size: [2], stride: [2], pad: [1, 0, 0], ...gaussianFillers }),
      [makeBlob([1, 2, 2, 2, 1])],
      [f64()],
    );
  });

  it('without bias_term has only the weight; frozen weights still give the bottom gradient', () => {
    const layer = deconv({ num_output: 2, kernel_size: [2], bias_term: false, ...gaussianFillers });
    const bottom = makeBlob([1, 1, 2, 2]);
    const top = f64();
    layer.setUp([bottom], [top]);
    expect(layer.blobs.length).toBe(1);
    layer.setParamPropagateDown(0, false);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().fill(1);
    layer.backward([top], [true], [bottom]);
    // Each input pixel feeds every weight of its channel once: Σ over the filter.
    const wsum = Array.from(layer.blobs[0]!.cpuData()).reduce((a, b) => a + b, 0);
    for (const g of bottom.cpuDiff()) expect(g).toBeCloseTo(wsum, 10);
    expect(Array.from(layer.blobs[0]!.cpuDiff()).every((v) => v === 0)).toBe(true);
  });

  it('defaults: bias_term, group 1, stride 1, pad 0; rejects a missing num_output and a bad group', () => {
    const layer = deconv({ num_output: 3, kernel_size: [2] });
    const top = f64();
    layer.setUp([makeBlob([1, 2, 3, 3])], [top]);
    expect(layer.type).toBe('Deconvolution');
    expect([layer.stride, layer.pad, layer.dilation]).toEqual([[1, 1], [0, 0], [1, 1]]);
    expect(top.shape).toEqual([1, 3, 4, 4]);
    expect(layer.blobs.map((b) => b.shape)).toEqual([[2, 3, 2, 2], [3]]);
    expect(() => deconv({ kernel_size: [2] }, 'float64', 'up1').setUp([makeBlob([1, 2, 3, 3])], [f64()])).toThrow(
      "Deconvolution layer 'up1': num_output must be positive (got 0)",
    );
    expect(() => deconv({ num_output: 3, kernel_size: [2], group: 2 }, 'float64', 'up1').setUp([makeBlob([1, 2, 3, 3])], [f64()])).toThrow(
      "Deconvolution layer 'up1': Number of output should be multiples of group (num_output 3, group 2).",
    );
  });
});
