import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setLogSink, type LogSink } from '@caffe-ts/blob';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  mapNameToLabel,
  parseJsonAnnotation,
  parseLabelMap,
  parseTxtAnnotation,
  parseVocRoidbAnnotation,
  parseXmlAnnotation,
  readVocRoidb,
  VOC_CLASSES,
  type AnnotationGroupInit,
} from './annotation-files.js';
import { DataError } from './errors.js';

let lines: string[];
let prev: LogSink;
const msgs = () => lines.map((l) => l.replace(/^[IWE]\d{4} [\d:.]+ +\d+ [^\]]+\] /, ''));
beforeEach(() => {
  lines = [];
  prev = setLogSink((l) => lines.push(l));
});
afterEach(() => setLogSink(prev));

const f = Math.fround;
const box = (xmin: number, ymin: number, xmax: number, ymax: number, difficult = false) => ({
  xmin: f(xmin),
  ymin: f(ymin),
  xmax: f(xmax),
  ymax: f(ymax),
  difficult,
});

const LABELS = new Map([
  ['background', 0],
  ['cat', 1],
  ['dog', 2],
]);

// A VOC file (size 50 wide × 40 high) with two classes, dog first. The third object's
// <difficult> comes before its bndbox (applies); the fourth's after it (does not apply, as in
// the fork, which reads an object's children in document order). The person's <part><name> is
// nested and ignored.
const VOC = `<?xml version="1.0"?>
<annotation>
	<folder>VOC2007</folder>
	<filename>000001.jpg</filename>
	<size>
		<width>50</width>
		<height>40</height>
		<depth>3</depth>
	</size>
	<object>
		<name>dog</name>
		<pose>Left</pose>
		<truncated>0</truncated>
		<difficult>0</difficult>
		<bndbox><xmin>5</xmin><ymin>4</ymin><xmax>25</xmax><ymax>20</ymax></bndbox>
	</object>
	<object>
		<name>cat</name>
		<bndbox><xmin>10</xmin><ymin>8</ymin><xmax>50</xmax><ymax>40</ymax></bndbox>
	</object>
	<object>
		<name>dog</name>
		<difficult>1</difficult>
		<bndbox><xmin>0</xmin><ymin>0</ymin><xmax>10</xmax><ymax>10</ymax></bndbox>
	</object>
	<object>
		<name>cat</name>
		<bndbox><xmin>25</xmin><ymin>20</ymin><xmax>45</xmax><ymax>36</ymax></bndbox>
		<difficult>1</difficult>
		<part><name>head</name></part>
	</object>
</annotation>
`;

