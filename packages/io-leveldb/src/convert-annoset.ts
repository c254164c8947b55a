import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { globalRng, logger } from '@caffe-ts/blob';
import { createMessage, encodeBinary, registerSsdForkSchema, type Datum } from '@caffe-ts/proto';
import {
  mapNameToLabel,
  parseJsonAnnotation,
  parseTxtAnnotation,
  parseXmlAnnotation,
  readLabelMap,
  type AnnotationGroupInit,
} from './annotation-files.js';
import type { ConvertImagesetOptions } from './convert-imageset.js';
import { guessEncoding, parseListPairs, readListFile, shuffleInPlace, writeImageRecords, type ListPair } from './dataset-tool.js';
import { parseDbBackend } from './datum-db.js';
import { DataError } from './errors.js';
import { decodeImage, encodeImage, imageToDatum, resizeImage, type PixelImage } from './image-io.js';
import { fileChannelsFromHeader, loadSharp } from './pixel-codec.js';

const log = logger('convert_annoset.ts');

/** convert_annoset's --anno_type. */
export type AnnoType = 'classification' | 'detection';
/** convert_annoset's --label_type: the format of the annotation files. */
export type AnnoLabelType = 'xml' | 'json' | 'txt';

/** convert_imageset's options (gray, shuffle, backend, resize, check_size, encoding, …), and: */
export interface ConvertAnnosetOptions extends ConvertImagesetOptions {
  /**
   * 'classification' (default): `image label` lines, records without boxes; 'detection':
   * `image annotation` lines, each annotation file read as `labelType`.
   */
  annoType?: AnnoType | string;
  /** 'xml' (default), 'json' or 'txt'. */
  labelType?: AnnoLabelType | string;
  /** A LabelMap prototxt mapping class names to labels (detection with xml or json). */
  labelMapFile?: string;
  /** Refuse a label map that lists a name twice (--check_label). */
  checkLabel?: boolean;
  /**
   * Scale each image, keeping its aspect ratio, so that its shorter side is at least minDim and
   * its longer side at most maxDim (0: no bound). When either is set, resizeWidth/Height are ignored.
   */
  minDim?: number;
  maxDim?: number;
}

export interface ConvertAnnosetResult {
  dbPath: string;
  /** Records written. */
  count: number;
  /** Listed images that could not be read (logged and skipped, as the fork). */
  skipped: string[];
}

/** One listed image: the path as listed (the key's suffix) and its label or annotation file. */
interface AnnosetEntry {
  path: string;
  second: string;
  line: number;
}

/**
 * The SSD fork's `convert_annoset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME`: a LevelDB or LMDB of
 * AnnotatedDatum records, one per list line, under convert_imageset's `%08d_<path>` keys.
 *
 * - classification: `image label` lines; each record holds the image's Datum with the label,
 *   and no annotation type or boxes;
 * - detection: `image annotation` lines; each record holds the Datum (label −1), type BBOX and
 *   the annotation file's boxes (read as `labelType`, class names mapped by the label map),
 *   normalised by the original image size. A listed annotation file that does not exist leaves
 *   the image without boxes (with a warning).
 *
 * Paths are `rootFolder + path` (plain concatenation: give the folder with its trailing slash).
 * Images that cannot be read are logged (`Failed to read …`) and skipped; bad annotation files,
 * names missing from the label map and list lines that do not parse are DataErrors naming the
 * file and line, and leave no database behind.
 */
