import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Layer } from './layer.js';
import { registerBuiltinLayers } from './register-all-layers.js';
import { defaultLayerRegistry, LayerRegistry, type LayerDef } from './registry.js';
import { reluLayerDef, ReLULayer } from './layers/relu-layer.js';
import type { MemoryDataLayer } from './layers/memory-data-layer.js';
import { registerPythonLayer, unregisterPythonLayer } from './layers/python-layer.js';
import { UnknownLayerTypeError } from './errors.js';
import { layerParameter, makeBlob } from './testing.js';

/** The pycaffe module name of this file's test Python layer (kept apart from other tests'). */
const PY_MODULE = 'registry_conformance_test';

/** Every type `registerBuiltinLayers` must register; dropping a registration fails here. */
const EXPECTED_TYPES = [
  'AbsVal', 'Accuracy', 'ArgMax', 'BNLL', 'BatchNorm', 'BatchReindex', 'Bias', 'Clip', 'Concat', 'ContrastiveLoss',
  'Convolution', 'Crop', 'Deconvolution', 'Dropout', 'DummyData', 'ELU', 'Eltwise', 'Embed', 'EuclideanLoss', 'Exp',
  'Filter', 'Flatten', 'HingeLoss', 'Im2col', 'InfogainLoss', 'InnerProduct', 'Input', 'LRN', 'LSTM', 'LSTMUnit', 'Log',
  'MVN', 'MemoryData', 'MultinomialLogisticLoss', 'PReLU', 'Parameter', 'Pooling', 'Power', 'Python', 'RNN', 'ReLU',
  'Reduction', 'Reshape', 'SPP', 'Scale', 'Sigmoid', 'SigmoidCrossEntropyLoss', 'Silence', 'Slice', 'Softmax',
  'SoftmaxWithLoss', 'Split', 'Swish', 'TanH', 'Threshold', 'Tile',
];

/**
 * A minimal valid use of one layer type.
 * - `bottoms`: built fresh per test (data gaussian unless the type needs labels, indices, …).
 * - `backward`: propagate_down per bottom for a backward pass, where Caffe's layer has one
 *   (labels, indices, selectors and cont get false, as Caffe refuses them); 'none' where
 *   Caffe has no backward at all, in which case asking for one must throw.
 * - `feed`: what a program does before the first forward (MemoryData's Reset).
 */
interface Case {
  props?: Record<string, unknown>;
  bottoms: () => Blob[];
  tops?: number;
  backward: boolean[] | 'none';
  feed?: (layer: Layer) => void;
}

const rng = () => new Rng(1701);
const g = (shape: readonly number[]) => makeBlob(shape, { rng: rng() });
const u = (shape: readonly number[], min: number, max: number) => makeBlob(shape, { filler: 'uniform', min, max, rng: rng() });
/** Integer-valued blobs: labels, indices, selectors, cont flags. */
const ints = (shape: readonly number[], values: number[]) => makeBlob(shape, { filler: values });
const gaussian = { type: 'gaussian', std: 0.5 };

