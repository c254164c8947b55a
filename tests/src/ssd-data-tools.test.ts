import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { LayerRegistry } from '@caffe-ts/layers';
import { closeDataSources, encodeImage, registerDataLayers, type PixelImage } from '@caffe-ts/io-leveldb';
import { Net } from '@caffe-ts/net';
import { parseNetParameter, Phase } from '@caffe-ts/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setLogSink } from '@caffe-ts/blob';
import { caffe, messages, tempDir } from './helpers.js';

/*
 * The SSD fork's data preparation through the CLI, laid out as data/VOC0712/create_data.sh lays
 * it out: VOC-style JPEGImages/ and Annotations/, a labelmap_voc.prototxt, `image annotation`
 * lists; `caffe convert_annoset` with the flags create_annoset.py passes, `caffe get_image_size`
 * for the test set's name_size_file; then the database read back by an AnnotatedData layer.
 */

const f = Math.fround;

// Per image: height, width, then objects [name, xmin, ymin, xmax, ymax, difficult].
const IMAGES: Array<{ name: string; h: number; w: number; objects: Array<[string, number, number, number, number, 0 | 1]> }> = [
  { name: '000001', h: 40, w: 50, objects: [['dog', 5, 4, 25, 20, 0], ['cat', 10, 8, 50, 40, 1], ['dog', 0, 0, 10, 10, 0]] },
  { name: '000002', h: 32, w: 32, objects: [['cat', 8, 8, 24, 16, 0]] },
  { name: '000003', h: 20, w: 40, objects: [] },
];

const LABELMAP = `item { name: "none_of_the_above" label: 0 display_name: "background" }
item { name: "cat" label: 1 display_name: "cat" }
item { name: "dog" label: 2 display_name: "dog" }
`;

const picture = (h: number, w: number, seed: number): PixelImage => ({
  height: h,
  width: w,
  channels: 3,
  data: Uint8Array.from({ length: h * w * 3 }, (_, p) => (seed * 50 + p) & 255),
});

const xml = (img: (typeof IMAGES)[number]) =>
  `<annotation>\n\t<filename>${img.name}.jpg</filename>\n\t<size><width>${img.w}</width><height>${img.h}</height><depth>3</depth></size>\n` +
  img.objects
    .map(
      ([name, x0, y0, x1, y1, d]) =>
        `\t<object>\n\t\t<name>${name}</name>\n\t\t<difficult>${d}</difficult>\n` +
        `\t\t<bndbox><xmin>${x0}</xmin><ymin>${y0}</ymin><xmax>${x1}</xmax><ymax>${y1}</ymax></bndbox>\n\t</object>\n`,
    )
    .join('') +
  '</annotation>\n';

const net = (source: string, batch: number) => `name: "read"
layer {
  name: "data" type: "AnnotatedData" top: "data" top: "label"
  include { phase: TEST }
  transform_param {
    resize_param { prob: 1 resize_mode: WARP height: 16 width: 16 interp_mode: LINEAR }
  }
  data_param { source: "${source}" batch_size: ${batch} backend: LMDB }
  annotated_data_param { label_map_file: "labelmap_voc.prototxt" }
}
`;

