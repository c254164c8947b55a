import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { createMessage, encodeBinary, Phase, type LayerParameter } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeDataSources } from './data-sources.js';
import { cropImage, encodeImage, flipImage, imageToDatum, resizeImage, type PixelImage } from './image-io.js';
import { parseWindowFile, placeWindow, WindowDataLayer } from './window-data-layer.js';

const dir = mkdtempSync(join(tmpdir(), 'windowdata-'));
const image = (i: number): PixelImage => ({
  height: 20,
  width: 24,
  channels: 3,
  data: Uint8Array.from({ length: 20 * 24 * 3 }, (_, p) => (i * 50 + p * 11 + (p % 7) * 3) & 255),
});
let lines: string[];
let prev: LogSink;

// Image 0 holds one background window; image 1 one foreground window of class 2 and one of
// overlap 0.4: dropped with bg_threshold 0.3, background with the default 0.5.
const WINDOWS = `# 0
im0.png
3
20
24
1
5 0.1 2 3 11 14
# 1
im1.png
3
20
24
2
2 0.8 4 2 19 17
1 0.4 0 0 5 5
`;

beforeAll(async () => {
  writeFileSync(join(dir, 'im0.png'), await encodeImage(image(0), 'png'));
  writeFileSync(join(dir, 'im1.png'), await encodeImage(image(1), 'png'));
  writeFileSync(join(dir, 'windows.txt'), WINDOWS);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  lines = [];
  prev = setLogSink((l) => lines.push(l));
});
afterEach(async () => {
  setLogSink(prev);
  await closeDataSources();
});

const param = (props: Record<string, unknown> = {}, transform: Record<string, unknown> = {}) =>
  createMessage<LayerParameter>('LayerParameter', {
    name: 'windows',
    type: 'WindowData',
    top: ['data', 'label'],
    window_data_param: { source: join(dir, 'windows.txt'), root_folder: `${dir}/`, batch_size: 4, fg_fraction: 0.5, ...props },
    transform_param: { crop_size: 8, ...transform },
  });

function build(p: LayerParameter, rng = new Rng(3)) {
  const layer = new WindowDataLayer(p, { phase: Phase.TRAIN, rng });
  const top = [new Blob(), new Blob()];
  layer.setUp([], top);
  return { layer, top };
}

/** Window (x1, y1, x2, y2) of image i warped to 8×8, planar. */
const warped = (i: number, x1: number, y1: number, x2: number, y2: number, mirror = false) => {
  let w = resizeImage(cropImage(image(i), x1, y1, x2 - x1 + 1, y2 - y1 + 1), 8, 8);
  if (mirror) w = flipImage(w);
  return Array.from(imageToDatum(w).data);
};

describe('parseWindowFile', () => {
  it('splits foreground and background windows and counts classes', () => {
    const w = parseWindowFile(WINDOWS, { fgThreshold: 0.5, bgThreshold: 0.3, rootFolder: 'r/' });
    expect(w.images).toEqual([
      { path: 'r/im0.png', channels: 3, height: 20, width: 24 },
      { path: 'r/im1.png', channels: 3, height: 20, width: 24 },
    ]);
    expect(w.background).toEqual([{ imageIndex: 0, label: 0, overlap: 0, x1: 2, y1: 3, x2: 11, y2: 14 }]);
    expect(w.foreground.map((x) => [x.imageIndex, x.label])).toEqual([[1, 2]]);
    expect([...w.labelHistogram]).toEqual([
      [0, 1],
      [2, 1],
    ]);
    // With both thresholds at 0.5, the 0.4 window is background too.
    const loose = parseWindowFile(WINDOWS, { fgThreshold: 0.5, bgThreshold: 0.5 });
    expect(loose.background.map((x) => [x.imageIndex, x.label, x.overlap])).toEqual([
      [0, 0, 0],
      [1, 0, 0],
    ]);
    expect(() => parseWindowFile('# 0\nim.png\n3\n', { fgThreshold: 0.5, bgThreshold: 0.5, name: 'w.txt' })).toThrow('w.txt: the file ends where height was expected');
    expect(() => parseWindowFile('# 0 a 3 4 4 1\n0 0.9 0 0 1 1', { fgThreshold: 0.5, bgThreshold: 0.5 })).toThrow(/foreground window .* has class 0/);
  });
});