describe('parseXmlAnnotation', () => {
  it('groups boxes by label in order of first appearance, with instance ids, difficult in document order', () => {
    const groups = parseXmlAnnotation(VOC, 'a.xml', 40, 50, LABELS);
    const want: AnnotationGroupInit[] = [
      {
        group_label: 2,
        annotation: [
          { instance_id: 0, bbox: box(0.1, 0.1, 0.5, 0.5) }, // 5/50, 4/40, 25/50, 20/40
          { instance_id: 1, bbox: box(0, 0, 0.2, 0.25, true) }, // 10/50, 10/40
        ],
      },
      {
        group_label: 1,
        annotation: [
          { instance_id: 0, bbox: box(0.2, 0.2, 1, 1) }, // 10/50, 8/40, 50/50, 40/40
          { instance_id: 1, bbox: box(0.5, 0.5, 0.9, 0.9, false) }, // 25/50, 20/40, 45/50, 36/40
        ],
      },
    ];
    expect(groups).toEqual(want);
    expect(msgs()).toEqual([]);
  });

  it('normalises by annotation.size, warning when it differs from the image, and falls back to the image size', () => {
    // The image is 80×100 but the file says 40×50: boxes still use the file's size.
    const groups = parseXmlAnnotation(VOC, 'a.xml', 80, 100, LABELS);
    expect(groups[0]!.annotation[0]!.bbox).toEqual(box(0.1, 0.1, 0.5, 0.5));
    expect(msgs()).toEqual(['a.xml inconsistent image height.', 'a.xml inconsistent image width.']);
    lines.length = 0;
    const noSize = VOC.replace(/<size>[\s\S]*<\/size>/, '');
    const g2 = parseXmlAnnotation(noSize, 'b.xml', 80, 100, LABELS);
    expect(g2[0]!.annotation[0]!.bbox).toEqual(box(0.05, 0.05, 0.25, 0.25)); // 5/100, 4/80, 25/100, 20/80
    expect(msgs()).toEqual(['When parsing b.xml: no annotation.size.height']);
    lines.length = 0;
    expect(() => parseXmlAnnotation(VOC.replace('<height>40</height>', '<height>0</height>'), 'c.xml', 0, 50, LABELS)).toThrow('c.xml no valid image width/height.');
  });

  it("warns as the fork for boxes outside the image or irregular, and reads a non-integer corner as 0", () => {
    const xml = `<annotation><size><width>10</width><height>10</height></size>
      <object><name>cat</name><bndbox><xmin>-1</xmin><ymin>2</ymin><xmax>12</xmax><ymax>1</ymax></bndbox></object>
      <object><name>cat</name><bndbox><xmin>2.5</xmin><ymin>2</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>`;
    const groups = parseXmlAnnotation(xml, 'w.xml', 10, 10, LABELS);
    expect(groups[0]!.annotation.map((a) => a.bbox)).toEqual([box(-0.1, 0.2, 1.2, 0.1), box(0, 0.2, 0.4, 0.4)]);
    expect(msgs()).toEqual([
      'w.xml bounding box exceeds image boundary.', // xmax > width
      'w.xml bounding box exceeds image boundary.', // xmin < 0
      'w.xml bounding box irregular.', // ymin > ymax
      "w.xml: object 2 bndbox xmin '2.5' is not an integer; read as 0, as the fork does",
    ]);
  });

  it('refuses an unknown name (naming the file, the line and the label map), bad XML, and a bndbox before its name', () => {
    const bad = VOC.replace('<name>cat</name>\n\t\t<bndbox><xmin>25', '<name>horse</name>\n\t\t<bndbox><xmin>25');
    const ctx = { labelMapFile: 'labelmap.prototxt', origin: 'listed at list.txt, line 3' };
    expect(() => parseXmlAnnotation(bad, 'a.xml', 40, 50, LABELS, ctx)).toThrow(
      'Unknown name: horse (a.xml, line 27; not in the label map labelmap.prototxt) (listed at list.txt, line 3)',
    );
    let err: unknown;
    try {
      parseXmlAnnotation('<annotation><object><name>cat</object></annotation>', 'm.xml', 1, 1, LABELS);
    } catch (e) {
      err = e;
    }
    expect(DataError.isInstance(err)).toBe(true);
    expect((err as Error).message).toMatch(/^m\.xml, line 1, column \d+: not well-formed XML: /);
    expect(() => parseXmlAnnotation('<other/>', 'r.xml', 1, 1, LABELS)).toThrow('r.xml: no <annotation> element');
    expect(() =>
      parseXmlAnnotation('<annotation><object><bndbox><xmin>1</xmin></bndbox><name>cat</name></object></annotation>', 'o.xml', 1, 1, LABELS),
    ).toThrow('o.xml: object 1 has a bndbox before its name');
  });

  it('keeps an object without a bndbox as an annotation with no box, and compares names untrimmed', () => {
    const xml = '<annotation><size><width>4</width><height>4</height></size><object><name>cat</name></object></annotation>';
    expect(parseXmlAnnotation(xml, 'n.xml', 4, 4, LABELS)).toEqual([{ group_label: 1, annotation: [{ instance_id: 0 }] }]);
    expect(() => parseXmlAnnotation(xml.replace('<name>cat', '<name> cat'), 'n.xml', 4, 4, LABELS)).toThrow('Unknown name:  cat (n.xml, line 1;');
  });
});

