import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '@caffe-ts/blob';
import { CaffeFileError } from '@caffe-ts/proto';
import { NetError, NetUpgradeError } from './errors.js';
import { Net } from './net.js';
import { copyTrainedLayersFromFile, loadNetFromFile, readNetParameter, readNetWeights, saveNet } from './node.js';
import { net, testRegistry } from './test-helpers.js';

const registry = testRegistry();
const corpus = fileURLToPath(new URL('../../../../shared/corpus', import.meta.url));
const lenetDir = join(corpus, 'weights/lenet_nn_ex1');
const hasLenet = existsSync(join(lenetDir, 'lenet.prototxt'));
const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-net-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SMALL = `
  name: "small"
  layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
  layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
          inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
`;

describe('@caffe-ts/net/node', () => {
  it('readNetParameter reads and upgrades a prototxt', () => {
    const path = join(dir, 'legacy.prototxt');
    writeFileSync(path, 'name: "l" input: "x" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4\n');
    const p = readNetParameter(path, { log: false });
    expect(p.layer.map((l) => l.type)).toEqual(['Input']);
    expect(p.input).toEqual([]);
  });

  it('names the file when it is missing; upgrades V1 files', () => {
    const missing = join(dir, 'nope.prototxt');
    expect(() => readNetParameter(missing)).toThrow(CaffeFileError);
    expect(() => readNetParameter(missing)).toThrow(`cannot read '${missing}': no such file`);
    const v1 = join(dir, 'v1.prototxt');
    writeFileSync(v1, 'layers { name: "c" type: CONVOLUTION }\n');
    expect(readNetParameter(v1, { log: false }).layer.map((l) => l.type)).toEqual(['Convolution']);
    writeFileSync(v1, 'layer { name: "r" type: "ReLU" }\nlayers { name: "c" type: CONVOLUTION }\n');
    expect(() => readNetParameter(v1, { log: false })).toThrow(NetUpgradeError);
    expect(() => readNetParameter(v1, { log: false })).toThrow(new RegExp(`^${v1}: Refusing to upgrade inconsistent NetParameter`));
  });

  it('saveNet writes atomically and the file loads back bit-identically', () => {
    const a = new Net(net(SMALL), { registry, log: false, rng: new Rng(1) });
    const b = new Net(net(SMALL), { registry, log: false, rng: new Rng(2) });
    const path = join(dir, 'small.caffemodel');
    saveNet(a, path);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    copyTrainedLayersFromFile(b, path);
    a.params.get('fc')!.forEach((blob, i) => {
      expect(Array.from(b.params.get('fc')![i]!.cpuData())).toEqual(Array.from(blob.cpuData()));
    });
    expect(readNetWeights(path).layer.map((l) => l.name)).toEqual(['in', 'fc']);
  });

  it('names the weights file in copy errors, and rejects HDF5 weights until HDF5 support is loaded', () => {
    const a = new Net(net(SMALL), { registry, log: false });
    const path = join(dir, 'small2.caffemodel');
    saveNet(a, path);
    const other = new Net(net(SMALL.replace('num_output: 4', 'num_output: 5')), { registry, log: false });
    expect(() => copyTrainedLayersFromFile(other, path)).toThrow(
      new RegExp(`Cannot copy param 0 weights from layer 'fc'; shape mismatch.*\\(weights file ${path}\\)$`),
    );
    const h5 = join(dir, 'w.caffemodel.h5');
    writeFileSync(h5, Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]));
    expect(() => copyTrainedLayersFromFile(a, h5)).toThrow(NetError);
    expect(() => copyTrainedLayersFromFile(a, h5)).toThrow(/HDF5 weights are read from files named \*\.h5 .*`await enableHdf5\(\)` from @caffe-ts\/solver\/node/);
  });

  it.skipIf(!hasLenet)('LeNet (legacy input_dim) loads lenet_iter_10000.caffemodel and classifies a drawn 1', () => {
    const n = loadNetFromFile(join(lenetDir, 'lenet.prototxt'), { registry, log: false });
    expect(n.layerNames).toEqual(['input', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'prob']);
    expect(n.inputBlobNames).toEqual(['data']);
    expect(n.outputBlobNames).toEqual(['prob']);
    copyTrainedLayersFromFile(n, join(lenetDir, 'lenet_iter_10000.caffemodel'));
    expect(n.params.get('conv1')!.map((b) => b.shapeString())).toEqual(['20 1 5 5 (500)', '20 (20)']);
    expect(n.params.get('ip2')!.map((b) => b.shapeString())).toEqual(['10 500 (5000)', '10 (10)']);
    const data = n.blob('data');
    expect(data.shape).toEqual([64, 1, 28, 28]);
    // Image 0: a vertical stroke (a "1"); the others: a ring (a "0"); values in [0, 1] as LeNet was trained.
    const x = data.mutableCpuData();
    for (let img = 0; img < 64; img++) {
      for (let r = 0; r < 28; r++) {
        for (let c = 0; c < 28; c++) {
          const on = img === 0 ? r >= 5 && r < 23 && c >= 13 && c < 15 : Math.abs(Math.hypot(r - 13.5, (c - 13.5) * 1.3) - 8) < 1.6;
          x[img * 784 + r * 28 + c] = on ? 1 : 0;
        }
      }
    }
    n.forward();
    const prob = n.blob('prob');
    expect(prob.shape).toEqual([64, 10]);
    const p = prob.cpuData();
    for (let i = 0; i < 64; i++) {
      let s = 0;
      for (let k = 0; k < 10; k++) s += p[i * 10 + k]!;
      expect(s).toBeCloseTo(1, 5);
    }
    const argmax = (i: number) => {
      let best = 0;
      for (let k = 1; k < 10; k++) if (p[i * 10 + k]! > p[i * 10 + best]!) best = k;
      return best;
    };
    expect(argmax(0)).toBe(1);
    expect(argmax(1)).toBe(0);
  });
});
