/**
 * HDF5 snapshots through the CLI: `snapshot_format: HDF5` writes `.caffemodel.h5` and
 * `.solverstate.h5`; `--snapshot x.solverstate.h5` resumes (chosen by the suffix, as Caffe);
 * `--weights x.caffemodel.h5` fine-tunes and `caffe test --weights x.caffemodel.h5` scores.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caffe, messages, tempDir } from './helpers.js';

// A regression the net can learn: y = sum of x, with DummyData-free constant inputs.
const NET = `
name: "h5net"
layer { name: "x" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
`;

const solverText = (maxIter: number, extra = '') =>
  `net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: ${maxIter}\ndisplay: 1\n` +
  `snapshot_prefix: "snap/h5"\nsnapshot_format: HDF5\nrandom_seed: 5\n${extra}`;

describe('HDF5 snapshots through caffe train/test', () => {
  const dir = tempDir('caffe-ts-h5cli-');
  afterAll(() => dir.remove());

  it('writes .h5 snapshots, resumes from .solverstate.h5, fine-tunes and tests from .caffemodel.h5', async () => {
    writeFileSync(join(dir.path, 'net.prototxt'), NET);
    mkdirSync(join(dir.path, 'snap'));
    writeFileSync(join(dir.path, 'solver.prototxt'), solverText(3));
    const first = await caffe(['train', '--solver', 'solver.prototxt'], dir.path);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(messages(first.log)).toContain('Snapshotting to HDF5 file snap/h5_iter_3.caffemodel.h5');
    expect(messages(first.log)).toContain('Snapshotting solver state to HDF5 file snap/h5_iter_3.solverstate.h5');
    expect(readdirSync(join(dir.path, 'snap')).sort()).toEqual(['h5_iter_3.caffemodel.h5', 'h5_iter_3.solverstate.h5']);

    writeFileSync(join(dir.path, 'solver6.prototxt'), solverText(6));
    const resumed = await caffe(['train', '--solver', 'solver6.prototxt', '--snapshot', 'snap/h5_iter_3.solverstate.h5'], dir.path);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const msgs = messages(resumed.log);
    expect(msgs).toContainEqual(expect.stringMatching(/^Restoring previous solver status from \S*snap\/h5_iter_3\.solverstate\.h5$/));
    // Training goes on from iteration 3.
    expect(msgs.find((m) => /^Iteration \d+ \(/.test(m))).toMatch(/^Iteration 3 \(/);
    expect(readdirSync(join(dir.path, 'snap'))).toContain('h5_iter_6.solverstate.h5');

    const tuned = await caffe(['train', '--solver', 'solver.prototxt', '--weights', 'snap/h5_iter_6.caffemodel.h5'], dir.path);
    expect(tuned.stderr).toBe('');
    expect(tuned.code).toBe(0);
    expect(messages(tuned.log)).toContain('Finetuning from snap/h5_iter_6.caffemodel.h5');

    const scored = await caffe(['test', '--model', 'net.prototxt', '--weights', 'snap/h5_iter_6.caffemodel.h5', '--iterations', '2'], dir.path);
    expect(scored.stderr).toBe('');
    expect(scored.code).toBe(0);
    // With all-zero inputs and targets, the loss is bias² / 2: the trained bias, not the filler's 1.
    const loss = Number(messages(scored.log).find((m) => /^loss = /.test(m))!.split(/ = | /)[1]);
    expect(loss).toBeGreaterThanOrEqual(0);
    expect(loss).toBeLessThan(0.5);
  });
});
