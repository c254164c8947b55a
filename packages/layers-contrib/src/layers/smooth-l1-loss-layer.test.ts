import { Blob } from '@caffe-ts/blob';
import { createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerContribSchema } from '../schema.js';
import { SmoothL1LossLayer, smoothL1LossLayerDef } from './smooth-l1-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function loss(params: Record<string, unknown>, bottoms: number[][], shape: number[]): { layer: SmoothL1LossLayer; value: number; blobs: Blob[]; top: Blob } {
  const layer = createLayer<SmoothL1LossLayer>(smoothL1LossLayerDef, { name: 'loss_bbox', smooth_l1_loss_param: params });
  const blobs = bottoms.map((v) => makeBlob(shape, { filler: v }));
  const top = f64();
  layer.setUp(blobs, [top]);
  layer.forward(blobs, [top]);
  return { layer, value: top.cpuData()[0]!, blobs, top };
}

describe('SmoothL1Loss', () => {
  beforeAll(registerContribSchema);

  it('sums 0.5·d² below 1 and |d| − 0.5 above, over the batch size (sigma 1, hand-computed)', () => {
    // d = x − t: 0.5, −2, 0, 1 (the quadratic part ends at |d| = 1) over 2 items.
    const { value } = loss({}, [[1.5, -1, 3, 4], [1, 1, 3, 3]], [2, 2]);
    expect(value).toBeCloseTo((0.125 + 1.5 + 0 + 0.5) / 2, 12);
  });

  it('sigma narrows the quadratic part to |d| < 1/σ² and scales it by σ²', () => {
    // σ = 2: f(d) = 2·d² for |d| < 0.25, else |d| − 0.125.
    const { value } = loss({ sigma: 2 }, [[0.1, -0.5, 0.25], [0, 0, 0]], [1, 3]);
    expect(value).toBeCloseTo(2 * 0.01 + 0.375 + 0.125, 12);
  });

  it('inside weights scale d, outside weights scale each term', () => {
    // d = w_in · (x − t) = 2·0.25 = 0.5 → 0.125, and 0·5 = 0; terms scaled by 3 and 7.
    const { value } = loss({}, [[0.25, 5], [0, 0], [2, 0], [3, 7]], [1, 2]);
    expect(value).toBeCloseTo(3 * 0.125 + 7 * 0, 12);
  });

  it('backward: ± w_out · w_in · f′(d) / N to the predictions and the targets, scaled by the loss weight', () => {
    const { layer, blobs, top } = loss({}, [[1.5, -1, 3, 4], [1, 1, 3, 3], [1, 2, 1, 1], [1, 1, 0.5, 3]], [2, 2]);
    top.mutableCpuDiff()[0] = 2;
    layer.backward([top], [true, true, false, false], blobs);
    // d = 0.5, −4, 0, 1 → f′ = 0.5, −1, 0, 1; times w_in·w_out = 1, 2, 0.5, 3; times 2/N = 1.
    expect(Array.from(blobs[0]!.cpuDiff())).toEqual([0.5, -2, 0, 3]);
    expect(Array.from(blobs[1]!.cpuDiff())).toEqual([-0.5, 2, -0, -3]);
  });

  it('passes the gradient check on predictions and targets, with and without weights (1e-2, 1e-2)', () => {
    for (const weighted of [false, true]) {
      // Values kept off the kinks at |d| = 1/σ² (σ = 1.5: 0.444) by more than the step.
      const x = makeBlob([3, 2, 2, 1], { filler: [0.1, -0.2, 1.3, -2.2, 0.05, 0.3, -0.9, 2.5, 0.7, -0.1, 0, 1.1] });
      const t = makeBlob([3, 2, 2, 1], { filler: [0, 0.1, -0.4, 0.2, -0.1, 0.15, 0.2, -0.5, 0.1, 0.05, 0.2, 0.3] });
      const bottoms = weighted
        ? [x, t, makeBlob([3, 2, 2, 1], { filler: 'uniform', min: 0.5, max: 1.2 }), makeBlob([3, 2, 2, 1], { filler: 'uniform', min: 0.2, max: 2 })]
        : [x, t];
      const layer = createLayer(smoothL1LossLayerDef, { smooth_l1_loss_param: { sigma: 1.5 } });
      const checker = new GradientChecker(1e-2, 1e-2);
      checker.checkGradientExhaustive(layer, bottoms, [f64()], 0);
      checker.checkGradientExhaustive(layer, bottoms, [f64()], 1);
    }
  });

  it('has loss weight 1 and lets backward reach predictions and targets, not the weights', () => {
    const { layer } = loss({}, [[1], [0]], [1, 1]);
    expect(layer.lossWeight(0)).toBe(1);
    expect([0, 1, 2, 3].map((i) => layer.allowForceBackward(i))).toEqual([true, true, false, false]);
  });

  it('refuses three bottoms, mismatched shapes and sigma 0, naming the layer', () => {
    expect(() => loss({}, [[1], [0], [1]], [1, 1])).toThrow(
      "SmoothL1Loss layer 'loss_bbox': If weights are used, must specify both inside and outside weights (got 3 bottoms).",
    );
    expect(() => loss({ sigma: 0 }, [[1], [0]], [1, 1])).toThrow(/sigma must be a finite non-zero number \(got 0\)/);
    const layer = createLayer(smoothL1LossLayerDef, { name: 'l' });
    expect(() => layer.setUp([makeBlob([2, 4]), makeBlob([2, 3])], [f64()])).toThrow(
      "SmoothL1Loss layer 'l': bottom 1 (the targets) must have the predictions' shape 2 4 (8) (got 2 3 (6)).",
    );
    expect(() => layer.setUp([makeBlob([2, 4]), makeBlob([2, 4]), makeBlob([2, 4]), makeBlob([2, 2])], [f64()])).toThrow(/bottom 3 \(the outside weights\)/);
  });
});
