import { describe, expect, it } from 'vitest';
import { Blob, Rng } from '@caffe-ts/blob';
import { decodeNetParameter, encodeNetParameter, parseNetParameter, Phase, type NetParameter } from '@caffe-ts/proto';
import { NetError, UnknownBottomError } from './errors.js';
import { Net, type NetOptions } from './net.js';
import { captureLog, fillRandom, net, NoopTestLayer, testRegistry } from './test-helpers.js';

const registry = testRegistry();
const opts = (extra: NetOptions = {}): NetOptions => ({ registry, log: false, rng: new Rng(1701), ...extra });

/** data [2,3] + label [2] → ip1 (4) → relu in place → (ip2, ip3) (3 each) → sum → softmax loss. */
const FAN_OUT = `
  name: "fan"
  layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
  layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "h"
          inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.7 } bias_filler { type: "gaussian" std: 0.3 } } }
  layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
  layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "o1"
          inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.7 } bias_filler { type: "gaussian" std: 0.3 } } }
  layer { name: "ip3" type: "InnerProduct" bottom: "h" top: "o2"
          inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.7 } bias_filler { type: "gaussian" std: 0.3 } } }
  layer { name: "sum" type: "Eltwise" bottom: "o1" bottom: "o2" top: "s" }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }
`;

function setInputs(n: Net, seed = 3): void {
  fillRandom(n.blob('data'), seed);
  const label = n.blob('label').mutableCpuData();
  for (let i = 0; i < label.length; i++) label[i] = (i * 2 + 1) % 3;
}

/** Central finite difference of net.forward() with respect to every element of `blob`. */
function numericGradient(n: Net, blob: Blob, h = 1e-6): number[] {
  const data = blob.mutableCpuData();
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    data[i] = x + h;
    const up = n.forward();
    data[i] = x - h;
    const down = n.forward();
    data[i] = x;
    out.push((up - down) / (2 * h));
  }
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Math.abs(a - e) > tol * Math.max(1, Math.abs(a), Math.abs(e))) {
      throw new Error(`element ${i}: computed ${a}, expected ${e}`);
    }
  }
}

