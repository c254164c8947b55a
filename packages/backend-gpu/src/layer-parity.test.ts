import { Blob, cpuBackend, Rng, type Backend } from '@caffe-ts/blob';
import type { Layer } from '@caffe-ts/layers';
import { createLayer } from '@caffe-ts/layers/testing';
import { registerField } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { gpuKernelTypes } from './backend.js';
import type { GpuBuffer } from './device.js';
import { backendFor, testModes } from './test-modes.js';

// caffe-fast-rcnn's DropoutParameter.scale_train, as @caffe-ts/layers-contrib registers it.
registerField({ message: 'DropoutParameter', name: 'scale_train', id: 2, type: 'bool', defaultValue: true });

/**
 * The layer test suite against the gpu backend: every layer type with a gpu kernel runs forward
 * and backward on the CPU backend and on the gpu backend (each gpu.js mode available here) from
 * the same random inputs and parameters, over a few configurations (the CPU layers' test shapes,
 * Caffe's 2×3×4×5 family) and two input seeds, all in float32.
 *
 * Tolerance per op: |gpu − cpu| ≤ abs + rel·|cpu| for every top, bottom diff, param diff and
 * param value (BatchNorm's running averages). The table is documented in the README; it also
 * applies to the loss a layer returns.
 */
interface Tolerance {
  abs: number;
  rel: number;
  /** Why this bound. */
  why: string;
}
const SUM_ORDER = 'float32 sums in another order';
export const TOLERANCES: Record<string, Tolerance> = {
  Accuracy: { abs: 0, rel: 0, why: 'counts: exact' },
  BatchNorm: { abs: 2e-4, rel: 2e-4, why: 'per-channel mean/variance over up to 100 values, divided by a small σ' },
  Bias: { abs: 1e-5, rel: 1e-5, why: 'one add; the bias gradient sums up to 60 values' },
  Concat: { abs: 0, rel: 0, why: 'copies: exact' },
  Convolution: { abs: 1e-4, rel: 1e-4, why: SUM_ORDER },
  Dropout: { abs: 1e-6, rel: 1e-6, why: 'one multiply by the same mask' },
  Eltwise: { abs: 1e-5, rel: 1e-5, why: 'at most 3 products or a weighted sum' },
  Flatten: { abs: 0, rel: 0, why: 'shares memory' },
  InnerProduct: { abs: 1e-4, rel: 1e-4, why: `${SUM_ORDER} (K up to 2500)` },
  LRN: { abs: 1e-4, rel: 1e-4, why: 'pow() of a window sum' },
  Pooling: { abs: 1e-5, rel: 1e-5, why: 'MAX exact; AVE a sum of up to 49 values' },
  ReLU: { abs: 0, rel: 0, why: 'select and one multiply: exact' },
  Reshape: { abs: 0, rel: 0, why: 'shares memory' },
  Scale: { abs: 1e-5, rel: 1e-5, why: 'one multiply-add; gradients sum up to 60 values' },
  Sigmoid: { abs: 1e-6, rel: 1e-5, why: 'exp vs the CPU layer\'s tanh form' },
  Softmax: { abs: 1e-5, rel: 1e-4, why: 'exp and a sum over the channels' },
  SoftmaxWithLoss: { abs: 1e-5, rel: 1e-4, why: 'log-softmax and a normalised sum' },
  Split: { abs: 1e-6, rel: 1e-6, why: 'sum of up to 3 diffs' },
  TanH: { abs: 1e-6, rel: 1e-5, why: 'exp form vs Math.tanh' },
};

/** Kernel types with no case here, and why (the coverage check below fails for any other). */
const NOT_CASED: Record<string, string> = {
  Input: 'no computation: its top is written by the caller (the net tests cover it)',
};