describe('SSD fork data tools through the CLI', () => {
  const dir = tempDir('caffe-ts-ssd-data-');
  const cwd = dir.path;
  beforeAll(async () => {
    mkdirSync(join(cwd, 'VOCdevkit/VOC2007/JPEGImages'), { recursive: true });
    mkdirSync(join(cwd, 'VOCdevkit/VOC2007/Annotations'), { recursive: true });
    const list: string[] = [];
    for (const [k, img] of IMAGES.entries()) {
      writeFileSync(join(cwd, `VOCdevkit/VOC2007/JPEGImages/${img.name}.jpg`), await encodeImage(picture(img.h, img.w, k), 'jpg'));
      writeFileSync(join(cwd, `VOCdevkit/VOC2007/Annotations/${img.name}.xml`), xml(img));
      list.push(`VOC2007/JPEGImages/${img.name}.jpg VOC2007/Annotations/${img.name}.xml`);
    }
    writeFileSync(join(cwd, 'trainval.txt'), `${list.join('\n')}\n`);
    writeFileSync(join(cwd, 'labelmap_voc.prototxt'), LABELMAP);
  });
  afterAll(async () => {
    await closeDataSources();
    dir.remove();
  });

  it('convert_annoset (create_annoset.py\'s flags) → an LMDB that AnnotatedData reads into the label rows', async () => {
    const run = await caffe(
      [
        'convert_annoset',
        '--anno_type=detection',
        '--label_type=xml',
        '--label_map_file=labelmap_voc.prototxt',
        '--check_label',
        '--min_dim=0',
        '--max_dim=0',
        '--resize_height=0',
        '--resize_width=0',
        '--backend=lmdb',
        '--shuffle=false',
        '--check_size=false',
        '--encode_type=jpg',
        '--encoded',
        '--gray=false',
        'VOCdevkit/',
        'trainval.txt',
        'trainval_lmdb',
      ],
      cwd,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(messages(run.log).filter((m) => !m.startsWith('Opened '))).toEqual([
      'A total of 3 images.',
      `Opening lmdb ${join(cwd, 'trainval_lmdb')}`,
      'Processed 3 files.',
    ]);

    const registry = new LayerRegistry();
    registerDataLayers(registry); // also registers the fork's schema before parsing
    const param = parseNetParameter(net('trainval_lmdb', 3));
    const prevCwd = process.cwd();
    process.chdir(cwd);
    const prevSink = setLogSink(() => undefined);
    let rows: number[][];
    try {
      const n = await Net.create(param, { registry, phase: Phase.TEST, log: false });
      await n.prepare();
      n.forward();
      expect(n.blob('data').shape).toEqual([3, 3, 16, 16]);
      const label = n.blob('label');
      expect(label.shape).toEqual([1, 1, 4, 8]);
      const d = [...label.cpuData()];
      rows = Array.from({ length: 4 }, (_, r) => d.slice(r * 8, r * 8 + 8));
      await n.close();
    } finally {
      process.chdir(prevCwd);
      setLogSink(prevSink);
    }
    // [item, group_label, instance_id, xmin, ymin, xmax, ymax, difficult]: dog's group first in
    // image 0 (its first object), instance ids counting within a group, corners over 50×40 / 32×32.
    expect(rows).toEqual([
      [0, 2, 0, f(0.1), f(0.1), f(0.5), f(0.5), 0],
      [0, 2, 1, 0, 0, f(0.2), f(0.25), 0],
      [0, 1, 0, f(0.2), f(0.2), 1, 1, 1],
      [1, 1, 0, f(0.25), f(0.25), f(0.75), f(0.5), 0],
    ]);
  });

  it('get_image_size writes the name_size_file; name_id_file replaces names by ids', async () => {
    const run = await caffe(['get_image_size', 'VOCdevkit', 'trainval.txt', 'test_name_size.txt'], cwd);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readFileSync(join(cwd, 'test_name_size.txt'), 'utf8')).toBe('000001 40 50\n000002 32 32\n000003 20 40\n');
    expect(messages(run.log)).toEqual(['A total of 3 images.', 'Processed 3 files.']);
    writeFileSync(join(cwd, 'name_id.txt'), '000001 1\n000002 2\n000003 3\n');
    const ids = await caffe(['get_image_size', '-name_id_file=name_id.txt', 'VOCdevkit/', 'trainval.txt', 'ids.txt'], cwd);
    expect(ids.code).toBe(0);
    expect(readFileSync(join(cwd, 'ids.txt'), 'utf8')).toBe('1 40 50\n2 32 32\n3 20 40\n');
  });

  it('fails with status 1 and one line naming the problem', async () => {
    writeFileSync(join(cwd, 'bad.txt'), 'VOC2007/JPEGImages/000001.jpg VOC2007/Annotations/000001.xml\n');
    writeFileSync(join(cwd, 'cats_only.prototxt'), 'item { name: "cat" label: 1 }\n');
    const unknown = await caffe(
      ['convert_annoset', '--anno_type=detection', '--label_map_file=cats_only.prototxt', 'VOCdevkit/', 'bad.txt', 'bad_lmdb'],
      cwd,
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      `caffe convert_annoset: Unknown name: dog (${join(cwd, 'VOCdevkit/VOC2007/Annotations/000001.xml')}, line 5; ` +
        `not in the label map ${join(cwd, 'cats_only.prototxt')}) (listed at ${join(cwd, 'bad.txt')}, line 1)\n`,
    );
    expect(existsSync(join(cwd, 'bad_lmdb'))).toBe(false);

    writeFileSync(join(cwd, 'dup.prototxt'), `${LABELMAP}item { name: "dog" label: 7 }\n`);
    const dup = await caffe(['convert_annoset', '-anno_type', 'detection', '-label_map_file', 'dup.prototxt', '-check_label', 'VOCdevkit/', 'bad.txt', 'dup_lmdb'], cwd);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe(`caffe convert_annoset: There are many duplicates of name: dog (${join(cwd, 'dup.prototxt')}, line 4; labels 2 and 7)\n`);
    const noCheck = await caffe(['convert_annoset', '-anno_type', 'detection', '-label_map_file', 'dup.prototxt', 'VOCdevkit/', 'bad.txt', 'dup_lmdb'], cwd);
    expect(noCheck.code).toBe(0);

    const usage = await caffe(['convert_annoset', 'VOCdevkit/', 'trainval.txt'], cwd);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('caffe convert_annoset: expected ROOTFOLDER/ LISTFILE DB_NAME, got 2 argument(s)\nusage: caffe convert_annoset ROOTFOLDER/ LISTFILE DB_NAME');
    const badType = await caffe(['convert_annoset', '--anno_type=segmentation', 'VOCdevkit/', 'trainval.txt', 'x_lmdb'], cwd);
    expect(badType.code).toBe(1);
    expect(badType.stderr).toContain("--anno_type takes classification or detection, got 'segmentation'");

    const help = await caffe(['get_image_size', '--help'], cwd);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: caffe get_image_size ROOTFOLDER/ LISTFILE OUTFILE [--name_id_file FILE]');
    writeFileSync(join(cwd, 'missing.txt'), 'VOC2007/JPEGImages/000001.jpg x\nVOC2007/JPEGImages/nope.jpg x\n');
    const missing = await caffe(['get_image_size', 'VOCdevkit/', 'missing.txt', 'sizes.txt'], cwd);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `caffe get_image_size: Could not open or find file ${join(cwd, 'VOCdevkit/VOC2007/JPEGImages/nope.jpg')} (listed at ${join(cwd, 'missing.txt')}, line 2)\n`,
    );
  });
});
