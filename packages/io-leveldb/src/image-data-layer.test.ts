import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blob, Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { createMessage, Phase, type LayerParameter } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setDecodeWorkers } from './decode-pool.js';
import { closeDataSources } from './data-sources.js';
import { ImageDataLayer, imageDataLayerDef, primeImageDataLayer } from './image-data-layer.js';
import { encodeImage, imageToDatum, resizeImage, type PixelImage } from './image-io.js';
import { parseImageList } from './image-list.js';

const dir = mkdtempSync(join(tmpdir(), 'imagedata-'));
const N = 6;
/** Image i: (8 + i%2·2) × (9 + i%3) BGR, pixels depending on i; PNG (lossless) or JPEG for i = 5. */
const image = (i: number): PixelImage => {
  const height = 8 + (i % 2) * 2;
  const width = 9 + (i % 3);
  return { height, width, channels: 3, data: Uint8Array.from({ length: height * width * 3 }, (_, p) => (i * 30 + p * 7) & 255) };
};
let lines: string[];
let prev: LogSink;

// These tests pin the layers' semantics on the main thread; decode-workers.test.ts checks that
// the decode workers give the same batches (starting workers for every layer here would be slow).
beforeAll(() => setDecodeWorkers(0));
afterAll(() => setDecodeWorkers('auto'));
beforeAll(async () => {
  const list: string[] = [];
  for (let i = 0; i < N; i++) {
    const name = `img ${i}.png`; // a space in the name: the label follows the last space
    writeFileSync(join(dir, name), await encodeImage(image(i), 'png'));
    list.push(`${name} ${i * 10}`);
  }
  writeFileSync(join(dir, 'list.txt'), `${list.join('\n')}\n`);
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

const param = (props: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  createMessage<LayerParameter>('LayerParameter', {
    name: 'images',
    type: 'ImageData',
    top: ['data', 'label'],
    image_data_param: { source: join(dir, 'list.txt'), root_folder: `${dir}/`, batch_size: 4, new_height: 6, new_width: 7, ...props },
    ...extra,
  });

async function build(p: LayerParameter, rng = new Rng(5)) {
  await imageDataLayerDef.prime!(p, {});
  const layer = new ImageDataLayer(p, { phase: Phase.TRAIN, rng });
  const top = [new Blob(), new Blob()];
  layer.setUp([], top);
  return { layer, top };
}

/** The expected transformed values of image i: resized, planar, times scale. */
const expected = (i: number, scale = 1) => Array.from(imageToDatum(resizeImage(image(i), 6, 7)).data, (v) => v * scale);

describe('parseImageList', () => {
  it('takes the label after the last space, skips blank lines, rejects lines without a label', () => {
    expect(parseImageList('a b.jpg 3\r\n\nc.png -1\n')).toEqual([
      { path: 'a b.jpg', label: 3 },
      { path: 'c.png', label: -1 },
    ]);
    expect(() => parseImageList('ok.png 1\nbad.png\n', 'train.txt')).toThrow("train.txt, line 2: expected 'path label', found 'bad.png'");
  });
});

describe('ImageData layer', () => {
  it('reads, resizes (INTER_LINEAR) and transforms the listed images in order, wrapping', async () => {
    const { layer, top } = await build(param({}, { transform_param: { scale: 0.5 } }));
    expect(top[0]!.shape).toEqual([4, 3, 6, 7]);
    expect(top[1]!.shape).toEqual([4]);
    await layer.prepare();
    layer.forward([], top);
    expect(Array.from(top[1]!.cpuData())).toEqual([0, 10, 20, 30]);
    const item = 3 * 6 * 7;
    for (let i = 0; i < 4; i++) expect(Array.from(top[0]!.cpuData().subarray(i * item, (i + 1) * item))).toEqual(expected(i, 0.5));
    await layer.prepare();
    layer.forward([], top);
    expect(Array.from(top[1]!.cpuData())).toEqual([40, 50, 0, 10]);
    expect(lines.some((l) => l.endsWith(`Opening file ${join(dir, 'list.txt')}`))).toBe(true);
    expect(lines.some((l) => l.endsWith('A total of 6 images.'))).toBe(true);
    expect(lines.some((l) => l.endsWith('output data size: 4,3,6,7'))).toBe(true);
  });

  it('shuffles with the layer generator (reproducibly), and again at every pass', async () => {
    const run = async () => {
      const { layer, top } = await build(param({ shuffle: true, batch_size: 6 }), new Rng(9));
      const passes: number[][] = [];
      for (let k = 0; k < 3; k++) {
        await layer.prepare();
        layer.forward([], top);
        passes.push(Array.from(top[1]!.cpuData()));
      }
      await layer.close();
      return passes;
    };
    const a = await run();
    expect(await run()).toEqual(a);
    for (const pass of a) expect([...pass].sort((x, y) => x - y)).toEqual([0, 10, 20, 30, 40, 50]);
    expect(a.some((pass) => pass.join() !== '0,10,20,30,40,50')).toBe(true);
    expect(a[0]!.join()).not.toBe(a[1]!.join());
    expect(lines.some((l) => l.endsWith('Shuffling data'))).toBe(true);
  });

  it('shards lines for data-parallel training: two replicas partition each (shuffled) pass', async () => {
    const read = async (index: number) => {
      const p = param({ shuffle: true, batch_size: 3 });
      await imageDataLayerDef.prime!(p, {});
      const layer = new ImageDataLayer(p, { phase: Phase.TRAIN, rng: new Rng(9), shard: { index, count: 2 } });
      const top = [new Blob(), new Blob()];
      layer.setUp([], top);
      const out: number[][] = [];
      for (let k = 0; k < 2; k++) {
        await layer.prepare();
        layer.forward([], top);
        out.push(Array.from(top[1]!.cpuData()));
      }
      await layer.close();
      return out;
    };
    const [a, b] = [await read(0), await read(1)];
    for (let k = 0; k < 2; k++) expect([...a[k]!, ...b[k]!].sort((x, y) => x - y)).toEqual([0, 10, 20, 30, 40, 50]);
    expect(a[0]!.join()).not.toBe(a[1]!.join()); // reshuffled at the wrap
  });

  it('reads gray with is_color false, crops and mirrors through transform_param', async () => {
    const { layer, top } = await build(param({ is_color: false, batch_size: 2 }, { transform_param: { crop_size: 5, mirror: true } }));
    expect(top[0]!.shape).toEqual([2, 1, 5, 5]);
    await layer.prepare();
    layer.forward([], top);
    expect(Array.from(top[1]!.cpuData())).toEqual([0, 10]);
  });

  it('skips a random number of lines with rand_skip', async () => {
    const { layer, top } = await build(param({ rand_skip: 5, batch_size: 1 }), new Rng(1));
    const skip = lines.map((l) => /Skipping first (\d+) data points\./.exec(l)).find(Boolean);
    expect(skip).toBeTruthy();
    await layer.prepare();
    layer.forward([], top);
    expect(top[1]!.cpuData()[0]).toBe(Number(skip![1]) * 10);
  });

  it('without resizing, takes the tops’ shape from the primed first image, and needs priming for it', async () => {
    const p = param({ new_height: 0, new_width: 0, batch_size: 1 });
    expect(() => new ImageDataLayer(p).setUp([], [new Blob(), new Blob()])).toThrow(/image list '.*list\.txt' was not primed/);
    await primeImageDataLayer(p);
    const layer = new ImageDataLayer(p);
    const top = [new Blob(), new Blob()];
    layer.setUp([], top);
    expect(top[0]!.shape).toEqual([1, 3, 8, 9]);
    await layer.prepare();
    layer.forward([], top);
    await layer.prepare();
    layer.forward([], top); // image 1 is 10×10: batches reshape the top
    expect(top[0]!.shape).toEqual([1, 3, 10, 10]);
  });

  it('names the image that cannot be read', async () => {
    writeFileSync(join(dir, 'bad.txt'), `img 0.png 0\nmissing.png 1\n`);
    const { layer } = await build(param({ source: join(dir, 'bad.txt'), batch_size: 2 }));
    await expect(layer.prepare()).rejects.toThrow(/ImageData layer 'images': Could not load missing\.png: Could not open or find file .*missing\.png/);
    expect(() => new ImageDataLayer(param({ new_height: 5, new_width: 0 })).setUp([], [new Blob(), new Blob()])).toThrow(
      'Current implementation requires new_height and new_width to be set at the same time.',
    );
  });
});
