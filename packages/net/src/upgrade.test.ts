import { describe, expect, it } from 'vitest';
import { parseNetParameter, type NetParameter } from '@caffe-ts/proto';
import { NetUpgradeError } from './errors.js';
import { captureLog, net } from './test-helpers.js';
import {
  netNeedsDataUpgrade,
  netNeedsInputUpgrade,
  netNeedsUpgrade,
  upgradeNet,
  upgradeNetAsNeeded,
  type NetUpgradeResult,
} from './upgrade.js';

const quiet = { log: false };
const shapes = (p: NetParameter) => p.layer[0]!.input_param!.shape.map((s) => s.dim.map(Number));

describe('upgradeNetAsNeeded', () => {
  it('returns a current-format net unchanged (same object)', () => {
    const p = net(`name: "n" layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }`);
    expect(upgradeNetAsNeeded(p, quiet)).toBe(p);
  });

  it('turns input + input_dim into an Input layer named "input" placed first', () => {
    const p = net(`
      name: "LeNet"
      input: "data" input_dim: 64 input_dim: 1 input_dim: 28 input_dim: 28
      input: "label" input_dim: 64 input_dim: 1 input_dim: 1 input_dim: 1
      layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }
    `);
    expect(netNeedsInputUpgrade(p)).toBe(true);
    const lines = captureLog(() => upgradeNetAsNeeded(p, { file: 'lenet.prototxt' }));
    expect(lines[0]!.message).toBe('Attempting to upgrade input file specified using deprecated input fields: lenet.prototxt');
    const u = upgradeNetAsNeeded(p, quiet);
    expect(u.layer.map((l) => [l.name, l.type])).toEqual([['input', 'Input'], ['relu', 'ReLU']]);
    expect(u.layer[0]!.top).toEqual(['data', 'label']);
    expect(shapes(u)).toEqual([[64, 1, 28, 28], [64, 1, 1, 1]]);
    expect(u.input).toEqual([]);
    expect(u.input_dim).toEqual([]);
    expect(u.name).toBe('LeNet');
    // The original keeps its legacy fields.
    expect(p.input).toEqual(['data', 'label']);
    expect(p.layer).toHaveLength(1);
  });

  it('uses input_shape when given', () => {
    const p = net(`input: "x" input_shape { dim: 2 dim: 3 } layer { name: "r" type: "ReLU" bottom: "x" top: "y" }`);
    expect(shapes(upgradeNetAsNeeded(p, quiet))).toEqual([[2, 3]]);
  });

  it('drops shapeless inputs (old caffemodels) without adding a layer', () => {
    const p = net(`input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "y" }`);
    const u = upgradeNetAsNeeded(p, quiet);
    expect(u.layer.map((l) => l.name)).toEqual(['r']);
    expect(u.input).toEqual([]);
  });

  it('rejects too few input_dim values, naming the input', () => {
    const p = net(`input: "data" input_dim: 1 input_dim: 2`);
    expect(() => upgradeNetAsNeeded(p, { ...quiet, file: 'x.prototxt' })).toThrow(
      "x.prototxt: input 'data' (input 0) needs 4 input_dim values; 1 inputs need 4, found 2",
    );
  });

  it('moves legacy transform fields of data layers into transform_param', () => {
    const p = net(`
      layer { name: "d" type: "Data" top: "x" data_param { source: "db" batch_size: 4 scale: 0.5 mirror: true crop_size: 3 mean_file: "m" } }
    `);
    expect(netNeedsDataUpgrade(p)).toBe(true);
    const u = upgradeNetAsNeeded(p, quiet);
    const l = u.layer[0]!;
    expect(l.transform_param!.scale).toBeCloseTo(0.5);
    expect(l.transform_param!.mirror).toBe(true);
    expect(l.transform_param!.crop_size).toBe(3);
    expect(l.transform_param!.mean_file).toBe('m');
    expect(l.data_param!.source).toBe('db');
    expect(l.data_param!.scale).toBe(1); // back to the default
    expect(netNeedsDataUpgrade(u)).toBe(false);
    expect(p.layer[0]!.data_param!.scale).toBeCloseTo(0.5);
  });

  it("gives old BatchNorm's three ParamSpecs lr_mult 0 and decay_mult 0", () => {
    const p = net(`layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 } }`);
    const u = upgradeNetAsNeeded(p, quiet);
    expect(u.layer[0]!.param.map((s) => [s.lr_mult, s.decay_mult])).toEqual([[0, 0], [0, 0], [0, 0]]);
    expect(p.layer[0]!.param[0]!.lr_mult).toBe(1);
  });

  it('upgrades V1 `layers` nets, logging Caffe\'s lines, then their legacy inputs', () => {
    const p = parseNetParameter(`
      name: "old" input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
      layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
               convolution_param { num_output: 2 kernel_size: 3 } }
      layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }`);
    expect(netNeedsUpgrade(p)).toBe(true);
    let r: NetUpgradeResult | undefined;
    const lines = captureLog(() => {
      r = upgradeNet(p, { file: 'age_net.prototxt' });
    });
    expect(lines.map((l) => l.message).slice(0, 3)).toEqual([
      'Attempting to upgrade input file specified using deprecated V1LayerParameter: age_net.prototxt',
      'Successfully upgraded file specified using deprecated V1LayerParameter',
      'Attempting to upgrade input file specified using deprecated input fields: age_net.prototxt',
    ]);
    expect(r!.upgraded).toBe(true);
    expect(r!.success).toBe(true);
    const u = r!.net;
    expect(u.layer.map((l) => [l.name, l.type])).toEqual([['input', 'Input'], ['conv1', 'Convolution'], ['relu1', 'ReLU']]);
    expect(u.layer[1]!.param.map((s) => s.lr_mult)).toEqual([1, 2]);
    expect(u.layers).toEqual([]);
    expect(netNeedsUpgrade(u)).toBe(false);
    expect(upgradeNet(u, quiet)).toEqual({ net: u, upgraded: false, success: true, problems: [] });
  });

  it('upgrades V0 nets through V1, moving transform fields, and logs problems as errors', () => {
    const p = parseNetParameter(`
      name: "v0" input: "x"
      layers { layer { name: "pad" type: "padding" pad: 2 } bottom: "x" top: "px" }
      layers { layer { name: "c" type: "conv" num_output: 3 kernelsize: 5 local_size: 3 } bottom: "px" top: "c" }
      layers { layer { name: "d" type: "data" source: "db" scale: 0.5 } top: "d" }`);
    let r: NetUpgradeResult | undefined;
    const lines = captureLog(() => {
      r = upgradeNet(p, { file: 'v0.prototxt' });
    });
    const messages = lines.map((l) => `${l.level}:${l.message}`);
    expect(messages[0]).toBe('I:Attempting to upgrade input file specified using deprecated V0LayerParameter: v0.prototxt');
    expect(messages).toContain("E:Unknown parameter local_size for layer type conv (layer 'c')");
    expect(messages).toContain(
      'E:Warning: had one or more problems upgrading V0NetParameter to NetParameter (see above); continuing anyway.',
    );
    expect(messages).toContain('I:Successfully upgraded file specified using deprecated V1LayerParameter');
    expect(r!.success).toBe(false);
    expect(r!.problems).toEqual(["Unknown parameter local_size for layer type conv (layer 'c')"]);
    const u = r!.net;
    expect(u.layer.map((l) => [l.name, l.type, l.bottom])).toEqual([
      ['c', 'Convolution', ['x']],
      ['d', 'Data', []],
    ]);
    expect(u.layer[0]!.convolution_param!.pad).toEqual([2]);
    expect(u.layer[1]!.transform_param!.scale).toBe(0.5);
    expect(u.input).toEqual([]); // a shapeless input is dropped
  });

  it('rejects nets with both layer and layers with a typed error naming the file', () => {
    const p = parseNetParameter(`layer { name: "a" type: "ReLU" } layers { name: "conv1" type: CONVOLUTION }`);
    expect(() => upgradeNetAsNeeded(p, { ...quiet, file: 'mixed.prototxt' })).toThrow(NetUpgradeError);
    expect(() => upgradeNetAsNeeded(p, { ...quiet, file: 'mixed.prototxt' })).toThrow(/^mixed\.prototxt: Refusing to upgrade inconsistent NetParameter/);
  });
});
