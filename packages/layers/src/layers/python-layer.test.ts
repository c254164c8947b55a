import { Blob, Rng } from '@caffe-ts/blob';
import { Phase } from '@caffe-ts/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { LayerError } from '../errors.js';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import {
  defaultPythonLayerRegistry,
  PythonLayer,
  pythonLayerDef,
  pythonLayerDefFor,
  PythonLayerRegistry,
  registerPythonLayer,
  unregisterPythonLayer,
  type PythonLayerFactory,
} from './python-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const python = (module: string, layer: string, paramStr?: string) => ({
  python_param: { module, layer, ...(paramStr === undefined ? {} : { param_str: paramStr }) },
});

// Ports of the layers in Caffe's python/caffe/test/test_python_layer*.py.

/** SimpleLayer: top = 10 · bottom. */
const simpleLayer: PythonLayerFactory = () => ({
  reshape(bottom, top) {
    top[0]!.reshapeLike(bottom[0]!);
  },
  forward(bottom, top) {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = 10 * x[i]!;
  },
  backward(top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < dy.length; i++) dx[i] = 10 * dy[i]!;
  },
});

/** SimpleParamLayer: top = value · bottom, value read from param_str (a number, as the Python test's JSON-ish string). */
const simpleParamLayer: PythonLayerFactory = (paramStr, self) => {
  const value = Number(JSON.parse(paramStr).value);
  if (!Number.isFinite(value)) self.fail(`param_str needs a numeric "value" (got ${paramStr})`);
  return {
    reshape(bottom, top) {
      top[0]!.reshapeLike(bottom[0]!);
    },
    forward(bottom, top) {
      const x = bottom[0]!.cpuData();
      const y = top[0]!.mutableCpuData();
      for (let i = 0; i < x.length; i++) y[i] = value * x[i]!;
    },
    backward(top, propagateDown, bottom) {
      if (!propagateDown[0]) return;
      const dy = top[0]!.cpuDiff();
      const dx = bottom[0]!.mutableCpuDiff();
      for (let i = 0; i < dy.length; i++) dx[i] = value * dy[i]!;
    },
  };
};

/** A learnable per-element scale: top = w ⊙ bottom, with w a parameter blob made by addBlob. */
const scaleLayer: PythonLayerFactory = (_paramStr, self) => ({
  setup(bottom) {
    const w = self.addBlob(bottom[0]!.shape.slice(1));
    const d = w.mutableCpuData();
    for (let i = 0; i < d.length; i++) d[i] = 0.5 + 0.25 * i;
  },
  reshape(bottom, top) {
    top[0]!.reshapeLike(bottom[0]!);
  },
  forward(bottom, top) {
    const w = self.blobs[0]!.cpuData();
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = w[i % w.length]! * x[i]!;
  },
  backward(top, propagateDown, bottom) {
    const w = self.blobs[0]!.cpuData();
    const dw = self.blobs[0]!.mutableCpuDiff();
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    for (let i = 0; i < x.length; i++) dw[i % w.length] += x[i]! * dy[i]!; // param diffs accumulate
    if (!propagateDown[0]) return;
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) dx[i] = w[i % w.length]! * dy[i]!;
  },
});

