import { Blob, Rng } from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, layerParameter, makeBlob } from '../testing.js';
import { BatchNormLayer, batchNormLayerDef } from './batch-norm-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [5, 2, 3, 4];

function bn(props: Record<string, unknown> = {}, phase?: Phase): BatchNormLayer {
  return createLayer<BatchNormLayer>(batchNormLayerDef, { name: 'bn1', ...props }, phase === undefined ? {} : { phase });
}

/** Per-channel mean and biased variance of an N×C×… blob, computed independently. */
function channelStats(values: number[], shape: number[]): { mean: number[]; variance: number[] } {
  const [num, channels] = [shape[0]!, shape[1]!];
  const spatial = values.length / (num * channels);
  const mean: number[] = [];
  const variance: number[] = [];
  for (let c = 0; c < channels; c++) {
    const xs: number[] = [];
    for (let n = 0; n < num; n++) for (let s = 0; s < spatial; s++) xs.push(values[(n * channels + c) * spatial + s]!);
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    mean.push(m);
    variance.push(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
  }
  return { mean, variance };
}

function forward(layer: BatchNormLayer, bottom: Blob, top: Blob = f64()): Blob {
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

describe('BatchNorm', () => {
  it('defaults: batch statistics in TRAIN, global in TEST; fraction 0.999, eps 1e-5; three zeroed blobs', () => {
    const train = bn({}, Phase.TRAIN);
    train.setUp([makeBlob(SHAPE)], [f64()]);
    expect(train.useGlobalStats).toBe(false);
    expect(train.movingAverageFraction).toBe(Math.fround(0.999));
    expect(train.eps).toBe(Math.fround(1e-5));
    expect(train.blobs.map((b) => b.shape)).toEqual([[2], [2], [1]]);
    expect(train.blobs.flatMap((b) => blobValues(b))).toEqual([0, 0, 0, 0, 0]);

    const test = bn({}, Phase.TEST);
    test.setUp([makeBlob(SHAPE)], [f64()]);
    expect(test.useGlobalStats).toBe(true);
    // The layer parameter's own phase counts when the context gives none.
    const fromParam = bn({ phase: 'TEST' });
    fromParam.setUp([makeBlob(SHAPE)], [f64()]);
    expect(fromParam.useGlobalStats).toBe(true);
    // An explicit use_global_stats wins over the phase.
    const explicit = bn({ batch_norm_param: { use_global_stats: false } }, Phase.TEST);
    explicit.setUp([makeBlob(SHAPE)], [f64()]);
    expect(explicit.useGlobalStats).toBe(false);
  });

  it('masks its statistics with lr_mult 0 ParamSpecs on its own copy of the parameter', () => {
    const param = layerParameter({ name: 'bn1', type: 'BatchNorm' });
    const layer = batchNormLayerDef.create(param, { dtype: 'float64' });
    layer.setUp([makeBlob(SHAPE)], [f64()]);
    expect(layer.param.param.map((s) => s.lr_mult)).toEqual([0, 0, 0]);
    expect(param.param).toHaveLength(0);
    // Given specs with lr_mult 0 are accepted as they are.
    const given = bn({ param: [{ lr_mult: 0 }, { lr_mult: 0, decay_mult: 0 }] });
    given.setUp([makeBlob(SHAPE)], [f64()]);
    expect(given.param.param.map((s) => [s.lr_mult, s.decay_mult])).toEqual([
      [0, 1],
      [0, 0],
      [0, 1],
    ]);
  });

  it('normalises each channel to mean 0 ± 0.001 and variance 1 ± 0.001 (Caffe TestForward, spec §2.3 case 11), also in place', () => {
    for (const inPlace of [false, true]) {
      const bottom = makeBlob(SHAPE);
      const top = forward(bn(), bottom, inPlace ? bottom : f64());
      const { mean, variance } = channelStats(blobValues(top), SHAPE);
      for (let c = 0; c < 2; c++) {
        expect(Math.abs(mean[c]!)).toBeLessThan(0.001);
        // Caffe's test: E[y²] within 0.001 of 1.
        expect(Math.abs(variance[c]! + mean[c]! ** 2 - 1)).toBeLessThan(0.001);
      }
    }
  });

  it('forwards (x − μ)/√(σ² + eps) with the batch statistics, exactly', () => {
    const bottom = makeBlob([2, 2, 3], { rng: new Rng(3) });
    const layer = bn();
    const top = forward(layer, bottom);
    const { mean, variance } = channelStats(blobValues(bottom), [2, 2, 3]);
    const x = blobValues(bottom);
    blobValues(top).forEach((y, k) => {
      const c = Math.floor(k / 3) % 2;
      expect(y).toBeCloseTo((x[k]! - mean[c]!) / Math.sqrt(variance[c]! + layer.eps), 12);
    });
  });

  it("updates the running sums with Caffe's exact rule: s ← f·s + 1, mean ← f·mean + μ, var ← f·var + m/(m−1)·σ²", () => {
    const layer = bn();
    const b1 = makeBlob(SHAPE, { rng: new Rng(1) });
    const b2 = makeBlob(SHAPE, { rng: new Rng(2), mean: 3, std: 2 });
    const top = f64();
    forward(layer, b1, top);
    const f = layer.movingAverageFraction;
    const m = 5 * 3 * 4;
    const s1 = channelStats(blobValues(b1), SHAPE);
    expect(blobValues(layer.blobs[2]!)).toEqual([1]);
    blobValues(layer.blobs[0]!).forEach((v, c) => expect(v).toBeCloseTo(s1.mean[c]!, 13));
    blobValues(layer.blobs[1]!).forEach((v, c) => expect(v).toBeCloseTo((s1.variance[c]! * m) / (m - 1), 13));
    layer.forward([b2], [top]);
    const s2 = channelStats(blobValues(b2), SHAPE);
    expect(blobValues(layer.blobs[2]!)).toEqual([f + 1]);
    blobValues(layer.blobs[0]!).forEach((v, c) => expect(v).toBeCloseTo(f * s1.mean[c]! + s2.mean[c]!, 12));
    blobValues(layer.blobs[1]!).forEach((v, c) => expect(v).toBeCloseTo(((f * s1.variance[c]! + s2.variance[c]!) * m) / (m - 1), 12));
  });

  it('global statistics: μ = mean/s, σ² = var/s, the blobs untouched; s = 0 means μ = σ² = 0', () => {
    const layer = bn({ batch_norm_param: { use_global_stats: true } });
    const bottom = makeBlob([1, 2, 2], { filler: [1, 2, 3, 4] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.blobs[0]!.mutableCpuData().set([4, 8]);
    layer.blobs[1]!.mutableCpuData().set([2, 18]);
    layer.blobs[2]!.mutableCpuData().set([2]);
    layer.forward([bottom], [top]);
    const e = layer.eps;
    const y = blobValues(top);
    [(1 - 2) / Math.sqrt(1 + e), (2 - 2) / Math.sqrt(1 + e), (3 - 4) / Math.sqrt(9 + e), (4 - 4) / Math.sqrt(9 + e)].forEach((v, i) =>
      expect(y[i]).toBeCloseTo(v, 14),
    );
    expect(blobValues(layer.blobs[2]!)).toEqual([2]);
    expect(blobValues(layer.blobs[0]!)).toEqual([4, 8]);
    layer.blobs[2]!.mutableCpuData().set([0]);
    layer.forward([bottom], [top]);
    blobValues(top).forEach((v, i) => expect(v).toBeCloseTo((i + 1) / Math.sqrt(e), 8));
  });

  it('global statistics backward is dy/√(σ² + eps), matching a finite difference', () => {
    const layer = bn({ batch_norm_param: { use_global_stats: true } });
    const bottom = makeBlob([2, 3, 2]);
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.blobs[0]!.mutableCpuData().set([0.5, -1, 2]);
    layer.blobs[1]!.mutableCpuData().set([1, 4, 0.25]);
    layer.blobs[2]!.mutableCpuData().set([1]);
    const objective = () => {
      layer.forward([bottom], [top]);
      return blobValues(top).reduce((a, v) => a + v * v, 0) / 2;
    };
    objective();
    top.mutableCpuDiff().set(top.cpuData());
    layer.backward([top], [true], [bottom]);
    const dx = blobValues(bottom, 'diff');
    const x = bottom.mutableCpuData();
    const h = 1e-2;
    for (let i = 0; i < x.length; i++) {
      const orig = x[i]!;
      x[i] = orig + h;
      const plus = objective();
      x[i] = orig - h;
      const minus = objective();
      x[i] = orig;
      const estimate = (plus - minus) / (2 * h);
      expect(Math.abs(dx[i]! - estimate)).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(dx[i]!), Math.abs(estimate), 1));
    }
  });

  it('backward in place equals out of place (the top diff is copied before the bottom diff is written)', () => {
    const dy = makeBlob(SHAPE, { rng: new Rng(4) }).cpuData();
    const run = (inPlace: boolean) => {
      const bottom = makeBlob(SHAPE);
      const top = inPlace ? bottom : f64();
      const layer = bn();
      forward(layer, bottom, top);
      top.mutableCpuDiff().set(dy);
      layer.backward([top], [true], [bottom]);
      return blobValues(bottom, 'diff');
    };
    const a = run(false);
    run(true).forEach((v, i) => expect(v).toBeCloseTo(a[i]!, 14));
  });

  it('passes the exhaustive gradient check with batch statistics (Caffe TestGradient: 1e-2, 1e-4)', () => {
    new GradientChecker(1e-2, 1e-4).checkGradientExhaustive(bn(), [makeBlob(SHAPE)], [f64()]);
  });

  it('handles a 2-D bottom (channels = axis 1, spatial 1) and runs in float32', () => {
    const layer = createLayer<BatchNormLayer>(batchNormLayerDef, {}, { dtype: 'float32' });
    const bottom = makeBlob([2, 2], { dtype: 'float32', filler: [1, 10, 3, 20] });
    const top = new Blob([], { dtype: 'float32' });
    forward(layer, bottom, top);
    const s = 1 / Math.sqrt(1 + layer.eps);
    const y = blobValues(top);
    [-s, -5 / Math.sqrt(25 + layer.eps), s, 5 / Math.sqrt(25 + layer.eps)].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 6));
    expect(layer.blobs[0]!.dtype).toBe('float32');
    expect(blobValues(layer.blobs[0]!)).toEqual([2, 15]);
  });

  it('rejects learnable statistics, a changed channel count and wrongly shaped loaded blobs', () => {
    expect(() => bn({ param: [{ lr_mult: 1 }] }).setUp([makeBlob(SHAPE)], [f64()])).toThrow(
      "BatchNorm layer 'bn1': Cannot configure batch normalization statistics as layer parameters (param 0 has lr_mult 1, expected 0).",
    );
    const layer = bn();
    layer.setUp([makeBlob(SHAPE)], [f64()]);
    expect(() => layer.forward([makeBlob([5, 3, 2])], [f64()])).toThrow(
      "BatchNorm layer 'bn1': bottom[0] has 3 channels (shape 5 3 2 (30)), but the layer was set up for 2",
    );
    const loaded = bn();
    loaded.blobs = [makeBlob([2]), makeBlob([2])];
    expect(() => loaded.setUp([makeBlob(SHAPE)], [f64()])).toThrow(
      "BatchNorm layer 'bn1': expected 3 blobs (mean [2], variance [2], scale factor [1]); got 2 with shapes (2 (2)), (2 (2))",
    );
  });
});