const CASES: Record<string, Case> = {
  AbsVal: { bottoms: () => [g([2, 3])], backward: [true] },
  Accuracy: { bottoms: () => [g([2, 3]), ints([2], [0, 2])], backward: 'none' },
  ArgMax: { bottoms: () => [g([2, 3])], backward: 'none' },
  BNLL: { bottoms: () => [g([2, 3])], backward: [true] },
  BatchNorm: { bottoms: () => [g([2, 3, 2])], backward: [true] },
  BatchReindex: { bottoms: () => [g([3, 2]), ints([4], [0, 2, 1, 2])], backward: [true, false] },
  Bias: { bottoms: () => [g([2, 3, 2]), g([3])], backward: [true, true] },
  Clip: { props: { clip_param: { min: -0.5, max: 0.5 } }, bottoms: () => [g([2, 3])], backward: [true] },
  Concat: { bottoms: () => [g([2, 1, 2]), g([2, 2, 2])], backward: [true, true] },
  ContrastiveLoss: { bottoms: () => [g([2, 2, 1, 1]), g([2, 2, 1, 1]), ints([2, 1, 1, 1], [1, 0])], backward: [true, true, false] },
  Convolution: {
    props: { convolution_param: { num_output: 2, kernel_size: [2], weight_filler: gaussian } },
    bottoms: () => [g([1, 2, 3, 3])],
    backward: [true],
  },
  Crop: { bottoms: () => [g([1, 2, 4, 4]), g([1, 2, 2, 2])], backward: [true, false] },
  Deconvolution: {
    props: { convolution_param: { num_output: 2, kernel_size: [2], weight_filler: gaussian } },
    bottoms: () => [g([1, 2, 2, 2])],
    backward: [true],
  },
  Dropout: { bottoms: () => [g([2, 3])], backward: [true] },
  DummyData: { props: { dummy_data_param: { shape: [{ dim: [2, 3] }], data_filler: [gaussian] } }, bottoms: () => [], backward: [] },
  ELU: { bottoms: () => [g([2, 3])], backward: [true] },
  Eltwise: { bottoms: () => [g([2, 3]), g([2, 3])], backward: [true, true] },
  Embed: {
    props: { embed_param: { num_output: 3, input_dim: 4, weight_filler: gaussian } },
    bottoms: () => [ints([3], [0, 3, 1])],
    backward: [false],
  },
  EuclideanLoss: { bottoms: () => [g([2, 3]), g([2, 3])], backward: [true, true] },
  Exp: { bottoms: () => [g([2, 3])], backward: [true] },
  Filter: { bottoms: () => [g([3, 2]), ints([3], [1, 0, 1])], backward: [true, false] },
  Flatten: { bottoms: () => [g([2, 3, 2])], backward: [true] },
  HingeLoss: { bottoms: () => [g([2, 3]), ints([2], [2, 0])], backward: [true, false] },
  Im2col: { props: { convolution_param: { kernel_size: [2] } }, bottoms: () => [g([1, 2, 3, 3])], backward: [true] },
  InfogainLoss: { bottoms: () => [g([2, 3]), ints([2], [1, 2]), u([3, 3], 0, 1)], backward: [true, false, false] },
  InnerProduct: { props: { inner_product_param: { num_output: 2, weight_filler: gaussian } }, bottoms: () => [g([2, 3])], backward: [true] },
  Input: { props: { input_param: { shape: [{ dim: [1, 2] }] } }, bottoms: () => [], backward: [] },
  LRN: { bottoms: () => [g([1, 5, 2, 2])], backward: [true] },
  LSTM: {
    props: { recurrent_param: { num_output: 2, weight_filler: gaussian } },
    bottoms: () => [g([2, 1, 3]), ints([2, 1], [0, 1])],
    backward: [true, false],
  },
  LSTMUnit: { bottoms: () => [g([1, 2, 3]), g([1, 2, 12]), ints([1, 2], [0, 1])], tops: 2, backward: [true, true, false] },
  Log: { bottoms: () => [u([2, 3], 0.5, 1.5)], backward: [true] },
  MVN: { bottoms: () => [g([2, 3, 2, 2])], backward: [true] },
  MemoryData: {
    props: { memory_data_param: { batch_size: 2, channels: 1, height: 1, width: 3 } },
    bottoms: () => [],
    tops: 2,
    backward: [],
    feed: (layer) => (layer as MemoryDataLayer).reset(Float64Array.from({ length: 12 }, (_, i) => i), Float64Array.of(0, 1, 1, 0), 4),
  },
  MultinomialLogisticLoss: { bottoms: () => [u([2, 3], 0.1, 1), ints([2], [0, 2])], backward: [true, false] },
  PReLU: { bottoms: () => [g([2, 3, 2])], backward: [true] },
  Parameter: { props: { parameter_param: { shape: { dim: [2, 3] } } }, bottoms: () => [], backward: [] },
  Pooling: { props: { pooling_param: { kernel_size: 2 } }, bottoms: () => [g([1, 1, 3, 3])], backward: [true] },
  Power: { props: { power_param: { power: 2, scale: 0.5, shift: 1 } }, bottoms: () => [g([2, 3])], backward: [true] },
  Python: {
    props: { python_param: { module: PY_MODULE, layer: 'Double' } },
    bottoms: () => [g([2, 3])],
    backward: [true],
  },
  RNN: {
    props: { recurrent_param: { num_output: 2, weight_filler: gaussian } },
    bottoms: () => [g([2, 1, 3]), ints([2, 1], [0, 1])],
    backward: [true, false],
  },
  ReLU: { bottoms: () => [g([2, 3])], backward: [true] },
  Reduction: { bottoms: () => [g([2, 3])], backward: [true] },
  Reshape: { props: { reshape_param: { shape: { dim: [3, -1] } } }, bottoms: () => [g([2, 3])], backward: [true] },
  SPP: { props: { spp_param: { pyramid_height: 2 } }, bottoms: () => [g([1, 1, 4, 4])], backward: [true] },
  Scale: { bottoms: () => [g([2, 3, 2]), g([3])], backward: [true, true] },
  Sigmoid: { bottoms: () => [g([2, 3])], backward: [true] },
  SigmoidCrossEntropyLoss: { bottoms: () => [g([2, 3]), ints([2, 3], [0, 1, 1, 0, 0, 1])], backward: [true, false] },
  Silence: { bottoms: () => [g([2, 3])], tops: 0, backward: [true] },
  Slice: { bottoms: () => [g([2, 4])], tops: 2, backward: [true] },
  Softmax: { bottoms: () => [g([2, 3])], backward: [true] },
  SoftmaxWithLoss: { bottoms: () => [g([2, 3]), ints([2], [1, 2])], backward: [true, false] },
  Split: { bottoms: () => [g([2, 3])], tops: 2, backward: [true] },
  Swish: { bottoms: () => [g([2, 3])], backward: [true] },
  TanH: { bottoms: () => [g([2, 3])], backward: [true] },
  Threshold: { bottoms: () => [g([2, 3])], backward: 'none' },
  Tile: { props: { tile_param: { tiles: 2 } }, bottoms: () => [g([2, 3])], backward: [true] },
};

