import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, setLogSink, type LogSink } from '@caffe-ts/blob';
import { hasField } from '@caffe-ts/proto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { annotationGroups, decodeAnnotatedRecord, type AnnotatedDatum } from './annotated-datum.js';
import { annosetResize, convertAnnoset } from './convert-annoset.js';
import { openDatumDb } from './datum-db.js';
import { decodeImage, encodeImage, imageToDatum, resizeImage, type PixelImage } from './image-io.js';
import { getImageSizes, pathStem } from './image-sizes.js';

const dir = mkdtempSync(join(tmpdir(), 'convert-annoset-'));
let lines: string[];
let prev: LogSink;
const msgs = () => lines.map((l) => l.replace(/^[IWE]\d{4} [\d:.]+ +\d+ [^\]]+\] /, ''));
const f = Math.fround;

/** A colour test image of height × width with a pattern depending on `seed`. */
const image = (height: number, width: number, seed: number): PixelImage => ({
  height,
  width,
  channels: 3,
  data: Uint8Array.from({ length: height * width * 3 }, (_, p) => (seed * 31 + p * 7 + (p % 5) * 13) & 255),
});

const LABELMAP = `item { name: "none_of_the_above" label: 0 display_name: "background" }
item { name: "cat" label: 1 display_name: "cat" }
item { name: "dog" label: 2 display_name: "dog" }
`;

/** A VOC file for an image of 40 high × 50 wide. */
const voc = (objects: string) =>
  `<annotation><size><width>50</width><height>40</height><depth>3</depth></size>${objects}</annotation>\n`;
const obj = (name: string, [x0, y0, x1, y1]: number[], difficult?: 0 | 1) =>
  `<object><name>${name}</name>${difficult === undefined ? '' : `<difficult>${difficult}</difficult>`}` +
  `<bndbox><xmin>${x0}</xmin><ymin>${y0}</ymin><xmax>${x1}</xmax><ymax>${y1}</ymax></bndbox></object>`;

