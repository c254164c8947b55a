import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, makeBlob } from '../testing.js';
import { ArgMaxLayer, argMaxLayerDef } from './argmax-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });

function argmax(p: Record<string, unknown> | null, name = 'argmax'): ArgMaxLayer {
  return createLayer(argMaxLayerDef, p ? { name, argmax_param: p } : { name });
}

function run(layer: ArgMaxLayer, bottom: Blob): Blob {
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  return top;
}

/** Indices of the k largest of `v`, largest first, ties to the larger index (Caffe's order). */
function topK(v: number[], k: number): number[] {
  return v
    .map((x, i) => [x, i] as const)
    .sort((a, b) => (b[0] !== a[0] ? b[0] - a[0] : b[1] - a[1]))
    .slice(0, k)
    .map(([, i]) => i);
}

describe('ArgMaxLayer', () => {
  it('shapes: no axis → N×1×k, out_max_val → N×2×k, axis → that axis set to k', () => {
    const bottom = makeBlob([4, 5, 3, 2]);
    expect(run(argmax(null), bottom).shape).toEqual([4, 1, 1, 1]);
    expect(run(argmax({ top_k: 3 }), bottom).shape).toEqual([4, 1, 3, 1]);
    expect(run(argmax({ out_max_val: true, top_k: 3 }), bottom).shape).toEqual([4, 2, 3, 1]);
    expect(run(argmax({ axis: 0 }), bottom).shape).toEqual([1, 5, 3, 2]);
    expect(run(argmax({ axis: 2, top_k: 2 }), bottom).shape).toEqual([4, 5, 2, 2]);
    // At least three axes without `axis`.
    expect(run(argmax(null), makeBlob([3, 6])).shape).toEqual([3, 1, 1]);
  });

  it('without axis: the top-k indices over each item, then the values with out_max_val', () => {
    const bottom = makeBlob([3, 2, 2, 2]);
    const x = blobValues(bottom);
    const idx = run(argmax({ top_k: 3 }), bottom);
    const both = run(argmax({ top_k: 3, out_max_val: true }), bottom);
    for (let n = 0; n < 3; n++) {
      const item = x.slice(n * 8, (n + 1) * 8);
      const want = topK(item, 3);
      expect(blobValues(idx).slice(n * 3, n * 3 + 3)).toEqual(want);
      expect(blobValues(both).slice(n * 6, n * 6 + 6)).toEqual([...want, ...want.map((i) => item[i]!)]);
    }
  });

  it('with axis: per position along that axis (indices, or values with out_max_val)', () => {
    const bottom = makeBlob([2, 4, 3]);
    const x = blobValues(bottom);
    for (const outMaxVal of [false, true]) {
      const top = run(argmax({ axis: 1, top_k: 2, out_max_val: outMaxVal }), bottom);
      expect(top.shape).toEqual([2, 2, 3]);
      for (let n = 0; n < 2; n++) {
        for (let w = 0; w < 3; w++) {
          const column = [0, 1, 2, 3].map((c) => x[(n * 4 + c) * 3 + w]!);
          const want = topK(column, 2);
          for (let j = 0; j < 2; j++) {
            expect(top.cpuData()[(n * 2 + j) * 3 + w]).toBe(outMaxVal ? column[want[j]!]! : want[j]);
          }
        }
      }
    }
  });

  it('ties go to the larger index; a negative axis counts from the end', () => {
    expect(blobValues(run(argmax({ top_k: 2 }), makeBlob([1, 4], { filler: [1, 3, 3, 0] })))).toEqual([2, 1]);
    expect(blobValues(run(argmax({ axis: -1 }), makeBlob([2, 3], { filler: [0, 5, 1, 9, 2, 3] })))).toEqual([1, 0]);
  });

  it('has no backward', () => {
    const layer = argmax(null, 'a1');
    const bottom = makeBlob([2, 3]);
    const top = run(layer, bottom);
    expect(() => layer.backward([top], [true], [bottom])).toThrow("ArgMax layer 'a1': this layer cannot backpropagate to its bottoms");
  });

  it('defaults (top_k 1, out_max_val false, no axis) and Caffe\'s checks', () => {
    const p = argmax({}).param.argmax_param!;
    expect([p.top_k, p.out_max_val]).toEqual([1, false]);
    expect(() => run(argmax({ top_k: 0 }, 'a1'), makeBlob([2, 3]))).toThrow("ArgMax layer 'a1': top k must not be less than 1 (got 0).");
    expect(() => run(argmax({ top_k: 4 }, 'a1'), makeBlob([2, 3]))).toThrow(
      "ArgMax layer 'a1': top_k must be less than or equal to the dimension of the flattened bottom blob per instance (top_k 4, bottom 2 3 (6)).",
    );
    expect(() => run(argmax({ top_k: 3, axis: 0 }, 'a1'), makeBlob([2, 3]))).toThrow(
      "ArgMax layer 'a1': top_k must be less than or equal to the dimension of the axis (top_k 3, axis 0 of 2 3 (6)).",
    );
  });
});
