/**
 * `caffe … --plugin MODULE`: the built CLI in child processes (skipped without a build), because
 * a plugin is resolved and imported the way Node does it for a user, not through the test
 * runner's aliases. A plugin registers its layer types and parameter fields when imported.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, writeNpy } from '@caffe-ts/zoo';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));

const NET = `
name: "plug"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 6 dim: 3 } } }
layer { name: "ss" type: "ScaleShift" bottom: "data" top: "y" scale_shift_param { scale: 2 shift: 1 } }
`;

/** A Python loss layer, as pycaffe's examples write one (module pyloss, class EuclideanLossLayer). */
const PY_NET = `
name: "py"
layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 6 dim: 3 } shape { dim: 6 dim: 3 } } }
layer {
  name: "loss" type: "Python" bottom: "a" bottom: "b" top: "loss" loss_weight: 1
  python_param { module: "pyloss" layer: "EuclideanLossLayer" }
}
`;

/** A net with two layers of the SSD fork (Permute with its permute_param, ReLU6). */
const FORK_NET = `
name: "fork"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 4 } } }
layer { name: "perm" type: "Permute" bottom: "data" top: "p" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "r6" type: "ReLU6" bottom: "p" top: "p" }
`;

describe.skipIf(!existsSync(bin))('caffe --plugin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'caffe-ts-plugins-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'net.prototxt'), NET);
  writeFileSync(join(dir, 'fork.prototxt'), FORK_NET);
  writeFileSync(join(dir, 'py.prototxt'), PY_NET);
  const x = Float32Array.from({ length: 18 }, (_, i) => i / 4 - 2);
  writeNpy(join(dir, 'x.npy'), { shape: [6, 3], data: x });
  const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, CAFFE_TS_WORKERS: '1' } });

  it('loads a user plugin file, whose layer then runs in caffe forward, on one replica and on two', () => {
    const plugin = join(fixtures, 'scale-shift.mjs');
    for (const workers of ['1', '2']) {
      const out = join(dir, `out${workers}`);
      const r = run(['forward', '--model', 'net.prototxt', '--input', 'data=x.npy', '--blobs', 'y', '--output', out, '--workers', workers, '--plugin', plugin]);
      expect(r.status, r.stderr).toBe(0);
      const y = readNpy(join(out, 'y.npy'));
      expect(y.shape).toEqual([6, 3]);
      expect(Array.from(y.data)).toEqual(Array.from(x, (v) => 2 * v + 1));
    }
  });

  it('without the plugin, the unknown field is reported where it is', () => {
    const r = run(['time', '--model', 'net.prototxt', '--iterations', '1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/net\.prototxt:4:\d+: unknown field 'scale_shift_param' in caffe\.LayerParameter/);
  });

  it('runs a Python layer ported as a plugin, and says how when the port is missing', () => {
    const b = Float32Array.from(x, (v, i) => v + (i % 3) - 1);
    writeNpy(join(dir, 'b.npy'), { shape: [6, 3], data: b });
    const without = run(['forward', '--model', 'py.prototxt', '--input', 'a=x.npy', '--input', 'b=b.npy', '--blobs', 'loss', '--output', 'py0']);
    expect(without.status).toBe(1);
    expect(without.stderr).toMatch(/^caffe forward: Python layer 'loss' \(pyloss\.EuclideanLossLayer\): no TypeScript implementation is registered/m);
    expect(without.stderr).toMatch(/^caffe forward: put that registerPythonLayer call in a module of your own and pass it with --plugin \.\/module\.mjs$/m);
    const r = run(['forward', '--model', 'py.prototxt', '--input', 'a=x.npy', '--input', 'b=b.npy', '--blobs', 'loss', '--output', 'py1', '--plugin', join(fixtures, 'pyloss.mjs')]);
    expect(r.status, r.stderr).toBe(0);
    // Σ (a − b)² / (2·6): each row's differences are 1, 0, −1.
    expect(Array.from(readNpy(join(dir, 'py1', 'loss.npy')).data)).toEqual([(6 * 2) / 12]);
  });

  it('takes the contrib layers by package name, and hints at them when a fork field is unknown', () => {
    const without = run(['time', '--model', 'fork.prototxt', '--iterations', '1']);
    expect(without.status).toBe(1);
    expect(without.stderr).toMatch(/unknown field 'permute_param'/);
    expect(without.stderr).toMatch(/'permute_param' comes from a Caffe fork that @caffe-ts\/layers-contrib reads: add --plugin @caffe-ts\/layers-contrib\/register/);
    const withIt = run(['time', '--model', 'fork.prototxt', '--iterations', '1', '--plugin', '@caffe-ts/layers-contrib/register']);
    expect(withIt.status, withIt.stderr).toBe(0);
    expect(withIt.stderr + withIt.stdout).toMatch(/Average Forward pass: [\d.]+ ms/);
  });

  it('reports a missing file, an unknown package and a plugin that throws, each on one line', () => {
    const missing = run(['time', '--model', 'net.prototxt', '--plugin', './no-such-plugin.mjs']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^caffe time: --plugin \.\/no-such-plugin\.mjs: no such file \(.*no-such-plugin\.mjs\)$/m);
    const unknown = run(['time', '--model', 'net.prototxt', '--plugin', 'no-such-package-for-caffe-ts']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/--plugin no-such-package-for-caffe-ts: cannot find the module/);
    const throws = run(['time', '--model', 'net.prototxt', '--plugin', join(fixtures, 'throws.mjs')]);
    expect(throws.status).toBe(1);
    expect(throws.stderr).toMatch(/--plugin .*throws\.mjs: loading file:.*throws\.mjs failed: this plugin refuses to load/);
    expect(throws.stderr).not.toMatch(/\n\s+at /);
  });
});
