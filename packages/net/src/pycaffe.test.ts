import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNetParameter, Phase, printText } from '@caffe-ts/proto';
import { L, NetSpec } from './net-spec.js';
import { Net } from './net.js';
import { saveNet } from './node.js';
import { netFromFiles } from './pycaffe-node.js';
import { backwardWith, forwardAll, forwardBackwardAll, forwardWith, netInputs, netOutputs, setInputArrays } from './pycaffe.js';
import { NetError } from './errors.js';
import { testRegistry } from './test-helpers.js';

function spec(): NetSpec {
  const n = new NetSpec();
  n.data = L.Input({ shape: [{ dim: [1, 3] }] });
  n.ip = L.InnerProduct(n.data, { num_output: 2, weight_filler: { type: 'gaussian', std: 1 }, bias_filler: { type: 'constant', value: 0.5 } });
  n.prob = L.Softmax(n.ip);
  return n;
}

describe('pycaffe-style helpers', () => {
  it('forwardWith feeds named inputs, reshapes on a new shape and returns named outputs', () => {
    const net = new Net(spec().toProto(), { log: false, registry: testRegistry() });
    expect(netInputs(net)).toEqual(['data']);
    expect(netOutputs(net)).toEqual(['prob']);
    const w = net.params.get('ip')![0]!.cpuData();
    const x = new Float32Array([1, 2, 3]);
    const out = forwardWith(net, { data: x }, { blobs: ['ip'] });
    const ip0 = w[0]! * 1 + w[1]! * 2 + w[2]! * 3 + 0.5;
    expect(out.ip![0]).toBeCloseTo(ip0, 5);
    expect(out.prob!.length).toBe(2);
    expect(out.prob![0]! + out.prob![1]!).toBeCloseTo(1, 6);
    const batch = forwardWith(net, { data: { shape: [2, 3], data: [1, 2, 3, 1, 2, 3] } });
    expect(net.blob('prob').shape).toEqual([2, 2]);
    expect(batch.prob![2]).toBeCloseTo(out.prob![0]!, 6);
    const upToIp = forwardWith(net, {}, { end: 'ip' });
    expect(Object.keys(upToIp)).toEqual(['ip']);
    expect(() => forwardWith(net, { data: [1, 2] })).toThrow(/has 2 values but blob 'data' is 2 3 \(6\)/);
    expect(() => forwardWith(net, { nope: [1] })).toThrow(NetError);
  });

  it('netFromFiles builds a net from a prototxt and loads weights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pycaffe-'));
    try {
      const proto = join(dir, 'net.prototxt');
      writeFileSync(proto, printText('NetParameter', spec().toProto()));
      const a = new Net(spec().toProto(), { log: false, registry: testRegistry() });
      saveNet(a, join(dir, 'w.caffemodel'));
      const b = await netFromFiles(proto, { weights: join(dir, 'w.caffemodel'), phase: Phase.TEST, log: false, registry: testRegistry() });
      expect(b.phase).toBe(Phase.TEST);
      expect([...b.params.get('ip')![0]!.cpuData()]).toEqual([...a.params.get('ip')![0]!.cpuData()]);
      const x = { data: new Float32Array([0.1, -0.2, 0.3]) };
      expect([...forwardWith(b, x).prob!]).toEqual([...forwardWith(a, x).prob!]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('forwardAll runs rows in batches of the input, pads the last with zeros and drops what the padding made', () => {
    const n = spec();
    n.data = L.Input({ shape: [{ dim: [2, 3] }] });
    n.ip = L.InnerProduct(n.data, { num_output: 2, weight_filler: { type: 'gaussian', std: 1 }, bias_filler: { type: 'constant', value: 0.5 } });
    n.prob = L.Softmax(n.ip);
    const net = new Net(n.toProto(), { log: false, registry: testRegistry() });
    const rows = [[1, 2, 3], [0, -1, 2], [4, 0, 0], [-2, -2, 1], [0.5, 0.5, 0.5]];
    const forwards: number[] = [];
    const off = net.beforeForward((i) => i === 0 && forwards.push(net.blob('data').shape[0]!));
    const all = forwardAll(net, { data: { shape: [5, 3], data: rows.flat() } }, { blobs: ['ip'] });
    off();
    expect(forwards).toEqual([2, 2, 2]); // three batches of two: the last one padded
    expect(all.prob!.shape).toEqual([5, 2]);
    expect(all.ip!.shape).toEqual([5, 2]);
    // The padded row's outputs are dropped: 5 rows of 2, not 6.
    expect(all.prob!.data.length).toBe(10);
    expect(all.ip!.data.length).toBe(10);
    rows.forEach((row, r) => {
      const one = forwardWith(net, { data: { shape: [2, 3], data: [...row, 0, 0, 0] } }, { blobs: ['ip'] });
      expect(Array.from(all.prob!.data.subarray(2 * r, 2 * r + 2))).toEqual(Array.from(one.prob!.subarray(0, 2)));
      expect(Array.from(all.ip!.data.subarray(2 * r, 2 * r + 2))).toEqual(Array.from(one.ip!.subarray(0, 2)));
    });
    expect(() => forwardAll(net, { data: { shape: [5, 3], data: [1, 2] } })).toThrow(/input 'data' has 2 values for shape 5×3/);
    expect(() => forwardAll(net, { data: { shape: [0, 3], data: [] } })).toThrow(/has no rows/);
  });

  it('forwardBackwardAll runs a forward and a backward per batch, feeds output diffs by rows and drops the padding', () => {
    const param = parseNetParameter(`
      force_backward: true
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
      layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" value: 0.5 } } }
    `);
    const net = new Net(param, { log: false, registry: testRegistry() });
    const w = Array.from(net.params.get('ip')![0]!.cpuData()); // 2 × 3, row-major
    const xs = [[1, 2, 3], [0, -1, 2], [4, 0, 0], [-2, -2, 1], [0.5, 0.5, 0.5]];
    const gs = [[1, 0], [0, 1], [2, -1], [0.5, 0.5], [-1, 3]];
    const steps: string[] = [];
    const offs = [net.beforeForward((i) => i === 0 && steps.push('f')), net.beforeBackward((i) => i === 1 && steps.push('b'))];
    const { outputs, diffs } = forwardBackwardAll(net, { data: { shape: [5, 3], data: xs.flat() }, ip: { shape: [5, 2], data: gs.flat() } }, { diffs: ['ip'] });
    for (const off of offs) off();
    expect(steps).toEqual(['f', 'b', 'f', 'b', 'f', 'b']); // three batches of two, the last one padded
    expect(outputs.ip!.shape).toEqual([5, 2]);
    expect(diffs.data!.shape).toEqual([5, 3]);
    expect(diffs.ip!.shape).toEqual([5, 2]);
    xs.forEach((x, r) => {
      for (let o = 0; o < 2; o++) {
        // ip = W·x + 0.5; the input's diff is Wᵀ·g.
        expect(outputs.ip!.data[2 * r + o]).toBeCloseTo(w[3 * o]! * x[0]! + w[3 * o + 1]! * x[1]! + w[3 * o + 2]! * x[2]! + 0.5, 5);
        expect(diffs.ip!.data[2 * r + o]).toBe(gs[r]![o]);
      }
      for (let j = 0; j < 3; j++) expect(diffs.data!.data[3 * r + j]).toBeCloseTo(w[j]! * gs[r]![0]! + w[3 + j]! * gs[r]![1]!, 5);
    });
    // Inputs alone: the backward runs on the diffs the outputs hold.
    const only = forwardBackwardAll(net, { data: { shape: [2, 3], data: xs.slice(0, 2).flat() } });
    expect(Object.keys(only.diffs)).toEqual(['data']);
    expect(() => forwardBackwardAll(net, { nope: { shape: [1, 1], data: [0] } })).toThrow(/'nope' is neither an input \(data\) nor an output \(ip\)/);
    expect(() => forwardBackwardAll(net, { data: { shape: [5, 3], data: xs.flat() }, ip: { shape: [4, 2], data: gs.slice(0, 4).flat() } })).toThrow(/diff of output 'ip' has 4 rows where 'data' has 5/);
    expect(() => forwardBackwardAll(net, {})).toThrow(/no arrays given/);
    const two = new Net(parseNetParameter(`
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
      layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 2 } } }
      layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
      layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" inner_product_param { num_output: 2 } }
      layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "t" top: "loss" }
    `), { log: false, registry: testRegistry() });
    const x = { shape: [2, 3], data: xs.slice(0, 2).flat() };
    expect(() => forwardBackwardAll(two, { data: x, ip: { shape: [2, 2], data: [1, 2, 3, 4] } })).toThrow(/diffs given for ip, but the net's outputs are ip, loss: give all of them or none/);
    expect(() => forwardBackwardAll(two, { data: x, ip: { shape: [2, 2], data: [1, 2, 3, 4] }, loss: { shape: [2], data: [1, 1] } })).toThrow(/output 'loss' is \(1\), not one row per item of the batch \(2\)/);
  });

  it("layer hooks (pycaffe's before_forward … after_backward) see every layer in Caffe's order, fused chains included", () => {
    const text = `
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 5 dim: 5 } } }
      layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 1 } } }
      layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
      layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    `;
    // Without backward, the convolution and its ReLU run as one fused step.
    const net = new Net(parseNetParameter(text), { phase: Phase.TEST, log: false, registry: testRegistry() });
    expect(net.fusedChains().get(1)?.end).toBe(2);
    net.blob('data').mutableCpuData().set(Array.from({ length: 25 }, (_, i) => Math.sin(i)));
    net.forward();
    const fusedOut = Array.from(net.blob('ip').cpuData());
    const seen: string[] = [];
    const offForward = [net.beforeForward((i) => seen.push(`bf${i}`)), net.afterForward((i) => seen.push(`af${i}:${net.layers[i]!.param.name}`))];
    net.forward();
    expect(seen).toEqual(['bf0', 'af0:data', 'bf1', 'af1:conv', 'bf2', 'af2:relu', 'bf3', 'af3:ip']);
    // Run layer by layer, the values are the fused forward's.
    expect(Array.from(net.blob('ip').cpuData())).toEqual(fusedOut);
    for (const off of offForward) off();
    seen.length = 0;
    net.forward();
    expect(seen).toEqual([]);

    const trained = new Net(parseNetParameter(`force_backward: true\n${text}`), { phase: Phase.TEST, log: false, registry: testRegistry() });
    trained.forward();
    const offBackward = [trained.beforeBackward((i) => seen.push(`bb${i}`)), trained.afterBackward((i) => seen.push(`ab${i}`))];
    trained.backward();
    // Every layer, the input's too (it needs no backward), last to first.
    expect(seen).toEqual(['bb3', 'ab3', 'bb2', 'ab2', 'bb1', 'ab1', 'bb0', 'ab0']);
    for (const off of offBackward) off();
    seen.length = 0;
    trained.backward();
    expect(seen).toEqual([]);
  });

  it('setInputArrays hands items to the first layer, a MemoryData layer, which serves them batch by batch', () => {
    const param = parseNetParameter(`
      layer { name: "mem" type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 2 channels: 1 height: 1 width: 3 } }
      layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 1 weight_filler { type: "constant" value: 1 } } }
    `);
    const net = new Net(param, { phase: Phase.TEST, log: false, registry: testRegistry() });
    const data = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    setInputArrays(net, { shape: [4, 1, 1, 3], data }, [0, 1, 2, 3]);
    net.forward();
    expect(Array.from(net.blob('ip').cpuData())).toEqual([6, 15]);
    expect(Array.from(net.blob('label').cpuData())).toEqual([0, 1]);
    // Kept, not copied: a write before the next batch is served shows up in it.
    data[6] = 100;
    net.forward();
    expect(Array.from(net.blob('ip').cpuData())).toEqual([117, 33]);
    expect(() => setInputArrays(net, { shape: [4, 1, 3, 1], data }, [0, 1, 2, 3])).toThrow(/data array must be N×1×1×3 for layer 'mem', got 4×1×3×1/);
    expect(() => setInputArrays(net, { shape: [4, 1, 1, 3], data }, [0, 1])).toThrow(/same first dimension \(4 items, 2 labels\)/);
    expect(() => setInputArrays(net, { shape: [3, 1, 1, 3], data: data.subarray(0, 9) }, [0, 1, 2])).toThrow(/multiple of batch size/);
    const plain = new Net(spec().toProto(), { log: false, registry: testRegistry() });
    expect(() => setInputArrays(plain, { shape: [1, 3], data: [1, 2, 3] }, [0])).toThrow(/first layer is a MemoryData layer \(net '.*' starts with Input layer 'data'\)/);
  });

  it('backwardWith sets the output diffs, runs backward and returns the input diffs (pycaffe net.backward)', () => {
    const param = parseNetParameter(`
      force_backward: true
      layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }
      layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
      layer { name: "scaled" type: "Power" bottom: "ip" top: "scaled" power_param { scale: 3 } }
    `);
    const net = new Net(param, { log: false, registry: testRegistry() });
    const w = net.params.get('ip')![0]!.cpuData();
    forwardWith(net, { data: [1, 2, 3] });
    // d(scaled)/d(ip) = 3, so data's diff is 3 · (W row 0 · 1 + W row 1 · 0.5).
    const diffs = backwardWith(net, { scaled: [1, 0.5] }, { diffs: ['ip'] });
    expect(Object.keys(diffs)).toEqual(['data', 'ip']);
    for (let k = 0; k < 3; k++) expect(diffs.data![k]).toBeCloseTo(3 * (w[k]! + 0.5 * w[3 + k]!), 5);
    expect(Array.from(diffs.ip!)).toEqual([3, 1.5]);
    // end: stop at a layer and return its bottoms' diffs.
    const toIp = backwardWith(net, {}, { end: 'scaled' });
    expect(Object.keys(toIp)).toEqual(['ip']);
    expect(() => backwardWith(net, { ip: [1, 0] })).toThrow(/top diff arguments do not match net outputs \(given ip; outputs scaled\)/);
    expect(() => backwardWith(net, { scaled: [1] })).toThrow(/diff for 'scaled' has 1 values but blob 'scaled' is 1 2 \(2\)/);
  });

  it("topNames, bottomNames and layerDict by layer name, splits included (pycaffe's top_names, bottom_names, layer_dict)", () => {
    const n = spec();
    n.extra = L.InnerProduct(n.data, { num_output: 1 });
    const net = new Net(n.toProto(), { log: false, registry: testRegistry() });
    // data feeds two layers: Caffe's split layer hands each its own copy.
    expect([...net.topNames]).toEqual([
      ['data', ['data']],
      ['data_data_0_split', ['data_data_0_split_0', 'data_data_0_split_1']],
      ['ip', ['ip']],
      ['prob', ['prob']],
      ['extra', ['extra']],
    ]);
    expect(net.bottomNames.get('ip')).toEqual(['data_data_0_split_0']);
    expect(net.bottomNames.get('extra')).toEqual(['data_data_0_split_1']);
    expect(net.bottomNames.get('data')).toEqual([]);
    expect(net.layerDict.get('prob')).toBe(net.layer('prob'));
    expect([...net.layerDict.keys()]).toEqual(net.layerNames);
  });
});

