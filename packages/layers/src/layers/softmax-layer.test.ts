import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { softmaxLayerDef } from './softmax-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

describe('Softmax', () => {
  it('forwards exp(x)/Σexp(x) across channels (Caffe test_softmax_layer TestForward)', () => {
    const [n, c, h, w] = [2, 10, 2, 3];
    const bottom = makeBlob([n, c, h, w]);
    const top = f64();
    const layer = createLayer(softmaxLayerDef);
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(top.shape).toEqual([n, c, h, w]);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < h; k++) {
        for (let l = 0; l < w; l++) {
          let sum = 0;
          let expSum = 0;
          for (let j = 0; j < c; j++) {
            sum += top.cpuData()[top.offset(i, j, k, l)]!;
            expSum += Math.exp(bottom.cpuData()[bottom.offset(i, j, k, l)]!);
          }
          expect(sum).toBeGreaterThanOrEqual(0.999);
          expect(sum).toBeLessThanOrEqual(1.001);
          for (let j = 0; j < c; j++) {
            const expected = Math.exp(bottom.cpuData()[bottom.offset(i, j, k, l)]!) / expSum;
            expect(Math.abs(top.cpuData()[top.offset(i, j, k, l)]! - expected)).toBeLessThan(1e-4);
          }
        }
      }
    }
  });

  it('is stable for large inputs and honours axis', () => {
    const layer = createLayer(softmaxLayerDef, { softmax_param: { axis: -1 } });
    const bottom = makeBlob([2, 2], { filler: [1000, 1000 + Math.log(3), -1000, -1000] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    const y = blobValues(top);
    [0.25, 0.75, 0.5, 0.5].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 12));
  });

  it('passes the exhaustive gradient check (Caffe: 1e-2, 1e-3)', () => {
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(createLayer(softmaxLayerDef), [makeBlob([2, 4, 2, 1])], [f64()]);
    new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(
      createLayer(softmaxLayerDef, { softmax_param: { axis: 2 } }),
      [makeBlob([2, 2, 3])],
      [f64()],
    );
  });

  it('rejects an axis out of range and the wrong number of blobs', () => {
    const layer = createLayer(softmaxLayerDef, { name: 'prob', softmax_param: { axis: 4 } });
    expect(() => layer.setUp([makeBlob([2, 3])], [f64()])).toThrow("Softmax layer 'prob': axis 4 out of range for bottom shape 2 3 (6)");
    expect(() => createLayer(softmaxLayerDef, { name: 'prob' }).setUp([makeBlob([2, 3])], [f64(), f64()])).toThrow(
      "Softmax layer 'prob': Softmax Layer produces 1 top blob(s) as output (got 2).",
    );
  });
});
