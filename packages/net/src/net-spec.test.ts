import { describe, expect, it } from 'vitest';
import { parseText, printText, PoolingParameter_PoolMethod, Phase, type NetParameter } from '@caffe-ts/proto';
import { L, NetSpec, P, layerParamField, toProto } from './net-spec.js';
import { Net } from './net.js';
import { NetError } from './errors.js';
import { testRegistry } from './test-helpers.js';

function lenet(): NetParameter {
  const n = new NetSpec();
  n.data = L.Input({ shape: [{ dim: [2, 1, 28, 28] }] });
  n.conv1 = L.Convolution(n.data, { kernel_size: 5, num_output: 20, weight_filler: { type: 'xavier' }, param: [{ lr_mult: 1 }, { lr_mult: 2 }] });
  n.pool1 = L.Pooling(n.conv1, { kernel_size: 2, stride: 2, pool: P.Pooling!.MAX });
  n.ip1 = L.InnerProduct(n.pool1, { num_output: 10, weight_filler: { type: 'xavier' } });
  n.relu1 = L.ReLU(n.ip1, { in_place: true });
  n.prob = L.Softmax(n.ip1);
  return n.toProto('tiny');
}

describe('NetSpec', () => {
  it('builds layers in assignment order with pycaffe naming and param routing', () => {
    const p = lenet();
    expect(p.name).toBe('tiny');
    expect(p.layer.map((l) => l.name)).toEqual(['data', 'conv1', 'pool1', 'ip1', 'relu1', 'prob']);
    const conv = p.layer[1]!;
    expect(conv.type).toBe('Convolution');
    expect(conv.bottom).toEqual(['data']);
    expect(conv.top).toEqual(['conv1']);
    expect(conv.convolution_param!.kernel_size).toEqual([5]);
    expect(conv.convolution_param!.num_output).toBe(20);
    expect(conv.convolution_param!.weight_filler!.type).toBe('xavier');
    expect(conv.param.map((s) => s.lr_mult)).toEqual([1, 2]);
    expect(p.layer[2]!.pooling_param!.pool).toBe(PoolingParameter_PoolMethod.MAX);
    expect(p.layer[3]!.inner_product_param!.num_output).toBe(10);
    // in place: top is the bottom, the layer keeps the assigned name.
    expect(p.layer[4]!.bottom).toEqual(['ip1']);
    expect(p.layer[4]!.top).toEqual(['ip1']);
    expect(p.layer[5]!.bottom).toEqual(['ip1']);
  });

  it('prints prototxt that parses back to the same net, and the net runs', () => {
    const text = printText('NetParameter', lenet());
    expect(text).toContain('inner_product_param {');
    expect(text).toContain('type: "xavier"');
    const back = parseText<NetParameter>('NetParameter', text);
    expect(printText('NetParameter', back)).toBe(text);
    const net = new Net(back, { log: false, registry: testRegistry() });
    expect(net.blob('prob').shape).toEqual([2, 10]);
  });

  it('auto-names unnamed tops by type and handles ntop and layer-level fields', () => {
    const n = new NetSpec();
    const [data, label] = L.Data({ ntop: 2, source: 'db', batch_size: 4, backend: 'LMDB', include: { phase: Phase.TRAIN }, transform_param: { scale: 0.5 } });
    n.data = data;
    n.label = label;
    const ip = L.InnerProduct(n.data, { num_output: 3 });
    n.loss = L.SoftmaxWithLoss(L.InnerProduct(ip, { num_output: 2 }), n.label, { loss_weight: 2 });
    const p = n.toProto();
    expect(p.layer.map((l) => l.name)).toEqual(['data', 'InnerProduct1', 'InnerProduct2', 'loss']);
    expect(p.layer[0]!.top).toEqual(['data', 'label']);
    expect(p.layer[0]!.data_param!.batch_size).toBe(4);
    expect(p.layer[0]!.data_param!.backend).toBe(1);
    expect(p.layer[0]!.include.map((r) => r.phase)).toEqual([Phase.TRAIN]);
    expect(p.layer[0]!.transform_param!.scale).toBe(0.5);
    expect(p.layer[3]!.bottom).toEqual(['InnerProduct2', 'label']);
    expect(p.layer[3]!.loss_weight).toEqual([2]);
    // toProto from a bare top reaches everything it depends on.
    expect(toProto(ip).layer.map((l) => l.name)).toEqual(['Data1', 'InnerProduct1']);
  });

  it('maps types to their param fields from the schema and rejects unknown arguments', () => {
    expect(layerParamField('InnerProduct')).toBe('inner_product_param');
    expect(layerParamField('ReLU')).toBe('relu_param');
    expect(layerParamField('LRN')).toBe('lrn_param');
    expect(layerParamField('Deconvolution')).toBe('convolution_param');
    expect(layerParamField('Silence')).toBeUndefined();
    expect(P.Eltwise!.SUM).toBe(1);
    expect(P.Phase!.TEST).toBe(1);
    const n = new NetSpec();
    n.data = L.Input({ shape: { dim: [1, 2] } });
    n.bad = L.ReLU(n.data, { no_such_field: 1 } as never);
    expect(() => n.toProto()).toThrow(NetError);
    expect(() => n.toProto()).toThrow(/unknown argument 'no_such_field'/);
    expect(() => P.NoSuchThing!.X).toThrow(/NoSuchThingParameter/);
  });
});
