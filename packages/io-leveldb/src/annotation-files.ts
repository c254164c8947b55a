import { readFile } from 'node:fs/promises';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { logger } from '@caffe-ts/blob';
import { parseText, registerSsdForkSchema, textLocationOf, type Message } from '@caffe-ts/proto';
import { DataError } from './errors.js';

/*
 * The SSD fork's annotation files and label maps, read as its util/io.cpp reads them when
 * convert_annoset builds a detection database:
 *
 * - a LabelMap prototxt (`item { name: "dog" label: 12 display_name: "dog" }`) maps the class
 *   names found in XML/JSON files to labels; with the strict check a name listed twice is an
 *   error, otherwise the last item of a name wins;
 * - VOC/ILSVRC XML: `annotation.size` (else the image's own size) normalises integer pixel
 *   corners; each `object`'s children are read in document order: `name` starts a new box in its
 *   label's group, `difficult` sets the flag for the boxes that follow it, `bndbox` fills the
 *   current box;
 * - MSCOCO-style JSON: `image.{height,width}` and `annotation[]` of `{category_id, bbox: [x, y,
 *   w, h], iscrowd}`, iscrowd becoming the difficult flag;
 * - plain text: `label xmin ymin xmax ymax` in pixels, the label used as it is.
 *
 * Boxes go into one group per label in order of first appearance, with instance ids counting up
 * within a group; corners are divided by the size in float32 as the fork does. Boxes outside the
 * image or with min > max only draw the fork's warnings.
 */

const log = logger('io.ts');

/** A box in normalised [0, 1] coordinates, as NormalizedBBox. */
export interface AnnotationBox {
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  difficult: boolean;
}

/** One Annotation: an instance id and (unless the XML object gave no bndbox) its box. */
export interface AnnotationInit {
  instance_id: number;
  bbox?: AnnotationBox;
}

/** One AnnotationGroup: the boxes of one label. */
export interface AnnotationGroupInit {
  group_label: number;
  annotation: AnnotationInit[];
}

/** LabelMap.item, as parsed. */
export interface LabelMapItem extends Message {
  name: string;
  label: number;
  display_name: string;
}

/** A LabelMap message (the fork's labelmap_voc.prototxt). */
export interface LabelMap extends Message {
  item: LabelMapItem[];
}

/** Parse a LabelMap prototxt; a file that does not parse is a DataError naming it (with line and column). */
export async function readLabelMap(path: string): Promise<LabelMap> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DataError(`Failed to read label map file ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { cause: e });
  }
  return parseLabelMap(text, path);
}

/** Parse LabelMap prototxt text (`file` names it in errors). */
export function parseLabelMap(text: string, file = '<label map>'): LabelMap {
  registerSsdForkSchema();
  try {
    return parseText<LabelMap>('LabelMap', text, { file });
  } catch (e) {
    throw new DataError(`Failed to read label map file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The fork's MapNameToLabel: class name → label. With `strict` (convert_annoset's --check_label)
 * a name listed twice is a DataError naming the file and the line of the second item; otherwise
 * the last item of a name wins.
 */
export function mapNameToLabel(map: LabelMap, strict: boolean, file = '<label map>'): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of map.item) {
    if (strict && out.has(item.name)) {
      const loc = textLocationOf(item);
      const where = loc ? `${file}, line ${loc.line}` : file;
      throw new DataError(`There are many duplicates of name: ${item.name} (${where}; labels ${out.get(item.name)} and ${item.label})`);
    }
    out.set(item.name, item.label);
  }
  return out;
}

/** Where an annotation file came from, for messages. */
export interface AnnotationContext {
  /** The label map file, named when a class name is not in it. */
  labelMapFile?: string;
  /** Appended to errors, e.g. "listed at list.txt, line 3". */
  origin?: string;
}

const suffix = (ctx: AnnotationContext) => (ctx.origin ? ` (${ctx.origin})` : '');

/** Groups boxes by label as the fork does: a new box continues its label's instance ids. */
class GroupBuilder {
  readonly groups: AnnotationGroupInit[] = [];
  add(label: number): AnnotationInit {
    let group = this.groups.find((g) => g.group_label === label);
    if (!group) {
      group = { group_label: label, annotation: [] };
      this.groups.push(group);
    }
    const last = group.annotation[group.annotation.length - 1];
    const anno: AnnotationInit = { instance_id: last ? last.instance_id + 1 : 0 };
    group.annotation.push(anno);
    return anno;
  }
}

