// An application that uses a third-party layer package: the core from its tarballs, and the
// caffe-ts-scaled-tanh plugin (tests/consumer/scaled-tanh-plugin, packed with npm pack), which
// takes the core as peer dependencies. Run by tests/consumer/run.sh in a scratch copy.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import '@caffe-ts/layers/register';
import 'caffe-ts-scaled-tanh/register';
import { defaultLayerRegistry } from '@caffe-ts/layers';
import { Net } from '@caffe-ts/net';
import { readNetWeights, saveNet } from '@caffe-ts/net/node';
import { decodeBinary, encodeBinary, parseNetParameter, printText } from '@caffe-ts/proto';
import { SCALED_TANH_PARAM_FIELD, ScaledTanhLayer } from 'caffe-ts-scaled-tanh';

const here = fileURLToPath(new URL('.', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'caffe-ts-plugin-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const text = readFileSync(join(here, 'plugin_net.prototxt'), 'utf8');

test('the plugin is installed against the single copy of the core', () => {
  assert.ok(existsSync(join(here, 'node_modules/caffe-ts-scaled-tanh/package.json')));
  for (const core of ['proto', 'blob', 'layers']) {
    assert.equal(existsSync(join(here, 'node_modules/caffe-ts-scaled-tanh/node_modules/@caffe-ts', core)), false, `the plugin has no copy of @caffe-ts/${core}`);
  }
  assert.ok(defaultLayerRegistry().has('ScaledTanh'), "'./register' added ScaledTanh to the application's registry");
  assert.ok(defaultLayerRegistry().has('Convolution'), 'next to the built-ins');
});

test("the plugin's parameter message parses, prints and round-trips in binary", () => {
  const param = parseNetParameter(text);
  const act = param.layer.find((l) => l.name === 'act');
  assert.equal(act.scaled_tanh_param.alpha, 1.5);
  assert.equal(act.scaled_tanh_param.beta, 0.75);
  assert.match(printText('NetParameter', param), /scaled_tanh_param \{\n {4}alpha: 1\.5\n {4}beta: 0\.75\n {2}\}/);
  const back = decodeBinary('NetParameter', encodeBinary('NetParameter', param));
  assert.deepEqual(back.layer[2].scaled_tanh_param, act.scaled_tanh_param);
  assert.equal(SCALED_TANH_PARAM_FIELD.id, 1147);
});

test('a Net built from the prototxt runs the plugin layer forward and backward', () => {
  const net = new Net(parseNetParameter(text), { log: false, dtype: 'float64' });
  assert.ok(net.layer('act') instanceof ScaledTanhLayer);
  const x = [0.5, -1, 2, 0, 1, -0.5];
  net.blob('x').mutableCpuData().set(x);
  const w = net.params.get('ip')[0].cpuData();
  const b = net.params.get('ip')[1].cpuData();
  const loss = net.forward();
  let expected = 0;
  const h = [];
  for (let n = 0; n < 2; n++) {
    for (let o = 0; o < 4; o++) {
      let v = b[o];
      for (let i = 0; i < 3; i++) v += w[o * 3 + i] * x[n * 3 + i];
      h.push(v);
      expected += 1.5 * Math.tanh(0.75 * v);
    }
  }
  assert.ok(Math.abs(loss - expected) < 1e-12, `loss ${loss}, expected ${expected}`);

  net.backward();
  // d loss / d bias_o = Σ_n αβ(1 − tanh²(β·h))
  const db = net.params.get('ip')[1].cpuDiff();
  for (let o = 0; o < 4; o++) {
    let g = 0;
    for (let n = 0; n < 2; n++) g += 1.5 * 0.75 * (1 - Math.tanh(0.75 * h[n * 4 + o]) ** 2);
    assert.ok(Math.abs(db[o] - g) < 1e-12, `bias diff ${o}: ${db[o]} vs ${g}`);
  }
});

test("saved weights keep the plugin layer's parameters", () => {
  const net = new Net(parseNetParameter(text), { log: false });
  const file = join(scratch, 'plugin_net.caffemodel');
  saveNet(net, file);
  const saved = readNetWeights(file, { log: false });
  const act = saved.layer.find((l) => l.name === 'act');
  assert.equal(act.type, 'ScaledTanh');
  assert.equal(act.scaled_tanh_param.alpha, 1.5);
});
