import { describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { Net } from './net.js';
import { formatNetSummary } from './summary.js';
import { net, testRegistry } from './test-helpers.js';

const P = `
  name: "tiny"
  layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } shape { dim: 2 } } }
  layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
  layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
  layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" param { name: "w" } inner_product_param { num_output: 5 } }
  layer { name: "fc2" type: "InnerProduct" bottom: "conv" top: "fc2" param { name: "w" } inner_product_param { num_output: 5 bias_term: false } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
`;

describe('Net.summary', () => {
  const n = new Net(net(P), { registry: testRegistry(), log: false, rng: new Rng(1) });
  const s = n.summary();

  it('describes each layer', () => {
    expect(s.name).toBe('tiny');
    expect(s.phase).toBe('TEST');
    expect(s.layers.map((l) => l.name)).toEqual(['in', 'conv', 'relu', 'conv_relu_0_split', 'fc', 'fc2', 'loss']);
    const conv = s.layers[1]!;
    expect(conv.topShapes).toEqual([[2, 4, 4, 4]]);
    expect(conv.paramShapes).toEqual([[4, 1, 3, 3], [4]]);
    expect(conv.paramCount).toBe(40);
    // 128 outputs × 9 multiply-adds × 2, plus 128 bias adds.
    expect(conv.flops).toBe(128 * 9 * 2 + 128);
    const fc = s.layers[4]!;
    expect(fc.bottoms).toEqual(['conv_relu_0_split_0']);
    expect(fc.paramCount).toBe(5 * 64 + 5);
    expect(fc.flops).toBe(2 * 10 * 64 + 10);
    // fc2 shares fc's weights: counted once, at the owner.
    expect(s.layers[5]!.paramCount).toBe(0);
    expect(s.layers[5]!.flops).toBe(2 * 10 * 64);
    expect(s.layers[2]!.flops).toBeNull();
    expect(s.layers[6]!.lossWeights).toEqual([1]);
    expect(s.layers[6]!.needsBackward).toBe(true);
    expect(s.layers[0]!.needsBackward).toBe(false);
  });

  it('totals params, memory and FLOPs', () => {
    expect(s.totalParams).toBe(40 + 325);
    expect(s.paramBytes).toBe(365 * 4);
    expect(s.dataBytes).toBe(n.memoryBytes);
    expect(s.totalFlops).toBe(conv() + 2 * 10 * 64 + 10 + 2 * 10 * 64);
    function conv() {
      return 128 * 9 * 2 + 128;
    }
    expect(s.inputs).toEqual(['data', 'label']);
    expect(s.outputs).toEqual(['fc2', 'loss']);
  });

  it('formats as a table', () => {
    const text = formatNetSummary(s);
    const lines = text.split('\n');
    expect(lines[0]).toBe("Net 'tiny' (TEST)");
    expect(lines[1]).toMatch(/^layer\s+type\s+top shapes\s+params\s+FLOPs$/);
    expect(lines.find((l) => l.startsWith('conv '))).toMatch(/^conv\s+Convolution\s+2x4x4x4\s+40\s+2.43K$/);
    expect(lines.at(-1)).toMatch(/^Total params: 365 \(1\.43 KiB\); memory for data: .+; forward FLOPs: /);
  });
});
