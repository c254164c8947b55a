import { Blob, Rng } from '@caffe-ts/blob';
import { HingeLossParameter_Norm as HingeNorm } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { hingeLossLayerDef } from './hinge-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Naive one-vs-all hinge loss. */
function reference(x: ArrayLike<number>, labels: ArrayLike<number>, num: number, p: 1 | 2): number {
  const dim = x.length / num;
  let loss = 0;
  for (let n = 0; n < num; n++) {
    for (let k = 0; k < dim; k++) {
      const delta = k === labels[n] ? 1 : -1;
      loss += Math.max(0, 1 - delta * x[n * dim + k]!) ** p;
    }
  }
  return loss / num;
}

/** Caffe's fixture, smaller: scores ~ N(0, 10²), labels in {0…4}. */
function fixture(num = 4) {
  const rng = new Rng(1701);
  const data = makeBlob([num, 5, 1, 1], { rng, std: 10 });
  const label = makeBlob([num, 1, 1, 1], { filler: Array.from({ length: num }, () => rng.int(5)) });
  return { data, label };
}

function lossOf(props: Record<string, unknown>, data: Blob, label: Blob): number {
  const layer = createLayer(hingeLossLayerDef, props);
  const top = f64();
  layer.setUp([data, label], [top]);
  return layer.forward([data, label], [top]);
}

describe('HingeLoss', () => {
  it('forwards the L1 (default) and L2 one-vs-all hinge loss', () => {
    const data = makeBlob([2, 3], { filler: [0.5, -2, 0.25, 2, 0, -0.5] });
    const label = makeBlob([2], { filler: [0, 2] });
    // Row 0: (1−0.5) + 0 + 1.25 = 1.75; row 1: 3 + 1 + 1.5 = 5.5.
    expect(lossOf({}, data, label)).toBeCloseTo((1.75 + 5.5) / 2, 14);
    expect(lossOf({ hinge_loss_param: { norm: HingeNorm.L2 } }, data, label)).toBeCloseTo((0.25 + 1.5625 + 9 + 1 + 2.25) / 2, 14);
    const { data: d, label: l } = fixture(6);
    expect(lossOf({}, d, l)).toBeCloseTo(reference(d.cpuData(), l.cpuData(), 6, 1), 10);
    expect(lossOf({ hinge_loss_param: { norm: HingeNorm.L2 } }, d, l)).toBeCloseTo(reference(d.cpuData(), l.cpuData(), 6, 2), 10);
  });

  it('leaves the bottom diff alone in forward and writes it in backward', () => {
    const data = makeBlob([1, 3], { filler: [0.5, -2, 0.25] });
    const label = makeBlob([1], { filler: [0] });
    const layer = createLayer(hingeLossLayerDef);
    const top = f64();
    layer.setUp([data, label], [top]);
    data.mutableCpuDiff().fill(7);
    layer.forward([data, label], [top]);
    expect(blobValues(data, 'diff')).toEqual([7, 7, 7]);
    layer.backward([top], [true, false], [data, label]);
    expect(blobValues(data, 'diff')).toEqual([-1, 0, 1]);
  });

  it('passes the gradient checks of Caffe (L1: 1e-2, 2e-3, kink 1 ± 0.01; L2: 1e-2, 1e-2)', () => {
    const { data, label } = fixture();
    new GradientChecker(1e-2, 2e-3, { seed: 1701, kink: 1, kinkRange: 0.01 }).checkGradientExhaustive(
      createLayer(hingeLossLayerDef),
      [data, label],
      [f64()],
      0,
    );
    new GradientChecker(1e-2, 1e-2, { seed: 1701 }).checkGradientExhaustive(
      createLayer(hingeLossLayerDef, { hinge_loss_param: { norm: HingeNorm.L2 } }),
      [data, label],
      [f64()],
      0,
    );
  });

  it('defaults to L1, rejects bad labels and backward into the labels', () => {
    const { data, label } = fixture(2);
    expect(lossOf({ hinge_loss_param: {} }, data, label)).toBeCloseTo(lossOf({ hinge_loss_param: { norm: HingeNorm.L1 } }, data, label), 14);
    const layer = createLayer(hingeLossLayerDef, { name: 'hinge' });
    const top = f64();
    const bad = makeBlob([2, 1, 1, 1], { filler: [1, 5] });
    layer.setUp([data, bad], [top]);
    expect(() => layer.forward([data, bad], [top])).toThrow("HingeLoss layer 'hinge': label 5 in bottom 1 (batch item 1) is outside the valid range [0, 4] (5 classes)");
    layer.forward([data, label], [top]);
    expect(() => layer.backward([top], [true, true], [data, label])).toThrow(
      "HingeLoss layer 'hinge': HingeLoss Layer cannot backpropagate to label inputs.",
    );
  });
});