describe('Net construction', () => {
  it('builds blobs, layers, inputs and outputs in Caffe order, with Split layers for fan-out', () => {
    const n = new Net(net(FAN_OUT), opts());
    expect(n.name).toBe('fan');
    expect(n.phase).toBe(Phase.TEST);
    expect(n.layerNames).toEqual(['in', 'ip1', 'relu', 'h_relu_0_split', 'ip2', 'ip3', 'sum', 'loss']);
    expect(n.numLayers).toBe(8);
    expect([...n.blobs.keys()]).toEqual(['data', 'label', 'h', 'h_relu_0_split_0', 'h_relu_0_split_1', 'o1', 'o2', 's', 'loss']);
    expect(n.inputBlobNames).toEqual(['data', 'label']);
    expect(n.inputBlobs[0]).toBe(n.blob('data'));
    expect(n.outputBlobNames).toEqual(['loss']);
    expect(n.blob('h').shape).toEqual([2, 4]);
    expect(n.blob('loss').shape).toEqual([]);
    // In place: relu's top is ip1's top.
    expect(n.topVecs[2]![0]).toBe(n.bottomVecs[2]![0]);
    expect([...n.params.keys()]).toEqual(['ip1', 'ip2', 'ip3']);
    expect(n.params.get('ip2')!.map((b) => b.shape)).toEqual([[3, 4], [3]]);
    expect(n.learnableParams).toHaveLength(6);
    expect(n.paramsLr).toEqual([1, 1, 1, 1, 1, 1]);
    expect(n.hasParamsLr).toEqual([false, false, false, false, false, false]);
    expect(n.blobLossWeights[n.blobNames.indexOf('loss')]).toBe(1);
    expect(n.blobLossWeights[n.blobNames.indexOf('s')]).toBe(0);
  });

  it('sorts outputs by name (std::set order)', () => {
    const n = new Net(
      net(`
        layer { name: "in" type: "Input" top: "b" top: "a" top: "C" input_param { shape { dim: 1 } } }
      `),
      opts(),
    );
    expect(n.outputBlobNames).toEqual(['C', 'a', 'b']);
  });

  it("logs Caffe's construction lines", () => {
    const lines = captureLog(() => new Net(net(FAN_OUT), { registry, rng: new Rng(1) })).map((l) => l.message);
    expect(lines[0]).toMatch(/^Initializing net from parameters: \nname: "fan"\n/);
    const rest = lines.slice(1);
    const expected = [
      'Creating Layer in',
      'in -> data',
      'in -> label',
      'Setting up in',
      'Top shape: 2 3 (6)',
      'Top shape: 2 (2)',
      'Memory required for data: 32',
      'Creating Layer ip1',
      'ip1 <- data',
      'ip1 -> h',
      'Setting up ip1',
      'Top shape: 2 4 (8)',
      'Memory required for data: 64',
      'Creating Layer relu',
      'relu <- h',
      'relu -> h (in-place)',
      'Setting up relu',
      'Top shape: 2 4 (8)',
      'Memory required for data: 96',
      'Creating Layer h_relu_0_split',
      'h_relu_0_split <- h',
      'h_relu_0_split -> h_relu_0_split_0',
      'h_relu_0_split -> h_relu_0_split_1',
      'Setting up h_relu_0_split',
      'Top shape: 2 4 (8)',
      'Top shape: 2 4 (8)',
      'Memory required for data: 160',
    ];
    expect(rest.slice(0, expected.length)).toEqual(expected);
    const lossAt = rest.indexOf('Setting up loss');
    expect(rest.slice(lossAt, lossAt + 3)).toEqual(['Setting up loss', 'Top shape: (1)', '    with loss weight 1']);
    expect(rest.slice(-10)).toEqual([
      'loss needs backward computation.',
      'sum needs backward computation.',
      'ip3 needs backward computation.',
      'ip2 needs backward computation.',
      'h_relu_0_split needs backward computation.',
      'relu needs backward computation.',
      'ip1 needs backward computation.',
      'in does not need backward computation.',
      'This network produces output loss',
      'Network initialization done.',
    ]);
    expect(rest).toContain('Memory required for data: 236'); // 59 elements: in-place tops count again, as in Caffe
  });

  it('log: false keeps the net silent', () => {
    expect(captureLog(() => new Net(net(FAN_OUT), opts()))).toEqual([]);
  });

  it('creates anonymous tops for AutoTopBlobs layers', () => {
    const n = new Net(
      net(`
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }
        layer { name: "auto" type: "AutoTop" bottom: "x" top: "y" }
      `),
      opts(),
    );
    expect(n.topVecs[1]).toHaveLength(2);
    expect(n.blobNames).toEqual(['x', 'y', '(automatic)']);
    // Anonymous tops are not net outputs.
    expect(n.outputBlobNames).toEqual(['y']);
    n.blob('x').mutableCpuData().set([1, 2]);
    n.forward();
    expect([...n.topVecs[1]![1]!.cpuData()]).toEqual([2, 4]);
  });

  it('takes the phase from options, else from state, else TEST', () => {
    const p = net(`
      state { phase: TRAIN }
      layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }
      layer { name: "t" type: "ReLU" bottom: "x" top: "y" include { phase: TRAIN } }
      layer { name: "s" type: "ReLU" bottom: "x" top: "z" include { stage: "extra" } }
    `);
    expect(new Net(p, opts()).phase).toBe(Phase.TRAIN);
    expect(new Net(p, opts()).layerNames).toEqual(['in', 't']);
    expect(new Net(p, opts({ phase: Phase.TEST })).layerNames).toEqual(['in']);
    expect(new Net(p, opts({ stages: ['extra'] })).layerNames).toEqual(['in', 'x_in_0_split', 't', 's']);
    expect(new Net(net(`layer { name: "in" type: "Input" top: "x" }`), opts()).phase).toBe(Phase.TEST);
    // Layers inherit the net's phase unless they set their own.
    const n = new Net(p, opts({ phase: Phase.TRAIN }));
    expect(n.layers[1]!.phase).toBe(Phase.TRAIN);
    expect(n.layers[1]!.param.phase).toBe(Phase.TRAIN);
  });

  it('upgrades legacy input fields', () => {
    const n = new Net(
      net(`input: "x" input_dim: 2 input_dim: 3 input_dim: 1 input_dim: 1 layer { name: "r" type: "ReLU" bottom: "x" top: "y" }`),
      opts(),
    );
    expect(n.layerNames).toEqual(['input', 'r']);
    expect(n.blob('y').shape).toEqual([2, 3, 1, 1]);
    expect(n.inputBlobNames).toEqual(['x']);
  });

  it('names the layers that the net state left out when they would have produced an unknown bottom', () => {
    const staged = net(`
      layer { name: "train_in" type: "Input" top: "data" include { phase: TRAIN } input_param { shape { dim: 1 } } }
      layer { name: "val_in" type: "Input" top: "data" include { phase: TEST stage: "val" } input_param { shape { dim: 1 } } }
      layer { name: "r" type: "ReLU" bottom: "data" top: "r" }
    `);
    const err = (() => {
      try {
        new Net(staged, opts({ phase: Phase.TEST }));
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected the net to fail');
    })();
    expect(err).toBeInstanceOf(NetError);
    expect(err.message).toBe(
      "Unknown bottom blob 'data' (layer 'r', bottom index 0); layers 'train_in' (include { phase: TRAIN }), " +
        `'val_in' (include { phase: TEST stage: "val" }), which produce it, are left out of this net by its rules ` +
        '(the net state: phase TEST, level 0, no stages)',
    );
    expect(err).toBeInstanceOf(UnknownBottomError);
    expect([(err as UnknownBottomError).blob, (err as UnknownBottomError).layer]).toEqual(['data', 'r']);
    // Named after its file, the error keeps its class and facts.
    expect(() => new Net(staged, opts({ phase: Phase.TEST, name: 'staged.prototxt' }))).toThrow(UnknownBottomError);
    // With the stage the rules ask for, the net builds.
    expect(new Net(staged, opts({ phase: Phase.TEST, stages: ['val'] })).layerNames).toEqual(['val_in', 'r']);
    // A bottom that no layer produces at all keeps the plain message.
    const none = net(`layer { name: "r" type: "ReLU" bottom: "nowhere" top: "r" }`);
    expect(() => new Net(none, opts())).toThrow(/^Unknown bottom blob 'nowhere' \(layer 'r', bottom index 0\)$/);
  });

  it('names unknown bottoms, duplicate tops and the file', () => {
    const unknown = net(`
      layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 } } }
      layer { name: "conv1" type: "ReLU" bottom: "data2" top: "conv1" }
    `);
    expect(() => new Net(unknown, opts())).toThrow(NetError);
    expect(() => new Net(unknown, opts())).toThrow("Unknown bottom blob 'data2' (layer 'conv1', bottom index 0)");
    expect(() => new Net(unknown, opts({ name: 'my.prototxt' }))).toThrow(/\[my\.prototxt\]$/);
    const dup = net(`
      layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }
      layer { name: "a" type: "ReLU" bottom: "x" top: "y" }
      layer { name: "b" type: "ReLU" bottom: "x" top: "y" }
    `);
    expect(() => new Net(dup, opts())).toThrow("Top blob 'y' produced by multiple sources.");
  });

  it('rejects bad propagate_down and too many ParamSpecs', () => {
    const pd = net(`
      layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }
      layer { name: "r" type: "ReLU" bottom: "x" top: "y" propagate_down: true propagate_down: false }
    `);
    expect(() => new Net(pd, opts())).toThrow(/Layer 'r': propagate_down param must be specified either 0 or bottom_size times \(2 given, 1 bottoms\)/);
    const many = net(`
      layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }
      layer { name: "r" type: "ReLU" bottom: "x" top: "y" param { lr_mult: 1 } }
    `);
    expect(() => new Net(many, opts())).toThrow('Too many params specified for layer r: 1 param specs, but the ReLU layer has 0 param blob(s)');
  });

  it('blob() and layer() name what exists', () => {
    const n = new Net(net(FAN_OUT), opts());
    expect(n.hasBlob('h')).toBe(true);
    expect(n.hasBlob('nope')).toBe(false);
    expect(() => n.blob('nope')).toThrow("Unknown blob 'nope' in net 'fan' (known blobs: data, label, h,");
    expect(n.layer('ip2')).toBe(n.layers[4]);
    expect(n.hasLayer('x')).toBe(false);
    expect(() => n.layer('x')).toThrow("Unknown layer 'x' in net 'fan' (known layers: in, ip1,");
  });

  it('Net.create awaits layer definitions’ prime hooks first', async () => {
    const r = testRegistry();
    const primed: string[] = [];
    r.register(
      {
        ...r.get('ReLU')!,
        prime: async (p) => {
          await new Promise((res) => setTimeout(res, 1));
          primed.push(p.name);
        },
      },
      { override: true },
    );
    const n = await Net.create(
      net(`
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }
        layer { name: "r" type: "ReLU" bottom: "x" top: "y" }
      `),
      opts({ registry: r }),
    );
    expect(primed).toEqual(['r']);
    expect(n.layerNames).toEqual(['in', 'r']);
    // The primed param is the one the layer was built from.
    expect(n.layers[1]!.param.name).toBe('r');
  });
});

describe('Net forward/backward', () => {
  it('prepare() and close() reach the layers that have them', async () => {
    const calls: string[] = [];
    const r = testRegistry();
    r.register(
      {
        type: 'Noop',
        create: (p, ctx) =>
          Object.assign(new NoopTestLayer(p, ctx), {
            prepare: async () => void calls.push(`prepare ${p.name}`),
            close: () => void calls.push(`close ${p.name}`),
          }),
      },
      { override: true },
    );
    const n = new Net(net(`layer { name: "a" type: "Noop" top: "x" } layer { name: "b" type: "Noop" bottom: "x" top: "y" }`), opts({ registry: r }));
    await n.prepare();
    await n.close();
    expect(calls).toEqual(['prepare a', 'prepare b', 'close a', 'close b']);
  });

  it('fan-out gradients are summed: every param and the input match finite differences (float64)', () => {
    const p = net(FAN_OUT + 'force_backward: true');
    const n = new Net(p, opts({ dtype: 'float64' }));
    setInputs(n);
    n.clearParamDiffs();
    const loss = n.forwardBackward();
    expect(loss).toBeGreaterThan(0);
    for (const [name, blobs] of n.params) {
      blobs.forEach((b, j) => {
        const analytic = Array.from(b.cpuDiff());
        try {
          expectClose(analytic, numericGradient(n, b));
        } catch (e) {
          throw new Error(`layer ${name} param ${j}: ${(e as Error).message}`);
        }
      });
    }
    // force_backward: the data input gets its gradient too (through ip1 only, no split there).
    n.forwardBackward();
    expectClose(Array.from(n.blob('data').cpuDiff()), numericGradient(n, n.blob('data')));
    // The label does not (SoftmaxWithLoss refuses to force it).
    expect(n.bottomNeedBackward[n.layerNames.indexOf('loss')]).toEqual([true, false]);
  });

  it('param diffs accumulate across passes until clearParamDiffs', () => {
    const n = new Net(net(FAN_OUT), opts({ dtype: 'float64' }));
    setInputs(n);
    n.clearParamDiffs();
    n.forwardBackward();
    const once = Array.from(n.learnableParams[0]!.cpuDiff());
    n.forwardBackward();
    expectClose(Array.from(n.learnableParams[0]!.cpuDiff()), once.map((v) => 2 * v), 1e-12);
    n.clearParamDiffs();
    for (const b of n.learnableParams) expect(b.asumDiff()).toBe(0);
  });

  it('update() subtracts diffs from data', () => {
    const n = new Net(net(FAN_OUT), opts({ dtype: 'float64' }));
    setInputs(n);
    n.clearParamDiffs();
    n.forwardBackward();
    const w = n.learnableParams[2]!;
    const before = Array.from(w.cpuData());
    const diff = Array.from(w.cpuDiff());
    n.update();
    expectClose(Array.from(w.cpuData()), before.map((v, i) => v - diff[i]!), 1e-12);
  });

  it('forwardFromTo / forwardTo / backwardFromTo run the given layers only', () => {
    const n = new Net(net(FAN_OUT), opts({ dtype: 'float64' }));
    setInputs(n);
    const full = n.forward();
    const s = Array.from(n.blob('s').cpuData());
    n.blob('s').mutableCpuData().fill(0);
    expect(n.forwardTo(5)).toBe(0);
    expect(Array.from(n.blob('s').cpuData())).toEqual(new Array(6).fill(0));
    expect(n.forwardFrom(6)).toBeCloseTo(full, 12);
    expect(Array.from(n.blob('s').cpuData())).toEqual(s);
    expect(() => n.forwardFromTo(0, 8)).toThrow('forwardFromTo(0, 8): layers are 0..7');
    n.clearParamDiffs();
    n.backwardFromTo(7, 5); // loss, sum, ip3: only ip3's params get diffs
    expect(n.params.get('ip3')![0]!.asumDiff()).toBeGreaterThan(0);
    expect(n.params.get('ip2')![0]!.asumDiff()).toBe(0);
    expect(n.params.get('ip1')![0]!.asumDiff()).toBe(0);
  });

  it('reshape() follows a new input shape', () => {
    const n = new Net(net(FAN_OUT), opts());
    n.blob('data').reshape([5, 3]);
    n.blob('label').reshape([5]);
    n.reshape();
    expect(n.blob('s').shape).toEqual([5, 3]);
    expect(n.blob('h_relu_0_split_1').shape).toEqual([5, 4]);
  });
});

describe('need-backward inference', () => {
  const base = (extra: string) => `
    layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
    ${extra}
  `;
  const flags = (n: Net) => Object.fromEntries(n.layerNames.map((name, i) => [name, n.layerNeedBackward[i]]));

  it('lr_mult 0 layers on the input, labels and non-loss branches skip backward', () => {
    const n = new Net(
      net(
        base(`
        layer { name: "frozen" type: "InnerProduct" bottom: "data" top: "f" param { lr_mult: 0 } param { lr_mult: 0 }
                inner_product_param { num_output: 4 } }
        layer { name: "ip" type: "InnerProduct" bottom: "f" top: "o" inner_product_param { num_output: 3 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "o" bottom: "label" top: "loss" }
        layer { name: "acc" type: "Accuracy" bottom: "o" bottom: "label" top: "acc" }
      `),
      ),
      opts(),
    );
    expect(flags(n)).toEqual({
      in: false,
      label_in_1_split: false,
      frozen: false,
      ip: true,
      o_ip_0_split: true,
      loss: true,
      acc: false,
    });
    expect(n.bottomNeedBackward[n.layerNames.indexOf('loss')]).toEqual([true, false]);
    expect(n.bottomNeedBackward[n.layerNames.indexOf('ip')]).toEqual([false]);
    expect(n.layers[n.layerNames.indexOf('frozen')]!.paramPropagateDown).toEqual([false, false]);
    expect(n.paramsLr).toEqual([0, 0, 1, 1]);
    expect(n.hasParamsLr).toEqual([true, true, false, false]);
  });

  it('a layer whose outputs are all cut by propagate_down: false skips backward', () => {
    const n = new Net(
      net(
        base(`
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" inner_product_param { num_output: 3 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "o" bottom: "label" top: "loss" propagate_down: false propagate_down: false }
      `),
      ),
      opts(),
    );
    expect(flags(n)).toEqual({ in: false, ip: false, loss: true });
    expect(n.bottomNeedBackward[2]).toEqual([false, false]);
  });

  it('a layer that does not lead to a loss skips backward even with learnable params', () => {
    const n = new Net(net(base(`layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" inner_product_param { num_output: 3 } }`)), opts());
    expect(flags(n)).toEqual({ in: false, ip: false });
  });

  it('force_backward turns backward on everywhere the layers allow', () => {
    const n = new Net(
      net(
        base(`
        force_backward: true
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 3 } }
        layer { name: "acc" type: "Accuracy" bottom: "o" bottom: "label" top: "acc" }
      `),
      ),
      opts(),
    );
    expect(flags(n)).toEqual({ in: true, ip: true, acc: true });
    expect(n.bottomNeedBackward[n.layerNames.indexOf('ip')]).toEqual([true]);
    expect(n.bottomNeedBackward[n.layerNames.indexOf('acc')]).toEqual([false, false]);
    expect(n.layers[n.layerNames.indexOf('ip')]!.paramPropagateDown).toEqual([true, true]);
  });
});

describe('loss weights', () => {
  const LOSS = (lw: string) => `
    layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o"
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "o" bottom: "label" top: "loss" ${lw} }
  `;

  it('scales the loss and records it per blob', () => {
    const one = new Net(net(LOSS('')), opts({ dtype: 'float64' }));
    const two = new Net(net(LOSS('loss_weight: 2')), opts({ dtype: 'float64' }));
    setInputs(one);
    setInputs(two);
    expect(two.forward()).toBeCloseTo(2 * one.forward(), 12);
    expect(two.blobLossWeights[two.blobNames.indexOf('loss')]).toBe(2);
    const lines = captureLog(() => new Net(net(LOSS('loss_weight: 2')), { registry, rng: new Rng(1) })).map((l) => l.message);
    expect(lines).toContain('    with loss weight 2');
  });

  it('a loss-weighted inner blob that is also read gets a split carrying its weight', () => {
    const n = new Net(
      net(`
        layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "o" loss_weight: 0.5
                inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
        layer { name: "ip2" type: "InnerProduct" bottom: "o" top: "p" loss_weight: 1
                inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 1 } } }
      `),
      opts({ dtype: 'float64' }),
    );
    expect(n.layerNames).toEqual(['in', 'ip', 'o_ip_0_split', 'ip2']);
    expect(n.layers[1]!.lossWeight(0)).toBe(0);
    expect(n.blobLossWeights[n.blobNames.indexOf('o_ip_0_split_0')]).toBe(0.5);
    fillRandom(n.blob('data'), 9);
    const loss = n.forward();
    const sum = (b: Blob) => Array.from(b.cpuData()).reduce((a, v) => a + v, 0);
    expect(loss).toBeCloseTo(0.5 * sum(n.blob('o')) + sum(n.blob('p')), 12);
    expect(n.outputBlobNames).toEqual(['o_ip_0_split_0', 'p']);
    // The gradient of the weighted sum reaches ip's weights through both paths.
    n.clearParamDiffs();
    n.forwardBackward();
    const w = n.params.get('ip')![0]!;
    expectClose(Array.from(w.cpuDiff()), numericGradient(n, w));
  });
});

describe('param sharing', () => {
  const SHARED = (spec2: string, k2 = 3, n2 = 4) => `
    layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: ${k2} } } }
    layer { name: "ipa" type: "InnerProduct" bottom: "a" top: "ya" param { name: "w" } param { name: "bias" lr_mult: 2 }
            inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
    layer { name: "ipb" type: "InnerProduct" bottom: "b" top: "yb" ${spec2}
            inner_product_param { num_output: ${n2} weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
    layer { name: "cat" type: "Concat" bottom: "ya" bottom: "yb" top: "s" loss_weight: 1 }
  `;

  it('lists shared params once, shares data and diff with the owner, and sums both uses into its diff', () => {
    const n = new Net(net(SHARED('param { name: "w" } param { name: "bias" }')), opts({ dtype: 'float64' }));
    expect(n.learnableParams).toHaveLength(2);
    expect(n.paramOwners).toEqual([-1, -1, 0, 1]);
    expect(n.learnableParamIds).toEqual([0, 1, 0, 1]);
    expect(n.paramsLr).toEqual([1, 2]);
    const wa = n.params.get('ipa')![0]!;
    const wb = n.params.get('ipb')![0]!;
    expect(wb.data).toBe(wa.data);
    expect(wb.diff).toBe(wa.diff);
    fillRandom(n.blob('a'), 1);
    fillRandom(n.blob('b'), 2);
    n.clearParamDiffs();
    n.forwardBackward();
    // d/dW Σ(W a + W b) = Σ_rows (a + b): the diff holds both layers' contributions.
    expectClose(Array.from(wa.cpuDiff()), numericGradient(n, wa));
    const a = n.blob('a').cpuData();
    const b = n.blob('b').cpuData();
    const expected = [];
    for (let o = 0; o < 4; o++) for (let k = 0; k < 3; k++) expected.push(a[k]! + a[3 + k]! + b[k]! + b[3 + k]!);
    expectClose(Array.from(wa.cpuDiff()), expected, 1e-12);
    // update() moves the owner, and the sharer sees it.
    n.update();
    expect(Array.from(wb.cpuData())).toEqual(Array.from(wa.cpuData()));
  });

  it('logs the sharing', () => {
    const lines = captureLog(() => new Net(net(SHARED('param { name: "w" }')), { registry, rng: new Rng(1) })).map((l) => l.message);
    expect(lines).toContain("Sharing parameters 'w' owned by layer 'ipa', param index 0");
  });

  it('STRICT sharing needs equal shapes', () => {
    expect(() => new Net(net(SHARED('param { name: "w" }', 4, 3)), opts())).toThrow(
      "Cannot share param 'w' owned by layer 'ipa' with layer 'ipb'; shape mismatch. Owner layer param shape is 4 3 (12); sharing layer expects shape 3 4 (12)",
    );
  });

  it('PERMISSIVE sharing needs equal counts only', () => {
    const n = new Net(net(SHARED('param { name: "w" share_mode: PERMISSIVE }', 4, 3)), opts());
    expect(n.params.get('ipb')![0]!.shape).toEqual([3, 4]);
    expect(n.params.get('ipb')![0]!.data).toBe(n.params.get('ipa')![0]!.data);
    expect(() => new Net(net(SHARED('param { name: "w" share_mode: PERMISSIVE }', 4, 4)), opts())).toThrow(
      "Cannot share param 'w' owned by layer 'ipa' with layer 'ipb'; count mismatch. Owner layer param shape is 4 3 (12); sharing layer shape is 4 4 (16)",
    );
  });

  it('rejects conflicting lr_mult for one shared param', () => {
    expect(() => new Net(net(SHARED('param { name: "w" } param { name: "bias" lr_mult: 3 }')), opts())).toThrow(
      "Shared param 'bias' has mismatched lr_mult (layer 'ipb' gives 3, earlier 2).",
    );
    // A sharer may set what the owner left unset.
    const n = new Net(net(SHARED('param { name: "w" decay_mult: 0 }')), opts());
    expect(n.paramsWeightDecay[0]).toBe(0);
    expect(n.hasParamsDecay[0]).toBe(true);
  });
});

describe('weights', () => {
  const CONV = (channels: number) => `
    name: "c"
    layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: ${channels} dim: 8 dim: 8 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
            convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "relu" type: "ReLU" bottom: "conv1" top: "conv1" }
    layer { name: "a" type: "ReLU" bottom: "conv1" top: "a" }
    layer { name: "b" type: "ReLU" bottom: "conv1" top: "b" }
  `;

  it('toProto → bytes → copyTrainedLayersFrom gives bit-identical weights', () => {
    const src = new Net(net(CONV(1)), opts({ rng: new Rng(1) }));
    const dst = new Net(net(CONV(1)), opts({ rng: new Rng(2) }));
    const proto = src.toProto();
    // Every layer as built is written, inserted splits included; only conv1 carries blobs.
    expect(proto.name).toBe('c');
    expect(proto.layer.map((l) => l.name)).toEqual(['in', 'conv1', 'relu', 'conv1_relu_0_split', 'a', 'b']);
    expect(proto.layer.map((l) => l.blobs.length)).toEqual([0, 2, 0, 0, 0, 0]);
    expect(proto.layer[1]!.phase).toBe(Phase.TEST);
    const bytes = encodeNetParameter(proto);
    const [w0, b0] = src.params.get('conv1')!;
    expect(Array.from(dst.params.get('conv1')![0]!.cpuData())).not.toEqual(Array.from(w0!.cpuData()));
    dst.copyTrainedLayersFrom(decodeNetParameter(bytes));
    const [w1, b1] = dst.params.get('conv1')!;
    expect(Buffer.from(new Uint8Array((w1!.cpuData() as Float32Array).buffer.slice(0)))).toEqual(
      Buffer.from(new Uint8Array((w0!.cpuData() as Float32Array).buffer.slice(0))),
    );
    expect(Array.from(b1!.cpuData())).toEqual(Array.from(b0!.cpuData()));
    // And a second serialisation is byte-identical.
    expect(Buffer.from(encodeNetParameter(dst.toProto()))).toEqual(Buffer.from(bytes));
  });

  it("loads NVIDIA Caffe's half-float weights (raw_data)", () => {
    const src = new Net(net(CONV(1)), opts({ rng: new Rng(1) }));
    const proto = src.toProto();
    // Each blob rewritten as NVIDIA Caffe stores it: shape, raw_data_type FLOAT16, raw_data.
    const half = (v: number) => {
      // Values already exact in half precision (multiples of 2^-10 within ±2), so the test is exact.
      const q = Math.round(v * 1024) / 1024;
      const sign = q < 0 ? 0x8000 : 0;
      const a = Math.abs(q);
      if (a === 0) return sign;
      const e = Math.floor(Math.log2(a));
      return e < -14 ? sign | Math.round(a / 2 ** -24) : sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
    };
    const expected: number[][] = [];
    for (const blob of proto.layer[1]!.blobs) {
      const values = Array.from(blob.data, (v) => Math.round(v * 1024) / 1024);
      expected.push(values);
      const bytes = new Uint8Array(2 * values.length);
      values.forEach((v, i) => new DataView(bytes.buffer).setUint16(2 * i, half(v), true));
      Object.assign(blob, { data: new Float32Array(0), raw_data_type: 2, raw_data: bytes });
    }
    const dst = new Net(net(CONV(1)), opts({ rng: new Rng(2) }));
    dst.copyTrainedLayersFrom(decodeNetParameter(encodeNetParameter(proto)));
    const [w, b] = dst.params.get('conv1')!;
    expect(expected[0]!.filter((v) => v !== 0).length).toBeGreaterThan(expected[0]!.length / 2);
    expect(Array.from(w!.cpuData())).toEqual(expected[0]);
    expect(Array.from(b!.cpuData())).toEqual(expected[1]);
  });

  it('toProto(true) writes diffs', () => {
    const n = new Net(net(CONV(1)), opts());
    n.params.get('conv1')![1]!.mutableCpuDiff().fill(0.25);
    const proto = n.toProto(true);
    expect(Array.from(proto.layer[1]!.blobs[1]!.diff)).toEqual(new Array(20).fill(0.25));
    expect(n.toProto().layer[1]!.blobs[1]!.diff).toEqual([]);
  });

  it("reports a shape mismatch with Caffe's message", () => {
    const src = new Net(net(CONV(1)), opts());
    const dst = new Net(net(CONV(3)), opts());
    expect(() => dst.copyTrainedLayersFrom(src.toProto())).toThrow(
      "Cannot copy param 0 weights from layer 'conv1'; shape mismatch. Source param shape is 20 1 5 5 (500); " +
        "target param shape is 20 3 5 5 (1500). To learn this layer's parameters from scratch rather than copying " +
        'from a saved net, rename the layer.',
    );
  });

  it('ignores source layers the net does not have, and logs them', () => {
    let n!: Net;
    captureLog(() => (n = new Net(net(CONV(1)), { registry, rng: new Rng(1), log: true })));
    const weights = parseNetParameter(`layer { name: "fc9" type: "InnerProduct" blobs { shape { dim: 1 } data: 1 } }`);
    const lines = captureLog(() => n.copyTrainedLayersFrom(weights)).map((l) => l.message);
    expect(lines).toEqual(['Ignoring source layer fc9']);
  });

  it('rejects a blob-count mismatch', () => {
    const n = new Net(net(CONV(1)), opts());
    const weights = parseNetParameter(`layer { name: "conv1" blobs { shape { dim: 20 dim: 1 dim: 5 dim: 5 } } }`);
    expect(() => n.copyTrainedLayersFrom(weights)).toThrow('Incompatible number of blobs for layer conv1: the net\'s layer has 2, the weights have 1');
  });

  it('reads legacy 4-D blob shapes (1 1 N K for inner product weights) and V1 `layers` weights', () => {
    const p = net(`
      layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
      layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
    `);
    const n = new Net(p, opts());
    const legacy = parseNetParameter(`
      layers { name: "fc" type: INNER_PRODUCT
        blobs { num: 1 channels: 1 height: 2 width: 3 data: [1, 2, 3, 4, 5, 6] }
        blobs { num: 1 channels: 1 height: 1 width: 2 data: [7, 8] } }
    `);
    n.copyTrainedLayersFrom(legacy);
    const [w, b] = n.params.get('fc')!;
    expect(Array.from(w!.cpuData())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(b!.cpuData())).toEqual([7, 8]);
    const wrong = parseNetParameter(`layers { name: "fc" blobs { num: 1 channels: 1 height: 3 width: 2 data: [1, 2, 3, 4, 5, 6] } blobs { width: 2 data: [0, 0] } }`);
    expect(() => n.copyTrainedLayersFrom(wrong)).toThrow('Source param shape is 1 1 3 2 (6); target param shape is 2 3 (6).');
  });

  it('builds with weights carried in the definition', () => {
    const src = new Net(net(CONV(1)), opts({ rng: new Rng(5) }));
    const withWeights = src.toProto();
    const n = new Net(withWeights, opts({ rng: new Rng(6) }));
    expect(Array.from(n.params.get('conv1')![0]!.cpuData())).toEqual(Array.from(src.params.get('conv1')![0]!.cpuData()));
  });

  it('shareTrainedLayersWith makes params views of the other net’s', () => {
    const train = new Net(net(CONV(1)), opts({ phase: Phase.TRAIN, rng: new Rng(1) }));
    const test = new Net(net(CONV(1)), opts({ rng: new Rng(2) }));
    test.shareTrainedLayersWith(train);
    const [wt] = train.params.get('conv1')!;
    const [ws] = test.params.get('conv1')!;
    expect(ws!.data).toBe(wt!.data);
    wt!.mutableCpuData()[0] = 42;
    expect(ws!.cpuData()[0]).toBe(42);
    const other = new Net(net(CONV(3)), opts());
    expect(() => other.shareTrainedLayersWith(train)).toThrow(
      "Cannot share param 0 weights from layer 'conv1'; shape mismatch. Source param shape is 20 1 5 5 (500); target param shape is 20 3 5 5 (1500)",
    );
  });
});

describe('debug_info', () => {
  it("logs per-layer magnitudes like Caffe's debug_info", () => {
    const p: NetParameter = net(FAN_OUT + 'debug_info: true');
    const n = new Net(p, opts());
    setInputs(n);
    const lines = captureLog(() => {
      n.forwardBackward();
      n.update();
    }).map((l) => l.message);
    expect(lines.some((l) => /^ {4}\[Forward\] Layer ip1, top blob h data: /.test(l))).toBe(true);
    expect(lines.some((l) => /^ {4}\[Forward\] Layer ip1, param blob 0 data: /.test(l))).toBe(true);
    expect(lines.some((l) => /^ {4}\[Backward\] Layer ip2, bottom blob h_relu_0_split_0 diff: /.test(l))).toBe(true);
    expect(lines.some((l) => /^ {4}\[Backward\] All net params \(data, diff\): L1 norm = /.test(l))).toBe(true);
    expect(lines.some((l) => /^ {4}\[Update\] Layer ip3, param 1 data: .*; diff: /.test(l))).toBe(true);
  });
});

describe('errors point at the layer in the prototxt', () => {
  it('appends the file:line:column of the failing layer', async () => {
    const { parseText } = await import('@caffe-ts/proto');
    const text = 'name: "n"\nlayer { name: "d" type: "Input" top: "d" input_param { shape { dim: 1 dim: 2 } } }\n\nlayer {\n  name: "r" type: "ReLU" bottom: "nope" top: "r"\n}\n';
    const param = parseText<import('@caffe-ts/proto').NetParameter>('NetParameter', text, { file: 'bad.prototxt' });
    expect(() => new Net(param, { log: false, name: 'bad.prototxt' })).toThrow(
      "Unknown bottom blob 'nope' (layer 'r', bottom index 0) (layer defined at bad.prototxt:4:1) [bad.prototxt]",
    );
  });
});
