/*
 * A COCO instances file as py-faster-rcnn's roidb (lib/datasets/coco.py, gt_roidb): the classes
 * are the background then the categories in the file's order; each image of `images` (in file
 * order) gets its annotations with the boxes sanitised as _load_coco_annotation does (x1, y1 at
 * least 0; x2 = min(width − 1, x1 + max(0, w − 1)), y2 likewise; kept when the area is positive
 * and x2 ≥ x1, y2 ≥ y1; stored as uint16, so truncated). Crowd annotations stay, flagged: the
 * end-to-end data layer trains on them like the others, and an image with only crowd boxes is
 * left out of training (filter_roidb, through getTrainingRoidb).
 */
import { readFile } from 'node:fs/promises';
import { isObject, jsonError, type VocRoidbEntry } from './annotation-files.js';
import { DataError } from './errors.js';

/** One image of a COCO roidb: as a VOC one, with each box's iscrowd flag. */
export interface CocoRoidbEntry extends VocRoidbEntry {
  crowd: boolean[];
}

export interface CocoRoidb {
  /** '__background__', then the categories' names in the file's order (class i is entry i). */
  classes: string[];
  /** The categories' ids, by class (0 for the background). */
  categoryIds: number[];
  entries: CocoRoidbEntry[];
}

/**
 * The roidb of a COCO instances file's text (`file` names it in errors); images are
 * `<imageDir>/<file_name>`. Malformed files are DataErrors naming the file and the entry.
 */
export function parseCocoRoidb(text: string, file: string, imageDir: string): CocoRoidb {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${file}: not valid JSON: ${jsonError(e, text)}`, { cause: e });
  }
  const fail = (where: string, what: string): never => {
    throw new DataError(`${file}: ${where} ${what}`);
  };
  if (!isObject(doc)) fail('the top level', 'must be an object with images, annotations and categories');
  const top = doc as Record<string, unknown>;
  const list = (key: string): unknown[] => {
    const v = top[key];
    if (!Array.isArray(v)) fail(key, 'must be an array');
    return v as unknown[];
  };
  const int = (v: unknown, where: string, min: number): number => {
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= min)) fail(where, `must be an integer of at least ${min} (got ${JSON.stringify(v)})`);
    return v as number;
  };

  const classes = ['__background__'];
  const categoryIds = [0];
  const classOf = new Map<number, number>();
  list('categories').forEach((c, i) => {
    if (!isObject(c) || typeof c.name !== 'string') fail(`categories[${i}]`, 'must be an object with an id and a name');
    const cat = c as { id: unknown; name: string };
    const id = int(cat.id, `categories[${i}].id`, 0);
    if (classOf.has(id)) fail(`categories[${i}].id`, `${id} is listed twice`);
    classOf.set(id, classes.length);
    classes.push(cat.name);
    categoryIds.push(id);
  });

  const entries: CocoRoidbEntry[] = [];
  const byId = new Map<number, CocoRoidbEntry>();
  const dir = imageDir.replace(/\/+$/, '');
  list('images').forEach((im, i) => {
    if (!isObject(im)) fail(`images[${i}]`, 'must be an object');
    const img = im as Record<string, unknown>;
    const id = int(img.id, `images[${i}].id`, 0);
    if (byId.has(id)) fail(`images[${i}].id`, `${id} is listed twice`);
    if (typeof img.file_name !== 'string' || img.file_name === '') fail(`images[${i}].file_name`, 'must be a file name');
    const entry: CocoRoidbEntry = {
      image: `${dir}/${img.file_name as string}`,
      index: String(id),
      width: int(img.width, `images[${i}].width`, 1),
      height: int(img.height, `images[${i}].height`, 1),
      boxes: [],
      gt_classes: [],
      difficult: [],
      crowd: [],
      flipped: false,
    };
    if (entry.width > 65536 || entry.height > 65536) fail(`images[${i}]`, `is ${entry.width} × ${entry.height}, beyond the uint16 boxes py-faster-rcnn keeps`);
    byId.set(id, entry);
    entries.push(entry);
  });

  list('annotations').forEach((a, i) => {
    if (!isObject(a)) fail(`annotations[${i}]`, 'must be an object');
    const ann = a as Record<string, unknown>;
    const entry = byId.get(int(ann.image_id, `annotations[${i}].image_id`, 0));
    if (!entry) fail(`annotations[${i}].image_id`, `${String(ann.image_id)} is not in images`);
    const cls = classOf.get(int(ann.category_id, `annotations[${i}].category_id`, 0));
    if (cls === undefined) fail(`annotations[${i}].category_id`, `${String(ann.category_id)} is not in categories`);
    const bbox = ann.bbox;
    if (!Array.isArray(bbox) || bbox.length !== 4 || bbox.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
      fail(`annotations[${i}].bbox`, `must be [x, y, width, height] in pixels (got ${JSON.stringify(bbox)})`);
    }
    const area = ann.area;
    if (typeof area !== 'number' || Number.isNaN(area)) fail(`annotations[${i}].area`, `must be a number (got ${JSON.stringify(area)})`);
    const [x, y, w, h] = bbox as [number, number, number, number];
    const { width, height } = entry!;
    const x1 = Math.max(0, x);
    const y1 = Math.max(0, y);
    const x2 = Math.min(width - 1, x1 + Math.max(0, w - 1));
    const y2 = Math.min(height - 1, y1 + Math.max(0, h - 1));
    if (!((area as number) > 0 && x2 >= x1 && y2 >= y1)) return;
    entry!.boxes.push([Math.trunc(x1), Math.trunc(y1), Math.trunc(x2), Math.trunc(y2)]);
    entry!.gt_classes.push(cls!);
    entry!.difficult.push(false);
    entry!.crowd.push(ann.iscrowd === 1 || ann.iscrowd === true);
  });
  return { classes, categoryIds, entries };
}

/** parseCocoRoidb on a file (e.g. annotations/instances_train2014.json with images/train2014). */
export async function readCocoRoidb(annotationFile: string, imageDir: string): Promise<CocoRoidb> {
  let text: string;
  try {
    text = await readFile(annotationFile, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read the COCO annotations ${annotationFile}: ${(e as Error).message}`, { cause: e });
  }
  return parseCocoRoidb(text, annotationFile, imageDir);
}
