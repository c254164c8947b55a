import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import type { LayerDef } from '../registry.js';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { BaseConvolutionLayer } from './base-conv-layer.js';
import { convolutionLayerDef, type ConvolutionLayer } from './convolution-layer.js';

/**
 * A transposed convolution built only from the base class's protected machinery, as the
 * Deconvolution layer will be: it proves reverseDimensions() wires weights, buffers and
 * gemm helpers the other way round.
 */
class ReverseConvolution extends BaseConvolutionLayer {
  readonly type: string = 'Deconvolution';

  protected reverseDimensions(): boolean {
    return true;
  }

  protected computeOutputShape(): void {
    this.outputShape = this.kernelShape.map(
      (k, i) => this.stride[i]! * (this.inputShape(i + 1) - 1) + this.dilation[i]! * (k - 1) + 1 - 2 * this.pad[i]!,
    );
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const weight = this.blobs[0]!.cpuData();
    for (let i = 0; i < bottom.length; i++) {
      const x = bottom[i]!.cpuData();
      const y = top[i]!.mutableCpuData();
      for (let n = 0; n < this.num; n++) {
        const out = y.subarray(n * this.topDim, (n + 1) * this.topDim);
        this.backwardCpuGemm(x.subarray(n * this.bottomDim, (n + 1) * this.bottomDim), weight, out);
        if (this.biasTerm) this.forwardCpuBias(out, this.blobs[1]!.cpuData());
      }
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const weight = this.blobs[0]!.cpuData();
    for (let i = 0; i < top.length; i++) {
      const dy = top[i]!.cpuDiff();
      const img = (n: number) => dy.subarray(n * this.topDim, (n + 1) * this.topDim);
      if (this.biasTerm) for (let n = 0; n < this.num; n++) this.backwardCpuBias(this.blobs[1]!.mutableCpuDiff(), img(n));
      const x = bottom[i]!.cpuData();
      for (let n = 0; n < this.num; n++) {
        const range: [number, number] = [n * this.bottomDim, (n + 1) * this.bottomDim];
        this.weightCpuGemm(img(n), x.subarray(...range), this.blobs[0]!.mutableCpuDiff());
        // weightCpuGemm just unfolded this image's top diff, so skip a second im2col.
        if (propagateDown[i]) this.forwardCpuGemm(img(n), weight, bottom[i]!.mutableCpuDiff().subarray(...range), true);
      }
    }
  }

  /** Test access to the column buffer. */
  get columns(): Blob {
    return this.colBuffer;
  }
}

const reverseDef: LayerDef<ReverseConvolution> = { type: 'Deconvolution', create: (p, c) => new ReverseConvolution(p, c) };
const f64 = () => new Blob([], { dtype: 'float64' });

describe('BaseConvolutionLayer', () => {
  describe('spatial parameters', () => {
    const setUp = (p: Record<string, unknown>, shape: number[]) => {
      const layer: ConvolutionLayer = createLayer(convolutionLayerDef, { convolution_param: { num_output: 1, ...p } });
      const top = f64();
      layer.setUp([makeBlob(shape)], [top]);
      return { layer, top };
    };

    it('once for every axis, or once per axis', () => {
      const { layer, top } = setUp({ kernel_size: [3, 1, 2], pad: [1], stride: [2, 1, 1], dilation: [1, 1, 2] }, [1, 1, 5, 4, 6]);
      expect(layer.kernelShape).toEqual([3, 1, 2]);
      expect(layer.pad).toEqual([1, 1, 1]);
      expect(layer.stride).toEqual([2, 1, 1]);
      expect(layer.dilation).toEqual([1, 1, 2]);
      expect(top.shape).toEqual([1, 1, 3, 6, 6]);
    });

    it('kernel_h/kernel_w, pad_h/pad_w and stride_h/stride_w for 2-D', () => {
      const { layer } = setUp({ kernel_h: 4, kernel_w: 2, pad_h: 2, pad_w: 0, stride_h: 3, stride_w: 1 }, [1, 1, 5, 5]);
      expect([layer.kernelShape, layer.pad, layer.stride]).toEqual([
        [4, 2],
        [2, 0],
        [3, 1],
      ]);
    });

    it('axis picks the channel axis; a negative axis counts from the end', () => {
      const { layer, top } = setUp({ kernel_size: [2], axis: -2 }, [2, 3, 4, 5]);
      expect(layer.kernelShape).toEqual([2]);
      expect(top.shape).toEqual([2, 3, 1, 4]);
      expect(layer.blobs[0]!.shape).toEqual([1, 4, 2]);
    });

    it('the pad_h/pad_w and repeated pad conflict uses Caffe\'s message', () => {
      expect(() => setUp({ kernel_size: [3], pad: [1], pad_h: 1 }, [1, 1, 5, 5])).toThrow(
        "Convolution layer 'convolution': Either pad or pad_h/w should be specified; not both.",
      );
      expect(() => setUp({ kernel_size: [3], stride_h: 1, stride_w: 1 }, [1, 1, 5, 5, 5])).toThrow(
        "Convolution layer 'convolution': stride_h & stride_w can only be used for 2D convolution (3 spatial dims).",
      );
    });
  });

  describe('column buffer', () => {
    it('holds the whole batch side by side, is reused across reshapes, and stays empty for 1×1', () => {
      const conv: ConvolutionLayer = createLayer(convolutionLayerDef, {
        convolution_param: { num_output: 2, kernel_size: [3], weight_filler: { type: 'gaussian' } },
      });
      const top = f64();
      conv.setUp([makeBlob([3, 2, 6, 6])], [top]);
      const buf = (conv as unknown as { colBuffer: Blob }).colBuffer;
      expect(buf.shape).toEqual([2 * 9, 3 * 16]);
      const mem = buf.data;
      conv.forward([makeBlob([3, 2, 5, 5])], [top]);
      expect(buf.shape).toEqual([2 * 9, 3 * 9]);
      expect(buf.data).toBe(mem);

      const oneByOne: ConvolutionLayer = createLayer(convolutionLayerDef, { convolution_param: { num_output: 2, kernel_size: [1] } });
      oneByOne.setUp([makeBlob([1, 2, 6, 6])], [f64()]);
      expect((oneByOne as unknown as { colBuffer: Blob }).colBuffer.count()).toBe(0);
    });

    it('holds as many images as maxBatchColFloats allows, at least one; N-d convolutions hold one image', () => {
      const conv: ConvolutionLayer = createLayer(convolutionLayerDef, { convolution_param: { num_output: 2, kernel_size: [3] } });
      const buf = () => (conv as unknown as { colBuffer: Blob }).colBuffer;
      conv.maxBatchColFloats = 2 * 18 * 16 + 5;
      conv.setUp([makeBlob([5, 2, 6, 6])], [f64()]);
      expect(buf().shape).toEqual([2 * 9, 2 * 16]);
      conv.maxBatchColFloats = 18 * 16 * 2 - 1;
      conv.reshape([makeBlob([5, 2, 6, 6])], [f64()]);
      expect(buf().shape).toEqual([2 * 9, 16]);
      conv.maxBatchColFloats = 0;
      conv.reshape([makeBlob([5, 2, 6, 6])], [f64()]);
      expect(buf().shape).toEqual([2 * 9, 16]);
      const nd: ConvolutionLayer = createLayer(convolutionLayerDef, { convolution_param: { num_output: 2, kernel_size: [3], force_nd_im2col: true } });
      nd.setUp([makeBlob([5, 2, 6, 6])], [f64()]);
      expect((nd as unknown as { colBuffer: Blob }).colBuffer.shape).toEqual([2 * 9, 4, 4]);
    });
  });

  describe('reversed (Deconvolution-style) use', () => {
    const make = (p: Record<string, unknown>) =>
      createLayer(reverseDef, { convolution_param: p }, { rng: new Rng(3) });

    it('2×3×6×4, k3 s2, num_output 4 → 2×4×13×9 with weight [channels, num_output/group, k, k]', () => {
      const layer = make({ num_output: 4, kernel_size: [3], stride: [2] });
      const top = f64();
      layer.setUp([makeBlob([2, 3, 6, 4])], [top]);
      expect(top.shape).toEqual([2, 4, 13, 9]);
      expect(layer.blobs.map((b) => b.shape)).toEqual([[3, 4, 3, 3], [4]]);
      expect(layer.columns.shape).toEqual([4 * 9, 2 * 6 * 4]);
      const grouped = make({ num_output: 4, kernel_size: [3], stride: [2], group: 2 });
      grouped.setUp([makeBlob([2, 2, 6, 4])], [f64()]);
      expect(grouped.blobs[0]!.shape).toEqual([2, 2, 3, 3]);
    });

    it('constant weights 1, bias 0.1, input 1: 3.1, +3 on one overlapping axis, +9 on both', () => {
      const layer = make({
        num_output: 4,
        kernel_size: [3],
        stride: [2],
        weight_filler: { type: 'constant', value: 1 },
        bias_filler: { type: 'constant', value: 0.1 },
      });
      const bottoms = [makeBlob([2, 3, 6, 4], { filler: 1 }), makeBlob([2, 3, 6, 4], { filler: 1 })];
      const tops = [f64(), f64()];
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
    });

    it('gradient, Caffe (1e-2, 1e-3) exhaustive: 2-D and 3-D (N-d im2col)', () => {
      const filler = { weight_filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } };
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(
        make({ num_output: 2, kernel_size: [2], stride: [2], pad: [1], ...filler }),
        [makeBlob([1, 2, 3, 2])],
        [f64()],
      );
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(
        make({ num_output: 2, kernel_size: [2], stride: [1, 2, 1], ...filler }),
        [makeBlob([1, 2, 2, 2, 1])],
        [f64()],
      );
    });
  });
});