describe('placeWindow (context padding, Caffe geometry)', () => {
  it('expands by context_pad, clips at the image border and pads the rest', () => {
    const opts = { cropSize: 10, contextPad: 2, square: false, mirror: false };
    // scale 10/6: x1 = round(5 − 5·1.667) = −3 → clipped to 0 with 3 pixels of padding (→ 2 after warping)
    expect(placeWindow({ x1: 0, y1: 0, x2: 9, y2: 9 }, 20, 20, opts)).toEqual({ x1: 0, y1: 0, x2: 13, y2: 13, warpWidth: 8, warpHeight: 8, padW: 2, padH: 2 });
    // mirrored, the padding moves to the right side
    expect(placeWindow({ x1: 0, y1: 0, x2: 9, y2: 9 }, 20, 20, { ...opts, mirror: true }).padW).toBe(0);
    // square mode widens the short side first
    const sq = placeWindow({ x1: 5, y1: 2, x2: 8, y2: 13 }, 30, 30, { cropSize: 10, contextPad: 0, square: true, mirror: false });
    expect([sq.x2 - sq.x1 + 1, sq.y2 - sq.y1 + 1]).toEqual([13, 13]);
    expect(placeWindow({ x1: 1, y1: 2, x2: 3, y2: 4 }, 20, 20, { cropSize: 8, contextPad: 0, square: false, mirror: false })).toEqual({
      x1: 1,
      y1: 2,
      x2: 3,
      y2: 4,
      warpWidth: 8,
      warpHeight: 8,
      padW: 0,
      padH: 0,
    });
  });
});

describe('WindowData layer', () => {
  it('samples background then foreground windows, warps them to crop_size, subtracts the mean and scales', async () => {
    const { layer, top } = build(param({ scale: 0.5, fg_threshold: 0.5, bg_threshold: 0.3 }, { mean_value: [10, 20, 30] }));
    expect(top[0]!.shape).toEqual([4, 3, 8, 8]);
    expect(top[1]!.shape).toEqual([4]);
    await layer.prepare();
    layer.forward([], top);
    expect(Array.from(top[1]!.cpuData())).toEqual([0, 0, 2, 2]);
    const item = 3 * 64;
    const mean = (v: number, k: number) => (v - [10, 20, 30][Math.floor(k / 64)]!) * 0.5;
    const bg = warped(0, 2, 3, 11, 14).map(mean);
    const fg = warped(1, 4, 2, 19, 17).map(mean);
    const data = top[0]!.cpuData();
    expect(Array.from(data.subarray(0, item))).toEqual(bg);
    expect(Array.from(data.subarray(2 * item, 3 * item))).toEqual(fg);
    for (const l of ['Number of images: 2', 'class 0 has 1 samples', 'class 2 has 1 samples', 'Crop mode: warp', 'output data size: 4,3,8,8']) {
      expect(lines.some((x) => x.endsWith(l))).toBe(true);
    }
  });

  it('mirrors at random, and reads the same from cached image bytes', async () => {
    const run = async (cache: boolean) => {
      const { layer, top } = build(param({ cache_images: cache, bg_threshold: 0.3, batch_size: 8 }, { mirror: true }), new Rng(11));
      await layer.prepare();
      layer.forward([], top);
      const out = Array.from(top[0]!.cpuData());
      await layer.close();
      return out;
    };
    const plain = await run(false);
    expect(await run(true)).toEqual(plain);
    const item = 3 * 64;
    const fgPlain = warped(1, 4, 2, 19, 17);
    const fgMirrored = warped(1, 4, 2, 19, 17, true);
    const fgItems = [4, 5, 6, 7].map((i) => plain.slice(i * item, (i + 1) * item));
    for (const it of fgItems) expect([fgPlain, fgMirrored]).toContainEqual(it);
    expect(fgItems.some((x) => x.join() === fgMirrored.join())).toBe(true);
  });

  it('takes the mean from the centre of a mean_file', async () => {
    const mean = new Float32Array(3 * 10 * 10).map((_, i) => i % 13);
    const meanFile = join(dir, 'mean.binaryproto');
    writeFileSync(meanFile, encodeBinary('BlobProto', { shape: { dim: [1, 3, 10, 10] }, data: Array.from(mean) }));
    const { layer, top } = build(param({ bg_threshold: 0.3, batch_size: 1, fg_fraction: 0 }, { mean_file: meanFile }));
    await layer.prepare();
    layer.forward([], top);
    const bg = warped(0, 2, 3, 11, 14);
    const expected = bg.map((v, k) => {
      const c = Math.floor(k / 64);
      const h = Math.floor((k % 64) / 8);
      const w = k % 8;
      return v - mean[(c * 10 + h + 1) * 10 + w + 1]!;
    });
    expect(Array.from(top[0]!.cpuData())).toEqual(expected);
  });

  it('fails clearly: no crop_size, a window outside its image, a missing window file', async () => {
    expect(() => build(param({}, { crop_size: 0 }))).toThrow("WindowData layer 'windows': transform_param.crop_size must be positive");
    writeFileSync(join(dir, 'outside.txt'), '# 0\nim0.png\n3 20 24\n2\n1 0.9 10 10 40 40\n0 0.0 0 0 3 3\n');
    const { layer } = build(param({ source: join(dir, 'outside.txt'), fg_fraction: 1, batch_size: 1 }));
    await expect(layer.prepare()).rejects.toThrow(/window \(10, 10, 40, 40\) of image 0: crop 31×31 at \(10, 10\) does not fit the 24×20 image/);
    expect(() => build(param({ source: join(dir, 'none.txt') }))).toThrow(/Failed to open window file .*none\.txt/);
  });
});
