import { Blob } from '@caffe-ts/blob';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { blobValues, createLayer, GradientChecker, makeBlob } from '@caffe-ts/layers/testing';
import { Net } from '@caffe-ts/net';
import {
  decodeBinary,
  decodeNetParameter,
  encodeBinary,
  encodeNetParameter,
  hasField,
  parseNetParameter,
  parseText,
  printText,
  ProtoTextError,
  type LayerParameter,
} from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerExampleLayers } from './index.js';
import { registerScaledTanhSchema, SCALED_TANH_PARAM_FIELD, scaledTanhLayerDef, type ScaledTanhParameter } from './scaled-tanh-layer.js';

type WithScaledTanh = LayerParameter & { scaled_tanh_param: ScaledTanhParameter | null };
const f64 = () => new Blob([], { dtype: 'float64' });
const LAYER_TEXT = 'name: "st"\ntype: "ScaledTanh"\nbottom: "x"\ntop: "y"\nscaled_tanh_param {\n  alpha: 2\n  beta: 0.5\n}\n';

// Each test file runs in its own process: the schema starts without the plugin's field (so
// registration happens in tests and hooks, not while vitest collects the describe blocks).
describe('scaled_tanh_param schema', () => {
  it('is unknown until the plugin registers it', () => {
    expect(() => parseText('LayerParameter', LAYER_TEXT, { file: 'st.prototxt' })).toThrow(ProtoTextError);
    expect(() => parseText('LayerParameter', LAYER_TEXT, { file: 'st.prototxt' })).toThrow(/st\.prototxt:5:1: unknown field 'scaled_tanh_param'/);
  });

  it('parses, prints and round-trips through text and binary once registered', () => {
    registerScaledTanhSchema();
    registerScaledTanhSchema(); // idempotent
    const layer = parseText<WithScaledTanh>('LayerParameter', LAYER_TEXT);
    expect(layer.scaled_tanh_param!.alpha).toBe(2);
    expect(layer.scaled_tanh_param!.beta).toBe(0.5);
    expect(printText('LayerParameter', layer)).toBe(LAYER_TEXT);

    const bytes = encodeBinary('LayerParameter', layer);
    // Field 1147, wire type 2 (length-delimited): the tag varint 1147·8+2 = 9178 → DA 47.
    const tag = [0xda, 0x47];
    expect(bytes.some((_, i) => bytes[i] === tag[0] && bytes[i + 1] === tag[1])).toBe(true);
    const back = decodeBinary<WithScaledTanh>('LayerParameter', bytes);
    expect(back).toEqual(layer);
    expect(printText('LayerParameter', back)).toBe(LAYER_TEXT);
  });

  it('reads the defaults of the plugin message and names its fields in errors', () => {
    registerScaledTanhSchema();
    const empty = parseText<WithScaledTanh>('LayerParameter', 'scaled_tanh_param { }');
    expect(empty.scaled_tanh_param!.alpha).toBe(Math.fround(1.7159));
    expect(empty.scaled_tanh_param!.beta).toBe(Math.fround(0.6666667));
    expect(hasField(empty.scaled_tanh_param!, 'alpha')).toBe(false);
    expect(() => parseText('LayerParameter', 'scaled_tanh_param { alhpa: 1 }')).toThrow(
      "1:21: unknown field 'alhpa' in caffe.ScaledTanhParameter (at scaled_tanh_param); did you mean 'alpha'?",
    );
    expect(SCALED_TANH_PARAM_FIELD.id).toBeGreaterThanOrEqual(1000);
  });
});

