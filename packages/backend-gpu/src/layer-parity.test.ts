import { Blob, cpuBackend, Rng, type Backend } from '@caffe-ts/blob';
import type { Layer } from '@caffe-ts/layers';
import { createLayer } from '@caffe-ts/layers/testing';
import { describe, expect, it } from 'vitest';
import { backendFor, testModes } from './test-modes.js';

/**
 * Forward/backward parity of every gpu kernel with the CPU layer, in float32 on both sides.
 * Tolerance: |gpu − cpu| ≤ 1e-4 + 1e-4·|cpu| (sums run in another order; GL adds texture
 * round trips but stays in float32).
 */
const TOL_ABS = 1e-4;
const TOL_REL = 1e-4;

interface Case {
  name: string;
  type: string;
  props: Record<string, unknown>;
  bottoms: { shape: number[]; fill: 'gaussian' | 'labels' | 'positive'; classes?: number }[];
  /** Which bottoms get a gradient (default: all non-label bottoms). */
  propagate?: boolean[];
  noBackward?: boolean;
  tops?: number;
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
  { name: 'Pooling MAX 2x2/2', type: 'Pooling', props: { pooling_param: { pool: 0, kernel_size: 2, stride: 2 } }, bottoms: [{ shape: [2, 3, 8, 6], fill: 'gaussian' }] },
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
  { name: 'Split into 3', type: 'Split', props: {}, bottoms: [{ shape: [2, 3, 2], fill: 'gaussian' }], tops: 3 },
  { name: 'Flatten', type: 'Flatten', props: {}, bottoms: [{ shape: [2, 3, 2, 2], fill: 'gaussian' }] },
];

function makeBottoms(c: Case, seed: number): Blob[] {
  const rng = new Rng(seed);
  return c.bottoms.map((b) => {
    const blob = new Blob(b.shape, { dtype: 'float32' });
    const d = blob.mutableCpuData();
    for (let i = 0; i < d.length; i++) {
      d[i] = b.fill === 'labels' ? rng.int(b.classes!) : b.fill === 'positive' ? rng.uniform() + 0.1 : rng.gaussian(0, 1);
    }
    return blob;
  });
}

function build(c: Case, backend: Backend): { layer: Layer; bottom: Blob[]; top: Blob[] } {
  const layer = createLayer(c.type, { name: 'l', ...c.props }, { dtype: 'float32', backend, rng: new Rng(1701) });
  // Bottoms are host blobs given to the backend's device, as a net would allocate them.
  const bottom = makeBottoms(c, 17).map((b) => {
    const onDevice = new Blob(b.shape, { dtype: 'float32', device: backend.device });
    onDevice.mutableCpuData().set(b.cpuData());
    return onDevice;
  });
  const top = Array.from({ length: c.tops ?? 1 }, () => new Blob([], { dtype: 'float32', device: backend.device }));
  layer.setUp(bottom, top);
  return { layer, bottom, top };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) - (TOL_ABS + TOL_REL * Math.abs(want[i]!));
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      at = i;
    }
  }
  expect(at, `${what}: element ${at} is ${got[at]} vs ${want[at]}`).toBe(-1);
}

for (const { mode, skip } of testModes()) {
  describe.skipIf(skip !== null)(`gpu kernels match the CPU layers (gpu.js ${mode}${skip ? `: skipped, ${skip}` : ''})`, () => {
    for (const c of CASES) {
      it(c.name, () => {
        const backend = backendFor(mode);
        const ref = build(c, cpuBackend());
        const dev = build(c, backend);
        for (let i = 0; i < ref.layer.blobs.length; i++) dev.layer.blobs[i]!.mutableCpuData().set(ref.layer.blobs[i]!.cpuData());

        const lossRef = ref.layer.forward(ref.bottom, ref.top);
        const lossDev = dev.layer.forward(dev.bottom, dev.top);
        expect(Math.abs(lossDev - lossRef)).toBeLessThanOrEqual(TOL_ABS + TOL_REL * Math.abs(lossRef));
        ref.top.forEach((t, i) => expectClose(dev.top[i]!.cpuData(), t.cpuData(), `top ${i} data`));
        if (c.noBackward) return;

        // Loss layers keep their loss weight in the top diff; others get a random top gradient.
        const rng = new Rng(99);
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
          if (propagate[i]) expectClose(dev.bottom[i]!.cpuDiff(), b.cpuDiff(), `bottom ${i} diff`);
        });
        ref.layer.blobs.forEach((b, i) => expectClose(dev.layer.blobs[i]!.cpuDiff(), b.cpuDiff(), `param ${i} diff`));
      });
    }

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
