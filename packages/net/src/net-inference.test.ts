import { describe, expect, it } from 'vitest';
import { Phase } from '@caffe-ts/proto';
import { Net } from './net.js';
import { net, testRegistry } from './test-helpers.js';

// Layers that keep data only for their own backward (a `backwardNeeded` flag) are told when the
// net never runs it, so inference skips that work.
const body = `
  layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } shape { dim: 2 } } }
  layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }
  layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
`;
const scaleOf = (n: Net) => n.layers[n.layerNames.indexOf('scale')] as unknown as { backwardNeeded: boolean };

describe('Net: layers outside backward', () => {
  it('clears backwardNeeded where no loss reaches the layer, and the forward still works', () => {
    const n = new Net(net(body), { phase: Phase.TEST, registry: testRegistry(), log: false });
    expect(scaleOf(n).backwardNeeded).toBe(false);
    n.blobs.get('data')!.mutableCpuData().fill(1);
    n.forward();
    expect(n.blobs.get('data')!.cpuData()[0]).toBe(1);
    // Net.backward skips the layer (it would refuse the scale gradient without its bottom copy).
    expect(() => n.backward()).not.toThrow();
  });

  it('leaves it set under a loss, and with force_backward', () => {
    const withLoss = `${body} layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }`;
    expect(scaleOf(new Net(net(withLoss), { phase: Phase.TRAIN, registry: testRegistry(), log: false })).backwardNeeded).toBe(true);
    expect(scaleOf(new Net(net(`force_backward: true ${body}`), { phase: Phase.TEST, registry: testRegistry(), log: false })).backwardNeeded).toBe(true);
  });
});
