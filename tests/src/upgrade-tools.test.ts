import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import {
  decodeNetParameter,
  encodeNetParameter,
  hasField,
  parseNetParameter,
  parseSolverParameter,
} from '@caffe-ts/proto';
import { caffe, corpus, hasCorpus, messages, tempDir } from './helpers.js';

// caffe upgrade_net_proto_text / upgrade_net_proto_binary / upgrade_solver_proto_text, as
// Caffe's tools/upgrade_*.cpp: read, upgrade what is deprecated, write, log what happened.
describe('caffe upgrade tools', () => {
  const dir = tempDir('caffe-ts-upgrade-');
  afterAll(() => dir.remove());
  const path = (name: string) => join(dir.path, name);
  const write = (name: string, text: string | Uint8Array) => {
    writeFileSync(path(name), text);
    return name;
  };

  it('upgrade_net_proto_text turns a V0 net into the current format (padding folded, field-number order)', async () => {
    write(
      'v0.prototxt',
      `name: "Tiny"
       input: "data" input_dim: 1 input_dim: 1 input_dim: 6 input_dim: 6
       layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
       layers { layer { name: "conv1" type: "conv" num_output: 2 kernelsize: 3 blobs_lr: 1 blobs_lr: 2 } bottom: "pad1" top: "conv1" }
       layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }`,
    );
    const r = await caffe(['upgrade_net_proto_text', 'v0.prototxt', 'v2.prototxt'], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const log = messages(r.log);
    expect(log).toContain(`Attempting to upgrade input file specified using deprecated V0LayerParameter: ${path('v0.prototxt')}`);
    expect(log).toContain('Successfully upgraded file specified using deprecated V1LayerParameter');
    expect(log.at(-1)).toBe(`Wrote upgraded NetParameter text proto to ${path('v2.prototxt')}`);
    expect(readFileSync(path('v2.prototxt'), 'utf8')).toBe(
      [
        'name: "Tiny"',
        'layer {',
        '  name: "input"',
        '  type: "Input"',
        '  top: "data"',
        '  input_param {',
        '    shape {',
        '      dim: 1',
        '      dim: 1',
        '      dim: 6',
        '      dim: 6',
        '    }',
        '  }',
        '}',
        'layer {',
        '  name: "conv1"',
        '  type: "Convolution"',
        '  bottom: "data"',
        '  top: "conv1"',
        '  param {',
        '    lr_mult: 1',
        '  }',
        '  param {',
        '    lr_mult: 2',
        '  }',
        '  convolution_param {',
        '    num_output: 2',
        '    pad: 1',
        '    kernel_size: 3',
        '  }',
        '}',
        'layer {',
        '  name: "relu1"',
        '  type: "ReLU"',
        '  bottom: "conv1"',
        '  top: "conv1"',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('upgrade_net_proto_text says a current file is current, and still writes it', async () => {
    write('current.prototxt', 'name: "c"\nlayer {\n  name: "r"\n  type: "ReLU"\n  bottom: "x"\n  top: "x"\n}\n');
    const r = await caffe(['upgrade_net_proto_text', 'current.prototxt', 'current-out.prototxt'], dir.path);
    expect(r.code).toBe(0);
    expect(messages(r.log)[0]).toBe(`File already in latest proto format: ${path('current.prototxt')}`);
    expect(r.log[0]).toMatch(/^E/);
    expect(readFileSync(path('current-out.prototxt'), 'utf8')).toBe(readFileSync(path('current.prototxt'), 'utf8'));
  });

  it('upgrade_net_proto_text exits 1 when a V0 field had no home, after writing what it could', async () => {
    write('lossy.prototxt', 'layers { layer { name: "r" type: "relu" num_output: 3 } }\n');
    const r = await caffe(['upgrade_net_proto_text', 'lossy.prototxt', 'lossy-out.prototxt'], dir.path);
    expect(r.code).toBe(1);
    const log = messages(r.log);
    expect(log).toContain("Unknown parameter num_output for layer type relu (layer 'r')");
    expect(log).toContain('Encountered error(s) while upgrading prototxt; see details above.');
    expect(parseNetParameter(readFileSync(path('lossy-out.prototxt'), 'utf8')).layer.map((l) => l.type)).toEqual(['ReLU']);
  });

  it.skipIf(!hasCorpus)('upgrade_net_proto_text upgrades the V1 age_net, and the result builds', async () => {
    const r = await caffe(['upgrade_net_proto_text', corpus('nets/age_net/deploy.prototxt'), 'age.prototxt'], dir.path);
    expect(r.code).toBe(0);
    const text = readFileSync(path('age.prototxt'), 'utf8');
    expect(text).not.toMatch(/^layers|input_dim/m);
    const upgraded = parseNetParameter(text);
    expect(upgraded.layers).toEqual([]);
    const net = new Net(upgraded, { registry: registerBuiltinLayers(new LayerRegistry()), log: false });
    expect(net.blob('prob').shape).toEqual([1, 8]);
  });

  it('upgrade_net_proto_binary upgrades a V1 binary net and keeps its weights', async () => {
    const v1 = parseNetParameter(`
      name: "w"
      layers { name: "ip" type: INNER_PRODUCT blobs_lr: 1 weight_decay: 0
               blobs { num: 1 channels: 1 height: 2 width: 3 data: 1 data: 2 data: 3 data: 4 data: 5 data: 6 }
               blobs { num: 1 channels: 1 height: 1 width: 2 data: -1 data: 0.5 } }`);
    write('v1.caffemodel', encodeNetParameter(v1));
    const r = await caffe(['upgrade_net_proto_binary', 'v1.caffemodel', 'v2.caffemodel'], dir.path);
    expect(r.code).toBe(0);
    expect(messages(r.log).at(-1)).toBe(`Wrote upgraded NetParameter binary proto to ${path('v2.caffemodel')}`);
    const out = decodeNetParameter(readFileSync(path('v2.caffemodel')));
    expect(out.layers).toEqual([]);
    expect(out.layer).toHaveLength(1);
    const l = out.layer[0]!;
    expect([l.name, l.type]).toEqual(['ip', 'InnerProduct']);
    expect(l.param.map((p) => [p.lr_mult, p.decay_mult])).toEqual([[1, 0]]);
    expect(l.blobs.map((b) => [b.height, b.width, Array.from(b.data)])).toEqual([
      [2, 3, [1, 2, 3, 4, 5, 6]],
      [1, 2, [-1, 0.5]],
    ]);
  });

  it.skipIf(!hasCorpus)('upgrade_net_proto_binary upgrades the V1 CIFAR-10 caffemodel; blobs byte-identical', async () => {
    const file = corpus('weights/cifar10_quick_ikkichung/cifar10_quick_iter_5000.caffemodel');
    const r = await caffe(['upgrade_net_proto_binary', file, 'cifar.caffemodel'], dir.path);
    expect(r.code).toBe(0);
    const before = decodeNetParameter(readFileSync(file));
    const after = decodeNetParameter(readFileSync(path('cifar.caffemodel')));
    expect(before.layers.length).toBeGreaterThan(0);
    expect(after.layers).toEqual([]);
    expect(after.layer.map((l) => l.name)).toEqual(before.layers.map((l) => l.name));
    after.layer.forEach((l, i) => {
      expect(l.blobs.map((b) => Array.from(b.data))).toEqual(before.layers[i]!.blobs.map((b) => Array.from(b.data)));
    });
  });

  it('upgrade_solver_proto_text turns solver_type into the type string', async () => {
    const cases: [string, string][] = [
      ['SGD', 'SGD'],
      ['NESTEROV', 'Nesterov'],
      ['ADAGRAD', 'AdaGrad'],
      ['RMSPROP', 'RMSProp'],
      ['ADADELTA', 'AdaDelta'],
      ['ADAM', 'Adam'],
    ];
    for (const [old, type] of cases) {
      write('old_solver.prototxt', `net: "train.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nsolver_type: ${old}\n`);
      const r = await caffe(['upgrade_solver_proto_text', 'old_solver.prototxt', 'new_solver.prototxt'], dir.path);
      expect(r.code).toBe(0);
      expect(messages(r.log)).toContain(
        `Attempting to upgrade input file specified using deprecated 'solver_type' field (enum)': ${path('old_solver.prototxt')}`,
      );
      const text = readFileSync(path('new_solver.prototxt'), 'utf8');
      // Field-number order, as protobuf's TextFormat writes (net is field 24, type 40).
      expect(text).toBe(`base_lr: 0.01\nlr_policy: "fixed"\nnet: "train.prototxt"\ntype: "${type}"\n`);
      const s = parseSolverParameter(text);
      expect(hasField(s, 'solver_type')).toBe(false);
    }
  });

  it('upgrade_solver_proto_text: current files are reported, both fields are refused', async () => {
    write('current_solver.prototxt', 'base_lr: 0.1\ntype: "Adam"\n');
    const ok = await caffe(['upgrade_solver_proto_text', 'current_solver.prototxt', 'out_solver.prototxt'], dir.path);
    expect(ok.code).toBe(0);
    expect(messages(ok.log)[0]).toBe(`File already in latest proto format: ${path('current_solver.prototxt')}`);
    expect(readFileSync(path('out_solver.prototxt'), 'utf8')).toBe('base_lr: 0.1\ntype: "Adam"\n');

    write('both_solver.prototxt', 'solver_type: ADAM\ntype: "Adam"\n');
    const bad = await caffe(['upgrade_solver_proto_text', 'both_solver.prototxt', 'x.prototxt'], dir.path);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/old solver_type field \(enum\) and new type field \(string\) cannot be both specified/);
  });

  it('usage mistakes and unreadable files end with status 1 and one clear line', async () => {
    const few = await caffe(['upgrade_net_proto_text', 'only-one.prototxt'], dir.path);
    expect(few.code).toBe(1);
    expect(few.stderr).toMatch(/^caffe upgrade_net_proto_text: expected a net prototxt and an output file, got 1 argument\(s\)\n/);
    expect(few.stderr).toMatch(/usage: caffe upgrade_net_proto_text NET_PROTO_IN NET_PROTO_OUT/);

    const missing = await caffe(['upgrade_net_proto_binary', 'nope.caffemodel', 'out.caffemodel'], dir.path);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.caffemodel.*no such file/);

    write('broken.prototxt', 'layers { name: "x" type: CONVOLUTON }\n');
    const broken = await caffe(['upgrade_net_proto_text', 'broken.prototxt', 'out.prototxt'], dir.path);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/broken\.prototxt:1:\d+: .*CONVOLUTON/);
  });
});
