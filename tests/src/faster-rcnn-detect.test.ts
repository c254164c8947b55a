import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { LayerRegistry, registerBuiltinLayers } from '@caffe-ts/layers';
import { registerContribLayers } from '@caffe-ts/layers-contrib';
import { Net } from '@caffe-ts/net';
import { encodeNetParameter, parseNetParameter, Phase } from '@caffe-ts/proto';
import { Rng } from '@caffe-ts/blob';
import { afterAll, describe, expect, it } from 'vitest';
import { TINY_FASTER_RCNN } from '../../packages/layers-contrib/src/testing/tiny-faster-rcnn.js';
import { caffe, messages, tempDir } from './helpers.js';

// `caffe detect` on a Faster R-CNN test net in py-faster-rcnn's layout (a Python proposal layer,
// ROIPooling), with weights saved as a .caffemodel and a PNG made here.
describe('caffe detect with a Faster R-CNN test net', () => {
  const tmp = tempDir('caffe-faster-rcnn-');
  afterAll(() => tmp.remove());

  it('recognises the net, runs it as py-faster-rcnn does and draws the boxes', async () => {
    const model = join(tmp.path, 'test.prototxt');
    const weights = join(tmp.path, 'tiny.caffemodel');
    const image = join(tmp.path, 'in.png');
    const out = join(tmp.path, 'out.png');
    writeFileSync(model, TINY_FASTER_RCNN);
    const registry = registerContribLayers(registerBuiltinLayers(new LayerRegistry()));
    const net = new Net(parseNetParameter(TINY_FASTER_RCNN), { phase: Phase.TEST, registry, log: false, rng: new Rng(2) });
    writeFileSync(weights, encodeNetParameter(net.toProto()));
    const png = new PNG({ width: 60, height: 40 });
    const rng = new Rng(9);
    for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : rng.int(256);
    writeFileSync(image, PNG.sync.write(png));

    const run = await caffe(
      ['detect', '--model', model, '--weights', weights, '--image', image, '--confidence', '0', '--shorter_side', '64', '--max_size', '96', '--output', out],
      tmp.path,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    expect(lines).toContain('Faster R-CNN net: shorter side 64, longer side at most 96, NMS 0.3');
    expect(lines).toContainEqual(expect.stringMatching(/^Input 96x64; \d+ detection\(s\) with confidence >= 0$/));
    const boxes = lines.map((l) => /^([12]) ([\d.]+) \[([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\]$/.exec(l)).filter((m) => m !== null);
    expect(boxes.length).toBeGreaterThan(0);
    for (const m of boxes) {
      const [x0, y0, x1, y1] = m!.slice(3).map(Number) as [number, number, number, number];
      expect(0 <= x0 && x0 <= x1 && x1 <= 59 && 0 <= y0 && y0 <= y1 && y1 <= 39).toBe(true);
    }
    const drawn = PNG.sync.read(readFileSync(out));
    expect([drawn.width, drawn.height]).toEqual([60, 40]);
  });
});
