import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { MVNLayer, mvnLayerDef } from './mvn-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];
const mvn = (mvn_param: Record<string, unknown> = {}) => createLayer<MVNLayer>(mvnLayerDef, { name: 'mvn1', mvn_param });

function forward(layer: MVNLayer, bottom: Blob, top: Blob = f64()): Blob {
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

/** Mean and E[y²] of each consecutive group of `size` values. */
function groupMoments(values: number[], size: number): { mean: number; meanSq: number }[] {
  const out: { mean: number; meanSq: number }[] = [];
  for (let g = 0; g < values.length; g += size) {
    const xs = values.slice(g, g + size);
    out.push({ mean: xs.reduce((a, b) => a + b, 0) / size, meanSq: xs.reduce((a, b) => a + b * b, 0) / size });
  }
  return out;
}

describe('MVN', () => {
  it('defaults: normalize_variance true, across_channels false, eps 1e-9 (also without mvn_param)', () => {
    const p = mvn().param.mvn_param!;
    expect([p.normalize_variance, p.across_channels, p.eps]).toEqual([true, false, Math.fround(1e-9)]);
    const bare = createLayer<MVNLayer>(mvnLayerDef);
    expect(bare.param.mvn_param).toBeNull();
    const top = forward(bare, makeBlob([1, 1, 2], { filler: [1, 3] }));
    blobValues(top).forEach((v, i) => expect(v).toBeCloseTo([-1, 1][i]! / (1 + 1e-9), 12));
  });

  it('gives each (n, c) mean 0 and variance 1 within 0.001 (Caffe TestForward)', () => {
    const top = forward(mvn(), makeBlob(SHAPE));
    for (const { mean, meanSq } of groupMoments(blobValues(top), 20)) {
      expect(Math.abs(mean)).toBeLessThan(0.001);
      expect(Math.abs(meanSq - 1)).toBeLessThan(0.001);
    }
  });

  it('only subtracts the mean with normalize_variance false (Caffe TestForwardMeanOnly)', () => {
    const bottom = makeBlob(SHAPE, { mean: 2, std: 3 });
    const top = forward(mvn({ normalize_variance: false }), bottom);
    const x = blobValues(bottom);
    const means = groupMoments(x, 20).map((g) => g.mean);
    blobValues(top).forEach((y, k) => expect(y).toBeCloseTo(x[k]! - means[Math.floor(k / 20)]!, 13));
    for (const { mean } of groupMoments(blobValues(top), 20)) expect(Math.abs(mean)).toBeLessThan(0.001);
  });

  it('normalises over all of C×H×W per sample with across_channels (Caffe TestForwardAcrossChannels)', () => {
    const top = forward(mvn({ across_channels: true }), makeBlob(SHAPE));
    const groups = groupMoments(blobValues(top), 60);
    expect(groups).toHaveLength(2);
    for (const { mean, meanSq } of groups) {
      expect(Math.abs(mean)).toBeLessThan(0.001);
      expect(Math.abs(meanSq - 1)).toBeLessThan(0.001);
    }
  });

  it('computes (x − mean) / (std + eps) with eps added to the standard deviation', () => {
    const layer = mvn({ eps: 0.5 });
    const top = forward(layer, makeBlob([1, 1, 4], { filler: [1, 2, 3, 6] }));
    // mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5
    const sd = Math.sqrt(3.5) + 0.5;
    blobValues(top).forEach((y, i) => expect(y).toBeCloseTo(([1, 2, 3, 6][i]! - 3) / sd, 14));
  });

  it("reshapes the top to Caffe's legacy 4-D shape and rejects bottoms with more than 4 axes", () => {
    const top = forward(mvn(), makeBlob([2, 3]));
    expect(top.shape).toEqual([2, 3, 1, 1]);
    // A single value per group normalises to 0.
    expect(blobValues(top)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(() => forward(mvn(), makeBlob([1, 1, 1, 1, 2]))).toThrow(
      "MVN layer 'mvn1': Cannot use legacy accessors on Blobs with > 4 axes (bottom[0] shape 1 1 1 1 2 (2)).",
    );
  });

  it('backward in place equals out of place', () => {
    for (const props of [{}, { normalize_variance: false }, { across_channels: true }]) {
      const dy = makeBlob(SHAPE, { rng: new Rng(6) }).cpuData();
      const run = (inPlace: boolean) => {
        const bottom = makeBlob(SHAPE);
        const top = inPlace ? bottom : f64();
        const layer = mvn(props);
        forward(layer, bottom, top);
        top.mutableCpuDiff().set(dy);
        layer.backward([top], [true], [bottom]);
        return blobValues(bottom, 'diff');
      };
      const a = run(false);
      run(true).forEach((v, i) => expect(v).toBeCloseTo(a[i]!, 13));
    }
  });

  it('passes the exhaustive gradient checks (Caffe TestGradient*: 1e-2, 1e-3)', () => {
    // Smaller than Caffe's 2×3×4×5 to keep the exhaustive checks fast.
    const shape = [2, 3, 2, 3];
    for (const props of [{}, { normalize_variance: false }, { across_channels: true }]) {
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(mvn(props), [makeBlob(shape)], [f64()]);
    }
  });

  it('runs in float32', () => {
    const layer = createLayer<MVNLayer>(mvnLayerDef, {}, { dtype: 'float32' });
    const top = new Blob([], { dtype: 'float32' });
    forward(layer, makeBlob([1, 1, 2], { dtype: 'float32', filler: [1, 3] }), top);
    expect(top.cpuData()).toBeInstanceOf(Float32Array);
    blobValues(top).forEach((v, i) => expect(v).toBeCloseTo([-1, 1][i]!, 6));
  });

  it('rejects two bottoms', () => {
    expect(() => mvn().setUp([makeBlob([2]), makeBlob([2])], [f64()])).toThrow("MVN layer 'mvn1': MVN Layer takes 1 bottom blob(s) as input (got 2).");
  });
});
