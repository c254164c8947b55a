import { Blob, Rng } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { Layer, type BlobCounts } from '../layer.js';
import { blobValues, createLayer, fillGaussian, GradientChecker, layerParameter, makeBlob } from '../testing.js';

/** y = w ⊙ x + b, with learnable w and b shaped like one sample; `bug` corrupts a gradient. */
class AffineTestLayer extends Layer {
  readonly type = 'AffineTest';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
  constructor(readonly bug: 'none' | 'bottom' | 'weight' = 'none') {
    super(layerParameter({ name: 'affine', type: 'AffineTest' }), { dtype: 'float64' });
  }
  override layerSetUp(bottom: Blob[]): void {
    const inner = bottom[0]!.count(1);
    const rng = new Rng(3);
    this.blobs = [fillGaussian(this.newBlob([inner]), rng), fillGaussian(this.newBlob([inner]), rng)];
  }
  override reshape(bottom: Blob[], top: Blob[]): void {
    top[0]!.reshapeLike(bottom[0]!);
  }
  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const w = this.blobs[0]!.cpuData();
    const b = this.blobs[1]!.cpuData();
    for (let i = 0; i < x.length; i++) y[i] = w[i % w.length]! * x[i]! + b[i % w.length]!;
  }
  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const w = this.blobs[0]!.cpuData();
    const dw = this.blobs[0]!.mutableCpuDiff();
    const db = this.blobs[1]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) {
      dw[i % w.length]! += dy[i]! * x[i]! * (this.bug === 'weight' ? 1.1 : 1);
      db[i % w.length]! += dy[i]!;
    }
    if (propagateDown[0]) {
      const dx = bottom[0]!.mutableCpuDiff();
      for (let i = 0; i < x.length; i++) dx[i] = dy[i]! * w[i % w.length]! * (this.bug === 'bottom' && i === 3 ? 0.5 : 1);
    }
  }
}

/** y = x · u with u ~ U[0,1) drawn from the layer rng on every forward (stochastic). */
class NoisyScaleLayer extends Layer {
  readonly type = 'NoisyScale';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
  private mask = new Float64Array(0);
  constructor() {
    super(layerParameter({ name: 'noisy', type: 'NoisyScale' }), { dtype: 'float64', rng: new Rng(99) });
  }
  override reshape(bottom: Blob[], top: Blob[]): void {
    top[0]!.reshapeLike(bottom[0]!);
  }
  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    this.mask = Float64Array.from(x, () => this.rng.uniform());
    for (let i = 0; i < x.length; i++) y[i] = x[i]! * this.mask[i]!;
  }
  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < dy.length; i++) dx[i] = dy[i]! * this.mask[i]!;
  }
}

/** y = |x| (a kink at 0) with an analytic gradient of 0 at |x| < 0.05, wrong near the kink only. */
class SloppyAbsLayer extends Layer {
  readonly type = 'SloppyAbs';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
  constructor() {
    super(layerParameter({ name: 'abs', type: 'SloppyAbs' }), { dtype: 'float64' });
  }
  override reshape(bottom: Blob[], top: Blob[]): void {
    top[0]!.reshapeLike(bottom[0]!);
  }
  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = Math.abs(x[i]!);
  }
  protected override backwardCpu(top: Blob[], _p: boolean[], bottom: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) dx[i] = Math.abs(x[i]!) < 0.05 ? 0 : Math.sign(x[i]!) * dy[i]!;
  }
}

const shape = [2, 3, 2];