describe('Python layer', () => {
  const registry = new PythonLayerRegistry();
  registry.register('test_python_layer', 'SimpleLayer', simpleLayer);
  registry.register('test_python_layer_with_param_str', 'SimpleParamLayer', simpleParamLayer);
  registry.register('test_python_layer', 'ScaleLayer', scaleLayer);
  registry.register('test_python_layer', 'PhaseLayer', (_s, self) => ({
    reshape(_b, top) {
      top[0]!.reshape([]);
    },
    forward(_b, top) {
      top[0]!.mutableCpuData()[0] = self.phase;
    },
  }));
  const def = pythonLayerDefFor(registry);

  it('runs the registered implementation: SimpleLayer multiplies by ten, forward and backward', () => {
    const x = makeBlob([2, 3], { filler: [1, -2, 3, 0.5, 0, -1] });
    const top = f64();
    const layer = createLayer(def, python('test_python_layer', 'SimpleLayer'));
    expect(layer.type).toBe('Python');
    expect(layer.pythonName).toBe('test_python_layer.SimpleLayer');
    layer.setUp([x], [top]);
    layer.forward([x], [top]);
    expect(blobValues(top)).toEqual([10, -20, 30, 5, 0, -10]);
    top.mutableCpuDiff().set([1, 2, 3, 4, 5, 6]);
    layer.backward([top], [true], [x]);
    expect(blobValues(x, 'diff')).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it('passes param_str to the factory (test_python_layer_with_param_str)', () => {
    const x = makeBlob([4], { filler: [1, 2, 3, 4] });
    const top = f64();
    const layer = createLayer(def, python('test_python_layer_with_param_str', 'SimpleParamLayer', '{"value": 100}'));
    layer.setUp([x], [top]);
    layer.forward([x], [top]);
    expect(blobValues(top)).toEqual([100, 200, 300, 400]);
  });

  it('passes the gradient check (1e-2, 1e-3) for bottoms and for a parameter blob made with addBlob', () => {
    const rng = new Rng(1701);
    const checker = new GradientChecker(1e-2, 1e-3, { seed: 1701 });
    checker.checkGradientExhaustive(createLayer(def, python('test_python_layer', 'SimpleLayer')), [makeBlob([2, 3, 2], { rng })], [f64()]);
    const scaled = createLayer(def, python('test_python_layer', 'ScaleLayer'));
    checker.checkGradientExhaustive(scaled, [makeBlob([3, 2, 2], { rng })], [f64()]);
    expect(scaled.blobs.map((b) => b.shape)).toEqual([[2, 2]]);
    expect(scaled.blobs[0]!.dtype).toBe('float64');
  });

  it('gives the implementation its phase, and counts loss_weight from the prototxt', () => {
    const top = f64();
    const test = createLayer(def, { ...python('test_python_layer', 'PhaseLayer'), loss_weight: [2] }, { phase: Phase.TEST });
    test.setUp([], [top]);
    expect(test.forward([], [top])).toBe(2 * Phase.TEST);
    const train = createLayer(def, python('test_python_layer', 'PhaseLayer'), { phase: Phase.TRAIN });
    train.setUp([], [top]);
    train.forward([], [top]);
    expect(blobValues(top)).toEqual([Phase.TRAIN]);
  });

  it('says caffe-ts never runs Python code and how to register a port, for an unregistered pair', () => {
    const create = () => createLayer(def, { name: 'loss', ...python('pyloss', 'EuclideanLossLayer') });
    expect(create).toThrow(LayerError);
    expect(create).toThrow(
      "Python layer 'loss' (pyloss.EuclideanLossLayer): no TypeScript implementation is registered for " +
        'python_param { module: "pyloss" layer: "EuclideanLossLayer" }. caffe-ts never runs Python code: ' +
        'port the layer to TypeScript and register it before building the net, with ' +
        "registerPythonLayer('pyloss', 'EuclideanLossLayer', (paramStr, self) => ({ setup, reshape, forward, backward })) " +
        'from @caffe-ts/layers (registered Python layers: test_python_layer.PhaseLayer, test_python_layer.ScaleLayer, ' +
        'test_python_layer.SimpleLayer, test_python_layer_with_param_str.SimpleParamLayer)',
    );
    expect(() => createLayer(def, { name: 'p' })).toThrow(
      `Python layer 'p': needs python_param { module: "..." layer: "..." } naming the implementation (got no python_param)`,
    );
  });

  it("names the layer and module.layer when the implementation throws (ExceptionLayer), and keeps the cause", () => {
    const reg = new PythonLayerRegistry();
    const boom = new Error('setup exploded');
    reg.register('test_python_layer', 'ExceptionLayer', () => ({
      setup() {
        throw boom;
      },
      reshape() {},
      forward() {},
    }));
    const layer = createLayer(pythonLayerDefFor(reg), { name: 'layer', ...python('test_python_layer', 'ExceptionLayer') });
    let caught: unknown;
    try {
      layer.setUp([makeBlob([1])], [f64()]);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(LayerError);
    expect((caught as Error).message).toBe("Python layer 'layer' (test_python_layer.ExceptionLayer): setup failed: setup exploded");
    expect((caught as Error).cause).toBe(boom);
    // self.fail names the layer too.
    expect(() => createLayer(def, { name: 'v', ...python('test_python_layer_with_param_str', 'SimpleParamLayer', '{"value": "x"}') })).toThrow(
      `Python layer 'v' (test_python_layer_with_param_str.SimpleParamLayer): param_str needs a numeric "value" (got {"value": "x"})`,
    );
  });

  it('refuses backward into bottoms when the implementation has no backward', () => {
    const reg = new PythonLayerRegistry();
    reg.register('m', 'NoBackward', () => ({
      reshape(bottom, top) {
        top[0]!.reshapeLike(bottom[0]!);
      },
      forward() {},
    }));
    const layer = createLayer(pythonLayerDefFor(reg), { name: 'nb', ...python('m', 'NoBackward') });
    const [x, top] = [makeBlob([2]), f64()];
    layer.setUp([x], [top]);
    expect(() => layer.backward([top], [true], [x])).toThrow("Python layer 'nb' (m.NoBackward): this layer cannot backpropagate to its bottoms");
    expect(() => layer.backward([top], [false], [x])).not.toThrow();
  });

  it('is preparable exactly when the implementation has prepare(), and exposes the implementation', async () => {
    const reg = new PythonLayerRegistry();
    let batches = 0;
    const loader = {
      reshape(_b: Blob[], top: Blob[]) {
        top[0]!.reshape([1]);
      },
      forward(_b: Blob[], top: Blob[]) {
        top[0]!.mutableCpuData()[0] = batches;
      },
      async prepare() {
        batches++;
      },
    };
    reg.register('m', 'Loader', () => loader);
    reg.register('m', 'Failing', () => ({ ...loader, prepare: async () => Promise.reject(new Error('disk gone')) }));
    reg.register('m', 'Plain', simpleLayer);
    const layer = createLayer<PythonLayer>(pythonLayerDefFor(reg), { name: 'data', ...python('m', 'Loader') });
    expect(layer.implementation).toBe(loader);
    await layer.prepare!();
    const top = f64();
    layer.setUp([], [top]);
    layer.forward([], [top]);
    expect(blobValues(top)).toEqual([1]);
    expect(createLayer(pythonLayerDefFor(reg), python('m', 'Plain')).prepare).toBeUndefined();
    await expect(createLayer(pythonLayerDefFor(reg), { name: 'bad', ...python('m', 'Failing') }).prepare!()).rejects.toThrow(
      "Python layer 'bad' (m.Failing): prepare failed: disk gone",
    );
  });

  describe('process-wide registry', () => {
    afterEach(() => {
      unregisterPythonLayer('pkg.mod', 'Times10');
    });

    it('registerPythonLayer feeds pythonLayerDef; duplicates need override', () => {
      registerPythonLayer('pkg.mod', 'Times10', simpleLayer);
      expect(defaultPythonLayerRegistry().has('pkg.mod', 'Times10')).toBe(true);
      expect(() => registerPythonLayer('pkg.mod', 'Times10', simpleLayer)).toThrow('Python layer pkg.mod.Times10 already registered.');
      expect(() => registerPythonLayer('pkg.mod', 'Times10', simpleParamLayer, { override: true })).not.toThrow();
      const layer = createLayer(pythonLayerDef, python('pkg.mod', 'Times10', '{"value": 3}'));
      expect(layer).toBeInstanceOf(PythonLayer);
      const [x, top] = [makeBlob([2], { filler: [1, 2] }), f64()];
      layer.setUp([x], [top]);
      layer.forward([x], [top]);
      expect(blobValues(top)).toEqual([3, 6]);
      expect(() => registerPythonLayer('', 'X', simpleLayer)).toThrow("registerPythonLayer needs a module and a layer name (got module '', layer 'X')");
    });
  });
});
