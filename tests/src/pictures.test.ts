/**
 * The picture and report tools: draw_net, parse_log, plot_log, visualize and summary, run through
 * the CLI in-process on real Caffe files and on the log of a short training run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Net } from '@caffe-ts/net';
import { readNetParameter, saveNet } from '@caffe-ts/net/node';
import { registerBuiltinLayers, LayerRegistry } from '@caffe-ts/layers';
import { pythonFloat } from '../../packages/cli/src/commands/parse-log.js';
import { niceTicks } from '../../packages/cli/src/commands/plot-log.js';
import { caffe, corpus, hasCorpus, messages, tempDir, zooDir } from './helpers.js';

/** Well-formed XML: balanced, properly nested tags and valid entity references. */
function checkXml(text: string): void {
  const body = text.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  const stack: string[] = [];
  let roots = 0;
  for (const m of body.matchAll(/<([^>]*)>|([^<]+)/g)) {
    if (m[2] !== undefined) {
      for (const amp of m[2].matchAll(/&([^;\s]*);?/g)) expect(amp[0]).toMatch(/^&(#\d+|#x[0-9a-f]+|[a-z]+);$/i);
      continue;
    }
    const tag = m[1]!;
    if (tag.startsWith('?') || tag.startsWith('!')) continue;
    if (tag.startsWith('/')) {
      expect(stack.pop()).toBe(tag.slice(1).trim());
      continue;
    }
    const name = /^[A-Za-z_][\w:.-]*/.exec(tag)?.[0];
    expect(name, `bad tag <${tag}>`).toBeDefined();
    if (stack.length === 0) roots++;
    if (!tag.endsWith('/')) stack.push(name!);
  }
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
}

function pngSize(path: string): { width: number; height: number; png: PNG } {
  const png = PNG.sync.read(readFileSync(path));
  return { width: png.width, height: png.height, png };
}

describe('caffe draw_net', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('lays out GoogLeNet as SVG with every layer name', async () => {
    const model = hasCorpus ? corpus('nets/bvlc_googlenet/deploy.prototxt') : join(zooDir, 'googlenet/deploy.prototxt');
    const out = join(dir.path, 'googlenet.svg');
    const r = await caffe(['draw_net', model, out, '--rankdir', 'TB'], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const svg = readFileSync(out, 'utf8');
    checkXml(svg);
    expect(svg).toMatch(/<svg[^>]*>/);
    const names = readNetParameter(model).layer.map((l) => l.name);
    expect(names.length).toBeGreaterThan(100);
    // TB layouts keep a layer's label on one line: "name (Type)".
    for (const name of names) expect(svg.includes(`>${name} (`) || svg.includes(`>${name}</text>`), name).toBe(true);
    // draw.py's styling: blobs as grey octagons (8 points), convolutions red, pooling orange.
    expect(svg).toContain('fill="#e0e0e0"');
    expect(svg).toContain('fill="#ff5050"');
    expect(svg).toContain('fill="#ff9900"');
  });

  it('handles in-place layers, --phase and bad options', async () => {
    const model = join(zooDir, 'lenet/lenet_train_test.prototxt');
    const dot = join(dir.path, 'lenet.dot');
    expect((await caffe(['draw_net', model, dot, '--phase', 'TRAIN'], dir.path)).code).toBe(0);
    const text = readFileSync(dot, 'utf8');
    // relu1 works in place on ip1: light green, one blob node for ip1 with edges both ways.
    expect(text).toMatch(/"layer:\d+:relu1" \[label="relu1\\\\n\(ReLU\)", shape=record, fillcolor="#90EE90"/);
    expect(text).toMatch(/"blob:ip1" -> "layer:\d+:relu1"/);
    expect(text).toMatch(/"layer:\d+:relu1" -> "blob:ip1"/);
    expect(text.match(/^  "blob:ip1" \[label/gm)).toHaveLength(1);
    expect(text).not.toContain('accuracy');
    expect(text).toContain('label="Batch 64"');
    const bad = await caffe(['draw_net', model, join(dir.path, 'x.svg'), '--rankdir', 'XY'], dir.path);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--rankdir must be LR, TB, BT or RL, got 'XY'");
  });
});

describe('caffe parse_log and plot_log on a short training run', () => {
  const dir = tempDir();
  let logFile = '';
  let log: string[] = [];
  beforeAll(async () => {
    writeFileSync(
      join(dir.path, 'net.prototxt'),
      `name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 } data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" include { phase: TEST } }
`,
    );
    writeFileSync(
      join(dir.path, 'solver.prototxt'),
      'net: "net.prototxt"\ntest_iter: 1\ntest_interval: 2\nbase_lr: 0.01\nlr_policy: "step"\ngamma: 0.5\nstepsize: 2\ndisplay: 1\nmax_iter: 4\nrandom_seed: 1\nsnapshot_prefix: "tiny"\n',
    );
    const r = await caffe(['train', '--solver', 'solver.prototxt'], dir.path);
    expect(r.code).toBe(0);
    log = r.log;
    logFile = join(dir.path, 'caffe.INFO');
    writeFileSync(logFile, log.join('\n') + '\n');
  });
  afterAll(() => dir.remove());

  it('writes parse_log.py\'s .train and .test CSVs', async () => {
    const r = await caffe(['parse_log', 'caffe.INFO', '.'], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const csv = (suffix: string) => readFileSync(join(dir.path, `caffe.INFO.${suffix}`), 'utf8').split('\r\n');
    const train = csv('train');
    const test = csv('test');
    expect(train[0]).toBe('NumIters,Seconds,LearningRate,loss');
    expect(test[0]).toBe('NumIters,Seconds,LearningRate,accuracy,loss');
    expect(train.at(-1)).toBe('');

    // The values, read from the log independently: per iteration, the outputs printed after it.
    const msgs = messages(log);
    const trainLoss: number[] = [];
    const testOut: [number, number][] = [];
    for (const m of msgs) {
      const t = /^\s*Train net output #0: loss = (\S+)/.exec(m);
      if (t) trainLoss.push(Number(t[1]));
      const a = /^\s*Test net output #0: accuracy = (\S+)/.exec(m);
      if (a) testOut.push([Number(a[1]), Number.NaN]);
      const l = /^\s*Test net output #1: loss = (\S+)/.exec(m);
      if (l) testOut.at(-1)![1] = Number(l[1]);
    }
    expect(trainLoss).toHaveLength(4);
    expect(testOut).toHaveLength(3);
    const rows = (lines: string[]) => lines.slice(1, -1).map((l) => l.split(','));
    const tr = rows(train);
    // The learning rate lags one iteration (Caffe prints "lr =" after the outputs) and the first
    // row takes the second's, as parse_log.py does; step policy halves it at iteration 2.
    expect(tr.map((c) => [c[0], c[2]])).toEqual([['0.0', '0.01'], ['1.0', '0.01'], ['2.0', '0.01'], ['3.0', '0.005']]);
    expect(tr.map((c) => Number(c[3]))).toEqual(trainLoss);
    const te = rows(test);
    expect(te.map((c) => [c[0], c[2]])).toEqual([['0.0', '0.01'], ['2.0', '0.01'], ['4.0', '0.005']]);
    expect(te.map((c) => [Number(c[3]), Number(c[4])])).toEqual(testOut);
    const seconds = [...tr, ...te].map((c) => Number(c[1]));
    for (const s of seconds) expect(s).toBeGreaterThanOrEqual(0);
    expect(tr.map((c) => Number(c[1]))).toEqual([...tr.map((c) => Number(c[1]))].sort((a, b) => a - b));
  });

  it('writes Python float reprs', () => {
    expect([100, 0.01, 1e-5, 0.0001, 1.5e16, 2.5, 0, -3e-7, 123456.789, Number.NaN].map(pythonFloat)).toEqual([
      '100.0', '0.01', '1e-05', '0.0001', '1.5e+16', '2.5', '0.0', '-3e-07', '123456.789', 'nan',
    ]);
  });

  it('plots the curves as SVG and PNG', async () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect((await caffe(['plot_log', 'caffe.INFO', 'curves.svg'], dir.path)).code).toBe(0);
    const svg = readFileSync(join(dir.path, 'curves.svg'), 'utf8');
    checkXml(svg);
    expect(svg).toContain('train loss');
    expect(svg).toContain('test accuracy');
    expect(svg.match(/<polyline/g)).toHaveLength(3);
    const r = await caffe(['plot_log', 'caffe.INFO', 'curves.png', '--x', 'seconds'], dir.path);
    expect(r.stderr).toBe('');
    const { width, height, png } = pngSize(join(dir.path, 'curves.png'));
    expect([width, height]).toEqual([800, 600]);
    // Not blank: some pixels are neither white nor transparent.
    let inked = 0;
    for (let i = 0; i < png.data.length; i += 4) if (png.data[i]! < 200 && png.data[i + 3]! > 0) inked++;
    expect(inked).toBeGreaterThan(1000);
  });
});

describe('caffe visualize and summary on LeNet', () => {
  const dir = tempDir();
  const model = join(zooDir, 'lenet/lenet_deploy.prototxt');
  beforeAll(() => {
    const net = new Net(readNetParameter(model, { log: false }), { registry: registerBuiltinLayers(new LayerRegistry()), log: false });
    // The deploy net has no fillers (all zeros): give the weights some structure to draw.
    for (const blobs of net.params.values()) {
      for (const b of blobs) {
        const d = b.mutableCpuData();
        for (let i = 0; i < d.length; i++) d[i] = Math.sin(i * 0.7) + (i % 5) * 0.1;
      }
    }
    saveNet(net, join(dir.path, 'lenet.caffemodel'));
  });
  afterAll(() => dir.remove());

  it('tiles the 20 conv1 filters into a 5×4 grid', async () => {
    const r = await caffe(['visualize', '--model', model, '--weights', 'lenet.caffemodel', '--layer', 'conv1', 'conv1.png'], dir.path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { width, height, png } = pngSize(join(dir.path, 'conv1.png'));
    // 5×5 filters enlarged 6× to 30 px tiles, 5 columns and 4 rows, 1 px apart.
    expect([width, height]).toEqual([5 * 30 + 4, 4 * 30 + 3]);
    const px = (x: number, y: number) => png.data[(y * width + x) * 4]!;
    expect(px(30, 0)).toBe(255); // the gap between the first two tiles
    const firstTile = new Set<number>();
    for (let y = 0; y < 30; y += 6) for (let x = 0; x < 30; x += 6) firstTile.add(px(x, y));
    expect(firstTile.size).toBeGreaterThan(5);
  });

  it('tiles conv1 activations for an input image', async () => {
    const img = new PNG({ width: 28, height: 28 });
    for (let i = 0; i < 28 * 28; i++) img.data.set([(i * 7) % 256, (i * 7) % 256, (i * 7) % 256, 255], i * 4);
    writeFileSync(join(dir.path, 'digit.png'), PNG.sync.write(img));
    const r = await caffe(['visualize', '--model', model, '--weights', 'lenet.caffemodel', '--layer', 'conv1', '--input', 'digit.png', 'act.png'], dir.path);
    expect(r.stderr).toBe('');
    const { width, height } = pngSize(join(dir.path, 'act.png'));
    expect([width, height]).toEqual([5 * 24 + 4, 4 * 24 + 3]);
  });

  it('summary prints the layer table', async () => {
    const r = await caffe(['summary', model, '--weights', 'lenet.caffemodel'], dir.path);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe("Net 'LeNet' (TEST)");
    expect(lines[1]).toMatch(/^layer\s+type\s+top shapes\s+params\s+FLOPs$/);
    expect(lines.slice(3, -1).map((l) => l.split(/\s+/).slice(0, 4))).toEqual([
      ['data', 'Input', '1x1x28x28', '0'],
      ['conv1', 'Convolution', '1x20x24x24', '520'],
      ['pool1', 'Pooling', '1x20x12x12', '0'],
      ['conv2', 'Convolution', '1x50x8x8', '25050'],
      ['pool2', 'Pooling', '1x50x4x4', '0'],
      ['ip1', 'InnerProduct', '1x500', '400500'],
      ['relu1', 'ReLU', '1x500', '0'],
      ['ip2', 'InnerProduct', '1x10', '5010'],
      ['prob', 'Softmax', '1x10', '0'],
    ]);
    expect(lines.at(-1)).toMatch(/^Total params: 431080 /);
  });
});