/** The fork's warnings for a box in pixels against the width × height it is normalised by. */
function warnBox(file: string, xmin: number, ymin: number, xmax: number, ymax: number, width: number, height: number): void {
  const outside = `${file} bounding box exceeds image boundary.`;
  for (const bad of [xmin > width, ymin > height, xmax > width, ymax > height, xmin < 0, ymin < 0, xmax < 0, ymax < 0]) {
    if (bad) log.warn(outside);
  }
  if (xmin > xmax) log.warn(`${file} bounding box irregular.`);
  if (ymin > ymax) log.warn(`${file} bounding box irregular.`);
}

/** Corners (float32 values) divided by the size in float32, as NormalizedBBox stores them. */
function normalise(xmin: number, ymin: number, xmax: number, ymax: number, width: number, height: number, difficult: boolean): AnnotationBox {
  const f = Math.fround;
  return { xmin: f(xmin / width), ymin: f(ymin / height), xmax: f(xmax / width), ymax: f(ymax / height), difficult };
}

/** The size the boxes are normalised by: the file's (when it has one) or the image's, with the fork's warnings. */
function checkedSize(
  file: string,
  sizeField: (name: 'height' | 'width') => number | string,
  imgHeight: number,
  imgWidth: number,
  ctx: AnnotationContext,
): { height: number; width: number } {
  const h = sizeField('height');
  const w = sizeField('width');
  let height: number, width: number;
  if (typeof h === 'string' || typeof w === 'string') {
    log.warn(`When parsing ${file}: ${typeof h === 'string' ? h : w}`);
    height = imgHeight;
    width = imgWidth;
  } else {
    [height, width] = [h, w];
  }
  if (height !== imgHeight) log.warn(`${file} inconsistent image height.`);
  if (width !== imgWidth) log.warn(`${file} inconsistent image width.`);
  if (width === 0 || height === 0) throw new DataError(`${file} no valid image width/height.${suffix(ctx)}`);
  return { height, width };
}

/** An integer as a C++ stream reads a whole field (surrounding blanks allowed), or undefined. */
function streamInt(text: string): number | undefined {
  if (!/^\s*[+-]?\d+\s*$/.test(text)) return undefined;
  const n = Number.parseInt(text, 10);
  return n >= -2147483648 && n <= 2147483647 ? n : undefined;
}

/** A float as a C++ stream reads one token, or undefined. */
function streamFloat(text: string): number | undefined {
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Math.fround(Number(text)) : undefined;
}

function unknownName(name: string, file: string, line: number | undefined, ctx: AnnotationContext): DataError {
  const where = line !== undefined ? `${file}, line ${line}` : file;
  const map = ctx.labelMapFile ? `not in the label map ${ctx.labelMapFile}` : 'not in the label map';
  return new DataError(`Unknown name: ${name} (${where}; ${map})${suffix(ctx)}`);
}

// ---------------------------------------------------------------------------------------------
// XML

/** A node of fast-xml-parser's ordered output: one tag name → its children, or '#text' → text. */
type XmlNode = Record<string, unknown>;

const xmlParser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  // Text exactly as written (the fork compares `name` and `difficult` untrimmed), never as numbers.
  trimValues: false,
  parseTagValue: false,
  processEntities: true,
});

function tagOf(node: XmlNode): string | undefined {
  for (const k of Object.keys(node)) if (k !== ':@') return k;
  return undefined;
}

function childrenOf(node: XmlNode): XmlNode[] {
  const tag = tagOf(node);
  const v = tag === undefined ? undefined : node[tag];
  return Array.isArray(v) ? (v as XmlNode[]) : [];
}

/** An element's own text (its text children joined, as a property tree stores it). */
function textOf(children: XmlNode[]): string {
  let s = '';
  for (const c of children) if ('#text' in c) s += String(c['#text']);
  return s;
}

function firstChild(children: XmlNode[], tag: string): XmlNode[] | undefined {
  const node = children.find((c) => tagOf(c) === tag);
  return node ? childrenOf(node) : undefined;
}

/** `a.b.c` below `children`, as a property tree path: the first element of each name. */
function pathChildren(children: XmlNode[], path: string): XmlNode[] | undefined {
  let cur: XmlNode[] | undefined = children;
  for (const part of path.split('.')) {
    if (!cur) return undefined;
    cur = firstChild(cur, part);
  }
  return cur;
}

/** The 1-based line of the k-th (0-based) `<tag>` start tag in the text, for messages. */
function lineOfTag(text: string, tag: string, k: number): number | undefined {
  const re = new RegExp(`<${tag}[\\s/>]`, 'g');
  let m: RegExpExecArray | null;
  let i = 0;
  while ((m = re.exec(text))) {
    if (i++ === k) return text.slice(0, m.index).split('\n').length;
  }
  return undefined;
}

