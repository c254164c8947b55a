// The peer-comparison converters of bench/ (bench/src/peers): a small net that exercises every
// converted layer kind (grouped and depthwise convolution, BatchNorm+Scale, leaky ReLU, ceil-mode
// MAX and AVE pooling, LRN, Concat, Eltwise with coefficients, Dropout, InnerProduct, Softmax)
// and a small training net run in caffe-ts, onnxruntime-node and tfjs (cpu backend) must agree.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { defaultLayerRegistry } from '@caffe-ts/layers';
import '@caffe-ts/layers/register';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';

/* eslint-disable @typescript-eslint/no-explicit-any -- the bench modules are untyped .mjs */
const peers = new URL('../../bench/src/peers/', import.meta.url).href;
const load = (file: string): Promise<any> => import(/* @vite-ignore */ `${peers}${file}`);

const INFER = `
name: "mix"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 10 dim: 10 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 6 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "dw" type: "Convolution" bottom: "pool1" top: "dw" convolution_param { num_output: 6 kernel_size: 3 pad: 1 group: 6 } }
layer { name: "leaky" type: "ReLU" bottom: "dw" top: "dw" relu_param { negative_slope: 0.1 } }
layer { name: "norm" type: "LRN" bottom: "dw" top: "norm" lrn_param { local_size: 5 alpha: 0.01 beta: 0.75 } }
layer { name: "a" type: "Convolution" bottom: "pool1" top: "a" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "norm" top: "b" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }
layer { name: "c" type: "Convolution" bottom: "cat" top: "c" convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "c" bottom: "pool1" top: "sum" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "pool2" type: "Pooling" bottom: "sum" top: "pool2" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "drop" type: "Dropout" bottom: "pool2" top: "pool2" }
layer { name: "fc" type: "InnerProduct" bottom: "pool2" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
`;

const TRAIN = `
name: "tiny-train"
layer { name: "input" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 1 dim: 12 dim: 12 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
`;

async function build(text: string, phase: Phase) {
  const { fillRandomParams, describeNet } = await load('net-spec.mjs');
  const net = await Net.create(parseNetParameter(text), { phase, registry: defaultLayerRegistry(), log: false });
  const rng = new Rng(7);
  fillRandomParams(net, rng);
  const inputs: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const name of net.inputBlobNames) {
    const blob = net.blobs.get(name)!;
    const d = blob.mutableCpuData();
    for (let i = 0; i < d.length; i++) d[i] = name === 'label' ? rng.int(5) : 2 * rng.uniform() - 1;
    inputs[name] = { shape: [...blob.shape], data: Float32Array.from(d) };
  }
  return { net, spec: describeNet(net), inputs };
}

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bench-peers-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench peer converters', () => {
  it('pads a floor-rounded pool to Caffe\'s ceil-rounded size', async () => {
    const { poolPads } = await load('to-onnx.mjs');
    // 10 → ceil((10 - 3) / 2) + 1 = 5 windows: the last one overhangs by one.
    expect(poolPads('p', [10, 10], [3, 3], [2, 2], [0, 0], [5, 5])).toEqual([0, 0, 1, 1]);
    expect(poolPads('p', [7, 7], [3, 3], [2, 2], [1, 1], [4, 4])).toEqual([1, 1, 1, 1]);
    // FLOOR rounding: 4 windows stop one short of the end; no end pad.
    expect(poolPads('p', [10, 10], [3, 3], [2, 2], [0, 0], [4, 4])).toEqual([0, 0, 0, 0]);
    expect(() => poolPads('p', [10, 10], [3, 3], [2, 2], [0, 0], [3, 3])).toThrow(/cropping/);
  });

  it('runs a mixed net in onnxruntime-node and tfjs as caffe-ts does, and notices a wrong weight', async () => {
    const { net, spec, inputs } = await build(INFER, Phase.TEST);
    net.forward();
    const prob = Float32Array.from(net.blobs.get('prob')!.cpuData());
    const fc = Float32Array.from(net.blobs.get('fc')!.cpuData());
    const { maxRelError } = await load('net-spec.mjs');
    const { specToOnnx, decodeModel } = await Promise.all([load('to-onnx.mjs'), load('onnx-schema.mjs')]).then(([a, b]) => ({ ...a, ...b }));
    const { importOrt, importTfjs } = await load('deps.mjs');
    const ort = await importOrt();

    const bytes: Uint8Array = specToOnnx(spec, ['fc', 'prob']);
    const model = decodeModel(bytes);
    expect(model.opset_import[0].version).toBe(17);
    expect(model.graph.node.map((n: { op_type: string }) => n.op_type)).toContain('LRN');
    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
    const r = await session.run({ data: new ort.Tensor('float32', inputs.data!.data, inputs.data!.shape) });
    expect(maxRelError(r['out:fc'].data, fc)).toBeLessThan(1e-5);
    expect(maxRelError(r['out:prob'].data, prob)).toBeLessThan(1e-5);

    const tf = await importTfjs();
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
    const { specToTfjs } = await load('to-tfjs.mjs');
    const prog = specToTfjs(tf, spec);
    const x = prog.feed(inputs.data!.data, inputs.data!.shape);
    const [tfFc, tfProb] = tf.tidy(() => {
      const env = prog.run({ data: x });
      return [env.get('fc'), env.get('prob')];
    });
    expect(maxRelError(tfFc.dataSync(), fc)).toBeLessThan(1e-5);
    expect(maxRelError(tfProb.dataSync(), prob)).toBeLessThan(1e-5);
    tf.dispose([x, tfFc, tfProb]);

    // The check can fail: one changed weight of the grouped convolution shows up in the logits.
    const conv1 = spec.layers.find((l: { name: string }) => l.name === 'conv1');
    conv1.blobs[0].data[5] += 0.5;
    const bad = await ort.InferenceSession.create(specToOnnx(spec, ['fc']), { intraOpNumThreads: 1 });
    const rb = await bad.run({ data: new ort.Tensor('float32', inputs.data!.data, inputs.data!.shape) });
    expect(maxRelError(rb['out:fc'].data, fc)).toBeGreaterThan(1e-3);
  });

  it('computes the loss and every parameter gradient of a training net in tfjs as caffe-ts does', async () => {
    const { net, spec, inputs } = await build(TRAIN, Phase.TRAIN);
    net.clearParamDiffs();
    const loss = net.forward();
    net.backward();
    const { maxRelError } = await load('net-spec.mjs');
    const tf = await (await load('deps.mjs')).importTfjs();
    await tf.setBackend('cpu');
    await (await load('tfjs-gradients.mjs')).registerTfjsGradients(dir);
    const { specToTfjs } = await load('to-tfjs.mjs');
    const prog = specToTfjs(tf, spec, { train: true });
    const feeds = { data: prog.feed(inputs.data!.data, inputs.data!.shape), label: prog.feed(inputs.label!.data, inputs.label!.shape) };
    const { value, grads } = tf.variableGrads(() => prog.run(feeds).get('loss'), prog.params.map((p: any) => p.tensor));
    expect(Math.abs(value.dataSync()[0] - loss) / Math.abs(loss)).toBeLessThan(1e-5);
    expect(prog.params.length).toBe(4);
    for (const p of prog.params) {
      const layer = net.layer(p.layer);
      const g = tf.tidy(() => p.toCaffe(grads[p.tensor.name]));
      expect(maxRelError(g.dataSync(), layer.blobs[p.index]!.cpuDiff())).toBeLessThan(1e-4);
      g.dispose();
    }
    tf.dispose([value, ...Object.values(grads), ...Object.values(feeds)]);
    tf.disposeVariables();
  });
});