interface Case {
  name: string;
  type: string;
  props: Record<string, unknown>;
  bottoms: { shape: number[]; fill: 'gaussian' | 'labels' | 'fractional-labels' | 'positive'; classes?: number }[];
  /** Which bottoms get a gradient (default: all non-label bottoms). */
  propagate?: boolean[];
  noBackward?: boolean;
  tops?: number;
  /** Overwrite the layer's param blobs with random values (BatchNorm's statistics start at 0). */
  params?: ('gaussian' | 'positive')[];
  /** Top is bottom 0 (in-place computation, as ResNet's BatchNorm/Scale/ReLU). */
  inPlace?: boolean;
  /** Split device buffers longer than this (the 2^24-float path of AlexNet's fc6, on small shapes). */
  splitLimit?: number;
}

const filler = { weight_filler: { type: 'gaussian', std: 0.5 }, bias_filler: { type: 'gaussian', std: 0.5 } };
const CASES: Case[] = [
  { name: 'InnerProduct', type: 'InnerProduct', props: { inner_product_param: { num_output: 7, ...filler } }, bottoms: [{ shape: [3, 2, 3, 2], fill: 'gaussian' }] },
  {
    name: 'InnerProduct transpose, no bias',
    type: 'InnerProduct',
    props: { inner_product_param: { num_output: 5, transpose: true, bias_term: false, ...filler } },
    bottoms: [{ shape: [4, 6], fill: 'gaussian' }],
  },
  {
    name: 'InnerProduct K = 2500 (past gpu.js\'s default 1000-iteration loop bound)',
    type: 'InnerProduct',
    props: { inner_product_param: { num_output: 3, ...filler } },
    bottoms: [{ shape: [2, 2500], fill: 'gaussian' }],
  },
  {
    name: 'InnerProduct, weight split in parts of whole rows (2 concat passes)',
    type: 'InnerProduct',
    props: { inner_product_param: { num_output: 11, ...filler } },
    bottoms: [{ shape: [2, 12], fill: 'gaussian' }],
    splitLimit: 24,
  },
  {
    name: 'InnerProduct, weight split, no bias, rows not dividing the limit',
    type: 'InnerProduct',
    props: { inner_product_param: { num_output: 5, bias_term: false, ...filler } },
    bottoms: [{ shape: [2, 7], fill: 'gaussian' }],
    splitLimit: 20,
  },
  { name: 'Convolution 5x5', type: 'Convolution', props: { convolution_param: { num_output: 4, kernel_size: [5], ...filler } }, bottoms: [{ shape: [2, 3, 9, 8], fill: 'gaussian' }] },
  {
    name: 'Convolution stride 2, pad 1, group 2, dilation 2',
    type: 'Convolution',
    props: { convolution_param: { num_output: 4, kernel_size: [3], stride: [2], pad: [1], group: 2, dilation: [2], ...filler } },
    bottoms: [{ shape: [2, 4, 7, 6], fill: 'gaussian' }],
  },
  {
    name: 'Convolution 3x2 kernel, no bias',
    type: 'Convolution',
    props: { convolution_param: { num_output: 3, kernel_h: 3, kernel_w: 2, pad_h: 1, pad_w: 0, stride_h: 1, stride_w: 2, bias_term: false, ...filler } },
    bottoms: [{ shape: [1, 2, 5, 6], fill: 'gaussian' }],
  },
  {
    // 40×30 = 1,200 output positions: the bias gradient's first pass sums them in two chunks.
    name: 'Convolution 1x1 over 1,200 positions (bias gradient in chunks)',
    type: 'Convolution',
    props: { convolution_param: { num_output: 2, kernel_size: [1], ...filler } },
    bottoms: [{ shape: [2, 2, 40, 30], fill: 'gaussian' }],
  },
  { name: 'Pooling MAX 2x2/2', type: 'Pooling', props: { pooling_param: { pool: 0, kernel_size: 2, stride: 2 } }, bottoms: [{ shape: [2, 3, 8, 6], fill: 'gaussian' }] },
  { name: 'Pooling MAX 2x2/2 on 7x5 (last windows cut by the edge)', type: 'Pooling', props: { pooling_param: { pool: 0, kernel_size: 2, stride: 2 } }, bottoms: [{ shape: [2, 2, 7, 5], fill: 'gaussian' }] },
  {
    name: 'Pooling MAX 3x3/2 pad 1 (ceil) + mask',
    type: 'Pooling',
    props: { pooling_param: { pool: 0, kernel_size: 3, stride: 2, pad: 1 } },
    bottoms: [{ shape: [2, 2, 7, 6], fill: 'gaussian' }],
    tops: 2,
  },
  { name: 'Pooling AVE 3x3/2 pad 1', type: 'Pooling', props: { pooling_param: { pool: 1, kernel_size: 3, stride: 2, pad: 1 } }, bottoms: [{ shape: [2, 2, 7, 6], fill: 'gaussian' }] },
  { name: 'ReLU', type: 'ReLU', props: {}, bottoms: [{ shape: [2, 3, 4], fill: 'gaussian' }] },
  { name: 'ReLU leaky', type: 'ReLU', props: { relu_param: { negative_slope: 0.1 } }, bottoms: [{ shape: [5, 7], fill: 'gaussian' }] },
  { name: 'Softmax', type: 'Softmax', props: {}, bottoms: [{ shape: [3, 6], fill: 'gaussian' }] },
  { name: 'Softmax axis 1 of 4-D', type: 'Softmax', props: {}, bottoms: [{ shape: [2, 4, 3, 2], fill: 'gaussian' }] },
  {
    name: 'SoftmaxWithLoss',
    type: 'SoftmaxWithLoss',
    props: {},
    bottoms: [{ shape: [5, 10], fill: 'gaussian' }, { shape: [5], fill: 'labels', classes: 10 }],
    propagate: [true, false],
  },
  {
    name: 'SoftmaxWithLoss spatial, ignore_label, loss_weight 2',
    type: 'SoftmaxWithLoss',
    props: { loss_param: { ignore_label: 1 }, loss_weight: [2] },
    bottoms: [{ shape: [2, 4, 3, 2], fill: 'gaussian' }, { shape: [2, 1, 3, 2], fill: 'labels', classes: 4 }],
    propagate: [true, false],
  },
  {
    name: 'SoftmaxWithLoss fractional labels (truncated, as Caffe; DummyData uniform labels)',
    type: 'SoftmaxWithLoss',
    props: {},
    bottoms: [{ shape: [6, 5], fill: 'gaussian' }, { shape: [6], fill: 'fractional-labels', classes: 5 }],
    propagate: [true, false],
  },
  {
    name: 'Accuracy fractional labels',
    type: 'Accuracy',
    props: {},
    bottoms: [{ shape: [12, 5], fill: 'gaussian' }, { shape: [12], fill: 'fractional-labels', classes: 5 }],
    noBackward: true,
  },
  {
    name: 'SoftmaxWithLoss normalization BATCH_SIZE',
    type: 'SoftmaxWithLoss',
    props: { loss_param: { normalization: 2 } },
    bottoms: [{ shape: [3, 4, 2], fill: 'gaussian' }, { shape: [3, 2], fill: 'labels', classes: 4 }],
    propagate: [true, false],
  },
  {
    name: 'Accuracy top-1',
    type: 'Accuracy',
    props: {},
    bottoms: [{ shape: [12, 5], fill: 'gaussian' }, { shape: [12], fill: 'labels', classes: 5 }],
    noBackward: true,
  },
  {
    name: 'Accuracy top-2, per class, ignore_label',
    type: 'Accuracy',
    props: { accuracy_param: { top_k: 2, ignore_label: 0 } },
    bottoms: [{ shape: [12, 4], fill: 'gaussian' }, { shape: [12], fill: 'labels', classes: 4 }],
    noBackward: true,
    tops: 2,
  },
  { name: 'LRN across channels (CaffeNet: 5, 1e-4, 0.75)', type: 'LRN', props: { lrn_param: { local_size: 5, alpha: 0.0001, beta: 0.75 } }, bottoms: [{ shape: [2, 7, 3, 4], fill: 'gaussian' }] },
  { name: 'LRN across channels, large alpha, k = 2', type: 'LRN', props: { lrn_param: { local_size: 3, alpha: 0.5, beta: 0.6, k: 2 } }, bottoms: [{ shape: [1, 4, 3, 3], fill: 'gaussian' }] },
  { name: 'LRN within channel', type: 'LRN', props: { lrn_param: { local_size: 3, alpha: 0.5, beta: 0.75, norm_region: 1 } }, bottoms: [{ shape: [2, 2, 4, 5], fill: 'gaussian' }] },
  { name: 'Dropout TRAIN (same rng seed: same mask)', type: 'Dropout', props: { dropout_param: { dropout_ratio: 0.3 } }, bottoms: [{ shape: [4, 9], fill: 'gaussian' }] },
  { name: 'Dropout TEST (identity)', type: 'Dropout', props: { phase: 1 }, bottoms: [{ shape: [3, 5], fill: 'gaussian' }] },
  // caffe-fast-rcnn's scale_train: false (field 2, registered below as @caffe-ts/layers-contrib does).
  { name: 'Dropout TRAIN, scale_train false (mask only)', type: 'Dropout', props: { dropout_param: { dropout_ratio: 0.3, scale_train: false } }, bottoms: [{ shape: [4, 9], fill: 'gaussian' }] },
  { name: 'Dropout TEST, scale_train false (× 1 − ratio)', type: 'Dropout', props: { phase: 1, dropout_param: { dropout_ratio: 0.3, scale_train: false } }, bottoms: [{ shape: [3, 5], fill: 'gaussian' }] },
  { name: 'Split into 3', type: 'Split', props: {}, bottoms: [{ shape: [2, 3, 2], fill: 'gaussian' }], tops: 3 },
  { name: 'Flatten', type: 'Flatten', props: {}, bottoms: [{ shape: [2, 3, 2, 2], fill: 'gaussian' }] },
  { name: 'Reshape', type: 'Reshape', props: { reshape_param: { shape: { dim: [0, -1] } } }, bottoms: [{ shape: [2, 3, 2, 2], fill: 'gaussian' }] },
  { name: 'Pooling AVE global', type: 'Pooling', props: { pooling_param: { pool: 1, global_pooling: true } }, bottoms: [{ shape: [2, 3, 5, 4], fill: 'gaussian' }] },
  { name: 'Pooling MAX global', type: 'Pooling', props: { pooling_param: { pool: 0, global_pooling: true } }, bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }] },
  { name: 'Pooling AVE 7x7/1 (GoogLeNet pool5) on 7x7', type: 'Pooling', props: { pooling_param: { pool: 1, kernel_size: 7, stride: 1 } }, bottoms: [{ shape: [1, 4, 7, 7], fill: 'gaussian' }] },
  { name: 'Pooling AVE 3x3/2 (CIFAR-10 quick) floor', type: 'Pooling', props: { pooling_param: { pool: 1, kernel_size: 3, stride: 2, round_mode: 1 } }, bottoms: [{ shape: [2, 2, 8, 8], fill: 'gaussian' }] },
  { name: 'Concat channels (axis 1)', type: 'Concat', props: {}, bottoms: [{ shape: [2, 3, 6, 5], fill: 'gaussian' }, { shape: [2, 5, 6, 5], fill: 'gaussian' }] },
  { name: 'Concat num (concat_dim 0)', type: 'Concat', props: { concat_param: { concat_dim: 0 } }, bottoms: [{ shape: [2, 3, 6, 5], fill: 'gaussian' }, { shape: [5, 3, 6, 5], fill: 'gaussian' }] },
  {
    name: 'Concat 6 bottoms (two passes), axis -1, bottom 2 without gradient',
    type: 'Concat',
    props: { concat_param: { axis: -1 } },
    bottoms: [1, 2, 3, 1, 2, 1].map((w) => ({ shape: [2, 3, w], fill: 'gaussian' as const })),
    propagate: [true, true, false, true, true, true],
  },
  { name: 'Concat one bottom (identity)', type: 'Concat', props: {}, bottoms: [{ shape: [2, 3], fill: 'gaussian' }] },
  { name: 'Eltwise SUM', type: 'Eltwise', props: {}, bottoms: [0, 1, 2].map(() => ({ shape: [2, 3, 4, 5], fill: 'gaussian' as const })) },
  {
    name: 'Eltwise SUM with coefficients',
    type: 'Eltwise',
    props: { eltwise_param: { operation: 1, coeff: [1, -0.5, 2] } },
    bottoms: [0, 1, 2].map(() => ({ shape: [2, 3, 4, 5], fill: 'gaussian' as const })),
  },
  { name: 'Eltwise PROD (stable gradient)', type: 'Eltwise', props: { eltwise_param: { operation: 0 } }, bottoms: [0, 1, 2].map(() => ({ shape: [2, 3, 4, 5], fill: 'gaussian' as const })) },
  {
    name: 'Eltwise PROD (unstable gradient)',
    type: 'Eltwise',
    props: { eltwise_param: { operation: 0, stable_prod_grad: false } },
    bottoms: [0, 1, 2].map(() => ({ shape: [2, 3, 4, 5], fill: 'positive' as const })),
  },
  { name: 'Eltwise MAX of 3', type: 'Eltwise', props: { eltwise_param: { operation: 2 } }, bottoms: [0, 1, 2].map(() => ({ shape: [2, 3, 4, 5], fill: 'gaussian' as const })) },
  { name: 'Eltwise MAX of 2, bottom 0 without gradient', type: 'Eltwise', props: { eltwise_param: { operation: 2 } }, bottoms: [0, 1].map(() => ({ shape: [3, 7], fill: 'gaussian' as const })), propagate: [false, true] },
  {
    name: 'BatchNorm global statistics (TEST)',
    type: 'BatchNorm',
    props: { phase: 1 },
    bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }],
    params: ['gaussian', 'positive', 'positive'],
  },
  {
    name: 'BatchNorm global statistics in place, eps 1e-3',
    type: 'BatchNorm',
    props: { batch_norm_param: { use_global_stats: true, eps: 0.001 } },
    bottoms: [{ shape: [2, 4, 3, 3], fill: 'gaussian' }],
    params: ['gaussian', 'positive', 'positive'],
    inPlace: true,
  },
  {
    name: 'BatchNorm training statistics (running averages updated)',
    type: 'BatchNorm',
    props: { batch_norm_param: { moving_average_fraction: 0.9 } },
    bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }],
    params: ['gaussian', 'positive', 'positive'],
  },
  { name: 'BatchNorm training, 2-D bottom, in place', type: 'BatchNorm', props: {}, bottoms: [{ shape: [6, 4], fill: 'gaussian' }], inPlace: true },
  { name: 'Scale learned, axis 1', type: 'Scale', props: { scale_param: { filler: { type: 'gaussian' } } }, bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }] },
  {
    name: 'Scale learned + bias, in place (ResNet)',
    type: 'Scale',
    props: { scale_param: { bias_term: true, filler: { type: 'gaussian' }, bias_filler: { type: 'gaussian' } } },
    bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }],
    inPlace: true,
  },
  {
    name: 'Scale from bottom 1 (axis 1, num_axes 2) + bias',
    type: 'Scale',
    props: { scale_param: { bias_term: true, bias_filler: { type: 'gaussian' } } },
    bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }, { shape: [3, 4], fill: 'gaussian' }],
  },
  { name: 'Scale scalar (axis 0, num_axes 0)', type: 'Scale', props: { scale_param: { axis: 0, num_axes: 0, filler: { type: 'gaussian' } } }, bottoms: [{ shape: [2, 3, 4], fill: 'gaussian' }] },
  { name: 'Bias learned, axis 1', type: 'Bias', props: { bias_param: { filler: { type: 'gaussian' } } }, bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }] },
  { name: 'Bias from bottom 1 (axis 2)', type: 'Bias', props: { bias_param: { axis: 2 } }, bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }, { shape: [4, 5], fill: 'gaussian' }] },
  { name: 'Bias learned, in place', type: 'Bias', props: { bias_param: { filler: { type: 'gaussian' } } }, bottoms: [{ shape: [2, 3, 4], fill: 'gaussian' }], inPlace: true },
  { name: 'Sigmoid', type: 'Sigmoid', props: {}, bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }] },
  { name: 'Sigmoid in place, large inputs', type: 'Sigmoid', props: {}, bottoms: [{ shape: [4, 30], fill: 'gaussian' }], inPlace: true },
  { name: 'TanH', type: 'TanH', props: {}, bottoms: [{ shape: [2, 3, 4, 5], fill: 'gaussian' }] },
  { name: 'TanH in place', type: 'TanH', props: {}, bottoms: [{ shape: [3, 11], fill: 'gaussian' }], inPlace: true },
];