/**
 * The fork's ReadXMLToAnnotatedDatum on the text of a VOC/ILSVRC annotation file: the box groups,
 * normalised by `annotation.size` (or the image's size when the file has none).
 */
export function parseXmlAnnotation(
  text: string,
  file: string,
  imgHeight: number,
  imgWidth: number,
  nameToLabel: ReadonlyMap<string, number>,
  ctx: AnnotationContext = {},
): AnnotationGroupInit[] {
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new DataError(`${file}, line ${valid.err.line}, column ${valid.err.col}: not well-formed XML: ${valid.err.msg}${suffix(ctx)}`);
  }
  const doc = xmlParser.parse(text) as XmlNode[];
  const rootNode = doc.find((n) => tagOf(n) === 'annotation');
  if (!rootNode) throw new DataError(`${file}: no <annotation> element at the top of the document${suffix(ctx)}`);
  const root = childrenOf(rootNode);

  const sizeField = (name: 'height' | 'width'): number | string => {
    const node = pathChildren(root, `size.${name}`);
    if (!node) return `no annotation.size.${name}`;
    const v = streamInt(textOf(node));
    return v === undefined ? `annotation.size.${name} is not an integer ('${textOf(node).trim()}')` : v;
  };
  const { height, width } = checkedSize(file, sizeField, imgHeight, imgWidth, ctx);

  const builder = new GroupBuilder();
  let nameIndex = 0; // every <name> in document order, to point at the line of a bad one
  let objectIndex = 0;
  const countNames = (nodes: XmlNode[]): number => nodes.reduce((n, c) => n + (tagOf(c) === 'name' ? 1 : 0) + countNames(childrenOf(c)), 0);
  for (const node of root) {
    const tag = tagOf(node);
    if (tag !== 'object') {
      if (tag !== undefined && tag !== '#text') nameIndex += (tag === 'name' ? 1 : 0) + countNames(childrenOf(node));
      continue;
    }
    objectIndex++;
    let anno: AnnotationInit | undefined;
    let difficult = false;
    for (const child of childrenOf(node)) {
      const ctag = tagOf(child);
      const kids = childrenOf(child);
      if (ctag === 'name') {
        const name = textOf(kids);
        const label = nameToLabel.get(name);
        if (label === undefined) throw unknownName(name, file, lineOfTag(text, 'name', nameIndex), ctx);
        nameIndex++;
        anno = builder.add(label);
      } else if (ctag === 'difficult') {
        difficult = textOf(kids) === '1';
      } else if (ctag === 'bndbox') {
        if (!anno) throw new DataError(`${file}: object ${objectIndex} has a bndbox before its name${suffix(ctx)}`);
        const corner = (k: 'xmin' | 'ymin' | 'xmax' | 'ymax'): number => {
          const n = firstChild(kids, k);
          if (!n) return 0;
          const v = streamInt(textOf(n));
          if (v === undefined) {
            log.warn(`${file}: object ${objectIndex} bndbox ${k} '${textOf(n).trim()}' is not an integer; read as 0, as the fork does`);
            return 0;
          }
          return v;
        };
        const [xmin, ymin, xmax, ymax] = [corner('xmin'), corner('ymin'), corner('xmax'), corner('ymax')];
        warnBox(file, xmin, ymin, xmax, ymax, width, height);
        anno.bbox = normalise(xmin, ymin, xmax, ymax, width, height, difficult);
      }
      if (ctag !== undefined && ctag !== '#text' && ctag !== 'name') nameIndex += countNames(kids);
    }
  }
  return builder.groups;
}

/** One image of a py-faster-rcnn roidb (see @caffe-ts/layers-contrib's RoidbEntry). */
export interface VocRoidbEntry {
  image: string;
  /** The image's index in the image set (its file names without the extension). */
  index: string;
  width: number;
  height: number;
  /** [x1, y1, x2, y2] per object: inclusive pixel corners, 0-based. */
  boxes: number[][];
  gt_classes: number[];
  /** Each object's `<difficult>` flag (all false unless difficult objects were asked for). */
  difficult: boolean[];
  flipped: false;
}

/** PASCAL VOC's classes in py-faster-rcnn's order, the background first. */
export const VOC_CLASSES: readonly string[] = Object.freeze([
  '__background__', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
  'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
]);

