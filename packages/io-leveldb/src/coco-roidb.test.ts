import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCocoRoidb, readCocoRoidb } from './coco-roidb.js';
import { DataError } from './errors.js';

const FILE = {
  categories: [{ id: 18, name: 'dog' }, { id: 1, name: 'person' }],
  images: [
    { id: 42, file_name: 'COCO_val2014_000000000042.jpg', width: 640, height: 480 },
    { id: 7, file_name: 'b.jpg', width: 100, height: 50 },
  ],
  annotations: [
    { id: 1, image_id: 42, category_id: 1, bbox: [10.7, 20.2, 100.5, 50.9], area: 5000, iscrowd: 0 },
    { id: 2, image_id: 42, category_id: 18, bbox: [-5, 400, 700, 100], area: 1, iscrowd: 1 },
    { id: 3, image_id: 7, category_id: 18, bbox: [5, 5, 0, 10], area: 0, iscrowd: 0 },
    { id: 4, image_id: 7, category_id: 1, bbox: [99.5, 10, 3, 3], area: 9, iscrowd: 0 },
    { id: 5, image_id: 7, category_id: 18, bbox: [0, 0, 0.5, 1], area: 0.5, iscrowd: 0 },
  ],
};

describe('COCO instances as py-faster-rcnn\'s roidb (coco.py)', () => {
  it('classes in the categories\' order, boxes sanitised and truncated as _load_coco_annotation does, crowd boxes flagged', () => {
    const roidb = parseCocoRoidb(JSON.stringify(FILE), 'instances_val2014.json', 'images/val2014/');
    expect(roidb.classes).toEqual(['__background__', 'dog', 'person']);
    expect(roidb.categoryIds).toEqual([0, 18, 1]);
    expect(roidb.entries).toEqual([
      {
        image: 'images/val2014/COCO_val2014_000000000042.jpg', index: '42', width: 640, height: 480, flipped: false,
        // x2 = x1 + (w − 1) = 110.2, y2 = 70.1; the crowd box clipped to the image: x1 0, x2 639, y2 479.
        boxes: [[10, 20, 110, 70], [0, 400, 639, 479]], gt_classes: [2, 1], difficult: [false, false], crowd: [false, true],
      },
      {
        // Area 0: dropped; x2 = min(99, 101.5) < x1 = 99.5: dropped; a box under a pixel: [0, 0, 0, 0].
        image: 'images/val2014/b.jpg', index: '7', width: 100, height: 50, flipped: false,
        boxes: [[0, 0, 0, 0]], gt_classes: [1], difficult: [false], crowd: [false],
      },
    ]);
  });

  it('names the file and the entry of what is wrong', () => {
    const bad = (patch: (f: typeof FILE) => unknown) => () => parseCocoRoidb(JSON.stringify(patch(structuredClone(FILE))), 'i.json', '.');
    expect(bad((f) => ((f.annotations[0]!.image_id = 3), f))).toThrow('i.json: annotations[0].image_id 3 is not in images');
    expect(bad((f) => ((f.annotations[1]!.category_id = 2), f))).toThrow('i.json: annotations[1].category_id 2 is not in categories');
    expect(bad((f) => ((f.annotations[2]!.bbox = [1, 2, 3]), f))).toThrow('i.json: annotations[2].bbox must be [x, y, width, height] in pixels (got [1,2,3])');
    expect(bad((f) => ((f.images[1]!.id = 42), f))).toThrow('i.json: images[1].id 42 is listed twice');
    expect(bad((f) => ((f.images[0]!.width = 0), f))).toThrow('i.json: images[0].width must be an integer of at least 1 (got 0)');
    expect(bad(() => ({ images: [] }))).toThrow('i.json: categories must be an array');
    expect(() => parseCocoRoidb('{\n"images": [,]}', 'i.json', '.')).toThrow(/^i\.json: not valid JSON: /);
    expect(() => parseCocoRoidb('[]', 'i.json', '.')).toThrow(DataError);
  });

  it('readCocoRoidb reads the file, and says which when it cannot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    try {
      writeFileSync(join(dir, 'instances.json'), JSON.stringify(FILE));
      expect((await readCocoRoidb(join(dir, 'instances.json'), join(dir, 'images'))).entries[1]!.image).toBe(`${dir}/images/b.jpg`);
      await expect(readCocoRoidb(join(dir, 'nope.json'), dir)).rejects.toThrow(/cannot read the COCO annotations .*nope\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