export async function convertAnnoset(
  rootFolder: string,
  listFile: string,
  dbPath: string,
  options: ConvertAnnosetOptions = {},
): Promise<ConvertAnnosetResult> {
  registerSsdForkSchema();
  const backend = parseDbBackend(options.backend ?? 'lmdb');
  const annoType = options.annoType ?? 'classification';
  if (annoType !== 'classification' && annoType !== 'detection') {
    throw new DataError(`Unknown anno_type '${annoType}' (expected classification or detection)`);
  }
  const labelType = options.labelType ?? 'xml';
  const detection = annoType === 'detection';
  if (detection && labelType !== 'xml' && labelType !== 'json' && labelType !== 'txt') {
    throw new DataError(`Unknown label file type '${labelType}' (expected xml, json or txt)`);
  }

  let nameToLabel = new Map<string, number>();
  const labelMapFile = options.labelMapFile ?? '';
  if (detection) {
    // The fork reads the label map for every label type; txt files carry labels themselves, so
    // here it is needed only for xml and json.
    if (labelMapFile) {
      nameToLabel = mapNameToLabel(await readLabelMap(labelMapFile), options.checkLabel === true, labelMapFile);
    } else if (labelType !== 'txt') {
      throw new DataError(`anno_type detection with label_type ${labelType} needs a label map file (label_map_file) to map class names to labels`);
    }
  }

  const text = await readListFile(listFile);
  const pairs: ListPair[] = parseListPairs(text, listFile, detection ? 'image annotation' : 'image label', !detection);
  const entries: AnnosetEntry[] = pairs.map((p) => ({ path: p.first, second: p.second, line: p.line }));
  if (options.shuffle) {
    log.info('Shuffling data');
    shuffleInPlace(entries, options.rng ?? globalRng());
  }
  log.info(`A total of ${entries.length} images.`);
  const encodeType = (options.encodeType ?? '').toLowerCase();
  if (encodeType && !options.encoded) log.info('encode_type specified, assuming encoded=true.');
  const encoded = options.encoded || encodeType.length > 0;
  const size: ResizeRule = {
    minDim: Math.max(0, options.minDim ?? 0),
    maxDim: Math.max(0, options.maxDim ?? 0),
    height: Math.max(0, options.resizeHeight ?? 0),
    width: Math.max(0, options.resizeWidth ?? 0),
  };
  const isColor = !options.gray;

  const { count, skipped } = await writeImageRecords(
    dbPath,
    entries,
    { backend, overwrite: options.overwrite, checkSize: options.checkSize, concurrency: options.concurrency, onProgress: options.onProgress, log },
    async (entry) => {
      const origin = `listed at ${listFile}, line ${entry.line}`;
      const encoding = encoded ? encodeType || guessEncoding(entry.path, log) : '';
      const imagePath = rootFolder + entry.path;
      const label = detection ? -1 : Number.parseInt(entry.second, 10);
      let image: AnnosetImage;
      try {
        image = await readAnnosetImage(imagePath, label, { isColor, size, encoding });
      } catch (e) {
        if (!DataError.isInstance(e)) throw e;
        log.error(e.message);
        log.warn(`Failed to read ${entry.path}`);
        return null;
      }
      const { datum } = image;
      if (!detection) {
        return { value: encodeBinary('AnnotatedDatum', createMessage('AnnotatedDatum', { datum })), datum };
      }
      const annoFile = rootFolder + entry.second;
      const groups = await readAnnotationFile(annoFile, labelType as AnnoLabelType, image.origHeight, image.origWidth, nameToLabel, {
        labelMapFile,
        origin,
      });
      const msg = createMessage('AnnotatedDatum', { datum, type: 'BBOX', annotation_group: groups });
      return { value: encodeBinary('AnnotatedDatum', msg), datum };
    },
  );
  return { dbPath, count, skipped };
}

