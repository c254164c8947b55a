import { Blob, defaultWasmInfer, defaultWasmTrain, hostMemoryInfo, Rng, setHostAllocator } from '@caffe-ts/blob';
import {
  parseText,
  PoolingParameter_PoolMethod as PoolMethod,
  PoolingParameter_RoundMode as RoundMode,
  type LayerParameter,
} from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { LayerError } from '../errors.js';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { PoolingLayer, poolingLayerDef } from './pooling-layer.js';

type Props = Record<string, unknown>;

function pool(p: Props, name = 'pool1'): PoolingLayer {
  return createLayer(poolingLayerDef, { name, pooling_param: p });
}

const f64 = () => new Blob([], { dtype: 'float64' });

/** A blob whose every N×C plane holds `plane`. */
function planes(n: number, c: number, h: number, w: number, plane: number[]): Blob {
  const values: number[] = [];
  for (let i = 0; i < n * c; i++) values.push(...plane);
  return makeBlob([n, c, h, w], { filler: values });
}

function run(layer: PoolingLayer, bottom: Blob, nTops = 1): Blob[] {
  const tops = Array.from({ length: nTops }, f64);
  layer.setUp([bottom], tops);
  layer.forward([bottom], tops);
  return tops;
}

function expectPlanes(blob: Blob, plane: number[], tol = 0, which: 'data' | 'diff' = 'data'): void {
  const v = blobValues(blob, which);
  expect(v.length % plane.length).toBe(0);
  for (let i = 0; i < v.length; i++) expect(Math.abs(v[i]! - plane[i % plane.length]!)).toBeLessThanOrEqual(tol);
}