const finite = (values: ArrayLike<number>) => Array.from(values).every(Number.isFinite);

describe('registerBuiltinLayers', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  let previousSink: LogSink;

  beforeAll(() => {
    // A test port of a pycaffe layer (y = 2x), so the Python type can be built like the others.
    registerPythonLayer(PY_MODULE, 'Double', () => ({
      reshape: (bottom, top) => top[0]!.reshapeLike(bottom[0]!),
      forward: (bottom, top) => {
        const x = bottom[0]!.cpuData();
        const y = top[0]!.mutableCpuData();
        for (let i = 0; i < x.length; i++) y[i] = 2 * x[i]!;
      },
      backward: (top, propagateDown, bottom) => {
        if (!propagateDown[0]) return;
        const dy = top[0]!.cpuDiff();
        const dx = bottom[0]!.mutableCpuDiff();
        for (let i = 0; i < dy.length; i++) dx[i] = 2 * dy[i]!;
      },
    }));
    // The recurrent layers log their unrolled nets' construction; keep the output quiet.
    previousSink = setLogSink(() => {});
  });

  afterAll(() => {
    unregisterPythonLayer(PY_MODULE, 'Double');
    setLogSink(previousSink);
  });

  it('registers exactly the expected types, and every one has a conformance case', () => {
    expect(registry.types()).toEqual([...EXPECTED_TYPES].sort());
    expect(Object.keys(CASES).sort()).toEqual([...EXPECTED_TYPES].sort());
  });

  it.each(EXPECTED_TYPES)('%s: creates, sets up, runs forward and (where Caffe has one) backward', (type) => {
    const c = CASES[type];
    if (!c) throw new Error(`no conformance case for registered type ${type}`);
    const layer = registry.create(layerParameter({ name: `l_${type}`, type, ...c.props }), { dtype: 'float64', rng: rng() });
    expect(layer.type).toBe(type);
    const bottoms = c.bottoms();
    const tops = Array.from({ length: c.tops ?? 1 }, () => new Blob([], { dtype: 'float64' }));
    layer.setUp(bottoms, tops);
    c.feed?.(layer);
    const loss = layer.forward(bottoms, tops);
    expect(Number.isFinite(loss)).toBe(true);
    for (const t of tops) {
      expect(t.count()).toBeGreaterThan(0);
      expect(finite(t.cpuData())).toBe(true);
    }
    if (c.backward === 'none') {
      expect(() => layer.backward(tops, bottoms.map(() => true), bottoms)).toThrow(new RegExp(`^${type} layer 'l_${type}': `));
      return;
    }
    expect(c.backward).toHaveLength(bottoms.length);
    // Loss tops keep their loss weight as diff (set-up put it there); other tops get a gradient.
    tops.forEach((t, i) => {
      if (layer.lossWeight(i) === 0) t.mutableCpuDiff().set(g(t.shape).cpuData());
    });
    for (const p of layer.blobs) p.mutableCpuDiff().fill(0);
    layer.backward(tops, c.backward, bottoms);
    const propagate = c.backward;
    bottoms.forEach((b, i) => {
      if (propagate[i]) expect(finite(b.cpuDiff())).toBe(true);
    });
    for (const p of layer.blobs) expect(finite(p.cpuDiff())).toBe(true);
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