/** The box groups of one annotation file, or none (with a warning) when it does not exist. */
async function readAnnotationFile(
  file: string,
  labelType: AnnoLabelType,
  height: number,
  width: number,
  nameToLabel: ReadonlyMap<string, number>,
  ctx: { labelMapFile: string; origin: string },
): Promise<AnnotationGroupInit[]> {
  if (!existsSync(file)) {
    // The fork stores such an image without boxes, silently.
    log.warn(`${file} does not exist: the image is stored without boxes (${ctx.origin})`);
    return [];
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read the annotation file ${file}: ${(e as Error).message} (${ctx.origin})`, { cause: e });
  }
  if (labelType === 'xml') return parseXmlAnnotation(text, file, height, width, nameToLabel, ctx);
  if (labelType === 'json') return parseJsonAnnotation(text, file, height, width, nameToLabel, ctx);
  return parseTxtAnnotation(text, file, height, width, ctx);
}

/** How images are resized: by min/max dimension (aspect kept), or to a fixed size. */
interface ResizeRule {
  minDim: number;
  maxDim: number;
  height: number;
  width: number;
}

interface AnnosetImage {
  datum: Datum;
  /** The image's size as read, before any resize (what boxes are normalised by). */
  origHeight: number;
  origWidth: number;
}

/** cvRound: to nearest, ties to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The fork's ReadImageToCVMat resize: with min_dim/max_dim the image is scaled by one float32
 * factor (up so the shorter side reaches min_dim, then down if the longer side would pass
 * max_dim), its new sides rounded as cv::resize rounds them; otherwise it is resized to
 * height × width when both are positive.
 */
export function annosetResize(img: PixelImage, rule: { minDim?: number; maxDim?: number; height?: number; width?: number }): PixelImage {
  const minDim = rule.minDim ?? 0;
  const maxDim = rule.maxDim ?? 0;
  if (minDim > 0 || maxDim > 0) {
    const f = Math.fround;
    const minNum = Math.min(img.height, img.width);
    const maxNum = Math.max(img.height, img.width);
    let scale = 1;
    if (minDim > 0 && minNum < minDim) scale = f(minDim / minNum);
    if (maxDim > 0 && Math.trunc(f(scale * maxNum)) > maxDim) scale = f(maxDim / maxNum);
    if (scale === 1) return img;
    const h = roundHalfEven(img.height * scale);
    const w = roundHalfEven(img.width * scale);
    // cv::resize(src, dst, Size(), scale, scale) samples at steps of 1/scale, not src/dst.
    return resizeImage(img, h, w, { x: 1 / scale, y: 1 / scale });
  }
  const h = rule.height ?? 0;
  const w = rule.width ?? 0;
  return h > 0 && w > 0 ? resizeImage(img, h, w) : img;
}

/** Whether a file name's extension is the encoding (jpeg counting as jpg), as the fork's matchExt. */
function extensionMatches(path: string, encoding: string): boolean {
  const dot = path.lastIndexOf('.');
  const ext = (dot >= 0 ? path.slice(dot + 1) : path).toLowerCase();
  const enc = encoding.toLowerCase();
  return ext === enc || (enc === 'jpg' && ext === 'jpeg');
}

/** Whether an image file stores gray pixels (with or without alpha). */
async function isGrayFile(bytes: Uint8Array): Promise<boolean> {
  let channels = fileChannelsFromHeader(bytes);
  if (channels === undefined) {
    try {
      channels = (await (await loadSharp())(bytes).metadata()).channels;
    } catch {
      return false;
    }
  }
  return channels === 1 || channels === 2;
}

/**
 * The fork's ReadImageToDatum with min_dim/max_dim: read in colour or gray, resize, then store
 * raw planar pixels or the encoded image. The file's own bytes are kept when nothing asks for a
 * resize (all four sizes 0), its extension is the encoding and it is gray exactly when read as
 * gray (the fork does not check this last point; here a gray file in a colour set is re-encoded so
 * that it decodes to 3 channels); otherwise the resized image is encoded (JPEG quality 95 or PNG).
 * Channels, height and width are set in either case, as the fork sets them.
 */
async function readAnnosetImage(
  path: string,
  label: number,
  opts: { isColor: boolean; size: ResizeRule; encoding: string },
): Promise<AnnosetImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DataError(`Could not open or find file ${path}${code === 'ENOENT' ? '' : `: ${(e as Error).message}`}`, { cause: e });
  }
  const decoded = await decodeImage(bytes, opts.isColor ? 'color' : 'gray', path);
  const img = annosetResize(decoded, opts.size);
  const shape = { channels: img.channels, height: img.height, width: img.width };
  let datum: Datum;
  if (opts.encoding) {
    const { minDim, maxDim, height, width } = opts.size;
    const keep =
      minDim === 0 && maxDim === 0 && height === 0 && width === 0 && extensionMatches(path, opts.encoding) && (await isGrayFile(bytes)) === !opts.isColor;
    const data = keep ? bytes : await encodeImage(img, opts.encoding);
    datum = createMessage<Datum>('Datum', { ...shape, data, label, encoded: true });
  } else {
    datum = createMessage<Datum>('Datum', { ...shape, data: imageToDatum(img).data, label, encoded: false });
  }
  return { datum, origHeight: decoded.height, origWidth: decoded.width };
}