/**
 * py-faster-rcnn's pascal_voc._load_pascal_annotation on the text of a VOC annotation file: each
 * `<object>` child of `<annotation>` (difficult ones left out unless `useDifficult`), its class
 * index from `<name>` lower-cased and trimmed, its `<bndbox>` corners made 0-based (minus 1), and
 * the image size from `<size>`. Bad input is a DataError naming the file and the object.
 */
export function parseVocRoidbAnnotation(
  text: string,
  file: string,
  classes: readonly string[],
  useDifficult = false,
): Omit<VocRoidbEntry, 'image' | 'index' | 'flipped'> {
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new DataError(`${file}, line ${valid.err.line}, column ${valid.err.col}: not well-formed XML: ${valid.err.msg}`);
  const rootNode = (xmlParser.parse(text) as XmlNode[]).find((n) => tagOf(n) === 'annotation');
  if (!rootNode) throw new DataError(`${file}: no <annotation> element at the top of the document`);
  const root = childrenOf(rootNode);
  const size = (name: 'height' | 'width'): number => {
    const v = streamInt(textOf(pathChildren(root, `size.${name}`) ?? []));
    if (v === undefined || v <= 0) throw new DataError(`${file}: annotation.size.${name} must be a positive integer`);
    return v;
  };
  const out = { width: size('width'), height: size('height'), boxes: [] as number[][], gt_classes: [] as number[], difficult: [] as boolean[] };
  let index = 0;
  for (const node of root) {
    if (tagOf(node) !== 'object') continue;
    index++;
    const obj = childrenOf(node);
    const difficult = Number(textOf(firstChild(obj, 'difficult') ?? []).trim() || '0');
    if (!useDifficult && difficult !== 0) continue;
    const name = textOf(firstChild(obj, 'name') ?? []).toLowerCase().trim();
    const cls = classes.indexOf(name);
    if (cls <= 0) throw new DataError(`${file}: object ${index} has class '${name}', not one of ${classes.slice(1).join(', ')}`);
    const box = firstChild(obj, 'bndbox');
    const corner = (k: string) => {
      const v = Number(textOf((box && firstChild(box, k)) ?? []).trim()) - 1;
      if (!(Number.isFinite(v) && v >= 0 && v <= 65535)) throw new DataError(`${file}: object ${index}'s bndbox ${k} must be a pixel index from 1`);
      return Math.trunc(v); // py-faster-rcnn stores the boxes as uint16
    };
    out.boxes.push([corner('xmin'), corner('ymin'), corner('xmax'), corner('ymax')]);
    out.gt_classes.push(cls);
    out.difficult.push(difficult !== 0);
  }
  return out;
}

/**
 * A VOC devkit's image set as a py-faster-rcnn roidb (pascal_voc's gt_roidb): the indices listed
 * in `<dataPath>/ImageSets/Main/<imageSet>.txt`, each with `JPEGImages/<index>.jpg` and
 * `Annotations/<index>.xml` (parseVocRoidbAnnotation). For setRoidb / getTrainingRoidb of
 * @caffe-ts/layers-contrib.
 */
