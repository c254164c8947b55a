import { describe, expect, it } from 'vitest';
import { parseNetParameter, type NetParameter } from '@caffe-ts/proto';
import { NetUpgradeError } from './errors.js';
import { captureLog, net } from './test-helpers.js';
import { netNeedsDataUpgrade, netNeedsInputUpgrade, upgradeNetAsNeeded } from './upgrade.js';

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

  it('rejects V1 `layers` nets with a typed error naming the file', () => {
    const p = parseNetParameter(`name: "old" layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" }`);
    expect(() => upgradeNetAsNeeded(p, { ...quiet, file: 'age_net.prototxt' })).toThrow(NetUpgradeError);
    expect(() => upgradeNetAsNeeded(p, { ...quiet, file: 'age_net.prototxt' })).toThrow(
      /^age_net\.prototxt: the net is defined with V1 'layers' fields \(1 of them\); upgrading V0\/V1 nets is not yet supported/,
    );
  });
});
