import { Blob, Rng } from '@caffe-ts/blob';
import { EltwiseParameter_EltwiseOp as Op } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { eltwiseLayerDef } from './eltwise-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const shape = [2, 3, 2];

function forward(props: Record<string, unknown>, bottoms: Blob[]): number[] {
  const top = f64();
  const layer = createLayer(eltwiseLayerDef, props);
  layer.setUp(bottoms, [top]);
  layer.forward(bottoms, [top]);
  return blobValues(top);
}

describe('Eltwise', () => {
  const a = makeBlob([4], { filler: [1, -2, 3, 0.5] });
  const b = makeBlob([4], { filler: [2, 5, -1, 0.5] });
  const c = makeBlob([4], { filler: [-1, 0, 4, 2] });

  it('forwards SUM (default), SUM with coefficients, PROD and MAX', () => {
    expect(forward({}, [a, b, c])).toEqual([2, 3, 6, 3]);
    expect(forward({ eltwise_param: { coeff: [1, -0.5, 2] } }, [a, b, c])).toEqual([-2, -4.5, 11.5, 4.25]);
    expect(forward({ eltwise_param: { operation: Op.PROD } }, [a, b, c])).toEqual([-2, -0, -12, 0.5]);
    expect(forward({ eltwise_param: { operation: Op.MAX } }, [a, b, c])).toEqual([2, 5, 4, 2]);
  });

  it('routes the MAX gradient to the arg-max bottom only', () => {
    const layer = createLayer(eltwiseLayerDef, { eltwise_param: { operation: Op.MAX } });
    const top = f64();
    layer.setUp([a, b, c], [top]);
    layer.forward([a, b, c], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4]);
    layer.backward([top], [true, true, true], [a, b, c]);
    expect(blobValues(a, 'diff')).toEqual([0, 0, 0, 0]);
    expect(blobValues(b, 'diff')).toEqual([1, 2, 0, 0]);
    expect(blobValues(c, 'diff')).toEqual([0, 0, 3, 4]);
  });

  it('passes Caffe’s gradient checks (PROD 1e-2 1e-3, SUM/coeff 1e-2 1e-3, MAX 1e-4 1e-2 with kink)', () => {
    const bottoms = () => {
      const rng = new Rng(11);
      return [makeBlob(shape, { filler: 'uniform', min: 0.1, max: 1.2, rng }), makeBlob(shape, { filler: 'uniform', min: -1, max: 1, rng }), makeBlob(shape, { rng })];
    };
    const check = new GradientChecker(1e-2, 1e-3);
    check.checkGradientEltwise(createLayer(eltwiseLayerDef, { eltwise_param: { operation: Op.PROD } }), bottoms(), [f64()]);
    check.checkGradientEltwise(
      createLayer(eltwiseLayerDef, { eltwise_param: { operation: Op.PROD, stable_prod_grad: false } }),
      bottoms(),
      [f64()],
    );
    check.checkGradientEltwise(createLayer(eltwiseLayerDef), bottoms(), [f64()]);
    check.checkGradientEltwise(createLayer(eltwiseLayerDef, { eltwise_param: { coeff: [1, -0.5, 2] } }), bottoms(), [f64()]);
    // MAX: distinct inputs keep the arg-max away from ties under the 1e-4 step.
    const distinct = (offset: number) => makeBlob(shape, { filler: Array.from({ length: 12 }, (_, i) => ((i * 7 + offset * 5) % 12) / 4 - 1.4) });
    new GradientChecker(1e-4, 1e-2).checkGradientEltwise(
      createLayer(eltwiseLayerDef, { eltwise_param: { operation: Op.MAX } }),
      [distinct(0), distinct(1), distinct(2)],
      [f64()],
    );
  });

  it('checks shapes and coefficient rules with Caffe’s messages', () => {
    expect(() => createLayer(eltwiseLayerDef, { name: 'e' }).setUp([makeBlob([2, 3]), makeBlob([3, 2])], [f64()])).toThrow(
      "Eltwise layer 'e': bottom[0]: 2 3 (6), bottom[1]: 3 2 (6)",
    );
    expect(() =>
      createLayer(eltwiseLayerDef, { name: 'e', eltwise_param: { coeff: [1] } }).setUp([makeBlob([2]), makeBlob([2])], [f64()]),
    ).toThrow("Eltwise layer 'e': Eltwise Layer takes one coefficient per bottom blob (1 coefficients, 2 bottoms).");
    expect(() =>
      createLayer(eltwiseLayerDef, { name: 'e', eltwise_param: { operation: Op.PROD, coeff: [1, 2] } }).setUp(
        [makeBlob([2]), makeBlob([2])],
        [f64()],
      ),
    ).toThrow("Eltwise layer 'e': Eltwise layer only takes coefficients for summation.");
    expect(() => createLayer(eltwiseLayerDef, { name: 'e' }).setUp([makeBlob([2])], [f64()])).toThrow(
      "Eltwise layer 'e': Eltwise Layer takes at least 2 bottom blob(s) as input (got 1).",
    );
  });

  it('SUMs two, three and four bottoms in float64 and rounds once, also in place on a bottom', () => {
    const d = makeBlob([4], { filler: [0.25, 1, -3, 8] });
    expect(forward({}, [a, b])).toEqual([3, 3, 2, 1]);
    expect(forward({ eltwise_param: { coeff: [2, 1, -1, 0.5] } }, [a, b, c, d])).toEqual([5.125, 1.5, -0.5, 3.5]);
    // float32 bottoms: 1e8 + 1 − 1e8 is 1 in float64, 0 if rounded after each add.
    const f32 = (v: number[]) => makeBlob([v.length], { dtype: 'float32', filler: v });
    for (const n of [2, 3, 5]) {
      const bottoms = [f32([1e8]), f32([1]), f32([-1e8]), f32([0]), f32([0])].slice(0, n);
      if (n === 2) bottoms[1] = f32([-1e8 + 1]);
      const layer = createLayer(eltwiseLayerDef, {}, { dtype: 'float32' });
      // In place on the first bottom: each element is read before it is written.
      layer.setUp(bottoms, [bottoms[0]!]);
      layer.forward(bottoms, [bottoms[0]!]);
      expect(blobValues(bottoms[0]!)).toEqual([n === 2 ? 0 : 1]);
    }
  });
});
