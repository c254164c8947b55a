import { Blob, fillBlob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { multinomialLogisticLossLayerDef } from './multinomial-logistic-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Caffe's fixture, smaller: rows of positive values summing to 1, labels in {0…4}. */
function fixture(num = 4) {
  const rng = new Rng(1701);
  const data = new Blob([num, 5, 1, 1], { dtype: 'float64' });
  fillBlob(data, { type: 'positive_unitball' }, rng);
  const label = makeBlob([num, 1, 1, 1], { filler: Array.from({ length: num }, () => rng.int(5)) });
  return { data, label };
}

describe('MultinomialLogisticLoss', () => {
  it('forwards −mean log p[label], clamping p at 1e-20', () => {
    const data = makeBlob([3, 2], { filler: [0.25, 0.75, 0.5, 0.5, 0, 1] });
    const label = makeBlob([3], { filler: [1, 0, 0] });
    const layer = createLayer(multinomialLogisticLossLayerDef);
    const top = f64();
    layer.setUp([data, label], [top]);
    const loss = layer.forward([data, label], [top]);
    expect(loss).toBeCloseTo((-Math.log(0.75) - Math.log(0.5) - Math.log(1e-20)) / 3, 12);
    layer.backward([top], [true, false], [data, label]);
    expect(blobValues(data, 'diff')).toEqual([0, -1 / 3 / 0.75, -1 / 3 / 0.5, 0, -1 / 3 / 1e-20, 0]);
  });

  it('passes the gradient check of Caffe (1e-2, 2e-2, 1701, kink 0 ± 0.05)', () => {
    const { data, label } = fixture();
    new GradientChecker(1e-2, 2e-2, { seed: 1701, kink: 0, kinkRange: 0.05 }).checkGradientExhaustive(
      createLayer(multinomialLogisticLossLayerDef),
      [data, label],
      [f64()],
      0,
    );
  });

  it('checks the label shape and range and refuses backward into the labels', () => {
    const { data, label } = fixture(2);
    const layer = createLayer(multinomialLogisticLossLayerDef, { name: 'mlr' });
    const top = f64();
    expect(() => layer.setUp([data, makeBlob([2, 2])], [top])).toThrow(
      "MultinomialLogisticLoss layer 'mlr': labels must have shape N×1×1×1, one per item (got 2 2 (4))",
    );
    const bad = makeBlob([2, 1], { filler: [0, -1] });
    layer.setUp([data, bad], [top]);
    expect(() => layer.forward([data, bad], [top])).toThrow("MultinomialLogisticLoss layer 'mlr': label -1 in bottom 1 (batch item 1) is outside the valid range [0, 4] (5 classes)");
    layer.forward([data, label], [top]);
    expect(() => layer.backward([top], [true, true], [data, label])).toThrow(
      "MultinomialLogisticLoss layer 'mlr': MultinomialLogisticLoss Layer cannot backpropagate to label inputs.",
    );
  });
});