describe('PoolingLayer', () => {
  describe('output shape', () => {
    const shapeOf = (p: Props, shape = [2, 3, 6, 5]) => run(pool(p), makeBlob(shape))[0]!.shape;

    it('2×3×6×5: k3 s2 → 3×2; k3 s2 p1 AVE → 4×3; global → 1×1', () => {
      expect(shapeOf({ kernel_size: 3, stride: 2 })).toEqual([2, 3, 3, 2]);
      expect(shapeOf({ kernel_size: 3, stride: 2, pad: 1, pool: PoolMethod.AVE })).toEqual([2, 3, 4, 3]);
      expect(shapeOf({ global_pooling: true })).toEqual([2, 3, 1, 1]);
      expect(shapeOf({ global_pooling: true, pool: PoolMethod.AVE })).toEqual([2, 3, 1, 1]);
    });

    it('round_mode FLOOR rounds down', () => {
      expect(shapeOf({ kernel_size: 3, stride: 2, round_mode: RoundMode.FLOOR })).toEqual([2, 3, 2, 2]);
      expect(shapeOf({ kernel_size: 3, stride: 2, round_mode: RoundMode.CEIL })).toEqual([2, 3, 3, 2]);
    });

    it('drops a last window that would start in the padding: (pooled−1)·s ≥ in + p', () => {
      // ceil((5 + 2 − 3)/3) + 1 = 3, but the third window would start at 6 − 1 = 5 = in.
      expect(shapeOf({ kernel_size: 3, stride: 3, pad: 1 }, [1, 1, 5, 5])).toEqual([1, 1, 2, 2]);
      expect(shapeOf({ kernel_size: 3, stride: 3, pad: 1, round_mode: RoundMode.FLOOR }, [1, 1, 5, 5])).toEqual([1, 1, 2, 2]);
      // Without padding there is no reduction: ceil((5 − 3)/3) + 1 = 2.
      expect(shapeOf({ kernel_size: 3, stride: 3 }, [1, 1, 5, 5])).toEqual([1, 1, 2, 2]);
      expect(shapeOf({ kernel_size: 2, stride: 2, pad: 1 }, [1, 1, 4, 4])).toEqual([1, 1, 3, 3]);
    });

    it('kernel_h/kernel_w, stride_h/stride_w, pad_h/pad_w', () => {
      expect(shapeOf({ kernel_h: 3, kernel_w: 2, stride_h: 2, stride_w: 1, pad_h: 1, pad_w: 0 })).toEqual([2, 3, 4, 4]);
    });

    it('a mask top gets the same shape', () => {
      const tops = run(pool({ kernel_size: 2 }), makeBlob([1, 2, 3, 5]), 2);
      expect(tops[1]!.shape).toEqual([1, 2, 2, 4]);
    });
  });

  describe('MAX', () => {
    const input = [1, 2, 5, 2, 3, 9, 4, 1, 4, 8, 1, 2, 5, 2, 3];

    it('2×2 s1 on 3×5: values and argmax mask (Caffe test_pooling_layer)', () => {
      const bottom = planes(2, 2, 3, 5, input);
      const [top, mask] = run(pool({ kernel_size: 2, stride: 1 }), bottom, 2);
      expect(top!.shape).toEqual([2, 2, 2, 4]);
      expectPlanes(top!, [9, 5, 5, 8, 9, 5, 5, 8]);
      expectPlanes(mask!, [5, 2, 2, 9, 5, 12, 12, 9]);
      // Without the mask top the values are the same.
      expectPlanes(run(pool({ kernel_size: 2, stride: 1 }), bottom)[0]!, [9, 5, 5, 8, 9, 5, 5, 8]);
    });

    it('k3 s2 p2 on 3×3 (padding never wins)', () => {
      const [top] = run(pool({ kernel_size: 3, stride: 2, pad: 2 }), planes(1, 2, 3, 3, [1, 2, 4, 2, 3, 2, 4, 2, 1]));
      expect(top!.shape).toEqual([1, 2, 3, 3]);
      expectPlanes(top!, [1, 4, 4, 4, 4, 4, 4, 4, 1], 1e-12);
    });

    it('all-negative input with padding', () => {
      const [top] = run(pool({ kernel_size: 2, stride: 2, pad: 1 }), planes(1, 1, 2, 2, [-1, -2, -3, -4]));
      expectPlanes(top!, [-1, -2, -3, -4]);
    });

    it('rectangular 3×2 kernel', () => {
      const [top, mask] = run(pool({ kernel_h: 3, kernel_w: 2 }), planes(1, 1, 3, 4, [1, 8, 2, 3, 4, 0, 6, 5, 7, 1, 9, 2]), 2);
      expectPlanes(top!, [8, 9, 9]);
      expectPlanes(mask!, [1, 10, 10]);
    });

    it('global pooling takes the plane maximum', () => {
      const [top] = run(pool({ global_pooling: true }), planes(2, 1, 3, 5, input));
      expectPlanes(top!, [9]);
    });

    it('backward routes each top diff to its argmax (with and without mask top)', () => {
      for (const nTops of [1, 2]) {
        const bottom = planes(1, 2, 3, 5, input);
        const layer = pool({ kernel_size: 2, stride: 1 });
        const tops = run(layer, bottom, nTops);
        tops[0]!.mutableCpuDiff().fill(1);
        bottom.mutableCpuDiff().fill(7);
        layer.backward(tops, [true], [bottom]);
        const want = new Array<number>(15).fill(0);
        want[5] = 2;
        want[2] = 2;
        want[9] = 2;
        want[12] = 2;
        expectPlanes(bottom, want, 0, 'diff');
      }
    });
  });

  describe('AVE', () => {
    it('k3 s1 p1 on all-2 3×3 counts the padding in the divisor', () => {
      const [top] = run(pool({ kernel_size: 3, stride: 1, pad: 1, pool: PoolMethod.AVE }), makeBlob([1, 1, 3, 3], { filler: 2 }));
      expectPlanes(top!, [8 / 9, 4 / 3, 8 / 9, 4 / 3, 2, 4 / 3, 8 / 9, 4 / 3, 8 / 9], 1e-12);
    });

    it('clips the divisor to in + pad (CEIL window past the padding)', () => {
      // 1×4, k1×3 s2 p0×1: windows w ∈ [−1,2), [1,4), [3,6)→clipped to [3,5): divisors 3, 3, 2.
      const [top] = run(pool({ kernel_h: 1, kernel_w: 3, stride: 2, pad_h: 0, pad_w: 1, pool: PoolMethod.AVE }), planes(1, 1, 1, 4, [1, 2, 3, 4]));
      expectPlanes(top!, [3 / 3, 9 / 3, 4 / 2], 1e-12);
    });

    it('rectangular 3×2 kernel and global pooling', () => {
      const plane = [1, 8, 2, 3, 4, 0, 6, 5, 7, 1, 9, 2];
      const [top] = run(pool({ kernel_h: 3, kernel_w: 2, pool: PoolMethod.AVE }), planes(1, 1, 3, 4, plane));
      expectPlanes(top!, [21 / 6, 26 / 6, 27 / 6], 1e-12);
      const [g] = run(pool({ global_pooling: true, pool: PoolMethod.AVE }), planes(1, 2, 3, 4, plane));
      expectPlanes(g!, [48 / 12], 1e-12);
    });

    it('backward spreads top diff / divisor over the window', () => {
      const layer = pool({ kernel_size: 3, stride: 1, pad: 1, pool: PoolMethod.AVE });
      const bottom = makeBlob([1, 1, 3, 3], { filler: 2 });
      const [top] = run(layer, bottom);
      top!.mutableCpuDiff().fill(1);
      layer.backward([top!], [true], [bottom]);
      expectPlanes(bottom, [4 / 9, 6 / 9, 4 / 9, 6 / 9, 1, 6 / 9, 4 / 9, 6 / 9, 4 / 9], 1e-12, 'diff');
    });
  });

  describe('specialised loops equal the plain window definition', () => {
    /** Caffe's pooling written out window by window (first maximum wins; AVE divisor clipped to in + pad). */
    function reference(x: Float64Array, [n, c, H, W]: number[], k: [number, number], s: [number, number], p: [number, number], ave: boolean, PH: number, PW: number) {
      const out: number[] = [];
      const arg: number[] = [];
      for (let q = 0; q < n * c; q++) {
        for (let y = 0; y < PH; y++) {
          for (let xx = 0; xx < PW; xx++) {
            const hs = y * s[0] - p[0], ws = xx * s[1] - p[1];
            const he = Math.min(hs + k[0], H + p[0]), we = Math.min(ws + k[1], W + p[1]);
            const size = (he - hs) * (we - ws);
            let best = -Infinity, at = -1, sum = 0;
            for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) {
              for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) {
                const v = x[q * H * W + h * W + w]!;
                sum += v;
                if (at < 0 || v > best) [best, at] = [v, h * W + w];
              }
            }
            out.push(ave ? sum / size : best);
            arg.push(at);
          }
        }
      }
      return { out, arg };
    }

    it('float32 MAX 3×3/2 runs in the WebAssembly training kernels (CAFFE_TS_GEMM unset), float64 in JS', () => {
      const wasm = defaultWasmTrain();
      if (process.env.CAFFE_TS_GEMM === 'js') {
        expect(wasm).toBeNull();
        return;
      }
      const maxPool = wasm!.pool;
      let calls = 0;
      (wasm as { pool: typeof maxPool }).pool = (...args) => {
        calls++;
        maxPool(...args);
      };
      try {
        for (const dtype of ['float32', 'float64'] as const) {
          const layer = pool({ kernel_size: 3, stride: 2 });
          const bottom = makeBlob([2, 3, 5, 6], { dtype });
          const top = new Blob([], { dtype });
          layer.setUp([bottom], [top]);
          layer.forward([bottom], [top]);
        }
      } finally {
        (wasm as { pool: typeof maxPool }).pool = maxPool;
      }
      expect(calls).toBe(1);
    });

    it('float32 global AVE equals the window kernels bit for bit (random values: sums that round)', () => {
      const wasm = defaultWasmTrain();
      if (!wasm) return;
      const rng = new Rng(3);
      const shape = [2, 9, 7, 7];
      const count = shape.reduce((a, b) => a * b, 1);
      const bottom = makeBlob(shape, { dtype: 'float32', filler: Array.from({ length: count }, () => rng.uniformIn(-1, 1) * 1e3) });
      const layer = pool({ global_pooling: true, pool: PoolMethod.AVE });
      const top = new Blob([], { dtype: 'float32' });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      // The same windows through the training kernels' AVE loop (one 7×7 window per plane).
      const want = new Float32Array(18);
      const geometry = { height: 7, width: 7, pooledH: 1, pooledW: 1, kernelH: 7, kernelW: 7, strideH: 1, strideW: 1, padH: 0, padW: 0 };
      wasm.pool('ave', geometry, 18, bottom.cpuData() as Float32Array, want, null);
      expect(Array.from(top.cpuData())).toEqual(Array.from(want));
    });

    const cases: [string, Props, number[]][] = [
      ['MAX 2×2 s2 (LeNet)', { kernel_size: 2, stride: 2 }, [2, 3, 8, 6]],
      ['MAX 2×2 s2, odd sizes (CEIL edge windows)', { kernel_size: 2, stride: 2 }, [1, 2, 7, 5]],
      ['MAX 3×3 s2 (CIFAR-10)', { kernel_size: 3, stride: 2 }, [2, 2, 9, 10]],
      ['MAX 3×2 s1 p1', { kernel_h: 3, kernel_w: 2, stride: 1, pad: 1 }, [1, 2, 5, 6]],
      ['AVE 3×3 s2 (CIFAR-10)', { kernel_size: 3, stride: 2, pool: PoolMethod.AVE }, [2, 2, 9, 10]],
      ['AVE 3×3 s2 p1', { kernel_size: 3, stride: 2, pad: 1, pool: PoolMethod.AVE }, [1, 3, 6, 7]],
      ['AVE global (SqueezeNet pool10)', { global_pooling: true, pool: PoolMethod.AVE }, [2, 7, 13, 13]],
    ];
    for (const [name, p, shape] of cases) {
      for (const dtype of ['float32', 'float64'] as const) {
        it(`${name}, ${dtype}: forward, mask and backward`, () => {
          // Few distinct values, so windows hold ties.
          const rng = new Rng(7);
          const count = shape.reduce((a, b) => a * b, 1);
          const bottom = makeBlob(shape, { dtype, filler: Array.from({ length: count }, () => rng.int(5) - 2) });
          const ave = p.pool === PoolMethod.AVE;
          const layer = pool(p);
          const tops = Array.from({ length: ave ? 1 : 2 }, () => new Blob([], { dtype }));
          layer.setUp([bottom], tops);
          layer.forward([bottom], tops);
          const [, , PH, PW] = tops[0]!.shape as number[];
          const want = reference(Float64Array.from(bottom.cpuData()), shape, [layer.kernelH, layer.kernelW], [layer.strideH, layer.strideW], [layer.padH, layer.padW], ave, PH!, PW!);
          const rounded = dtype === 'float32' ? want.out.map(Math.fround) : want.out;
          expect(Array.from(tops[0]!.cpuData())).toEqual(rounded);
          if (!ave) expect(Array.from(tops[1]!.cpuData())).toEqual(want.arg);
          // Backward: each top diff lands on its argmax, or spreads over its window.
          const dy = tops[0]!.mutableCpuDiff();
          for (let i = 0; i < dy.length; i++) dy[i] = i + 1;
          layer.backward(tops, [true], [bottom]);
          const dx = new Float64Array(count);
          const [n, c, H, W] = shape as [number, number, number, number];
          for (let q = 0; q < n * c; q++) {
            for (let o = 0; o < PH! * PW!; o++) {
              const g = dy[q * PH! * PW! + o]!;
              if (!ave) {
                dx[q * H * W + want.arg[q * PH! * PW! + o]!] += g;
                continue;
              }
              const y = Math.floor(o / PW!), xx = o % PW!;
              const hs = y * layer.strideH - layer.padH, ws = xx * layer.strideW - layer.padW;
              const he = Math.min(hs + layer.kernelH, H + layer.padH), we = Math.min(ws + layer.kernelW, W + layer.padW);
              for (let h = Math.max(hs, 0); h < Math.min(he, H); h++) {
                for (let w = Math.max(ws, 0); w < Math.min(we, W); w++) dx[q * H * W + h * W + w] += g / ((he - hs) * (we - ws));
              }
            }
          }
          const got = bottom.cpuDiff();
          for (let i = 0; i < count; i++) expect(Math.abs(got[i]! - dx[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(dx[i]!)));
          if (!ave) {
            // Without the mask top the layer's own argmax routes the gradient (float32: in WebAssembly).
            const want = Array.from(got);
            const single = pool(p);
            const one = [new Blob([], { dtype })];
            single.setUp([bottom], one);
            single.forward([bottom], one);
            one[0]!.mutableCpuDiff().set(dy);
            bottom.mutableCpuDiff().fill(NaN);
            single.backward(one, [true], [bottom]);
            expect(Array.from(bottom.cpuDiff())).toEqual(want);
          }
        });
      }
    }
  });

  describe("float32 MAX under the 'wasm' host allocator", () => {
    for (const [name, p, shape] of [
      ['2×2 s2 (LeNet: the shared GEMM module in place)', { kernel_size: 2, stride: 2 }, [3, 4, 12, 10]],
      ['3×3 s2 with overlapping windows (CIFAR-10)', { kernel_size: 3, stride: 2 }, [2, 3, 11, 9]],
    ] as [string, Props, number[]][]) {
      it(`${name}: the argmax lives in the kernel memory; forward and backward equal the 'js' allocator's bit for bit`, () => {
        const runWith = (alloc: 'wasm' | 'js') => {
          const prev = setHostAllocator(alloc);
          try {
            const rng = new Rng(11);
            const count = shape.reduce((a, b) => a * b, 1);
            // Few distinct values (ties), fractional diffs (order-sensitive float32 sums).
            const bottom = makeBlob(shape, { dtype: 'float32', filler: Array.from({ length: count }, () => rng.int(5) - 2) });
            const layer = createLayer(poolingLayerDef, { name: 'p', pooling_param: p }, { dtype: 'float32' }) as PoolingLayer;
            const top = new Blob([], { dtype: 'float32' });
            layer.setUp([bottom], [top]);
            layer.forward([bottom], [top]);
            const dy = top.mutableCpuDiff();
            for (let i = 0; i < dy.length; i++) dy[i] = (rng.int(7) - 3) / 3;
            bottom.mutableCpuDiff().fill(NaN);
            layer.backward([top], [true], [bottom]);
            const idx = (layer as unknown as { maxIdx: Int32Array }).maxIdx;
            return { active: hostMemoryInfo().active, inHeap: !(idx.buffer instanceof ArrayBuffer), y: Array.from(top.cpuData()), dx: Array.from(bottom.cpuDiff()) };
          } finally {
            setHostAllocator(prev);
          }
        };
        const js = runWith('js'), wasm = runWith('wasm');
        expect(js.inHeap).toBe(false);
        // (Where this Node has no shared WebAssembly memory the allocator hands out plain arrays.)
        expect(wasm.inHeap).toBe(wasm.active);
        expect(wasm.y).toEqual(js.y);
        expect(wasm.dx).toEqual(js.dx);
      });
    }
  });

  describe('gradient (float64)', () => {
    it('MAX, Caffe (1e-4, 1e-2) exhaustive, kernels 3..4 × 3..4, stride 2, pad 1', () => {
      for (const kh of [3, 4]) {
        for (const kw of [3, 4]) {
          const layer = pool({ kernel_h: kh, kernel_w: kw, stride: 2, pad: 1 });
          new GradientChecker(1e-4, 1e-2).checkGradientExhaustive(layer, [makeBlob([1, 2, 5, 4], { rng: new Rng(kh * 10 + kw) })], [f64()]);
        }
      }
    });

    it('MAX with the mask top', () => {
      const layer = pool({ kernel_size: 2, stride: 2 });
      new GradientChecker(1e-4, 1e-2).checkGradientExhaustive(layer, [makeBlob([1, 2, 4, 5])], [f64(), f64()]);
    });

    it('AVE, Caffe (1e-2, 1e-2) exhaustive, with and without padding', () => {
      for (const pad of [0, 2]) {
        const layer = pool({ kernel_size: 3, stride: 2, pad, pool: PoolMethod.AVE });
        new GradientChecker(1e-2, 1e-2).checkGradientExhaustive(layer, [makeBlob([2, 2, 5, 4], { rng: new Rng(pad) })], [f64()]);
      }
    });
  });

  describe('params', () => {
    it('defaults: MAX, stride 1, pad 0, CEIL', () => {
      const layer = pool({ kernel_size: 2 });
      run(layer, makeBlob([1, 1, 4, 5]));
      expect([layer.kernelH, layer.kernelW, layer.strideH, layer.strideW, layer.padH, layer.padW]).toEqual([2, 2, 1, 1, 0, 0]);
      expect([layer.pooledHeight, layer.pooledWidth]).toEqual([3, 4]);
      expect(layer.type).toBe('Pooling');
    });

    it('reads a prototxt layer (CIFAR-10 pool2: pool: AVE kernel_size: 3 stride: 2)', () => {
      const lp = parseText<LayerParameter>('LayerParameter', 'name: "pool2" type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 }');
      const layer = poolingLayerDef.create(lp, { dtype: 'float64' });
      const [top] = run(layer, makeBlob([1, 2, 16, 16], { filler: 1 }));
      expect(top!.shape).toEqual([1, 2, 8, 8]);
      // The last CEIL window starts at 14 and holds only rows/cols 14..15; with no padding its
      // divisor is clipped to in + pad too, so an all-ones input stays 1 everywhere.
      expect(blobValues(top!).every((v) => v === 1)).toBe(true);
    });

    it('without a pooling_param there is no kernel: Caffe\'s message', () => {
      const layer = createLayer(poolingLayerDef, { name: 'p' });
      expect(() => run(layer, makeBlob([1, 1, 2, 2]))).toThrow("Pooling layer 'p': Filter size is kernel_size OR kernel_h and kernel_w; not both");
    });

    const fails = (p: Props, message: string, nTops = 1, shape = [1, 1, 5, 5]) => {
      let err: unknown;
      try {
        run(pool(p), makeBlob(shape), nTops);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LayerError);
      expect((err as Error).message).toBe(message);
    };

    it('pad must be less than the kernel', () =>
      fails({ kernel_size: 2, pad: 2 }, "Pooling layer 'pool1': pad_h (2) must be less than kernel_h (2)"));
    it('kernel_size and kernel_h/kernel_w together', () =>
      fails({ kernel_size: 2, kernel_h: 2, kernel_w: 2 }, "Pooling layer 'pool1': Filter size is kernel_size OR kernel_h and kernel_w; not both"));
    it('global pooling with a kernel', () =>
      fails({ global_pooling: true, kernel_size: 2 }, "Pooling layer 'pool1': With Global_pooling: true Filter size cannot specified"));
    it('global pooling with a stride', () =>
      fails({ global_pooling: true, stride: 2 }, "Pooling layer 'pool1': With Global_pooling: true; only pad = 0 and stride = 1"));
    it('pad together with pad_h', () =>
      fails({ kernel_size: 3, pad: 1, pad_h: 1, pad_w: 1 }, "Pooling layer 'pool1': pad is pad OR pad_h and pad_w are required."));
    it('stride_h without stride_w', () =>
      fails({ kernel_size: 3, stride_h: 2 }, "Pooling layer 'pool1': Stride is stride OR stride_h and stride_w are required."));
    it('STOCHASTIC has no mask top', () =>
      fails({ kernel_size: 2, pool: PoolMethod.STOCHASTIC }, "Pooling layer 'pool1': only MAX pooling can produce a second top (the argmax mask); got 2 tops", 2));
    it('AVE has no mask top', () =>
      fails({ kernel_size: 2, pool: PoolMethod.AVE }, "Pooling layer 'pool1': only MAX pooling can produce a second top (the argmax mask); got 2 tops", 2));
    it('3 tops', () => fails({ kernel_size: 2 }, "Pooling layer 'pool1': Pooling Layer produces at most 2 top blob(s) as output (got 3).", 3));
    it('needs 4 axes', () =>
      fails(
        { kernel_size: 2 },
        "Pooling layer 'pool1': Input must have 4 axes, corresponding to (num, channels, height, width); bottom is 1 5 5 (25)",
        1,
        [1, 5, 5],
      ));
  });

  describe('MAX without backward (backwardNeeded false): values only', () => {
    const shapes: [string, Props, number[]][] = [
      ['3×3 s2 (CaffeNet)', { pool: PoolMethod.MAX, kernel_size: 3, stride: 2 }, [1, 3, 13, 13]],
      ['3×3 s1 pad 1 (GoogLeNet inception)', { pool: PoolMethod.MAX, kernel_size: 3, stride: 1, pad: 1 }, [2, 2, 7, 9]],
      ['2×2 s2, odd plane (ceil mode)', { pool: PoolMethod.MAX, kernel_size: 2, stride: 2 }, [1, 2, 7, 5]],
      ['3×2 kernel, strides 3×1, pad 1×0', { pool: PoolMethod.MAX, kernel_h: 3, kernel_w: 2, stride_h: 3, stride_w: 1, pad_h: 1, pad_w: 0 }, [1, 2, 8, 6]],
    ];
    for (const [name, p, shape] of shapes) {
      it(`${name}: float32 equals the argmax path`, () => {
        const run32 = (backwardNeeded: boolean) => {
          const layer = createLayer(poolingLayerDef, { name: 'p', pooling_param: p }, { dtype: 'float32' }) as PoolingLayer;
          layer.backwardNeeded = backwardNeeded;
          const bottom = makeBlob(shape, { dtype: 'float32', filler: 'uniform', min: -3, max: 3, rng: new Rng(17) });
          const top = new Blob([], { dtype: 'float32' });
          layer.setUp([bottom], [top]);
          layer.forward([bottom], [top]);
          return { layer, bottom, top, values: Array.from(top.cpuData()) };
        };
        const fast = run32(false), ref = run32(true);
        expect(fast.top.shape).toEqual(ref.top.shape);
        expect(fast.values).toEqual(ref.values);
        // No argmax was kept: backward refuses rather than routing stale indices. (Without
        // WebAssembly, CAFFE_TS_GEMM=js, the values-only path does not exist and the argmax is kept.)
        fast.top.mutableCpuDiff().fill(1);
        if (defaultWasmInfer()) expect(() => fast.layer.backward([fast.top], [true], [fast.bottom])).toThrow(/needs the argmax of the last forward/);
        else expect(() => fast.layer.backward([fast.top], [true], [fast.bottom])).not.toThrow();
        fast.layer.backwardNeeded = true;
        fast.layer.forward([fast.bottom], [fast.top]);
        expect(() => fast.layer.backward([fast.top], [true], [fast.bottom])).not.toThrow();
      });
    }
  });
});
