import { logger, type Blob } from '@caffe-ts/blob';
import { Layer, readLayerFile, type BinaryFileReader, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import { formatG } from '@caffe-ts/net';
import { hasField, parseText, type LayerParameter } from '@caffe-ts/proto';
import { decodeBox, nms, type Box } from '../bbox.js';
import { CodeType, forkParam, type DetectionOutputParameter, type ResizeParameter, type SaveOutputParameter } from '../fork-types.js';
import { outputBox, parseNameSizes, type NamedSize } from '../ssd-output.js';

const log = logger('detection_output_layer.ts');
const f32 = Math.fround;

/** Writes a whole text file and makes folders (tests and browsers may pass their own). */
export interface ResultFileSystem {
  writeFile(path: string, text: string): void;
  /** Make the folder and its parents (as mkdir -p); may throw. */
  makeDirectory(path: string): void;
}

export interface DetectionOutputOptions {
  /** How label_map_file and name_size_file are read; defaults to Node's readFileSync. */
  readFile?: BinaryFileReader;
  /** Where save_output_param's files go; defaults to Node's fs. */
  fileSystem?: ResultFileSystem;
}

/** One detection as the fork collects it for its result files (its property tree's fields). */
interface SavedDetection {
  image: string;
  /** The class name (VOC, COCO) or label (ILSVRC). */
  category: string | number;
  label: string;
  /** [xmin, ymin, width, height] in pixels, rounded to hundredths as the fork rounds them. */
  bbox: [number, number, number, number];
  score: number;
}

interface SaveState {
  directory: string;
  prefix: string;
  format: 'VOC' | 'COCO' | 'ILSVRC';
  labelToName: Map<number, string>;
  images: NamedSize[];
  numTestImage: number;
  resize: ResizeParameter | null;
}

/**
 * DetectionOutput (SSD fork), inference only: decode every prior's box from the location
 * predictions, then per image and class keep the boxes scoring above confidence_threshold,
 * run non-maximum suppression (nms_threshold, top_k, eta) and keep the keep_top_k best overall.
 * Bottoms: loc `[N, P·L·4]` (L = 1 with share_location, else num_classes), conf `[N, P·C]`
 * (probabilities), priors `[1, 2, P·4]` (PriorBox's boxes then variances).
 * Top: `[1, 1, D, 7]`, one row per detection: image_id, label, score, xmin, ymin, xmax, ymax
 * (normalised; not clipped, as in the fork, unless `clip: true`, OpenCV's field, which clamps
 * each decoded box to [0, 1] before NMS as OpenCV's dnn does). With no detection at all, one row
 * per image of [image_id, −1, −1, −1, −1, −1, −1], as the fork writes.
 * save_output_param (the fork's test-time result files) writes, every num_test_image images
 * (name_size_file's count by default), the detections in the original images' pixels: VOC (one
 * `<prefix><class>.txt` per class: `image score xmin ymin xmax ymax`), COCO (`<prefix>.json`:
 * image_id, category_id, bbox [x, y, w, h], score) or ILSVRC (`<prefix>.txt`: `image label score
 * xmin ymin xmax ymax`); like the fork, it saves nothing without label_map_file and
 * name_size_file. visualize is not supported.
 */
export class DetectionOutputLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 3, exactNumTopBlobs: 1 };
  readonly type = 'DetectionOutput';
  numClasses = 0;
  shareLocation = true;
  numLocClasses = 1;
  backgroundLabelId = 0;
  codeType = CodeType.CORNER;
  varianceEncodedInTarget = false;
  keepTopK = -1;
  confidenceThreshold = -Number.MAX_VALUE;
  nmsThreshold = 0.3;
  topK = -1;
  eta = 1;
  clip = false;
  numPriors = 0;
  /** The detections of the last forward, rows of 7 values (what the top holds). */
  private rows: number[][] = [];
  private save: SaveState | null = null;
  /** Images seen in the current round of num_test_image (the fork's name_count_). */
  private nameCount = 0;
  private saved: SavedDetection[] = [];
  private readonly readFile: BinaryFileReader | undefined;
  private readonly fileSystem: ResultFileSystem | undefined;
  private readonly netFile: string | undefined;

  constructor(param: LayerParameter, context: LayerContext = {}, options: DetectionOutputOptions = {}) {
    super(param, context);
    this.readFile = options.readFile;
    this.fileSystem = options.fileSystem;
    this.netFile = context.netFile;
  }

  override layerSetUp(): void {
    const p = forkParam<DetectionOutputParameter>(this.param, 'detection_output_param', 'DetectionOutputParameter');
    this.check(hasField(p, 'num_classes'), () => 'Must specify num_classes.');
    this.numClasses = p.num_classes;
    this.check(this.numClasses > 0, () => `num_classes must be positive (got ${this.numClasses}).`);
    this.shareLocation = p.share_location;
    this.numLocClasses = this.shareLocation ? 1 : this.numClasses;
    this.backgroundLabelId = p.background_label_id;
    this.codeType = p.code_type;
    this.check(
      this.codeType === CodeType.CORNER || this.codeType === CodeType.CENTER_SIZE || this.codeType === CodeType.CORNER_SIZE,
      () => `Unknown code_type ${this.codeType}.`,
    );
    this.varianceEncodedInTarget = p.variance_encoded_in_target;
    this.keepTopK = p.keep_top_k;
    this.confidenceThreshold = hasField(p, 'confidence_threshold') ? p.confidence_threshold : -Number.MAX_VALUE;
    const nmsParam = p.nms_param;
    this.nmsThreshold = nmsParam ? nmsParam.nms_threshold : 0.3;
    this.check(this.nmsThreshold >= 0, () => `nms_threshold must be non negative (got ${this.nmsThreshold}).`);
    this.eta = nmsParam ? nmsParam.eta : 1;
    this.check(this.eta > 0 && this.eta <= 1, () => `eta must be in (0, 1] (got ${this.eta}).`);
    this.topK = nmsParam && hasField(nmsParam, 'top_k') ? nmsParam.top_k : -1;
    this.clip = p.clip === true;
    this.save = p.save_output_param && p.save_output_param.output_directory ? this.saveState(p.save_output_param) : null;
    this.nameCount = 0;
    this.saved = [];
  }

  /** save_output_param's settings, or null where the fork saves nothing (no label map or sizes). */
  private saveState(sp: SaveOutputParameter): SaveState | null {
    const format = sp.output_format;
    this.check(format === 'VOC' || format === 'COCO' || format === 'ILSVRC', () => `save_output_param.output_format must be VOC, COCO or ILSVRC (got '${format}').`);
    try {
      this.files().makeDirectory(sp.output_directory);
    } catch (e) {
      log.warn(`Failed to create directory: ${sp.output_directory} (${(e as Error).message})`);
    }
    if (!hasField(sp, 'label_map_file') || !hasField(sp, 'name_size_file')) return null;
    if (!sp.label_map_file) {
      log.warn('Provide label_map_file if output results to files.');
      return null;
    }
    if (!sp.name_size_file) {
      log.warn('Provide name_size_file if output results to files.');
      return null;
    }
    const map = parseText<{ item: { name: string; label: number }[] }>('LabelMap', this.readText(sp.label_map_file, 'label_map_file'), { file: sp.label_map_file });
    const labelToName = new Map<number, string>();
    for (const item of map.item) {
      this.check(!labelToName.has(item.label), () => `label_map_file '${sp.label_map_file}' lists label ${item.label} twice.`);
      labelToName.set(item.label, item.name);
    }
    let images: NamedSize[];
    try {
      images = parseNameSizes(this.readText(sp.name_size_file, 'name_size_file'), sp.name_size_file);
    } catch (e) {
      this.fail((e as Error).message);
    }
    const numTestImage = hasField(sp, 'num_test_image') ? sp.num_test_image : images.length;
    this.check(numTestImage > 0 && numTestImage <= images.length, () => `num_test_image ${numTestImage} must be in [1, ${images.length}] (name_size_file's images).`);
    return { directory: sp.output_directory, prefix: sp.output_name_prefix, format, labelToName, images, numTestImage, resize: sp.resize_param };
  }

  private readText(path: string, what: string): string {
    try {
      const { bytes } = readLayerFile(path, `save_output_param.${what} '${path}'`, {
        netFile: this.netFile,
        readFile: this.readFile,
        readerOption: 'createDetectionOutputLayerDef({ readFile })',
      });
      return new TextDecoder().decode(bytes);
    } catch (e) {
      this.fail((e as Error).message);
    }
  }

  private files(): ResultFileSystem {
    if (this.fileSystem) return this.fileSystem;
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const fs = proc?.getBuiltinModule?.('node:fs') as
      | { writeFileSync(path: string, text: string): void; mkdirSync(path: string, options: { recursive: true }): void }
      | undefined;
    if (!fs) this.fail('save_output_param needs a file system: pass one (createDetectionOutputLayerDef({ fileSystem }))');
    return { writeFile: (path, text) => fs.writeFileSync(path, text), makeDirectory: (path) => fs.mkdirSync(path, { recursive: true }) };
  }

  private resultPath(name: string): string {
    const dir = this.save!.directory;
    return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
  }

  /** Collect one image's detections for the result files, and write them once a round of num_test_image is complete. */
  private saveImage(rows: readonly number[][]): void {
    const save = this.save!;
    this.check(this.nameCount < save.images.length, () => `more test images than name_size_file lists (${save.images.length}).`);
    // A round starts by emptying VOC's class files, as the fork does in Reshape.
    if (this.nameCount === 0 && save.format === 'VOC') {
      for (const [label, name] of save.labelToName) if (label !== this.backgroundLabelId) this.files().writeFile(this.resultPath(`${save.prefix}${name}.txt`), '');
    }
    const { name, size } = save.images[this.nameCount]!;
    for (const [, label, score, xmin, ymin, xmax, ymax] of rows) {
      const className = save.labelToName.get(label!);
      this.check(className !== undefined, () => `Cannot find label: ${label} in the label map.`);
      const b = outputBox({ xmin: xmin!, ymin: ymin!, xmax: xmax!, ymax: ymax! }, size, save.resize);
      // The fork rounds each float to hundredths (round() halves away from zero).
      const hundredths = (v: number) => Math.sign(v) * Math.round(Math.abs(f32(f32(v) * 100))) / 100;
      this.saved.push({
        image: name,
        category: save.format === 'ILSVRC' ? label! : className!,
        label: className!,
        bbox: [hundredths(b.xmin), hundredths(b.ymin), hundredths(f32(b.xmax - b.xmin)), hundredths(f32(b.ymax - b.ymin))],
        score: f32(score!),
      });
    }
    this.nameCount++;
    if (this.nameCount % save.numTestImage === 0) {
      this.writeResults();
      this.nameCount = 0;
      this.saved = [];
    }
  }

  /** The round's result files, in the fork's layouts (VOC and ILSVRC corners truncated to integers). */
  private writeResults(): void {
    const save = this.save!;
    const fs = this.files();
    const corners = (b: SavedDetection['bbox']) => {
      const [x, y, w, h] = b.map((v) => Math.trunc(f32(v)));
      return `${x} ${y} ${x! + w!} ${y! + h!}`;
    };
    if (save.format === 'VOC') {
      const lines = new Map<string, string[]>();
      for (const [label, name] of save.labelToName) if (label !== this.backgroundLabelId && label < this.numClasses) lines.set(name, []);
      for (const d of this.saved) lines.get(d.label)?.push(`${d.image} ${formatG(d.score)} ${corners(d.bbox)}\n`);
      for (const [name, text] of lines) fs.writeFile(this.resultPath(`${save.prefix}${name}.txt`), text.join(''));
    } else if (save.format === 'COCO') {
      // The fork writes its property tree as JSON with every number-like string unquoted (image ids
      // of COCO's name_size_file are numbers) and floats at 7 significant digits.
      const value = (v: string | number) => (typeof v === 'number' ? formatG(v, 7) : /^-?[0-9]+(\.[0-9]+)?$/.test(v) ? v : JSON.stringify(v));
      const entries = this.saved.map(
        (d) => `    {\n        "image_id": ${value(d.image)},\n        "category_id": ${value(String(d.category))},\n        "bbox": [${d.bbox.map((v) => value(v)).join(', ')}],\n        "score": ${value(d.score)}\n    }`,
      );
      fs.writeFile(this.resultPath(`${save.prefix}.json`), `[\n${entries.join(',\n')}\n]\n`);
    } else {
      fs.writeFile(this.resultPath(`${save.prefix}.txt`), this.saved.map((d) => `${d.image} ${d.category} ${formatG(d.score)} ${corners(d.bbox)}\n`).join(''));
    }
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const [loc, conf, prior] = bottom as [Blob, Blob, Blob];
    this.check(prior.numAxes === 3 && prior.shape[1] === 2, () => `bottom[2] (priors) must be [1, 2, P·4] (got ${prior.shapeString()}).`);
    this.numPriors = prior.shape[2]! / 4;
    this.check(Number.isInteger(this.numPriors), () => `bottom[2] (priors) length ${prior.shape[2]} is not a multiple of 4.`);
    const num = loc.shape[0]!;
    this.check(
      loc.count() === num * this.numPriors * this.numLocClasses * 4,
      () => `Number of priors must match number of location predictions (${this.numPriors} priors, loc ${loc.shapeString()}).`,
    );
    this.check(
      conf.count() === num * this.numPriors * this.numClasses,
      () => `Number of priors must match number of confidence predictions (${this.numPriors} priors × ${this.numClasses} classes, conf ${conf.shapeString()}).`,
    );
    // The real number of detections is known after forward; Caffe sizes the top for one row.
    top[0]!.reshape([1, 1, Math.max(this.rows.length, 1), 7]);
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const loc = bottom[0]!.cpuData();
    const conf = bottom[1]!.cpuData();
    const prior = bottom[2]!.cpuData();
    const num = bottom[0]!.shape[0]!;
    const P = this.numPriors;
    const C = this.numClasses;
    const L = this.numLocClasses;
    const priors: Box[] = [];
    for (let p = 0; p < P; p++) {
      priors.push({ xmin: prior[p * 4]!, ymin: prior[p * 4 + 1]!, xmax: prior[p * 4 + 2]!, ymax: prior[p * 4 + 3]! });
    }
    const variances = prior.subarray(P * 4, P * 8);
    const rows: number[][] = [];
    for (let i = 0; i < num; i++) {
      // Decoded boxes per location class.
      const boxes: Box[][] = [];
      for (let c = 0; c < L; c++) {
        const list: Box[] = [];
        for (let p = 0; p < P; p++) {
          const o = ((i * P + p) * L + c) * 4;
          const box = decodeBox(priors[p]!, variances.subarray(p * 4, p * 4 + 4), this.codeType, this.varianceEncodedInTarget, loc.subarray(o, o + 4));
          if (this.clip) clipUnit(box);
          list.push(box);
        }
        boxes.push(list);
      }
      const kept = new Map<number, number[]>();
      const scoresOf = new Map<number, Float64Array>();
      let numDet = 0;
      for (let c = 0; c < C; c++) {
        if (c === this.backgroundLabelId) continue;
        const scores = new Float64Array(P);
        for (let p = 0; p < P; p++) scores[p] = conf[(i * P + p) * C + c]!;
        scoresOf.set(c, scores);
        const list = boxes[this.shareLocation ? 0 : c]!;
        const idx = nms(list, scores, this.confidenceThreshold, this.nmsThreshold, this.eta, this.topK);
        kept.set(c, idx);
        numDet += idx.length;
      }
      let final = kept;
      if (this.keepTopK > -1 && numDet > this.keepTopK) {
        const all: { score: number; c: number; p: number }[] = [];
        for (const [c, idx] of kept) for (const p of idx) all.push({ score: scoresOf.get(c)![p]!, c, p });
        all.sort((a, b) => b.score - a.score);
        all.length = this.keepTopK;
        final = new Map();
        for (const { c, p } of all) {
          if (!final.has(c)) final.set(c, []);
          final.get(c)!.push(p);
        }
      }
      // Rows by ascending label, as the fork's std::map iteration.
      const imageRows: number[][] = [];
      for (const c of [...final.keys()].sort((a, b) => a - b)) {
        const list = boxes[this.shareLocation ? 0 : c]!;
        for (const p of final.get(c)!) {
          const b = list[p]!;
          imageRows.push([i, c, scoresOf.get(c)![p]!, b.xmin, b.ymin, b.xmax, b.ymax]);
        }
      }
      if (this.save) this.saveImage(imageRows);
      rows.push(...imageRows);
    }
    if (rows.length === 0) for (let i = 0; i < num; i++) rows.push([i, -1, -1, -1, -1, -1, -1]);
    this.rows = rows;
    top[0]!.reshape([1, 1, rows.length, 7]);
    const out = top[0]!.mutableCpuData();
    rows.forEach((r, k) => out.set(r, k * 7));
  }

  protected override backwardCpu(_top: Blob[], propagateDown: boolean[]): void {
    if (propagateDown.some(Boolean)) this.fail('DetectionOutput cannot backpropagate (it is an inference-only layer).');
  }
}

/** A LayerDef for DetectionOutput with the given options (file readers and writers of your own). */
export function createDetectionOutputLayerDef(options: DetectionOutputOptions = {}): LayerDef<DetectionOutputLayer> {
  return { type: 'DetectionOutput', create: (p, ctx) => new DetectionOutputLayer(p, ctx, options) };
}

export const detectionOutputLayerDef: LayerDef<DetectionOutputLayer> = createDetectionOutputLayerDef();

/** Clamp a normalised box to the image, [0, 1] on both axes (OpenCV's `clip`). */
function clipUnit(box: Box): void {
  box.xmin = Math.min(Math.max(box.xmin, 0), 1);
  box.ymin = Math.min(Math.max(box.ymin, 0), 1);
  box.xmax = Math.min(Math.max(box.xmax, 0), 1);
  box.ymax = Math.min(Math.max(box.ymax, 0), 1);
}
