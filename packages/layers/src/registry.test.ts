import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { type Layer } from './layer.js';
import { registerBuiltinLayers } from './register-all-layers.js';
import { defaultLayerRegistry, LayerRegistry, type LayerDef } from './registry.js';
import { reluLayerDef, ReLULayer } from './layers/relu-layer.js';
import { UnknownLayerTypeError } from './errors.js';
import { layerParameter, makeBlob } from './testing.js';

/** A minimal valid configuration per built-in type: extra params, bottom shapes, top count. */
const minimal: Record<string, { props?: Record<string, unknown>; bottoms: number[][]; tops?: number }> = {
  Accuracy: { bottoms: [[2, 3], [2]] },
  Concat: { bottoms: [[2, 1, 2], [2, 2, 2]] },
  Convolution: { props: { convolution_param: { num_output: 2, kernel_size: [1] } }, bottoms: [[1, 2, 3, 3]] },
  Dropout: { bottoms: [[2, 3]] },
  Eltwise: { bottoms: [[2, 3], [2, 3]] },
  Flatten: { bottoms: [[2, 3, 2]] },
  InnerProduct: { props: { inner_product_param: { num_output: 2 } }, bottoms: [[2, 3]] },
  Input: { props: { input_param: { shape: [{ dim: [1, 2] }] } }, bottoms: [] },
  LRN: { bottoms: [[1, 5, 2, 2]] },
  Pooling: { props: { pooling_param: { kernel_size: 1 } }, bottoms: [[1, 1, 2, 2]] },
  ReLU: { bottoms: [[2, 3]] },
  Sigmoid: { bottoms: [[2, 3]] },
  Softmax: { bottoms: [[2, 3]] },
  SoftmaxWithLoss: { bottoms: [[2, 3], [2]] },
  Split: { bottoms: [[2, 3]], tops: 2 },
  TanH: { bottoms: [[2, 3]] },
};

describe('registerBuiltinLayers', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());

  it('registers every built-in type, each with a minimal set-up', () => {
    expect(registry.types()).toEqual(Object.keys(minimal).sort());
  });

  it.each(Object.keys(minimal))('creates and sets up %s with layer.type === key', (type) => {
    const cfg = minimal[type]!;
    const layer = registry.create(layerParameter({ name: `l_${type}`, type, ...cfg.props }), { dtype: 'float64' });
    expect(layer.type).toBe(type);
    const bottoms = cfg.bottoms.map((s) => makeBlob(s, { filler: 0 }));
    const tops = Array.from({ length: cfg.tops ?? 1 }, () => new Blob([], { dtype: 'float64' }));
    layer.setUp(bottoms, tops);
    layer.forward(bottoms, tops);
    expect(tops.every((t) => t.count() > 0)).toBe(true);
  });

  it('is idempotent per registry and keeps earlier registrations', () => {
    const r = new LayerRegistry();
    const custom: LayerDef = { type: 'ReLU', create: (p, ctx) => new ReLULayer(p, ctx) };
    r.register(custom);
    registerBuiltinLayers(r);
    expect(() => registerBuiltinLayers(r)).not.toThrow();
    expect(r.get('ReLU')).toBe(custom);
    expect(r.get('Softmax')).toBe(registry.get('Softmax'));
  });

  it('fills the default registry when given no argument', () => {
    expect(registerBuiltinLayers()).toBe(defaultLayerRegistry());
    expect(defaultLayerRegistry().has('Convolution')).toBe(true);
  });
});

describe('LayerRegistry', () => {
  it('refuses a duplicate registration unless overriding', () => {
    const r = new LayerRegistry();
    r.register(reluLayerDef);
    expect(() => r.register(reluLayerDef)).toThrow('Layer type ReLU already registered.');
    const other: LayerDef = { type: 'ReLU', create: (p, ctx): Layer => new ReLULayer(p, ctx) };
    r.register(other, { override: true });
    expect(r.get('ReLU')).toBe(other);
    expect(r.unregister('ReLU')).toBe(true);
    expect(r.has('ReLU')).toBe(false);
  });

  it('names the unknown type and the known types', () => {
    const r = registerBuiltinLayers(new LayerRegistry());
    const create = () => r.create(layerParameter({ name: 'f', type: 'Foo' }));
    expect(create).toThrow(UnknownLayerTypeError);
    expect(create).toThrow(`Unknown layer type: Foo (known types: ${r.types().join(', ')})`);
    expect(() => new LayerRegistry().create(layerParameter({ type: 'Foo' }))).toThrow(/^Unknown layer type: Foo \(known types: \)$/);
  });
});

describe('a plugin layer (README example)', () => {
  it('brings its own param field, registers, parses from prototxt and passes a gradient check', async () => {
    const { registerLayerParamField, parseText } = await import('@caffe-ts/proto');
    const { Layer: LayerBase } = await import('./layer.js');
    const { GradientChecker, makeBlob: mk } = await import('./testing.js');
    registerLayerParamField({
      name: 'scale_shift_param',
      id: 10_001,
      typeName: 'ScaleShiftParameter',
      protoText: 'message ScaleShiftParameter { optional float scale = 1 [default = 1]; optional float shift = 2; }',
    });
    class ScaleShiftLayer extends LayerBase {
      readonly type = 'ScaleShift';
      static override readonly blobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
      private get p() {
        return (this.param as unknown as { scale_shift_param: { scale: number; shift: number } }).scale_shift_param;
      }
      override reshape(bottom: Blob[], top: Blob[]) {
        top[0]!.reshapeLike(bottom[0]!);
      }
      protected override forwardCpu(bottom: Blob[], top: Blob[]) {
        const { scale, shift } = this.p;
        const x = bottom[0]!.cpuData();
        const y = top[0]!.mutableCpuData();
        for (let i = 0; i < x.length; i++) y[i] = scale * x[i]! + shift;
      }
      protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]) {
        if (!propagateDown[0]) return;
        const dy = top[0]!.cpuDiff();
        const dx = bottom[0]!.mutableCpuDiff();
        for (let i = 0; i < dy.length; i++) dx[i] = this.p.scale * dy[i]!;
      }
    }
    const r = registerBuiltinLayers(new LayerRegistry());
    r.register({ type: 'ScaleShift', create: (p, ctx) => new ScaleShiftLayer(p, ctx) });
    const param = parseText<import('@caffe-ts/proto').LayerParameter>(
      'LayerParameter',
      'name: "ss" type: "ScaleShift" scale_shift_param { scale: 2 shift: 0.5 }',
    );
    const layer = r.create(param, { dtype: 'float64' });
    const x = mk([3], { filler: [1, -1, 0] });
    const y = new Blob([], { dtype: 'float64' });
    layer.setUp([x], [y]);
    layer.forward([x], [y]);
    expect(Array.from(y.cpuData())).toEqual([2.5, -1.5, 0.5]);
    new GradientChecker(1e-2, 1e-3).checkGradientEltwise(layer, [x], [y]);
  });
});
