import { Blob } from '@caffe-ts/blob';
import { ReductionParameter_ReductionOp as Op } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { ReductionLayer, reductionLayerDef } from './reduction-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function reduction(p: Record<string, unknown> | null, name = 'reduction'): ReductionLayer {
  return createLayer(reductionLayerDef, p ? { name, reduction_param: p } : { name });
}

function run(layer: ReductionLayer, bottom: Blob): Blob {
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

const reference: Record<number, (v: number[]) => number> = {
  [Op.SUM]: (v) => v.reduce((a, b) => a + b, 0),
  [Op.ASUM]: (v) => v.reduce((a, b) => a + Math.abs(b), 0),
  [Op.SUMSQ]: (v) => v.reduce((a, b) => a + b * b, 0),
  [Op.MEAN]: (v) => v.reduce((a, b) => a + b, 0) / v.length,
};

describe('ReductionLayer', () => {
  it('shapes: axis 0 → scalar, axis 1 → [N], axis 2 → [N, C], axis −1', () => {
    expect(run(reduction(null), makeBlob([2, 3, 4, 5])).shape).toEqual([]);
    expect(run(reduction({ axis: 1 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2]);
    expect(run(reduction({ axis: 2 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 3]);
    expect(run(reduction({ axis: -1 }), makeBlob([2, 3, 4, 5])).shape).toEqual([2, 3, 4]);
  });

  it('SUM, ASUM, SUMSQ, MEAN with coeff over every axis split, float32 and float64', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const op of [Op.SUM, Op.ASUM, Op.SUMSQ, Op.MEAN]) {
        for (const [axis, coeff] of [[0, 1], [1, 2.5], [2, -0.5]] as const) {
          const bottom = makeBlob([2, 3, 4], { dtype });
          const layer = createLayer<ReductionLayer>(reductionLayerDef, { reduction_param: { operation: op, axis, coeff } }, { dtype });
          const t = new Blob([], { dtype });
          layer.setUp([bottom], [t]);
          layer.forward([bottom], [t]);
          const x = blobValues(bottom);
          const num = [1, 2, 6][axis]!;
          const dim = x.length / num;
          expect(t.count()).toBe(num);
          for (let i = 0; i < num; i++) {
            const want = coeff * reference[op]!(x.slice(i * dim, (i + 1) * dim));
            expect(Math.abs(t.cpuData()[i]! - want)).toBeLessThan(dtype === 'float32' ? 1e-4 : 1e-12);
          }
        }
      }
    }
  });

  it('backward: coeff·dy, ·sign(x), ·2x, ·1/dim', () => {
    const bottom = makeBlob([2, 2], { filler: [1, -2, 0, 3] });
    for (const [op, want] of [
      [Op.SUM, [6, 6, -3, -3]],
      [Op.ASUM, [6, -6, 0, -3]],
      [Op.SUMSQ, [12, -24, 0, -18]],
      [Op.MEAN, [3, 3, -1.5, -1.5]],
    ] as const) {
      const layer = reduction({ operation: op, axis: 1, coeff: 2 });
      const top = run(layer, bottom);
      top.mutableCpuDiff().set([3, -1.5]);
      layer.backward([top], [true], [bottom]);
      expect(blobValues(bottom, 'diff').map((v) => v + 0)).toEqual(want); // + 0 folds −0
    }
  });

  it('gradient, Caffe (1e-2, 2e-3) exhaustive for every op, with coeff and axis 1', () => {
    const checker = new GradientChecker(1e-2, 2e-3);
    for (const op of [Op.SUM, Op.ASUM, Op.SUMSQ, Op.MEAN]) {
      checker.checkGradientExhaustive(reduction({ operation: op }), [makeBlob([2, 3, 2])], [f64()]);
      checker.checkGradientExhaustive(reduction({ operation: op, coeff: 2.5, axis: 1 }), [makeBlob([2, 3, 2])], [f64()]);
    }
  });

  it('defaults (SUM, axis 0, coeff 1) and an out-of-range axis', () => {
    const p = reduction({}).param.reduction_param!;
    expect([p.operation, p.axis, p.coeff]).toEqual([Op.SUM, 0, 1]);
    expect(() => run(reduction({ axis: 3 }, 'r1'), makeBlob([2, 3]))).toThrow(
      "Reduction layer 'r1': axis 3 out of range for 2-D bottom blob with shape 2 3 (6)",
    );
  });
});