export async function readVocRoidb(
  dataPath: string,
  imageSet: string,
  options: { classes?: readonly string[]; useDifficult?: boolean } = {},
): Promise<VocRoidbEntry[]> {
  const join = (...parts: string[]) => parts.join('/');
  const listFile = join(dataPath, 'ImageSets', 'Main', `${imageSet}.txt`);
  let list: string;
  try {
    list = await readFile(listFile, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read the image set ${listFile}: ${(e as Error).message}`, { cause: e });
  }
  const entries: VocRoidbEntry[] = [];
  for (const index of list.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const xml = join(dataPath, 'Annotations', `${index}.xml`);
    let text: string;
    try {
      text = await readFile(xml, 'utf8');
    } catch (e) {
      throw new DataError(`cannot read ${xml} (listed in ${listFile}): ${(e as Error).message}`, { cause: e });
    }
    const parsed = parseVocRoidbAnnotation(text, xml, options.classes ?? VOC_CLASSES, options.useDifficult ?? false);
    entries.push({ image: join(dataPath, 'JPEGImages', `${index}.jpg`), index, ...parsed, flipped: false });
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// JSON

/** A JSON.parse error message with the line it points at (the position alone is hard to find in a large file). */
export function jsonError(e: unknown, text: string): string {
  const msg = (e as Error).message;
  const pos = /position (\d+)/.exec(msg);
  if (!pos || /\bline \d+/.test(msg)) return msg;
  const line = text.slice(0, Number(pos[1])).split('\n').length;
  return `line ${line}: ${msg}`;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The fork's ReadJSONToAnnotatedDatum on the text of an MSCOCO-style file: `image.height`/`width`
 * (else the image's size), and `annotation[]` entries whose `category_id` (as a string) is looked
 * up in the label map, `bbox` is `[x, y, w, h]` in pixels and `iscrowd` (default 0) is the
 * difficult flag.
 */
export function parseJsonAnnotation(
  text: string,
  file: string,
  imgHeight: number,
  imgWidth: number,
  nameToLabel: ReadonlyMap<string, number>,
  ctx: AnnotationContext = {},
): AnnotationGroupInit[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${file}: not valid JSON: ${jsonError(e, text)}${suffix(ctx)}`, { cause: e });
  }
  if (!isObject(doc)) throw new DataError(`${file}: expected a JSON object with "image" and "annotation"${suffix(ctx)}`);
  const image = isObject(doc.image) ? doc.image : undefined;
  const sizeField = (name: 'height' | 'width'): number | string => {
    const v = image?.[name];
    if (v === undefined) return `no image.${name}`;
    return Number.isInteger(v) ? (v as number) : `image.${name} is not an integer (${JSON.stringify(v)})`;
  };
  const { height, width } = checkedSize(file, sizeField, imgHeight, imgWidth, ctx);
  if (!Array.isArray(doc.annotation)) throw new DataError(`${file}: expected "annotation" to be an array${suffix(ctx)}`);
  const builder = new GroupBuilder();
  doc.annotation.forEach((obj: unknown, i: number) => {
    const where = `${file}: annotation[${i}]`;
    if (!isObject(obj)) throw new DataError(`${where} is not an object${suffix(ctx)}`);
    const cat = obj.category_id;
    if (typeof cat !== 'string' && typeof cat !== 'number') throw new DataError(`${where} has no category_id${suffix(ctx)}`);
    const name = String(cat);
    const label = nameToLabel.get(name);
    if (label === undefined) throw unknownName(name, `${file}, annotation[${i}]`, undefined, ctx);
    const anno = builder.add(label);
    const iscrowd = Number.isInteger(obj.iscrowd) ? (obj.iscrowd as number) : 0;
    const bbox = obj.bbox;
    if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((v) => typeof v === 'number')) {
      throw new DataError(`${where}: bbox must be 4 numbers [x, y, width, height], found ${JSON.stringify(bbox)}${suffix(ctx)}`);
    }
    const [x, y, bw, bh] = (bbox as number[]).map(Math.fround) as [number, number, number, number];
    const xmax = Math.fround(x + bw);
    const ymax = Math.fround(y + bh);
    warnBox(file, x, y, xmax, ymax, width, height);
    anno.bbox = normalise(x, y, xmax, ymax, width, height, iscrowd !== 0);
  });
  return builder.groups;
}

// ---------------------------------------------------------------------------------------------
// Plain text

/**
 * The fork's ReadTxtToAnnotatedDatum on the text of a `label xmin ymin xmax ymax` file (pixels,
 * normalised by the image's size; the label is used as it is, no label map). The fields are read
 * as a stream of five at a time, as the fork does; a field that is not a number is a DataError
 * naming its line.
 */
export function parseTxtAnnotation(text: string, file: string, height: number, width: number, ctx: AnnotationContext = {}): AnnotationGroupInit[] {
  const tokens: { value: string; line: number }[] = [];
  text.split('\n').forEach((line, i) => {
    for (const t of line.trim().split(/\s+/)) if (t !== '') tokens.push({ value: t, line: i + 1 });
  });
  const builder = new GroupBuilder();
  for (let t = 0; t < tokens.length; t += 5) {
    const fields = tokens.slice(t, t + 5);
    const bad = fields.length < 5 ? fields[fields.length - 1] : fields.find((f, k) => (k === 0 ? streamInt(f.value) : streamFloat(f.value)) === undefined);
    if (bad || fields.length < 5) {
      const at = bad ?? fields[0]!;
      throw new DataError(`${file}, line ${at.line}: expected 'label xmin ymin xmax ymax', found '${fields.map((f) => f.value).join(' ')}'${suffix(ctx)}`);
    }
    const label = streamInt(fields[0]!.value)!;
    const [xmin, ymin, xmax, ymax] = fields.slice(1).map((f) => streamFloat(f.value)!) as [number, number, number, number];
    const anno = builder.add(label);
    warnBox(file, xmin, ymin, xmax, ymax, width, height);
    anno.bbox = normalise(xmin, ymin, xmax, ymax, width, height, false);
  }
  return builder.groups;
}