describe('parseJsonAnnotation', () => {
  const json = JSON.stringify({
    image: { file_name: 'x.jpg', height: 40, width: 50 },
    annotation: [
      { category_id: 2, bbox: [5, 4, 20, 16], iscrowd: 0 },
      { category_id: 1, bbox: [10, 8, 40, 32] },
      { category_id: 2, bbox: [0.5, 1, 9.5, 9], iscrowd: 1 },
    ],
  });
  const cocoLabels = new Map([
    ['1', 1],
    ['2', 7],
  ]);

  it('maps category_id (as a string) through the label map, bbox [x, y, w, h] to corners, iscrowd to difficult', () => {
    expect(parseJsonAnnotation(json, 'a.json', 40, 50, cocoLabels)).toEqual([
      {
        group_label: 7,
        annotation: [
          { instance_id: 0, bbox: box(0.1, 0.1, 0.5, 0.5) }, // 5/50, 4/40, 25/50, 20/40
          { instance_id: 1, bbox: box(0.01, 0.025, 0.2, 0.25, true) }, // 0.5/50, 1/40, 10/50, 10/40
        ],
      },
      { group_label: 1, annotation: [{ instance_id: 0, bbox: box(0.2, 0.2, 1, 1) }] },
    ]);
  });

  it('falls back to the image size and refuses unknown categories, bad bboxes and bad JSON', () => {
    const noImage = JSON.stringify({ annotation: [{ category_id: '1', bbox: [0, 0, 10, 10] }] });
    expect(parseJsonAnnotation(noImage, 'b.json', 20, 20, cocoLabels)[0]!.annotation[0]!.bbox).toEqual(box(0, 0, 0.5, 0.5));
    expect(msgs()).toEqual(['When parsing b.json: no image.height']);
    expect(() => parseJsonAnnotation(json, 'a.json', 40, 50, new Map([['1', 1]]), { labelMapFile: 'coco.prototxt' })).toThrow(
      'Unknown name: 2 (a.json, annotation[0]; not in the label map coco.prototxt)',
    );
    const badBox = JSON.stringify({ annotation: [{ category_id: 1, bbox: [0, 0, 10] }] });
    expect(() => parseJsonAnnotation(badBox, 'c.json', 20, 20, cocoLabels)).toThrow('c.json: annotation[0]: bbox must be 4 numbers');
    expect(() => parseJsonAnnotation('{\n"annotation": [,]}', 'd.json', 20, 20, cocoLabels)).toThrow(/^d\.json: not valid JSON: Unexpected token/);
  });
});

describe('parseTxtAnnotation', () => {
  it('reads label xmin ymin xmax ymax as a stream of fields, labels as they are', () => {
    const text = '3 5 4 25 20\n1 10.5 8 50 40\n3 0 0\n 10 10\n';
    expect(parseTxtAnnotation(text, 'a.txt', 40, 50)).toEqual([
      { group_label: 3, annotation: [{ instance_id: 0, bbox: box(0.1, 0.1, 0.5, 0.5) }, { instance_id: 1, bbox: box(0, 0, 0.2, 0.25) }] },
      { group_label: 1, annotation: [{ instance_id: 0, bbox: box(f(10.5) / 50, 0.2, 1, 1) }] },
    ]);
  });

  it('refuses a field that is not a number, naming its line, and a short last box', () => {
    expect(() => parseTxtAnnotation('1 0 0 5 5\ncat 0 0 5 5\n', 'b.txt', 10, 10)).toThrow("b.txt, line 2: expected 'label xmin ymin xmax ymax', found 'cat 0 0 5 5'");
    expect(() => parseTxtAnnotation('1 0 0 5 5\n2 0 0\n', 'c.txt', 10, 10)).toThrow("c.txt, line 2: expected 'label xmin ymin xmax ymax', found '2 0 0'");
  });
});