/** Input values; 'gaussian' bottoms are N(0, 1), scaled ×8 for "large inputs" cases (saturating neurons). */
function makeBottoms(c: Case, seed: number): Blob[] {
  const rng = new Rng(seed);
  const scale = c.name.includes('large inputs') ? 8 : 1;
  return c.bottoms.map((b) => {
    const blob = new Blob(b.shape, { dtype: 'float32' });
    const d = blob.mutableCpuData();
    for (let i = 0; i < d.length; i++) {
      d[i] = b.fill === 'labels' ? rng.int(b.classes!) : b.fill === 'fractional-labels' ? rng.uniform() * (b.classes! - 0.001) : b.fill === 'positive' ? rng.uniform() + 0.1 : scale * rng.gaussian(0, 1);
    }
    return blob;
  });
}

function build(c: Case, backend: Backend, seed: number): { layer: Layer; bottom: Blob[]; top: Blob[] } {
  const layer = createLayer(c.type, { name: 'l', ...c.props }, { dtype: 'float32', backend, rng: new Rng(1701) });
  // Bottoms are host blobs given to the backend's device, as a net would allocate them.
  const bottom = makeBottoms(c, seed).map((b) => {
    const onDevice = new Blob(b.shape, { dtype: 'float32', device: backend.device });
    onDevice.mutableCpuData().set(b.cpuData());
    return onDevice;
  });
  const top = c.inPlace ? [bottom[0]!] : Array.from({ length: c.tops ?? 1 }, () => new Blob([], { dtype: 'float32', device: backend.device }));
  layer.setUp(bottom, top);
  if (c.params) {
    const rng = new Rng(seed + 1000);
    c.params.forEach((kind, i) => {
      const d = layer.blobs[i]!.mutableCpuData();
      for (let j = 0; j < d.length; j++) d[j] = kind === 'positive' ? rng.uniform() + 0.5 : rng.gaussian(0, 1);
    });
  }
  return { layer, bottom, top };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) - (tol.abs + tol.rel * Math.abs(want[i]!));
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      at = i;
    }
  }
  expect(at, `${what}: element ${at} is ${got[at]} vs ${want[at]} (tolerance ${tol.abs} + ${tol.rel}·|cpu|)`).toBe(-1);
}

