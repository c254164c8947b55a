import { Blob } from '@caffe-ts/blob';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { BNMode } from '../fork-types.js';
import { registerContribSchema } from '../schema.js';
import { BN_VAR_EPS, BNLayer, bnLayerDef } from './bn-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('BN (SegNet)', () => {
  beforeAll(registerContribSchema);

  it('LEARN: batch statistics per channel, then scale and shift; tops 1 and 2 get mean and variance', () => {
    const layer = createLayer<BNLayer>(bnLayerDef, {
      bn_param: { scale_filler: { type: 'constant', value: 2 }, shift_filler: { type: 'constant', value: 0.5 } },
    });
    const x = makeBlob([2, 2, 1, 2], { filler: [1, 3, 10, 10, 5, 7, -2, 2] });
    const tops = [f64(), f64(), f64()];
    layer.setUp([x], tops);
    layer.forward([x], tops);
    expect(layer.mode).toBe(BNMode.LEARN);
    expect(layer.blobs.map((b) => b.shape)).toEqual([[1, 2, 1, 1], [1, 2, 1, 1]]);
    // Channel 0: 1 3 5 7 (mean 4, var 5); channel 1: 10 10 −2 2 (mean 5, var 27).
    expect(blobValues(tops[1]!)).toEqual([4, 5]);
    expect(blobValues(tops[2]!)).toEqual([5, 27]);
    const want = [1, 3, 10, 10, 5, 7, -2, 2].map((v, i) => {
      const c = Math.floor(i / 2) % 2;
      const [m, s2] = c === 0 ? [4, 5] : [5, 27];
      return (2 * (v - m!)) / Math.sqrt(s2! + BN_VAR_EPS) + 0.5;
    });
    blobValues(tops[0]!).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
  });

  it('INFERENCE: y = scale · x + shift', () => {
    const layer = createLayer(bnLayerDef, { bn_param: { bn_mode: 'INFERENCE' } });
    const x = makeBlob([1, 2, 1, 2], { filler: [1, 2, 3, 4] });
    const top = f64();
    layer.setUp([x], [top]);
    layer.blobs[0]!.mutableCpuData().set([2, -1]);
    layer.blobs[1]!.mutableCpuData().set([1, 0.5]);
    layer.forward([x], [top]);
    expect(blobValues(top)).toEqual([3, 5, -2.5, -3.5]);
  });

  for (const mode of ['LEARN', 'INFERENCE']) {
    it(`passes the gradient check in ${mode} mode (1e-2, 1e-3)`, () => {
      const layer = createLayer(bnLayerDef, {
        bn_param: { bn_mode: mode, scale_filler: { type: 'gaussian', mean: 1 }, shift_filler: { type: 'gaussian' } },
      });
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([2, 3, 2, 2])], [f64()]);
    });
  }

  it('checks the scale blob against the channels, naming the layer', () => {
    const layer = createLayer(bnLayerDef, { name: 'bn' });
    layer.setUp([makeBlob([1, 2, 2, 2])], [f64()]);
    expect(() => layer.forward([makeBlob([1, 3, 2, 2])], [f64()])).toThrow("BN layer 'bn': the scale has 2 channels but the input has 3.");
  });
});