beforeAll(async () => {
  for (const sub of ['JPEGImages', 'Annotations', 'json', 'txt']) mkdirSync(join(dir, 'voc', sub), { recursive: true });
  // Images 0–2 are 40×50 PNGs; 3 is a 20×10 PNG (for min_dim/max_dim).
  for (let i = 0; i < 3; i++) writeFileSync(join(dir, 'voc/JPEGImages', `im${i}.png`), await encodeImage(image(40, 50, i), 'png'));
  writeFileSync(join(dir, 'voc/JPEGImages', 'tall.png'), await encodeImage(image(20, 10, 9), 'png'));
  writeFileSync(join(dir, 'voc/Annotations/im0.xml'), voc(obj('dog', [5, 4, 25, 20]) + obj('cat', [10, 8, 50, 40], 1) + obj('dog', [0, 0, 10, 10])));
  writeFileSync(join(dir, 'voc/Annotations/im1.xml'), voc(obj('cat', [25, 20, 45, 36], 0)));
  writeFileSync(join(dir, 'voc/Annotations/im2.xml'), voc(''));
  writeFileSync(join(dir, 'voc/Annotations/tall.xml'), voc('').replace('<width>50</width><height>40</height>', '<width>10</width><height>20</height>'));
  writeFileSync(join(dir, 'voc/Annotations/horse.xml'), voc(obj('horse', [1, 1, 2, 2])));
  writeFileSync(
    join(dir, 'voc/json/im0.json'),
    JSON.stringify({ image: { height: 40, width: 50 }, annotation: [{ category_id: 'dog', bbox: [5, 4, 20, 16], iscrowd: 1 }] }),
  );
  writeFileSync(join(dir, 'voc/txt/im0.txt'), '7 5 4 25 20\n7 0 0 10 10\n');
  writeFileSync(join(dir, 'labelmap.prototxt'), LABELMAP);
  writeFileSync(join(dir, 'dup_labelmap.prototxt'), `${LABELMAP}item { name: "cat" label: 3 }\n`);
  writeFileSync(
    join(dir, 'trainval.txt'),
    [
      'JPEGImages/im0.png Annotations/im0.xml',
      'JPEGImages/im1.png Annotations/im1.xml',
      'JPEGImages/missing.png Annotations/im1.xml',
      '',
      'JPEGImages/im2.png Annotations/im2.xml',
    ].join('\n') + '\n',
  );
  writeFileSync(join(dir, 'cls.txt'), 'JPEGImages/im0.png 3\nJPEGImages/im1.png 0\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  lines = [];
  prev = setLogSink((l) => lines.push(l));
});
afterEach(() => setLogSink(prev));

async function records(path: string, backend: 'lmdb' | 'leveldb' = 'lmdb'): Promise<{ key: string; value: Uint8Array; msg: AnnotatedDatum }[]> {
  const db = await openDatumDb(path, { backend });
  const out: { key: string; value: Uint8Array; msg: AnnotatedDatum }[] = [];
  for await (const r of db.entries()) out.push({ ...r, msg: decodeAnnotatedRecord(r, path) });
  await db.close();
  return out;
}

const box = (xmin: number, ymin: number, xmax: number, ymax: number, difficult = false) => ({ xmin: f(xmin), ymin: f(ymin), xmax: f(xmax), ymax: f(ymax), difficult });
const root = () => `${dir}/voc/`;
const opts = { annoType: 'detection', labelMapFile: join(dir, 'labelmap.prototxt') } as const;

describe('convertAnnoset: detection', () => {
  it('writes AnnotatedDatums (raw Datum, label −1, type BBOX, grouped boxes) under %08d_<path>, skipping unreadable images', async () => {
    const db = join(dir, 'det_lmdb');
    const res = await convertAnnoset(root(), join(dir, 'trainval.txt'), db, opts);
    expect(res).toEqual({ dbPath: db, count: 3, skipped: ['JPEGImages/missing.png'] });
    const recs = await records(db);
    expect(recs.map((r) => r.key)).toEqual(['00000000_JPEGImages/im0.png', '00000001_JPEGImages/im1.png', '00000003_JPEGImages/im2.png']);
    const m0 = recs[0]!.msg;
    expect(m0.type).toBe(0); // BBOX
    const d = m0.datum;
    expect([d.channels, d.height, d.width, d.label, d.encoded]).toEqual([3, 40, 50, -1, false]);
    expect(hasField(d, 'encoded')).toBe(true); // set explicitly, as the fork's CVMatToDatum
    expect([...d.data]).toEqual([...imageToDatum(image(40, 50, 0)).data]);
    // dog (label 2) first: instances 0 and 1; cat: instance 0, difficult.
    expect(annotationGroups(m0)).toEqual([
      { groupLabel: 2, annotations: [{ instanceId: 0, box: box(0.1, 0.1, 0.5, 0.5) }, { instanceId: 1, box: box(0, 0, 0.2, 0.25) }] },
      { groupLabel: 1, annotations: [{ instanceId: 0, box: box(0.2, 0.2, 1, 1, true) }] },
    ]);
    expect(annotationGroups(recs[1]!.msg)).toEqual([{ groupLabel: 1, annotations: [{ instanceId: 0, box: box(0.5, 0.5, 0.9, 0.9) }] }]);
    // An image whose file lists no object: type BBOX, no groups.
    expect(recs[2]!.msg.type).toBe(0);
    expect(hasField(recs[2]!.msg, 'type')).toBe(true);
    expect(recs[2]!.msg.annotation_group).toEqual([]);
    expect(msgs().filter((m) => !m.startsWith('Opened '))).toEqual([
      'A total of 4 images.',
      `Opening lmdb ${db}`,
      `Could not open or find file ${root()}JPEGImages/missing.png`,
      'Failed to read JPEGImages/missing.png',
      'Processed 3 files.',
    ]);
  });

  it('normalises by the original size whatever the resize (resize_width/height, LevelDB)', async () => {
    const db = join(dir, 'det_resized_leveldb');
    await convertAnnoset(root(), join(dir, 'trainval.txt'), db, { ...opts, backend: 'leveldb', resizeWidth: 25, resizeHeight: 20 });
    const m0 = (await records(db, 'leveldb'))[0]!.msg;
    expect([m0.datum.channels, m0.datum.height, m0.datum.width]).toEqual([3, 20, 25]);
    expect([...m0.datum.data]).toEqual([...imageToDatum(resizeImage(image(40, 50, 0), 20, 25)).data]);
    expect(annotationGroups(m0)[0]!.annotations[0]!.box).toEqual(box(0.1, 0.1, 0.5, 0.5));
  });

  it('reads json and txt annotations (txt needs no label map)', async () => {
    writeFileSync(join(dir, 'json.txt'), 'JPEGImages/im0.png json/im0.json\n');
    writeFileSync(join(dir, 'txt.txt'), 'JPEGImages/im0.png txt/im0.txt\n');
    const labelMap = join(dir, 'name_labelmap.prototxt');
    writeFileSync(labelMap, 'item { name: "dog" label: 4 }\n');
    await convertAnnoset(root(), join(dir, 'json.txt'), join(dir, 'json_lmdb'), { annoType: 'detection', labelType: 'json', labelMapFile: labelMap });
    expect(annotationGroups((await records(join(dir, 'json_lmdb')))[0]!.msg)).toEqual([
      { groupLabel: 4, annotations: [{ instanceId: 0, box: box(0.1, 0.1, 0.5, 0.5, true) }] },
    ]);
    // txt files carry no size: the boxes are normalised by the image's size as read, before the resize.
    await convertAnnoset(root(), join(dir, 'txt.txt'), join(dir, 'txt_lmdb'), { annoType: 'detection', labelType: 'txt', resizeHeight: 10, resizeWidth: 10 });
    expect(annotationGroups((await records(join(dir, 'txt_lmdb')))[0]!.msg)).toEqual([
      { groupLabel: 7, annotations: [{ instanceId: 0, box: box(0.1, 0.1, 0.5, 0.5) }, { instanceId: 1, box: box(0, 0, 0.2, 0.25) }] },
    ]);
  });

  it('stores an image whose annotation file is missing without boxes, with a warning', async () => {
    writeFileSync(join(dir, 'noanno.txt'), 'JPEGImages/im0.png Annotations/none.xml\n');
    const db = join(dir, 'noanno_lmdb');
    await convertAnnoset(root(), join(dir, 'noanno.txt'), db, opts);
    expect((await records(db))[0]!.msg.annotation_group).toEqual([]);
    expect(msgs()).toContain(`${root()}Annotations/none.xml does not exist: the image is stored without boxes (listed at ${join(dir, 'noanno.txt')}, line 1)`);
  });

  it('refuses unknown names, duplicate label names with check_label, bad list lines and a missing label map, leaving no database', async () => {
    writeFileSync(join(dir, 'horse.txt'), 'JPEGImages/im0.png Annotations/im0.xml\nJPEGImages/im1.png Annotations/horse.xml\n');
    const db = join(dir, 'bad_lmdb');
    await expect(convertAnnoset(root(), join(dir, 'horse.txt'), db, opts)).rejects.toThrow(
      `Unknown name: horse (${root()}Annotations/horse.xml, line 1; not in the label map ${join(dir, 'labelmap.prototxt')}) (listed at ${join(dir, 'horse.txt')}, line 2)`,
    );
    expect(readdirSync(dir).filter((n) => n.startsWith('bad_lmdb'))).toEqual([]);
    const dup = { ...opts, labelMapFile: join(dir, 'dup_labelmap.prototxt') };
    await expect(convertAnnoset(root(), join(dir, 'trainval.txt'), db, { ...dup, checkLabel: true })).rejects.toThrow(
      `There are many duplicates of name: cat (${join(dir, 'dup_labelmap.prototxt')}, line 4; labels 1 and 3)`,
    );
    // Without check_label the last item wins: cat is 3.
    await convertAnnoset(root(), join(dir, 'trainval.txt'), join(dir, 'dup_lmdb'), dup);
    expect(annotationGroups((await records(join(dir, 'dup_lmdb')))[1]!.msg)[0]!.groupLabel).toBe(3);

    writeFileSync(join(dir, 'three.txt'), 'JPEGImages/im0.png Annotations/im0.xml\nJPEGImages/im1.png Annotations/im1.xml extra\n');
    await expect(convertAnnoset(root(), join(dir, 'three.txt'), db, opts)).rejects.toThrow(
      `${join(dir, 'three.txt')}, line 2: expected 'image annotation', found 'JPEGImages/im1.png Annotations/im1.xml extra'`,
    );
    await expect(convertAnnoset(root(), join(dir, 'trainval.txt'), db, { annoType: 'detection' })).rejects.toThrow(
      'anno_type detection with label_type xml needs a label map file',
    );
    await expect(convertAnnoset(root(), join(dir, 'trainval.txt'), db, { ...opts, labelType: 'yaml' })).rejects.toThrow(
      "Unknown label file type 'yaml' (expected xml, json or txt)",
    );
    await expect(convertAnnoset(root(), join(dir, 'trainval.txt'), db, { annoType: 'segmentation' })).rejects.toThrow("Unknown anno_type 'segmentation'");
    expect(existsSync(db)).toBe(false);
  });
});

describe('convertAnnoset: classification, resizing, encoding, check_size, shuffle', () => {
  it('classification: Datums with their labels, no annotation type or groups', async () => {
    const db = join(dir, 'cls_lmdb');
    await convertAnnoset(root(), join(dir, 'cls.txt'), db);
    const recs = await records(db);
    expect(recs.map((r) => [r.key, r.msg.datum.label, hasField(r.msg, 'type'), r.msg.annotation_group.length])).toEqual([
      ['00000000_JPEGImages/im0.png', 3, false, 0],
      ['00000001_JPEGImages/im1.png', 0, false, 0],
    ]);
    writeFileSync(join(dir, 'cls_bad.txt'), 'JPEGImages/im0.png 3\nJPEGImages/im1.png cat\n');
    await expect(convertAnnoset(root(), join(dir, 'cls_bad.txt'), join(dir, 'cls2_lmdb'))).rejects.toThrow(
      `${join(dir, 'cls_bad.txt')}, line 2: expected 'image label', found 'JPEGImages/im1.png cat'`,
    );
  });

  it('min_dim/max_dim scale by one factor, keeping the aspect ratio (and take precedence over resize_*)', async () => {
    const tall = image(20, 10, 9);
    // min_dim 15: the short side 10 → 15, factor 1.5 → 30×15.
    expect(annosetResize(tall, { minDim: 15 })).toMatchObject({ height: 30, width: 15 });
    // …but 30 > max_dim 24: factor 24/20 = 1.2 → 24×12.
    expect(annosetResize(tall, { minDim: 15, maxDim: 24 })).toMatchObject({ height: 24, width: 12 });
    // cv::resize with factors samples at 1/scale, not at src/dst: a 5 × 7 gray ramp (0, 100, …, 600
    // clipped to 255) with min_dim 8 scales by 1.6 to 8 × 11. Output column 1 sits at
    // (1.5)·0.625 − 0.5 = 0.4375 (not 1.5·7/11 − 0.5 = 0.4545): 100·896/2048 = 43.75 → 44.
    const ramp = { height: 5, width: 7, channels: 1, data: Uint8Array.from({ length: 35 }, (_, i) => Math.min(255, (i % 7) * 100)) };
    const scaled = annosetResize(ramp, { minDim: 8 });
    expect([scaled.height, scaled.width, scaled.data[1]]).toEqual([8, 11, 44]);
    expect(resizeImage(ramp, 8, 11).data[1]).toBe(45);
    // Already large enough, small enough: unchanged (the same image).
    expect(annosetResize(tall, { minDim: 10, maxDim: 20 })).toBe(tall);
    // max_dim alone shrinks: 20 → 8, factor 0.4 → 8×4.
    expect(annosetResize(tall, { maxDim: 8, height: 50, width: 50 })).toMatchObject({ height: 8, width: 4 });
    // 7/20 = 0.35 (float32 0.3499999940…): 10·0.35 rounds to 3 (cvRound of 3.4999…).
    expect(annosetResize(tall, { maxDim: 7 })).toMatchObject({ height: 7, width: 3 });
    expect(annosetResize(tall, { height: 5, width: 6 })).toMatchObject({ height: 5, width: 6 });

    writeFileSync(join(dir, 'tall.txt'), 'JPEGImages/tall.png Annotations/tall.xml\n');
    const db = join(dir, 'tall_lmdb');
    await convertAnnoset(root(), join(dir, 'tall.txt'), db, { ...opts, minDim: 15, maxDim: 24, resizeWidth: 5, resizeHeight: 5 });
    const d = (await records(db))[0]!.msg.datum;
    expect([d.channels, d.height, d.width]).toEqual([3, 24, 12]);
    expect([...d.data]).toEqual([...imageToDatum(resizeImage(tall, 24, 12)).data]);
  });

  it('encoded: keeps the file when nothing is resized and the extension matches, else re-encodes; sets channels/height/width', async () => {
    const file = readFileSync(join(dir, 'voc/JPEGImages/im0.png'));
    const kept = join(dir, 'enc_lmdb');
    await convertAnnoset(root(), join(dir, 'trainval.txt'), kept, { ...opts, encoded: true });
    const d0 = (await records(kept))[0]!.msg.datum;
    expect([d0.encoded, d0.channels, d0.height, d0.width, d0.label]).toEqual([true, 3, 40, 50, -1]);
    expect(Buffer.from(d0.data).equals(file)).toBe(true);
    expect(msgs()).not.toContain('encode_type specified, assuming encoded=true.');

    lines.length = 0;
    const jpg = join(dir, 'enc_jpg_lmdb');
    await convertAnnoset(root(), join(dir, 'trainval.txt'), jpg, { ...opts, encodeType: 'jpg', minDim: 80 });
    expect(msgs()).toContain('encode_type specified, assuming encoded=true.');
    const d1 = (await records(jpg))[0]!.msg.datum;
    expect([d1.encoded, d1.channels, d1.height, d1.width]).toEqual([true, 3, 80, 100]);
    expect([d1.data[0], d1.data[1]]).toEqual([0xff, 0xd8]); // a JPEG
    expect(await decodeImage(d1.data)).toMatchObject({ height: 80, width: 100, channels: 3 });

    // PNG asked for, but a resize: the resized image is encoded as PNG (lossless).
    const png = join(dir, 'enc_png_lmdb');
    await convertAnnoset(root(), join(dir, 'trainval.txt'), png, { ...opts, encodeType: 'png', resizeWidth: 25, resizeHeight: 20 });
    const d2 = (await records(png))[0]!.msg.datum;
    expect((await decodeImage(d2.data)).data).toEqual(resizeImage(image(40, 50, 0), 20, 25).data);
    expect(Buffer.from(d2.data).equals(file)).toBe(false);

    // Read as gray: a colour file is re-encoded so that it decodes to one channel.
    const gray = join(dir, 'enc_gray_lmdb');
    await convertAnnoset(root(), join(dir, 'trainval.txt'), gray, { ...opts, encoded: true, gray: true });
    const d3 = (await records(gray))[0]!.msg.datum;
    expect(d3.channels).toBe(1);
    expect((await decodeImage(d3.data, 'unchanged')).channels).toBe(1);
  });

  it('check_size: raw Datums of different sizes abort without a database; equal sizes pass', async () => {
    writeFileSync(join(dir, 'mixed.txt'), 'JPEGImages/im0.png Annotations/im0.xml\nJPEGImages/tall.png Annotations/tall.xml\n');
    const db = join(dir, 'mixed_lmdb');
    await expect(convertAnnoset(root(), join(dir, 'mixed.txt'), db, { ...opts, checkSize: true })).rejects.toThrow(
      'Incorrect data field size 600 (image JPEGImages/tall.png; the first image\'s is 6000)',
    );
    expect(existsSync(db)).toBe(false);
    // Resized to one size, they pass.
    const res = await convertAnnoset(root(), join(dir, 'mixed.txt'), db, { ...opts, checkSize: true, resizeHeight: 8, resizeWidth: 8 });
    expect(res.count).toBe(2);
    // Without the check, mixed sizes are written.
    expect((await convertAnnoset(root(), join(dir, 'mixed.txt'), join(dir, 'mixed2_lmdb'), opts)).count).toBe(2);
  });

  it('shuffle: the list order is permuted with the generator; keys carry the new index', async () => {
    writeFileSync(join(dir, 'many.txt'), Array.from({ length: 6 }, (_, i) => `JPEGImages/im${i % 3}.png ${i}`).join('\n'));
    const db = join(dir, 'shuffled_lmdb');
    await convertAnnoset(root(), join(dir, 'many.txt'), db, { shuffle: true, rng: new Rng(5) });
    const got = (await records(db)).map((r) => [r.key.slice(0, 8), r.msg.datum.label]);
    // The same permutation as Fisher–Yates with Rng(5).
    const want = [0, 1, 2, 3, 4, 5];
    const rng = new Rng(5);
    for (let i = want.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [want[i], want[j]] = [want[j]!, want[i]!];
    }
    expect(want).not.toEqual([0, 1, 2, 3, 4, 5]);
    expect(got).toEqual(want.map((label, i) => [String(i).padStart(8, '0'), label]));
    expect(msgs().slice(0, 2)).toEqual(['Shuffling data', 'A total of 6 images.']);
  });
});

describe('getImageSizes', () => {
  it('writes "name height width" per listed image, by name or by id', async () => {
    const out = join(dir, 'test_name_size.txt');
    const sizes = await getImageSizes(`${dir}/voc`, join(dir, 'tall.txt'), out);
    expect(sizes).toEqual([{ name: 'tall', height: 20, width: 10 }]);
    writeFileSync(join(dir, 'sizes.txt'), 'JPEGImages/im0.png Annotations/im0.xml\nJPEGImages/tall.png x\n');
    await getImageSizes(`${dir}/voc/`, join(dir, 'sizes.txt'), out);
    expect(readFileSync(out, 'utf8')).toBe('im0 40 50\ntall 20 10\n');
    expect(msgs()).toEqual(['A total of 1 images.', 'Processed 1 files.', 'A total of 2 images.', 'Processed 2 files.']);

    writeFileSync(join(dir, 'name_id.txt'), 'tall 7\nim0 12\n');
    await getImageSizes(`${dir}/voc/`, join(dir, 'sizes.txt'), out, { nameIdFile: join(dir, 'name_id.txt') });
    expect(readFileSync(out, 'utf8')).toBe('12 40 50\n7 20 10\n');
  });

  it('refuses a missing image (naming it and its line), and a name/id file that does not match the list', async () => {
    const out = join(dir, 'x_name_size.txt');
    await expect(getImageSizes(`${dir}/voc/`, join(dir, 'trainval.txt'), out)).rejects.toThrow(
      `Could not open or find file ${dir}/voc/JPEGImages/missing.png (listed at ${join(dir, 'trainval.txt')}, line 3)`,
    );
    writeFileSync(join(dir, 'ids_dup.txt'), 'im0 1\nim0 2\n');
    await expect(getImageSizes(`${dir}/voc/`, join(dir, 'sizes.txt'), out, { nameIdFile: join(dir, 'ids_dup.txt') })).rejects.toThrow(
      `${join(dir, 'ids_dup.txt')}, line 2: image name 'im0' is listed twice`,
    );
    writeFileSync(join(dir, 'ids_short.txt'), 'im0 1\n');
    await expect(getImageSizes(`${dir}/voc/`, join(dir, 'sizes.txt'), out, { nameIdFile: join(dir, 'ids_short.txt') })).rejects.toThrow(
      'lists 1 image name(s), but',
    );
    writeFileSync(join(dir, 'ids_other.txt'), 'im0 1\nwide 2\n');
    await expect(getImageSizes(`${dir}/voc/`, join(dir, 'sizes.txt'), out, { nameIdFile: join(dir, 'ids_other.txt') })).rejects.toThrow(
      "image name 'tall' (",
    );
    expect(existsSync(out)).toBe(false);
  });

  it('takes the stem as boost::filesystem does', () => {
    expect(['a/b/000001.jpg', 'x.tar.gz', 'noext', 'dir/.hidden'].map(pathStem)).toEqual(['000001', 'x.tar', 'noext', '']);
  });
});
