import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { afterAll, describe, expect, it } from 'vitest';
import { SolverConfigError, UnknownLrPolicyError, UnknownSolverTypeError } from './errors.js';
import { loadSolverFromFile, locateTopLevelValue } from './node.js';

const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-solver-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const net = 'net_param { layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 } } } }\n';
async function load(name: string, text: string): Promise<Error> {
  const file = join(dir, name);
  writeFileSync(file, text);
  return loadSolverFromFile(file, { log: false, rootDir: dir, registry: registerBuiltinLayers(new LayerRegistry()) }).then(
    () => {
      throw new Error(`${name} loaded`);
    },
    (e: unknown) => e as Error,
  );
}

describe('locateTopLevelValue', () => {
  it('finds the value of a top-level field, skipping nested blocks, strings and comments', () => {
    const text = [
      '# type: "InComment"',
      'net_param { layer { name: "a{" type: "ReLU" } }',
      "  type:   'Adam'   # the solver",
      'base_lr: 0.1',
    ].join('\n');
    expect(locateTopLevelValue(text, 'type')).toEqual({ line: 3, column: 11 });
    expect(locateTopLevelValue(text, 'base_lr')).toEqual({ line: 4, column: 10 });
    expect(locateTopLevelValue(text, 'name')).toBeUndefined();
    expect(locateTopLevelValue(text, 'lr_policy')).toBeUndefined();
  });

  it('takes the last setting, and never a value that looks like the name', () => {
    expect(locateTopLevelValue('lr_policy: "a"\nlr_policy: "b"\n', 'lr_policy')).toEqual({ line: 2, column: 12 });
    expect(locateTopLevelValue('solver_mode: type\n', 'type')).toBeUndefined();
    expect(locateTopLevelValue('stepvalue: [1, 2]\ntype:"SGD"', 'type')).toEqual({ line: 2, column: 6 });
  });
});

describe('solver file errors name the file and the line:column of the field', () => {
  it('an unknown lr_policy, before any net is built', async () => {
    const e = await load('lr.prototxt', `${net}base_lr: 0.1\nlr_policy: "stepp"\nmax_iter: 1\n`);
    expect(UnknownLrPolicyError.isInstance(e)).toBe(true);
    expect(e.message).toBe(
      `${dir}/lr.prototxt:3:12: Unknown learning rate policy: stepp (known policies: fixed, step, exp, inv, multistep, poly, sigmoid)`,
    );
  });

  it('an lr_policy left unset names the file alone', async () => {
    const e = await load('nolr.prototxt', `${net}base_lr: 0.1\n`);
    expect(e.message).toBe(
      `${dir}/nolr.prototxt: Unknown learning rate policy: (empty; set lr_policy) (known policies: fixed, step, exp, inv, multistep, poly, sigmoid)`,
    );
  });

  it("an unknown solver type (not a layer's type inside net_param)", async () => {
    const e = await load('type.prototxt', `${net}lr_policy: "fixed"\n  type: "Adamm"\n`);
    expect(UnknownSolverTypeError.isInstance(e)).toBe(true);
    expect(e.message).toBe(
      `${dir}/type.prototxt:3:9: Unknown solver type: Adamm (known types: AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD)`,
    );
  });

  it("the solver's own checks point at their field (a repeated one where its list starts)", async () => {
    const trainNet = net.replace('net_param', 'train_net_param');
    const testIter = await load('iter.prototxt', `${trainNet}lr_policy: "fixed"\ntest_iter: 1\ntest_iter: 2\ntest_interval: 1\n`);
    expect(SolverConfigError.isInstance(testIter)).toBe(true);
    expect(testIter.message).toBe(
      `${dir}/iter.prototxt:3:12: test_iter must be specified for each test network. (2 test_iter for 0 test_net/test_net_param)`,
    );
    const momentum = await load('adagrad.prototxt', `${net}type: "AdaGrad"\nlr_policy: "fixed"\nmomentum: 0.9\n`);
    expect(momentum.message).toBe(`${dir}/adagrad.prototxt:4:11: Momentum cannot be used with AdaGrad. (momentum is 0.9; remove it or set it to 0)`);
    const stepsize = await load('step.prototxt', `${net}lr_policy: "step"\ngamma: 0.1\n`);
    expect(stepsize.message).toBe(`${dir}/step.prototxt: lr_policy 'step' needs stepsize > 0 (got 0)`);
    const gamma = await load('gamma.prototxt', `${net}lr_policy: "step"\nstepsize: 10\ngamma: -1\n`);
    expect(gamma.message).toBe(`${dir}/gamma.prototxt:4:8: lr_policy 'step' needs gamma >= 0 (got -1)`);
  });
});