describe('ScaledTanh layer', () => {
  beforeAll(registerScaledTanhSchema);

  it('forwards α·tanh(β·x) in float32 and float64', () => {
    const x = [-3, -0.5, 0, 0.25, 2];
    for (const dtype of ['float32', 'float64'] as const) {
      const layer = createLayer(scaledTanhLayerDef, { scaled_tanh_param: { alpha: 2, beta: 0.5 } }, { dtype });
      const bottom = makeBlob([5], { filler: x, dtype });
      const top = new Blob([], { dtype });
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      const y = blobValues(top);
      x.forEach((v, i) => expect(y[i]).toBeCloseTo(2 * Math.tanh(0.5 * v), dtype === 'float64' ? 14 : 6));
    }
  });

  it("defaults to LeCun's 1.7159·tanh(2x/3)", () => {
    const layer = createLayer(scaledTanhLayerDef);
    const bottom = makeBlob([3], { filler: [-1, 0, 1.5] });
    const top = f64();
    layer.setUp([bottom], [top]);
    layer.forward([bottom], [top]);
    [-1, 0, 1.5].forEach((v, i) => expect(blobValues(top)[i]).toBeCloseTo(Math.fround(1.7159) * Math.tanh(Math.fround(0.6666667) * v), 12));
  });

  it('backward is dy·αβ(1 − tanh²(βx)), also in place', () => {
    const xs = [-1, 0, 2];
    const layer = createLayer(scaledTanhLayerDef, { scaled_tanh_param: { alpha: 3, beta: -0.25 } });
    const blob = makeBlob([3], { filler: xs });
    layer.setUp([blob], [blob]);
    layer.forward([blob], [blob]);
    blob.mutableCpuDiff().set([1, 2, 3]);
    layer.backward([blob], [true], [blob]);
    const dx = blobValues(blob, 'diff');
    xs.forEach((v, i) => expect(dx[i]).toBeCloseTo((i + 1) * 3 * -0.25 * (1 - Math.tanh(-0.25 * v) ** 2), 12));
  });

  it('passes the gradient check (TanH test values: 1e-2, 1e-3) element-wise', () => {
    const checker = new GradientChecker(1e-2, 1e-3);
    checker.checkGradientEltwise(createLayer(scaledTanhLayerDef), [makeBlob([2, 3, 2, 2])], [f64()]);
    checker.checkGradientEltwise(createLayer(scaledTanhLayerDef, { scaled_tanh_param: { alpha: 0.5, beta: 2 } }), [makeBlob([2, 3, 2])], [f64()]);
  });

  it('rejects α = 0 and non-finite values, naming the layer', () => {
    const bottom = makeBlob([2]);
    expect(() => createLayer(scaledTanhLayerDef, { name: 'st', scaled_tanh_param: { alpha: 0 } }).setUp([bottom], [f64()])).toThrow(
      "ScaledTanh layer 'st': scaled_tanh_param.alpha must be finite and non-zero (got 0)",
    );
    expect(() => createLayer(scaledTanhLayerDef, { name: 'st', scaled_tanh_param: { beta: Infinity } }).setUp([bottom], [f64()])).toThrow(
      "ScaledTanh layer 'st': scaled_tanh_param.beta must be finite (got Infinity)",
    );
  });
});

describe('ScaledTanh inside a Net built from a prototxt', () => {
  const registry = registerBuiltinLayers(new LayerRegistry());
  beforeAll(() => registerExampleLayers(registry));
  const PROTOTXT = `
    name: "plugin_net"
    layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h"
            inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
    layer { name: "act" type: "ScaledTanh" bottom: "h" top: "h" scaled_tanh_param { alpha: 1.5 beta: 0.75 } }
    layer { name: "sum" type: "Reduction" bottom: "h" top: "loss" loss_weight: 1 }
  `;

  it('runs forward and backward, and its parameters survive saving the net', () => {
    const net = new Net(parseNetParameter(PROTOTXT), { registry, log: false, dtype: 'float64' });
    expect(net.layer('act').type).toBe('ScaledTanh');
    const x = net.blob('x').mutableCpuData();
    x.set([0.5, -1, 2, 0, 1, -0.5]);
    const w = net.params.get('ip')![0]!.cpuData();
    const b = net.params.get('ip')![1]!.cpuData();
    const loss = net.forward();
    // Reference: Σ 1.5·tanh(0.75·(Wx + b)) over the batch.
    let ref = 0;
    for (let n = 0; n < 2; n++) {
      for (let o = 0; o < 4; o++) {
        let h = b[o]!;
        for (let i = 0; i < 3; i++) h += w[o * 3 + i]! * x[n * 3 + i]!;
        ref += 1.5 * Math.tanh(0.75 * h);
      }
    }
    expect(loss).toBeCloseTo(ref, 10);
    net.backward();
    // d loss / d b_o = Σ_n 1.5·0.75·(1 − tanh²(0.75 h)).
    const y = net.blob('h').cpuData();
    const db = net.params.get('ip')![1]!.cpuDiff();
    for (let o = 0; o < 4; o++) {
      let g = 0;
      for (let n = 0; n < 2; n++) g += 1.5 * 0.75 * (1 - (y[n * 4 + o]! / 1.5) ** 2);
      expect(db[o]).toBeCloseTo(g, 10);
    }

    const saved = decodeNetParameter(encodeNetParameter(net.toProto()));
    const act = saved.layer.find((l) => l.name === 'act') as WithScaledTanh;
    expect([act.scaled_tanh_param!.alpha, act.scaled_tanh_param!.beta]).toEqual([1.5, 0.75]);
  });
});
