import { Blob, Rng } from '@caffe-ts/blob';
import { LayerError, LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { pythonLayerDef } from '@caffe-ts/layers';
import { createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { Net } from '@caffe-ts/net';
import { parseNetParameter } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerExampleLayers } from './index.js';

const f64 = () => new Blob([], { dtype: 'float64' });

/**
 * A pycaffe-era net in the pattern of BVLC's examples/pycaffe/linreg.prototxt: two inner
 * products (so the net needs backward) and a loss computed by a Python layer, which a
 * pycaffe-era prototxt must mark with `loss_weight`. Inputs stand in for DummyData.
 */
const linreg = (loss: string) => `
  name: 'LinearRegressionExample'
  layer { type: 'Input' name: 'x' top: 'x' input_param { shape { dim: 10 dim: 3 dim: 2 } } }
  layer { type: 'Input' name: 'y' top: 'y' input_param { shape { dim: 10 dim: 3 dim: 2 } } }
  layer { type: 'InnerProduct' name: 'ipx' top: 'ipx' bottom: 'x'
          inner_product_param { num_output: 10 weight_filler { type: 'xavier' } } }
  layer { type: 'InnerProduct' name: 'ipy' top: 'ipy' bottom: 'y'
          inner_product_param { num_output: 10 weight_filler { type: 'xavier' } } }
  ${loss}
`;
const PYTHON_LOSS = `
  layer { type: 'Python' name: 'loss' top: 'loss' bottom: 'ipx' bottom: 'ipy'
          python_param { module: 'pyloss' layer: 'EuclideanLossLayer' }
          loss_weight: 1 }`;
const CPP_LOSS = `layer { type: 'EuclideanLoss' name: 'loss' top: 'loss' bottom: 'ipx' bottom: 'ipy' }`;

describe('pyloss.EuclideanLossLayer (a Python layer ported to TypeScript)', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerExampleLayers(registry));

  it('gives the loss and gradients of the built-in EuclideanLoss in the linreg net', () => {
    const build = (loss: string) => new Net(parseNetParameter(linreg(loss)), { registry, log: false, dtype: 'float64', rng: new Rng(3) });
    const py = build(PYTHON_LOSS);
    const cpp = build(CPP_LOSS);
    expect(py.layer('loss').type).toBe('Python');
    const rng = new Rng(1701);
    for (const name of ['x', 'y']) {
      const a = py.blob(name).mutableCpuData();
      for (let i = 0; i < a.length; i++) a[i] = rng.gaussian(0, 1);
      cpp.blob(name).mutableCpuData().set(a);
    }
    for (const name of ['ipx', 'ipy']) {
      expect(Array.from(py.params.get(name)![0]!.cpuData())).toEqual(Array.from(cpp.params.get(name)![0]!.cpuData()));
    }
    const lossPy = py.forward();
    const lossCpp = cpp.forward();
    expect(lossPy).toBeGreaterThan(0);
    expect(lossPy).toBeCloseTo(lossCpp, 12);
    py.backward();
    cpp.backward();
    for (const name of ['ipx', 'ipy']) {
      const a = Array.from(py.params.get(name)![0]!.cpuDiff());
      const b = Array.from(cpp.params.get(name)![0]!.cpuDiff());
      expect(a.some((v) => v !== 0)).toBe(true);
      a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 12));
    }
  });

  it('passes the gradient check of the C++ EuclideanLoss test (1e-2, 1e-2) with loss_weight 3.7', () => {
    const rng = new Rng(1701);
    const layer = createLayer(pythonLayerDef, {
      python_param: { module: 'pyloss', layer: 'EuclideanLossLayer' },
      loss_weight: [3.7],
    });
    new GradientChecker(1e-2, 1e-2, { seed: 1701 }).checkGradientExhaustive(
      layer,
      [makeBlob([4, 3, 1, 1], { rng }), makeBlob([4, 3, 1, 1], { rng })],
      [f64()],
    );
  });

  it("keeps pyloss.py's checks, naming the layer", () => {
    const layer = createLayer(pythonLayerDef, { name: 'loss', python_param: { module: 'pyloss', layer: 'EuclideanLossLayer' } });
    expect(() => layer.setUp([makeBlob([2, 3]), makeBlob([2, 4])], [f64()])).toThrow(
      "Python layer 'loss' (pyloss.EuclideanLossLayer): Inputs must have the same dimension (2 3 (6) vs 2 4 (8)).",
    );
    expect(() => layer.setUp([makeBlob([2, 3])], [f64()])).toThrow(
      "Python layer 'loss' (pyloss.EuclideanLossLayer): Need two inputs to compute distance (got 1).",
    );
  });

  it('a pycaffe prototxt naming an unported Python layer fails to build with a clear error', () => {
    const text = linreg(`
      layer { type: 'Python' name: 'data' top: 'img' python_param { module: 'pascal_multilabel_datalayers'
              layer: 'PascalMultilabelDataLayerSync' param_str: "{'batch_size': 8}" } }`);
    expect(() => new Net(parseNetParameter(text), { registry, log: false })).toThrow(LayerError);
    expect(() => new Net(parseNetParameter(text), { registry, log: false })).toThrow(
      /Python layer 'data' \(pascal_multilabel_datalayers\.PascalMultilabelDataLayerSync\): .*caffe-ts never runs Python code: .*registerPythonLayer\('pascal_multilabel_datalayers', 'PascalMultilabelDataLayerSync', .*registered Python layers: pyloss\.EuclideanLossLayer\)/,
    );
  });
});
