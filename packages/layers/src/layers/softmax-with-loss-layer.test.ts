import { Blob, Rng } from '@caffe-ts/blob';
import { LossParameter_NormalizationMode as NormalizationMode } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { softmaxWithLossLayerDef } from './softmax-with-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Caffe's fixture, smaller: data N×5×2×2 ~ N(0, 10²), labels in {0…4}. */
function fixture(n = 3) {
  const rng = new Rng(1701);
  const data = makeBlob([n, 5, 2, 2], { std: 10, rng });
  const label = makeBlob([n, 1, 2, 2], { filler: Array.from({ length: n * 4 }, () => rng.int(5)) });
  return { data, label };
}

function lossOf(props: Record<string, unknown>, data: Blob, label: Blob): number {
  const layer = createLayer(softmaxWithLossLayerDef, props);
  const top = f64();
  layer.setUp([data, label], [top]);
  const weighted = layer.forward([data, label], [top]);
  expect(weighted).toBeCloseTo(top.cpuData()[0]! * (layer.lossWeight(0) || 0), 10);
  return top.cpuData()[0]!;
}

describe('SoftmaxWithLoss', () => {
  it('forwards −Σ log softmax[label] / N (hand-computed)', () => {
    const data = makeBlob([2, 3], { filler: [1, 2, 3, 0, 0, Math.log(2)] });
    const label = makeBlob([2], { filler: [2, 0] });
    const e = Math.exp(1) + Math.exp(2) + Math.exp(3);
    const expected = (-Math.log(Math.exp(3) / e) - Math.log(1 / 4)) / 2;
    expect(lossOf({}, data, label)).toBeCloseTo(expected, 12);
    // loss_weight defaults to 1 and scales the returned loss.
    const layer = createLayer(softmaxWithLossLayerDef, { loss_weight: [3] });
    const top = f64();
    layer.setUp([data, label], [top]);
    expect(layer.forward([data, label], [top])).toBeCloseTo(3 * expected, 12);
  });

  it('normalizes by VALID (default), FULL, BATCH_SIZE, NONE and legacy normalize:false', () => {
    const data = makeBlob([2, 3, 2]);
    const label = makeBlob([2, 1, 2], { filler: [0, 1, 2, 1] });
    const none = lossOf({ loss_param: { normalization: NormalizationMode.NONE } }, data, label);
    expect(lossOf({}, data, label)).toBeCloseTo(none / 4, 12);
    expect(lossOf({ loss_param: { normalization: NormalizationMode.FULL } }, data, label)).toBeCloseTo(none / 4, 12);
    expect(lossOf({ loss_param: { normalization: NormalizationMode.BATCH_SIZE } }, data, label)).toBeCloseTo(none / 2, 12);
    expect(lossOf({ loss_param: { normalize: false } }, data, label)).toBeCloseTo(none / 2, 12);
    expect(lossOf({ loss_param: { normalize: true } }, data, label)).toBeCloseTo(none / 4, 12);
    // With an ignored position, VALID divides by the 3 kept positions and FULL still by 4.
    const ignoredNone = lossOf({ loss_param: { normalization: NormalizationMode.NONE, ignore_label: 1 } }, data, label);
    expect(lossOf({ loss_param: { ignore_label: 1 } }, data, label)).toBeCloseTo(ignoredNone / 2, 12);
    expect(lossOf({ loss_param: { ignore_label: 1, normalization: NormalizationMode.FULL } }, data, label)).toBeCloseTo(ignoredNone / 4, 12);
  });

  it('counts each label all but once when each is ignored in turn (Caffe TestForwardIgnoreLabel)', () => {
    const { data, label } = fixture();
    const full = lossOf({ loss_param: { normalize: false } }, data, label);
    let accum = 0;
    for (let l = 0; l < 5; l++) accum += lossOf({ loss_param: { normalize: false, ignore_label: l } }, data, label);
    expect(Math.abs(4 * full - accum)).toBeLessThan(1e-4);
  });

  it('exposes the probabilities as an optional second top', () => {
    const data = makeBlob([2, 3], { filler: [0, 0, 0, 0, Math.log(2), Math.log(5)] });
    const label = makeBlob([2], { filler: [0, 1] });
    const layer = createLayer(softmaxWithLossLayerDef);
    const [loss, prob] = [f64(), f64()];
    layer.setUp([data, label], [loss, prob]);
    layer.forward([data, label], [loss, prob]);
    expect(prob.shape).toEqual([2, 3]);
    [1 / 3, 1 / 3, 1 / 3, 0.125, 0.25, 0.625].forEach((v, i) => expect(blobValues(prob)[i]).toBeCloseTo(v, 12));
    expect(layer.lossWeight(1)).toBe(0);
  });

  it('passes the gradient checks of Caffe (1e-2, 1e-2, 1701; bottom 0 only)', () => {
    const checker = new GradientChecker(1e-2, 1e-2, { seed: 1701 });
    const cases: Record<string, unknown>[] = [
      { loss_weight: [3] },
      { loss_param: { ignore_label: 0 } },
      { loss_param: { normalize: false } },
      { softmax_param: { axis: 2 }, loss_param: { normalization: NormalizationMode.FULL } },
    ];
    for (const props of cases) {
      const rng = new Rng(7);
      const data = makeBlob([2, 3, 4], { rng, std: 2 });
      // axis 1: labels 2×4 in {0,1,2}; axis 2: labels 2×3 in {0…3}.
      const axis2 = (props.softmax_param as { axis?: number } | undefined)?.axis === 2;
      const label = axis2
        ? makeBlob([2, 3], { filler: Array.from({ length: 6 }, () => rng.int(4)) })
        : makeBlob([2, 1, 4], { filler: Array.from({ length: 8 }, () => rng.int(3)) });
      checker.checkGradientExhaustive(createLayer(softmaxWithLossLayerDef, props), [data, label], [f64()], 0);
    }
    const { data, label } = fixture(2);
    checker.checkGradientExhaustive(createLayer(softmaxWithLossLayerDef, { loss_weight: [3] }), [data, label], [f64()], 0);
  });

  it('refuses to backpropagate to the labels and is not forced into them', () => {
    const { data, label } = fixture(1);
    const layer = createLayer(softmaxWithLossLayerDef, { name: 'loss' });
    const top = f64();
    layer.setUp([data, label], [top]);
    layer.forward([data, label], [top]);
    expect(() => layer.backward([top], [true, true], [data, label])).toThrow(
      "SoftmaxWithLoss layer 'loss': SoftmaxWithLoss Layer cannot backpropagate to label inputs.",
    );
    expect(layer.allowForceBackward(0)).toBe(true);
    expect(layer.allowForceBackward(1)).toBe(false);
  });

  it('checks the label count, label range and blob counts', () => {
    const layer = createLayer(softmaxWithLossLayerDef, { name: 'loss' });
    expect(() => layer.setUp([makeBlob([2, 3, 2]), makeBlob([2, 3])], [f64()])).toThrow(
      "SoftmaxWithLoss layer 'loss': Number of labels must match number of predictions; e.g., if softmax axis == 1 and prediction shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in {0, 1, ..., C-1}.",
    );
    expect(() => layer.setUp([makeBlob([2, 3]), makeBlob([3])], [f64()])).toThrow(
      'The data and label should have the same first dimension (data 2 3 (6), label 3 (3)).',
    );
    const bad = createLayer(softmaxWithLossLayerDef, { name: 'loss' });
    const [data, label, top] = [makeBlob([1, 3]), makeBlob([1], { filler: [3] }), f64()];
    bad.setUp([data, label], [top]);
    expect(() => bad.forward([data, label], [top])).toThrow("SoftmaxWithLoss layer 'loss': label 3 in bottom 1 (batch item 0) is outside the valid range [0, 2] (3 classes)");
    expect(() => createLayer(softmaxWithLossLayerDef, { name: 'loss' }).setUp([makeBlob([1, 3])], [f64()])).toThrow(
      "SoftmaxWithLoss layer 'loss': SoftmaxWithLoss Layer takes 2 bottom blob(s) as input (got 1).",
    );
    expect(() =>
      createLayer(softmaxWithLossLayerDef, { name: 'loss' }).setUp([makeBlob([1, 3]), makeBlob([1], { filler: 0 })], [f64(), f64(), f64()]),
    ).toThrow("SoftmaxWithLoss layer 'loss': SoftmaxWithLoss Layer produces at most 2 top blob(s) as output (got 3).");
  });
});
