import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { caffe, corpus, hasCorpus, messages, tempDir } from './helpers.js';

const yu = (f: string) => corpus('weights/yufacedetectnet_open_v2', f);
const image = corpus('weights/mtcnn_kpzhang93/test1.jpg');

describe.skipIf(!hasCorpus || !existsSync(image))('caffe detect (yufacedetectnet-open-v2, an SSD-style face detector)', () => {
  const tmp = tempDir('caffe-detect-');
  afterAll(() => tmp.remove());

  it('finds faces in the MTCNN test image and draws them', async () => {
    const out = join(tmp.path, 'faces.png');
    const labels = join(tmp.path, 'labels.txt');
    writeFileSync(labels, 'background\nface\n');
    const run = await caffe(
      [
        'detect', '--model', yu('yufacedetectnet-open-v2.prototxt'), '--weights', yu('yufacedetectnet-open-v2.caffemodel'),
        '--image', image, '--mean_values', '104,117,123', '--input_size', '320x240', '--confidence', '0.5',
        '--labels', labels, '--output', out,
      ],
      tmp.path,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = messages(run.log);
    const size = lines.find((l) => l.startsWith('Image '))!;
    const [w, h] = /(\d+)x(\d+)/.exec(size)!.slice(1).map(Number) as [number, number];
    const faces = lines
      .map((l) => /^face ([\d.]+) \[([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\]$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => m.slice(1).map(Number) as [number, number, number, number, number]);
    expect(faces.length).toBeGreaterThan(0);
    for (const [score, x0, y0, x1, y1] of faces) {
      expect(score).toBeGreaterThanOrEqual(0.5);
      // A plausible face: inside the image, not degenerate, not most of the picture, roughly square.
      expect(x1).toBeGreaterThan(x0 + 5);
      expect(y1).toBeGreaterThan(y0 + 5);
      expect(x1).toBeLessThanOrEqual(w);
      expect(y1).toBeLessThanOrEqual(h);
      expect((x1 - x0) * (y1 - y0)).toBeLessThan(0.5 * w * h);
      expect((x1 - x0) / (y1 - y0)).toBeGreaterThan(0.4);
      expect((x1 - x0) / (y1 - y0)).toBeLessThan(2.5);
    }
    const png = PNG.sync.read(readFileSync(out));
    expect([png.width, png.height]).toEqual([w, h]);
  });

  it('explains a missing image', async () => {
    const run = await caffe(['detect', '--model', yu('yufacedetectnet-open-v2.prototxt'), '--weights', yu('yufacedetectnet-open-v2.caffemodel')], tmp.path);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/Need an image \(--image\) to detect in\./);
  });
});
