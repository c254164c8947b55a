/**
 * Files are data, never code: a Python layer whose module has no registered TypeScript port fails
 * without running anything; relative paths inside files resolve against the working directory
 * first, then the referring file's folder, and a miss lists every place tried.
 */
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caffe, corpus, hasCorpus, messages, tempDir } from './helpers.js';

const dir = tempDir('caffe-ts-untrusted-');
const D = dir.path;
afterAll(() => dir.remove());
const firstErr = (s: string) => s.trimEnd().split('\n')[0]!.split(D).join('<D>');

const tinyNet = (name: string) =>
  `name: "${name}"\n` +
  'layer { name: "x" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }\n' +
  'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 1 } }\n' +
  'layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }\n';
const solver = (net: string) => `net: "${net}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\ndisplay: 0\nsnapshot_after_train: false\n`;

describe('untrusted files are data', () => {
  it('a Python layer without a registered port fails and runs nothing', async () => {
    // A module that would leave a mark if anything imported or ran it.
    const mark = join(D, 'PWNED');
    writeFileSync(join(D, 'evil.py'), `import os\nopen(${JSON.stringify(mark)}, "w").write("ran")\nclass Layer: pass\n`);
    writeFileSync(
      join(D, 'python.prototxt'),
      'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n' +
        `layer { name: "py" type: "Python" bottom: "x" top: "y" python_param { module: "evil" layer: "Layer" param_str: "__import__('os').system('touch ${mark}')" } }\n`,
    );
    const r = await caffe(['time', '--model', 'python.prototxt', '--iterations', '1'], D);
    expect(r.code).toBe(1);
    expect(firstErr(r.stderr)).toBe(
      'caffe time: Python layer \'py\' (evil.Layer): no TypeScript implementation is registered for python_param { module: "evil" layer: "Layer" }. ' +
        "caffe-ts never runs Python code: port the layer to TypeScript and register it before building the net, with " +
        "registerPythonLayer('evil', 'Layer', (paramStr, self) => ({ setup, reshape, forward, backward })) from @caffe-ts/layers " +
        '(registered Python layers: none) (layer defined at <D>/python.prototxt:2:1)',
    );
    expect(existsSync(mark)).toBe(false);
  });

  it("a solver's net path: the working directory first, then the solver's folder; a miss lists both", async () => {
    mkdirSync(join(D, 'sub'), { recursive: true });
    writeFileSync(join(D, 'sub', 'solver.prototxt'), solver('net.prototxt'));
    // Only beside the solver: found there.
    writeFileSync(join(D, 'sub', 'net.prototxt'), tinyNet('beside_solver'));
    let r = await caffe(['train', '--solver', 'sub/solver.prototxt'], D);
    expect(r.code, r.stderr).toBe(0);
    expect(messages(r.log)).toContain('Solving beside_solver');
    // In the working directory too: that one wins.
    writeFileSync(join(D, 'net.prototxt'), tinyNet('in_cwd'));
    r = await caffe(['train', '--solver', 'sub/solver.prototxt'], D);
    expect(r.code, r.stderr).toBe(0);
    expect(messages(r.log)).toContain('Solving in_cwd');
    // Nowhere: every place tried is listed.
    writeFileSync(join(D, 'sub', 'solver2.prototxt'), solver('missing_net.prototxt'));
    r = await caffe(['train', '--solver', 'sub/solver2.prototxt'], D);
    expect(r.code).toBe(1);
    expect(firstErr(r.stderr)).toBe(
      "caffe train: net 'missing_net.prototxt' (named in <D>/sub/solver2.prototxt) not found; tried <D>/missing_net.prototxt, <D>/sub/missing_net.prototxt",
    );
  });

  it.skipIf(!hasCorpus)("a Data layer's source: the working directory first, then the net's folder; a miss lists both", async () => {
    mkdirSync(join(D, 'nets'), { recursive: true });
    cpSync(corpus('data/caffe-made/fashion100_lmdb'), join(D, 'nets', 'train_lmdb'), { recursive: true });
    const net = (src: string) =>
      `layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "${src}" backend: LMDB batch_size: 2 } }\n` +
      'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }\n';
    writeFileSync(join(D, 'nets', 'found.prototxt'), net('train_lmdb'));
    let r = await caffe(['time', '--model', 'nets/found.prototxt', '--iterations', '1'], D);
    expect(r.code, r.stderr).toBe(0);
    writeFileSync(join(D, 'nets', 'missing.prototxt'), net('nowhere_lmdb'));
    r = await caffe(['time', '--model', 'nets/missing.prototxt', '--iterations', '1'], D);
    expect(r.code).toBe(1);
    expect(firstErr(r.stderr)).toBe(
      "caffe time: Data layer 'd': cannot open LMDB database 'nowhere_lmdb': does not exist (looked for <D>/nowhere_lmdb, <D>/nets/nowhere_lmdb)",
    );
  });
});
