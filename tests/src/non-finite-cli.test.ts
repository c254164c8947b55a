import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caffe, messages, tempDir } from './helpers.js';

/**
 * `caffe train` and NaN/Inf: a learning rate so large that the first update overflows float32
 * makes the ip weights infinite at iteration 0 (the loss of that iteration was finite). It is
 * logged at that iteration with the layer and param; --stop_on_nan ends the run there.
 */
const dir = tempDir('caffe-ts-nan-cli-');
const D = dir.path;

beforeAll(() => {
  writeFileSync(
    join(D, 'net.prototxt'),
    'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { shape { dim: 1 dim: 3 } shape { dim: 1 dim: 1 } data_filler { type: "constant" value: 1 } data_filler { type: "constant" value: 0 } } }\n' +
      'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 1 weight_filler { type: "constant" value: 1 } } }\n' +
      'layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" }\n',
  );
  writeFileSync(join(D, 'solver.prototxt'), 'net: "net.prototxt"\nbase_lr: 3e38\nlr_policy: "fixed"\nmax_iter: 3\ndisplay: 1\nsnapshot_after_train: false\n');
});
afterAll(() => dir.remove());

const PARAM_LINE = "Iteration 0: the update (lr = 3e+38) made param 0 of layer 'ip' (InnerProduct) non-finite (-Infinity at element 0 of 1 3 (3))";

describe('caffe train with a non-finite param', () => {
  it('logs the layer and param at the iteration of the update and trains on', async () => {
    const r = await caffe(['train', '--solver', 'solver.prototxt'], D);
    expect(r.code, r.stderr).toBe(0);
    const errors = messages(r.log.filter((l) => l.startsWith('E')));
    expect(errors[0]).toBe(PARAM_LINE);
    expect(errors.slice(1).every((l) => /^Iteration [12], loss = (Infinity|NaN): first non-finite value .* in param 0 of layer 'ip'/.test(l))).toBe(true);
  });

  it('--stop_on_nan stops there with a clear error', async () => {
    const r = await caffe(['train', '--solver', 'solver.prototxt', '--stop_on_nan'], D);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n')[0]).toBe(`caffe train: Training stopped: ${PARAM_LINE} (--stop_on_nan)`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