const SEEDS = [17, 29];

describe('parity coverage', () => {
  it('every layer type with a gpu kernel has parity cases and a tolerance', () => {
    const cased = new Set(CASES.map((c) => c.type));
    const missing = gpuKernelTypes().filter((t) => !cased.has(t) && !(t in NOT_CASED));
    expect(missing).toEqual([]);
    expect(gpuKernelTypes().filter((t) => !(t in TOLERANCES) && !(t in NOT_CASED))).toEqual([]);
  });
});

for (const { mode, skip } of testModes()) {
  describe.skipIf(skip !== null)(`gpu kernels match the CPU layers (gpu.js ${mode}${skip ? `: skipped, ${skip}` : ''})`, () => {
    for (const c of CASES) {
      it(c.name, () => {
        const tol = TOLERANCES[c.type]!;
        for (const seed of SEEDS) {
          const at = `${c.type}, seed ${seed}`;
          const backend = backendFor(mode, false, c.splitLimit);
          const ref = build(c, cpuBackend(), seed);
          const dev = build(c, backend, seed);
          for (let i = 0; i < ref.layer.blobs.length; i++) dev.layer.blobs[i]!.mutableCpuData().set(ref.layer.blobs[i]!.cpuData());

          const lossRef = ref.layer.forward(ref.bottom, ref.top);
          const lossDev = dev.layer.forward(dev.bottom, dev.top);
          expect(Math.abs(lossDev - lossRef), `${at}: loss`).toBeLessThanOrEqual(tol.abs + tol.rel * Math.abs(lossRef));
          ref.top.forEach((t, i) => expectClose(dev.top[i]!.cpuData(), t.cpuData(), tol, `${at}: top ${i} data`));
          ref.layer.blobs.forEach((b, i) => expectClose(dev.layer.blobs[i]!.cpuData(), b.cpuData(), tol, `${at}: param ${i} data after forward`));
          if (c.noBackward) continue;

          // Loss layers keep their loss weight in the top diff; others get a random top gradient.
          const rng = new Rng(seed + 99);
          ref.top.forEach((t, ti) => {
            if (ref.layer.lossWeight(ti) !== 0) return;
            const g = t.mutableCpuDiff();
            for (let i = 0; i < g.length; i++) g[i] = rng.gaussian(0, 1);
            dev.top[ti]!.mutableCpuDiff().set(g);
          });
          // Param diffs accumulate: start both from the same non-zero values to check that too.
          for (let i = 0; i < ref.layer.blobs.length; i++) {
            const g = ref.layer.blobs[i]!.mutableCpuDiff();
            for (let j = 0; j < g.length; j++) g[j] = rng.gaussian(0, 0.1);
            dev.layer.blobs[i]!.mutableCpuDiff().set(g);
          }
          const propagate = c.propagate ?? ref.bottom.map(() => true);
          ref.layer.backward(ref.top, propagate, ref.bottom);
          dev.layer.backward(dev.top, propagate, dev.bottom);
          ref.bottom.forEach((b, i) => {
            if (propagate[i]) expectClose(dev.bottom[i]!.cpuDiff(), b.cpuDiff(), tol, `${at}: bottom ${i} diff`);
          });
          ref.layer.blobs.forEach((b, i) => expectClose(dev.layer.blobs[i]!.cpuDiff(), b.cpuDiff(), tol, `${at}: param ${i} diff`));
        }
      });
    }

    it('the device SGD step on a split weight matches the host formula (parts re-cut to match)', () => {
      const backend = backendFor(mode, false, 30);
      const layer = createLayer('InnerProduct', { name: 'ip', inner_product_param: { num_output: 9, ...filler } }, { dtype: 'float32', backend, rng: new Rng(3) });
      const x = new Blob([2, 8], { dtype: 'float32', device: backend.device });
      const rng = new Rng(4);
      x.mutableCpuData().set(Array.from({ length: 16 }, () => rng.gaussian(0, 1)));
      const y = new Blob([], { dtype: 'float32', device: backend.device });
      layer.setUp([x], [y]);
      const w = layer.blobs[0]!;
      const w0 = Float64Array.from(w.cpuData());
      const history = new Blob(w.shape, { dtype: 'float32', device: backend.device });
      const h0 = Array.from({ length: w.count() }, () => rng.gaussian(0, 0.1));
      history.mutableCpuData().set(h0);
      layer.forward([x], [y]);
      y.mutableCpuDiff().set(Array.from({ length: y.count() }, () => rng.gaussian(0, 1)));
      backend.ops.clearDiff(w);
      layer.backward([y], [false], [x]);
      const g = Float64Array.from(w.cpuDiff());
      backend.ops.sgdStep(w, history, { localRate: 0.1, momentum: 0.9, localDecay: 0.01, regularization: 'L2', diffScale: 0.5 });
      const want = w0.map((v, i) => v - (0.1 * (0.5 * g[i]! + 0.01 * v) + 0.9 * h0[i]!));
      expectClose(w.cpuData(), want, { abs: 1e-6, rel: 1e-5, why: '' }, 'weights after the step');
      expect((w.gpuData() as GpuBuffer).parts!.length).toBeGreaterThan(1);
    });

    it('Scale in place keeps its input only when its backward can run (backwardNeeded), as the CPU layer', () => {
      const backend = backendFor(mode);
      const layer = createLayer('Scale', { name: 's', scale_param: { bias_term: true } }, { dtype: 'float32', backend }) as Layer & { backwardNeeded: boolean };
      const x = new Blob([2, 3], { dtype: 'float32', device: backend.device });
      x.mutableCpuData().set([1, 2, 3, 4, 5, 6]);
      layer.setUp([x], [x]);
      layer.blobs[0]!.mutableCpuData().set([2, 3, 4]);
      layer.blobs[1]!.mutableCpuData().set([1, 1, 1]);
      const live = () => backend.stats().liveBuffers;
      layer.forward([x], [x]);
      const keeping = live();
      layer.backwardNeeded = false;
      layer.forward([x], [x]);
      // Neither this input nor the one kept by the forward before stays on the device.
      expect(live()).toBe(keeping - 1);
      x.mutableCpuData().set([1, 2, 3, 4, 5, 6]);
      layer.forward([x], [x]);
      expect(live()).toBe(keeping - 1);
      expect(Array.from(x.cpuData())).toEqual([3, 7, 13, 9, 16, 25]);
      x.mutableCpuDiff().fill(1);
      expect(() => layer.backward([x], [true], [x])).toThrow(/Scale layer 's': the scale gradient needs the bottom of the last in-place forward/);
      layer.backwardNeeded = true;
      x.mutableCpuData().set([1, 2, 3, 4, 5, 6]);
      layer.forward([x], [x]);
      x.mutableCpuDiff().fill(1);
      layer.blobs[0]!.mutableCpuDiff().fill(0);
      layer.backward([x], [true], [x]);
      expect(Array.from(layer.blobs[0]!.cpuDiff())).toEqual([5, 7, 9]);
    });

    it('runs a ReLU in place (top shares the bottom)', () => {
      const backend = backendFor(mode);
      const layer = createLayer('ReLU', { name: 'r' }, { dtype: 'float32', backend });
      const x = new Blob([2, 5], { dtype: 'float32', device: backend.device });
      x.mutableCpuData().set([-2, -1, 0, 1, 2, -3, 3, -0.5, 0.5, 4]);
      layer.setUp([x], [x]);
      layer.forward([x], [x]);
      expect(Array.from(x.cpuData())).toEqual([0, 0, 0, 1, 2, 0, 3, 0, 0.5, 4]);
      x.mutableCpuDiff().fill(1);
      layer.backward([x], [true], [x]);
      expect(Array.from(x.cpuDiff())).toEqual([0, 0, 0, 1, 1, 0, 1, 0, 1, 1]);
    });
  });
}
