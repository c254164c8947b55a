import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { createLayer, GradientChecker, makeBlob } from '../testing.js';
import { EmbedLayer, embedLayerDef } from './embed-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const uniform10 = { type: 'uniform', min: -10, max: 10 };

function embed(p: Record<string, unknown>, name = 'embed', dtype: 'float32' | 'float64' = 'float64'): EmbedLayer {
  return createLayer(embedLayerDef, { name, embed_param: p }, { dtype });
}

describe('EmbedLayer', () => {
  it('top shape is the bottom shape plus num_output; weight [input_dim, num_output], bias [num_output]', () => {
    const layer = embed({ num_output: 10, input_dim: 5 });
    const top = f64();
    layer.setUp([makeBlob([4, 1, 1, 1], { filler: 0 })], [top]);
    expect(top.shape).toEqual([4, 1, 1, 1, 10]);
    expect(layer.blobs.map((b) => b.shape)).toEqual([[5, 10], [10]]);
  });

  it('forward copies weight rows, plus the bias (float32 and float64)', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const biasTerm of [false, true]) {
        const layer = embed({ num_output: 3, input_dim: 5, bias_term: biasTerm, weight_filler: uniform10, bias_filler: uniform10 }, 'embed', dtype);
        const bottom = makeBlob([2, 2], { dtype, filler: [4, 2, 0, 2] });
        const top = new Blob([], { dtype });
        layer.setUp([bottom], [top]);
        layer.forward([bottom], [top]);
        const w = layer.blobs[0]!.cpuData();
        const b = biasTerm ? layer.blobs[1]!.cpuData() : null;
        [4, 2, 0, 2].forEach((index, n) => {
          for (let j = 0; j < 3; j++) expect(top.cpuData()[n * 3 + j]).toBeCloseTo(w[index * 3 + j]! + (b ? b[j]! : 0), 5);
        });
      }
    }
  });

  it('backward accumulates rows of repeated indices into the weight diff and sums into the bias', () => {
    const layer = embed({ num_output: 2, input_dim: 3 });
    const bottom = makeBlob([3], { filler: [1, 1, 2] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6]);
    layer.backward([top], [false], [bottom]);
    expect(Array.from(layer.blobs[0]!.cpuDiff())).toEqual([0, 0, 4, 6, 5, 6]);
    expect(Array.from(layer.blobs[1]!.cpuDiff())).toEqual([9, 12]);
  });

  it('gradient, Caffe (1e-2, 1e-3) exhaustive over the params, with and without bias (indices 4 2 2 3)', () => {
    for (const biasTerm of [false, true]) {
      const layer = embed({ num_output: 10, input_dim: 5, bias_term: biasTerm, weight_filler: uniform10, bias_filler: uniform10 });
      new GradientChecker(1e-2, 1e-3).checkGradientExhaustive(layer, [makeBlob([4, 1, 1, 1], { filler: [4, 2, 2, 3] })], [f64()], -2);
    }
  });

  it('defaults and Caffe\'s checks: indices must be integers in range; no gradient to the input', () => {
    const p = embed({}).param.embed_param!;
    expect([p.num_output, p.input_dim, p.bias_term]).toEqual([0, 0, true]);
    expect(() => embed({ input_dim: 5 }, 'e1').setUp([makeBlob([1], { filler: 0 })], [f64()])).toThrow(
      "Embed layer 'e1': EmbedLayer num_output must be positive (got 0).",
    );
    expect(() => embed({ num_output: 2 }, 'e1').setUp([makeBlob([1], { filler: 0 })], [f64()])).toThrow(
      "Embed layer 'e1': EmbedLayer input_dim must be positive (got 0).",
    );
    for (const [v, i] of [[5, 1], [-1, 1], [1.5, 1]] as const) {
      const layer = embed({ num_output: 2, input_dim: 5 }, 'e1');
      const bottom = makeBlob([2], { filler: [0, v] });
      expect(() => {
        layer.setUp([bottom], [f64()]);
        layer.forward([bottom], [f64()]);
      }).toThrow(`Embed layer 'e1': input ${i} is ${v}; indices must be integers in [0, input_dim = 5)`);
    }
    const layer = embed({ num_output: 2, input_dim: 5 }, 'e1');
    const bottom = makeBlob([2], { filler: [0, 1] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    expect(() => layer.backward([top], [true], [bottom])).toThrow("Embed layer 'e1': Can't backpropagate to EmbedLayer input.");
    expect(layer.allowForceBackward(0)).toBe(false);
  });
});