describe('GradientChecker', () => {
  it('accepts a correct layer in every mode (bottoms and params)', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    const bottom = [makeBlob(shape)];
    const top = [new Blob([], { dtype: 'float64' })];
    checker.checkGradient(new AffineTestLayer(), bottom, top);
    checker.checkGradientExhaustive(new AffineTestLayer(), bottom, top);
    checker.checkGradientExhaustive(new AffineTestLayer(), bottom, top, -2);
    checker.checkGradientExhaustive(new AffineTestLayer(), bottom, top, 0);
  });

  it('reports a wrong bottom gradient with (topId, topDataId, blobId, featId), both values and the layer', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    const run = (mode: 'single' | 'exhaustive') => () => {
      const bottom = [makeBlob(shape)];
      const top = [new Blob([], { dtype: 'float64' })];
      if (mode === 'single') checker.checkGradient(new AffineTestLayer('bottom'), bottom, top);
      else checker.checkGradientExhaustive(new AffineTestLayer('bottom'), bottom, top);
    };
    // Blobs are [weight, bias, bottom 0], so the bottom is blob 2; its element 3 is wrong.
    expect(run('single')).toThrow(/AffineTest layer 'affine'.*\(topId, topDataId, blobId, featId\)=-1,-1,2,3; computed \S+, estimated \S+/);
    expect(run('exhaustive')).toThrow(/\(topId, topDataId, blobId, featId\)=0,3,2,3;/);
  });

  it('checks param blobs unless a bottom index is chosen', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    const make = (): [Blob[], Blob[]] => [[makeBlob(shape)], [new Blob([], { dtype: 'float64' })]];
    let [bottom, top] = make();
    expect(() => checker.checkGradient(new AffineTestLayer('weight'), bottom, top)).toThrow(/blobId, featId\)=-1,-1,0,/);
    [bottom, top] = make();
    expect(() => checker.checkGradient(new AffineTestLayer('weight'), bottom, top, -2)).toThrow(/=-1,-1,0,/);
    // A param-only check never looks at the (broken) bottom gradient.
    [bottom, top] = make();
    expect(() => checker.checkGradient(new AffineTestLayer('bottom'), bottom, top, -2)).not.toThrow();
  });

  it('zeroes accumulated param diffs before each backward', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    const layer = new AffineTestLayer();
    const bottom = [makeBlob(shape)];
    const top = [new Blob([], { dtype: 'float64' })];
    layer.setUp(bottom, top);
    layer.blobs[0]!.mutableCpuDiff().fill(100);
    checker.checkGradientSingle(layer, bottom, top, -1, -1, -1);
  });

  it('reseeds the layer rng so a stochastic layer repeats', () => {
    const checker = new GradientChecker(1e-2, 1e-3, { seed: 1701 });
    checker.checkGradientExhaustive(new NoisyScaleLayer(), [makeBlob(shape)], [new Blob([], { dtype: 'float64' })]);
  });

  it('skips features inside the kink region only', () => {
    const values = [0.5, -0.7, 0.02, -0.01, 1.3, -2];
    const mk = (): [Blob[], Blob[]] => [[makeBlob([6], { filler: values })], [new Blob([], { dtype: 'float64' })]];
    let [bottom, top] = mk();
    expect(() => new GradientChecker(1e-3, 1e-3).checkGradientEltwise(new SloppyAbsLayer(), bottom, top)).toThrow(
      /=0,2,0,2;/,
    );
    [bottom, top] = mk();
    new GradientChecker(1e-3, 1e-3, { kink: 0, kinkRange: 0.05 }).checkGradientEltwise(new SloppyAbsLayer(), bottom, top);
  });

  it('restores the perturbed inputs', () => {
    const bottom = [makeBlob(shape)];
    const before = blobValues(bottom[0]!);
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(new AffineTestLayer(), bottom, [new Blob([], { dtype: 'float64' })]);
    const after = blobValues(bottom[0]!);
    after.forEach((v, i) => expect(v).toBeCloseTo(before[i]!, 12));
  });

  it('rejects element-wise mode for layers with params and bad arguments', () => {
    expect(() =>
      new GradientChecker(1e-2, 1e-3).checkGradientEltwise(new AffineTestLayer(), [makeBlob(shape)], [new Blob([], { dtype: 'float64' })]),
    ).toThrow(/element-wise mode needs a layer without params/);
    expect(() => new GradientChecker(0, 1e-3)).toThrow(/stepsize must be positive/);
    const layer = new AffineTestLayer();
    const bottom = [makeBlob(shape)];
    const top = [new Blob([], { dtype: 'float64' })];
    layer.setUp(bottom, top);
    expect(() => new GradientChecker(1e-2, 1e-3).checkGradientSingle(layer, bottom, top, 1, -1, -1)).toThrow(/checkBottom 1 out of range/);
  });
});

describe('makeBlob / createLayer', () => {
  it('fills repeatably and as asked', () => {
    expect(blobValues(makeBlob([4]))).toEqual(blobValues(makeBlob([4])));
    expect(makeBlob([2, 2]).dtype).toBe('float64');
    expect(makeBlob([3], { dtype: 'float32', filler: 2 }).cpuData()).toEqual(new Float32Array([2, 2, 2]));
    const u = blobValues(makeBlob([100], { filler: 'uniform', min: -1, max: 1, rng: new Rng(5) }));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(blobValues(makeBlob([3], { filler: [1, 2, 3] }))).toEqual([1, 2, 3]);
    expect(() => makeBlob([3], { filler: [1, 2] })).toThrow(/2 values given for shape \[3\]/);
  });

  it('builds a built-in layer from a type string with float64 and snake_case props', () => {
    const layer = createLayer('ReLU', { relu_param: { negative_slope: 0.25 } });
    expect(layer.type).toBe('ReLU');
    expect(layer.dtype).toBe('float64');
    expect(layer.name).toBe('relu');
    expect(layer.param.relu_param?.negative_slope).toBe(0.25);
    expect(() => createLayer('NoSuchLayer')).toThrow(/^Unknown layer type: NoSuchLayer \(known types: .*ReLU/);
  });
});