describe('LabelMap', () => {
  const text = `item { name: "none_of_the_above" label: 0 display_name: "background" }
item { name: "cat" label: 1 display_name: "cat" }
item {
  name: "cat"
  label: 5
  display_name: "kitten"
}
`;
  it('maps names to labels; a repeated name: the last wins, or with check_label an error naming the line', () => {
    const map = parseLabelMap(text, 'labelmap.prototxt');
    expect(map.item.map((i) => [i.name, i.label, i.display_name])).toEqual([
      ['none_of_the_above', 0, 'background'],
      ['cat', 1, 'cat'],
      ['cat', 5, 'kitten'],
    ]);
    expect([...mapNameToLabel(map, false, 'labelmap.prototxt')]).toEqual([
      ['none_of_the_above', 0],
      ['cat', 5],
    ]);
    expect(() => mapNameToLabel(map, true, 'labelmap.prototxt')).toThrow('There are many duplicates of name: cat (labelmap.prototxt, line 3; labels 1 and 5)');
  });

  it('refuses a file that is not a LabelMap', () => {
    expect(() => parseLabelMap('item { nme: "x" }', 'bad.prototxt')).toThrow(/^Failed to read label map file bad\.prototxt: .*nme/);
  });
});

describe('VOC devkits as py-faster-rcnn roidbs', () => {
  const XML = `<annotation>
  <size><width>353</width><height>500</height><depth>3</depth></size>
  <object><name>Dog </name><difficult>0</difficult>
    <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult>
    <bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox></object>
  <object><name>person</name>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10.5</xmax><ymax>20</ymax></bndbox>
    <part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></part></object>
</annotation>`;

  it('gives 0-based corners, lower-cased trimmed class indices, and leaves difficult objects out unless asked (pascal_voc.py)', () => {
    // dog is class 12, person 15; corners minus 1, truncated as uint16 (10.5 − 1 → 9); a missing
    // <difficult> counts as 0; a part's own name and box are not the object's.
    expect(parseVocRoidbAnnotation(XML, '000001.xml', VOC_CLASSES)).toEqual({
      width: 353,
      height: 500,
      boxes: [[47, 239, 194, 370], [0, 0, 9, 19]],
      gt_classes: [12, 15],
      difficult: [false, false],
    });
    const all = parseVocRoidbAnnotation(XML, '000001.xml', VOC_CLASSES, true);
    expect(all.gt_classes).toEqual([12, 15, 15]);
    expect(all.difficult).toEqual([false, true, false]);
  });

  it('refuses an unknown class, a corner before pixel 1 and a missing size, naming the file and object', () => {
    expect(() => parseVocRoidbAnnotation(XML.replace('Dog ', 'wolf'), 'a.xml', VOC_CLASSES)).toThrow(/a.xml: object 1 has class 'wolf', not one of aeroplane, bicycle/);
    expect(() => parseVocRoidbAnnotation(XML.replace('<xmin>48</xmin>', '<xmin>0</xmin>'), 'a.xml', VOC_CLASSES)).toThrow(
      "a.xml: object 1's bndbox xmin must be a pixel index from 1",
    );
    expect(() => parseVocRoidbAnnotation(XML.replace('<width>353</width>', ''), 'a.xml', VOC_CLASSES)).toThrow('a.xml: annotation.size.width must be a positive integer');
    expect(() => parseVocRoidbAnnotation('<annotation><size>', 'a.xml', VOC_CLASSES)).toThrow(DataError);
  });

  it('readVocRoidb reads an image set: JPEGImages/<index>.jpg with its Annotations/<index>.xml', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'voc-'));
    try {
      mkdirSync(join(dir, 'ImageSets', 'Main'), { recursive: true });
      mkdirSync(join(dir, 'Annotations'));
      writeFileSync(join(dir, 'ImageSets', 'Main', 'trainval.txt'), '000001\n\n000002\n');
      writeFileSync(join(dir, 'Annotations', '000001.xml'), XML);
      writeFileSync(join(dir, 'Annotations', '000002.xml'), XML.replace('Dog ', 'cat'));
      const roidb = await readVocRoidb(dir, 'trainval');
      expect(roidb.map((e) => [e.image, e.index, e.gt_classes, e.flipped])).toEqual([
        [`${dir}/JPEGImages/000001.jpg`, '000001', [12, 15], false],
        [`${dir}/JPEGImages/000002.jpg`, '000002', [8, 15], false],
      ]);
      await expect(readVocRoidb(dir, 'test')).rejects.toThrow(/cannot read the image set .*test\.txt/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
