import { Blob, Rng } from '@caffe-ts/blob';
import { LossParameter_NormalizationMode as NormalizationMode } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { sigmoidCrossEntropyLossLayerDef } from './sigmoid-cross-entropy-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Caffe's naive reference: −Σ [t·log σ + (1 − t)·log(1 − σ)], guarding log 0 for 0/1 targets. */
function reference(x: ArrayLike<number>, t: ArrayLike<number>, ignore?: number): { sum: number; valid: number } {
  let sum = 0;
  let valid = 0;
  for (let i = 0; i < x.length; i++) {
    if (ignore !== undefined && Math.trunc(t[i]!) === ignore) continue;
    const p = 1 / (1 + Math.exp(-x[i]!));
    sum -= t[i]! * Math.log(p + (t[i] === 0 ? 1 : 0));
    sum -= (1 - t[i]!) * Math.log(1 - p + (t[i] === 1 ? 1 : 0));
    valid++;
  }
  return { sum, valid };
}

function run(props: Record<string, unknown>, x: Blob, t: Blob): { loss: number; weighted: number } {
  const layer = createLayer(sigmoidCrossEntropyLossLayerDef, props);
  const top = f64();
  layer.setUp([x, t], [top]);
  const weighted = layer.forward([x, t], [top]);
  return { loss: top.cpuData()[0]!, weighted };
}

describe('SigmoidCrossEntropyLoss', () => {
  it('matches the naive reference, divided by the batch size by default (Caffe TestSigmoidCrossEntropyLoss)', () => {
    const rng = new Rng(1701);
    for (let trial = 0; trial < 5; trial++) {
      const x = makeBlob([10, 5, 1, 1], { rng });
      const t = makeBlob([10, 5, 1, 1], { filler: 'uniform', rng });
      const { loss, weighted } = run({ loss_weight: [3.7] }, x, t);
      const ref = reference(x.cpuData(), t.cpuData()).sum / 10;
      expect(loss).toBeCloseTo(ref, 10);
      expect(weighted).toBeCloseTo(Math.fround(3.7) * ref, 10);
    }
  });

  it('is hand-computable and stays finite for large scores', () => {
    const x = makeBlob([1, 3], { filler: [0, 800, -800] });
    const t = makeBlob([1, 3], { filler: [1, 0, 0] });
    // log 2 for x = 0; x = 800 with target 0 costs 800; x = −800 with target 0 costs ~0.
    expect(run({}, x, t).loss).toBeCloseTo(Math.log(2) + 800, 10);
  });

  it('normalizes by BATCH_SIZE (default), VALID (also normalize: true), FULL and NONE', () => {
    const rng = new Rng(5);
    const x = makeBlob([2, 3, 2], { rng });
    const t = makeBlob([2, 3, 2], { filler: [1, 0, -1, 1, 0, 0, 1, -1, 1, 0, 1, 0] });
    const none = run({ loss_param: { normalization: NormalizationMode.NONE } }, x, t).loss;
    expect(none).toBeCloseTo(reference(x.cpuData(), t.cpuData()).sum, 10);
    expect(run({}, x, t).loss).toBeCloseTo(none / 2, 12);
    expect(run({ loss_param: { normalize: true } }, x, t).loss).toBeCloseTo(none / 12, 12);
    expect(run({ loss_param: { normalize: false } }, x, t).loss).toBeCloseTo(none / 2, 12);
    expect(run({ loss_param: { normalization: NormalizationMode.FULL } }, x, t).loss).toBeCloseTo(none / 12, 12);
    expect(run({ loss_param: { normalization: NormalizationMode.VALID } }, x, t).loss).toBeCloseTo(none / 12, 12);
    // ignore_label −1 drops the two −1 targets: VALID divides by the 10 kept ones.
    const kept = reference(x.cpuData(), t.cpuData(), -1);
    expect(kept.valid).toBe(10);
    expect(run({ loss_param: { ignore_label: -1, normalization: NormalizationMode.VALID } }, x, t).loss).toBeCloseTo(kept.sum / 10, 12);
    expect(run({ loss_param: { ignore_label: -1 } }, x, t).loss).toBeCloseTo(kept.sum / 2, 12);
  });

  it('gives ignored targets a zero gradient and the others a non-zero one (Caffe TestIgnoreGradient)', () => {
    const x = makeBlob([10, 5, 1, 1]);
    const t = makeBlob([10, 5, 1, 1], { filler: 'uniform' });
    t.mutableCpuData().fill(-1, 0, 25);
    const layer = createLayer(sigmoidCrossEntropyLossLayerDef, { loss_param: { ignore_label: -1 } });
    const top = f64();
    layer.setUp([x, t], [top]);
    layer.forward([x, t], [top]);
    layer.backward([top], [true, false], [x, t]);
    const dx = blobValues(x, 'diff');
    for (let i = 0; i < 25; i++) {
      expect(dx[i]).toBe(0);
      expect(dx[i + 25]).not.toBe(0);
    }
  });

  it('backpropagates (σ(x) − t)·w / normalizer', () => {
    const x = makeBlob([2, 2], { filler: [0, Math.log(3), -1, 2] });
    const t = makeBlob([2, 2], { filler: [1, 0, 0.5, 1] });
    const layer = createLayer(sigmoidCrossEntropyLossLayerDef, { loss_weight: [2] });
    const top = f64();
    layer.setUp([x, t], [top]);
    layer.forward([x, t], [top]);
    layer.backward([top], [true, false], [x, t]);
    const s = (v: number) => 1 / (1 + Math.exp(-v));
    const expected = [s(0) - 1, 0.75, s(-1) - 0.5, s(2) - 1].map((v) => v * (2 / 2));
    blobValues(x, 'diff').forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 12));
  });

  it('passes the gradient checks of Caffe (1e-2, 1e-2, 1701; loss_weight 3.7)', () => {
    const checker = new GradientChecker(1e-2, 1e-2, { seed: 1701 });
    const rng = new Rng(3);
    const x = makeBlob([4, 5, 1, 1], { rng });
    const t = makeBlob([4, 5, 1, 1], { filler: 'uniform', rng });
    checker.checkGradientExhaustive(createLayer(sigmoidCrossEntropyLossLayerDef, { loss_weight: [3.7] }), [x, t], [f64()], 0);
    t.mutableCpuData().fill(-1, 0, 6);
    checker.checkGradientExhaustive(
      createLayer(sigmoidCrossEntropyLossLayerDef, { loss_param: { ignore_label: -1, normalization: NormalizationMode.VALID } }),
      [x, t],
      [f64()],
      0,
    );
  });

  it('checks counts and refuses to backpropagate to the targets', () => {
    const layer = createLayer(sigmoidCrossEntropyLossLayerDef, { name: 'loss' });
    expect(() => layer.setUp([makeBlob([2, 3]), makeBlob([2, 2])], [f64()])).toThrow(
      "SigmoidCrossEntropyLoss layer 'loss': SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count (scores 2 3 (6), targets 2 2 (4)).",
    );
    const [x, t, top] = [makeBlob([2, 3]), makeBlob([2, 3], { filler: 'uniform' }), f64()];
    layer.setUp([x, t], [top]);
    layer.forward([x, t], [top]);
    expect(() => layer.backward([top], [true, true], [x, t])).toThrow(
      "SigmoidCrossEntropyLoss layer 'loss': SigmoidCrossEntropyLoss Layer cannot backpropagate to label inputs.",
    );
    expect(layer.allowForceBackward(1)).toBe(false);
    expect(layer.lossWeight(0)).toBe(1);
  });
});
