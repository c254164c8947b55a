import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { contrastiveLossLayerDef } from './contrastive-loss-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/** Caffe's fixture, smaller: pairs uniform in [−1, 1]² (distances ≈ 1, both sides of the margin), y ∈ {0, 1}. */
function fixture(num = 8) {
  const rng = new Rng(1701);
  const a = makeBlob([num, 2, 1, 1], { filler: 'uniform', min: -1, max: 1, rng });
  const b = makeBlob([num, 2, 1, 1], { filler: 'uniform', min: -1, max: 1, rng });
  const y = makeBlob([num, 1, 1, 1], { filler: Array.from({ length: num }, () => rng.int(2)) });
  return { a, b, y };
}

function reference(a: Blob, b: Blob, y: Blob, margin: number, legacy: boolean): number {
  const num = a.shape[0]!;
  const c = a.count(1);
  let loss = 0;
  for (let n = 0; n < num; n++) {
    let dsq = 0;
    for (let k = 0; k < c; k++) dsq += (a.cpuData()[n * c + k]! - b.cpuData()[n * c + k]!) ** 2;
    if (y.cpuData()[n]) loss += dsq;
    else if (legacy) loss += Math.max(margin - dsq, 0);
    else loss += Math.max(margin - Math.sqrt(dsq), 0) ** 2;
  }
  return loss / num / 2;
}

function lossOf(props: Record<string, unknown>, a: Blob, b: Blob, y: Blob): number {
  const layer = createLayer(contrastiveLossLayerDef, props);
  const top = f64();
  layer.setUp([a, b, y], [top]);
  return layer.forward([a, b, y], [top]);
}

describe('ContrastiveLoss', () => {
  it('forwards the contrastive loss, and the legacy variant (Caffe TestForward, TestForwardLegacy)', () => {
    const { a, b, y } = fixture(16);
    expect(lossOf({}, a, b, y)).toBeCloseTo(reference(a, b, y, 1, false), 12);
    expect(lossOf({ contrastive_loss_param: { legacy_version: true } }, a, b, y)).toBeCloseTo(reference(a, b, y, 1, true), 12);
    expect(lossOf({ contrastive_loss_param: { margin: 2 } }, a, b, y)).toBeCloseTo(reference(a, b, y, 2, false), 12);
    // Hand-computed: a similar pair at distance 1 and a dissimilar one at distance 0.5 (margin 1).
    const [pa, pb, py] = [makeBlob([2, 1], { filler: [0, 0] }), makeBlob([2, 1], { filler: [1, 0.5] }), makeBlob([2], { filler: [1, 0] })];
    expect(lossOf({}, pa, pb, py)).toBeCloseTo((1 + 0.25) / 4, 14);
    expect(lossOf({ contrastive_loss_param: { legacy_version: true } }, pa, pb, py)).toBeCloseTo((1 + 0.75) / 4, 14);
  });

  it('backpropagates to a and b with opposite signs, nothing past the margin, zero into y', () => {
    const a = makeBlob([3, 1], { filler: [0, 0, 0] });
    const b = makeBlob([3, 1], { filler: [1, 0.5, 3] });
    const y = makeBlob([3], { filler: [1, 0, 0] });
    const layer = createLayer(contrastiveLossLayerDef);
    const top = f64();
    layer.setUp([a, b, y], [top]);
    layer.forward([a, b, y], [top]);
    y.mutableCpuDiff().fill(9);
    layer.backward([top], [true, true, true], [a, b, y]);
    // Similar: (a − b)/N; dissimilar at d = 0.5: −(m − d)/(d + 1e-4)·(a − b)/N; at d = 3 > m: 0.
    const dis = (-(1 - 0.5) / (0.5 + 1e-4)) * (-0.5 / 3);
    const da = blobValues(a, 'diff');
    [-1 / 3, dis, 0].forEach((v, i) => expect(da[i]).toBeCloseTo(v, 14));
    blobValues(b, 'diff').forEach((v, i) => expect(v).toBeCloseTo(-da[i]!, 14));
    expect(blobValues(y, 'diff')).toEqual([0, 0, 0]);
    expect(layer.allowForceBackward(1)).toBe(true);
    expect(layer.allowForceBackward(2)).toBe(false);
  });

  it('passes the gradient checks of Caffe (1e-2, 1e-2, 1701) for a and b, legacy too', () => {
    const { a, b, y } = fixture();
    const checker = new GradientChecker(1e-2, 1e-2, { seed: 1701 });
    for (const props of [{}, { contrastive_loss_param: { legacy_version: true } }]) {
      checker.checkGradientExhaustive(createLayer(contrastiveLossLayerDef, props), [a, b, y], [f64()], 0);
      checker.checkGradientExhaustive(createLayer(contrastiveLossLayerDef, props), [a, b, y], [f64()], 1);
    }
  });

  it('defaults margin 1 and legacy off; checks shapes and blob counts', () => {
    const { a, b, y } = fixture(4);
    expect(lossOf({ contrastive_loss_param: {} }, a, b, y)).toBeCloseTo(reference(a, b, y, 1, false), 14);
    const layer = createLayer(contrastiveLossLayerDef, { name: 'pair' });
    expect(() => layer.setUp([a, makeBlob([4, 3, 1, 1]), y], [f64()])).toThrow(
      "ContrastiveLoss layer 'pair': bottoms 0 and 1 must have the same channels (got 4 2 1 1 (8) and 4 3 1 1 (12))",
    );
    expect(() => layer.setUp([makeBlob([4, 2, 2, 1]), makeBlob([4, 2, 2, 1]), y], [f64()])).toThrow(
      "ContrastiveLoss layer 'pair': bottoms 0 and 1 must have shape N×C×1×1 (got 4 2 2 1 (16) and 4 2 2 1 (16))",
    );
    expect(() => layer.setUp([a, b, makeBlob([4, 2])], [f64()])).toThrow(
      "ContrastiveLoss layer 'pair': bottom 2 (similarity) must have shape N×1×1×1 with N = 4 (got 4 2 (8))",
    );
    expect(() => layer.setUp([a, b], [f64()])).toThrow("ContrastiveLoss layer 'pair': ContrastiveLoss Layer takes 3 bottom blob(s) as input (got 2).");
  });
});
