// The `caffe` command as a user installs it (the cli tarball and its dependencies), loading layer
// plugins with --plugin: a third-party package installed beside it (caffe-ts-scaled-tanh, the core
// as its peers, so it registers into the command's own schema and registry), and the fork layers
// of @caffe-ts/layers-contrib. Run by tests/consumer/run.sh in a scratch copy.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const bin = join(here, 'node_modules/.bin/caffe');
const work = mkdtempSync(join(tmpdir(), 'caffe-ts-cli-plugin-'));
after(() => rmSync(work, { recursive: true, force: true }));

writeFileSync(
  join(work, 'plugin_net.prototxt'),
  `name: "plugin_net"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "act" type: "ScaledTanh" bottom: "h" top: "h" scaled_tanh_param { alpha: 1.5 beta: 0.75 } }
layer { name: "sum" type: "Reduction" bottom: "h" top: "loss" loss_weight: 1 }
`,
);
writeFileSync(
  join(work, 'fork_net.prototxt'),
  `name: "fork_net"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 4 } } }
layer { name: "perm" type: "Permute" bottom: "data" top: "p" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "r6" type: "ReLU6" bottom: "p" top: "p" }
`,
);

// From the user's own folder, as `caffe` is run; the plugin package resolves from the install.
const caffe = (...args) => spawnSync(bin, args, { cwd: here, encoding: 'utf8', env: { ...process.env, CAFFE_TS_WORKERS: '1' } });
const model = (name) => join(work, name);

test('the installed command lists a third-party layer type once its package is passed with --plugin', () => {
  assert.ok(existsSync(bin), 'node_modules/.bin/caffe');
  const without = caffe('layer_types');
  assert.equal(without.status, 0, without.stderr);
  assert.ok(!without.stdout.split('\n').includes('ScaledTanh'));
  const withIt = caffe('layer_types', '--plugin', 'caffe-ts-scaled-tanh/register');
  assert.equal(withIt.status, 0, withIt.stderr);
  assert.ok(withIt.stdout.split('\n').includes('ScaledTanh'));
});

test("the plugin's parameter field parses in the command's schema, and its layer runs", () => {
  const without = caffe('time', '--model', model('plugin_net.prototxt'), '--iterations', '2');
  assert.equal(without.status, 1);
  assert.match(without.stderr, /unknown field 'scaled_tanh_param'/);
  const r = caffe('time', '--model', model('plugin_net.prototxt'), '--iterations', '2', '--plugin', 'caffe-ts-scaled-tanh/register');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /act\s+forward: [\d.]+ ms/);
  assert.match(r.stdout + r.stderr, /Average Forward-Backward: [\d.]+ ms/);
});

test("the fork layers come from the command's own @caffe-ts/layers-contrib, with a hint when left out", () => {
  const without = caffe('time', '--model', model('fork_net.prototxt'), '--iterations', '1');
  assert.equal(without.status, 1);
  assert.match(without.stderr, /add --plugin @caffe-ts\/layers-contrib\/register/);
  const r = caffe('time', '--model', model('fork_net.prototxt'), '--iterations', '1', '--plugin', '@caffe-ts/layers-contrib/register');
  assert.equal(r.status, 0, r.stderr);
});
