import type { Blob } from '@caffe-ts/blob';
import { LayerError, PythonLayer, type Layer, type PythonLayerFactory, type PythonLayerImpl, type PythonLayerSelf } from '@caffe-ts/layers';
import { fasterRcnnConfig, permutation, readParamStr, type FasterRcnnConfig, type FasterRcnnConfigOverrides } from '../faster-rcnn-config.js';
import { loadSharp } from '../load-sharp.js';
import { roundHalfEven } from '../proposals.js';

/** py-faster-rcnn's `roi_data_layer.layer.RoIDataLayer`, as `python_param { module layer }` names it. */
export const PY_FASTER_RCNN_ROI_DATA = { module: 'roi_data_layer.layer', layer: 'RoIDataLayer' } as const;

/** Decoded pixels: height × width × channels bytes, BGR (as OpenCV reads them) or gray. */
export interface RoidbImage {
  height: number;
  width: number;
  channels: number;
  data: Uint8Array;
}

/**
 * One training image, as py-faster-rcnn's roidb holds it (the keys are its own).
 * - `image`: a file path (decoded with sharp in `prepare`) or the decoded pixels.
 * - `width`, `height`: the image's size (flipping boxes and grouping by aspect use them).
 * - `boxes`: rows [x1, y1, x2, y2] in image pixels with inclusive corners (0-based).
 * - `gt_classes`: each box's class (0, the background, marks a box that is not ground truth).
 * - `flipped`: the image is read mirrored left to right (its boxes are mirrored already).
 */
export interface RoidbEntry {
  image: string | RoidbImage;
  width: number;
  height: number;
  boxes: readonly (readonly number[])[];
  gt_classes: readonly number[];
  flipped: boolean;
  /**
   * Each box's COCO iscrowd flag, where the roidb has them: the data layer trains on crowd boxes
   * like the others (py-faster-rcnn's end2end does), but an image with only crowd boxes is left
   * out of training (getTrainingRoidb).
   */
  crowd?: readonly boolean[];
}

/**
 * The roidb py-faster-rcnn's train.py trains on: the entries, then with USE_FLIPPED (default) a
 * mirrored copy of each (boxes x1' = width − x2 − 1, x2' = width − x1 − 1; get_training_roidb), less
 * the entries without a ground-truth box other than a crowd one (filter_roidb, with end2end's
 * ground-truth "proposals").
 */
export function getTrainingRoidb(entries: readonly RoidbEntry[], { useFlipped = true }: { useFlipped?: boolean } = {}): RoidbEntry[] {
  const out = entries.slice();
  if (useFlipped) {
    for (const e of entries) {
      const boxes = e.boxes.map(([x1, y1, x2, y2]) => {
        // (The Python's boxes are uint16, where a box past the right edge wraps round; refuse it.)
        if (!(x1! >= 0 && x1! <= x2! && x2! <= e.width - 1)) {
          throw new LayerError(`getTrainingRoidb: box [${x1}, ${y1}, ${x2}, ${y2}] does not fit an image ${e.width} wide (0 ≤ x1 ≤ x2 ≤ width − 1), so it cannot be mirrored`);
        }
        return [e.width - x2! - 1, y1!, e.width - x1! - 1, y2!];
      });
      out.push({ ...e, boxes, flipped: !e.flipped });
    }
  }
  // filter_roidb keeps an image with a foreground or background RoI; with ground truth only,
  // that is a box of a class whose overlap is not −1 (coco.py's mark for crowd boxes).
  return out.filter((e) => e.gt_classes.some((c, i) => c !== 0 && !e.crowd?.[i]));
}

/** One minibatch as the Python's get_minibatch builds it (one image, with an RPN). */
export interface RoiMinibatch {
  /** 1 × 3 × H × W, BGR, PIXEL_MEANS subtracted, scaled by `scale`. */
  data: Float32Array;
  height: number;
  width: number;
  scale: number;
  /** G × 5 rows [x1, y1, x2, y2, class], the ground-truth boxes times `scale`. */
  gtBoxes: Float32Array;
}

/**
 * The scale py-faster-rcnn's prep_im_for_blob applies: the shorter side to `target`, unless the
 * longer side would then round to more than `maxSize` (then the longer side to `maxSize`); and the
 * scaled size, rounded as OpenCV's resize rounds it (halves to even).
 */
export function trainingImageScale(height: number, width: number, target: number, maxSize: number): { scale: number; height: number; width: number } {
  let scale = target / Math.min(height, width);
  if (roundHalfEven(scale * Math.max(height, width)) > maxSize) scale = maxSize / Math.max(height, width);
  return { scale, height: roundHalfEven(height * scale), width: roundHalfEven(width * scale) };
}

/**
 * One training image made into a network input as py-faster-rcnn does: mirrored if `flipped`,
 * `means` (B, G, R) subtracted, scaled by trainingImageScale with OpenCV's INTER_LINEAR sampling
 * (source x = (x + 0.5) / scale − 0.5, clamped at the edges), in channel-major order.
 */
export function prepareTrainingImage(
  image: RoidbImage, flipped: boolean, target: number, maxSize: number, means: readonly number[],
): { data: Float32Array; height: number; width: number; scale: number } {
  const { height: sh, width: sw, channels: cn, data: px } = image;
  const { scale, height, width } = trainingImageScale(sh, sw, target, maxSize);
  const taps = (n: number, size: number): [Int32Array, Int32Array, Float64Array] => {
    const i0 = new Int32Array(n), i1 = new Int32Array(n), w = new Float64Array(n);
    for (let d = 0; d < n; d++) {
      let f = (d + 0.5) / scale - 0.5;
      let s = Math.floor(f);
      f -= s;
      if (s < 0) (s = 0), (f = 0);
      if (s >= size - 1) (s = size - 1), (f = 0);
      i0[d] = s;
      i1[d] = Math.min(s + 1, size - 1);
      w[d] = f;
    }
    return [i0, i1, w];
  };
  const [y0, y1, wy] = taps(height, sh);
  const [x0, x1, wx] = taps(width, sw);
  const data = new Float32Array(3 * height * width);
  const plane = height * width;
  for (let c = 0; c < 3; c++) {
    const m = means[c]!;
    const ch = cn >= 3 ? c : 0;
    const at = (y: number, x: number) => px[(y * sw + (flipped ? sw - 1 - x : x)) * cn + ch]! - m;
    for (let y = 0; y < height; y++) {
      const ly = wy[y]!;
      for (let x = 0; x < width; x++) {
        const lx = wx[x]!;
        const top = (1 - lx) * at(y0[y]!, x0[x]!) + lx * at(y0[y]!, x1[x]!);
        const bottom = (1 - lx) * at(y1[y]!, x0[x]!) + lx * at(y1[y]!, x1[x]!);
        data[c * plane + y * width + x] = (1 - ly) * top + ly * bottom;
      }
    }
  }
  return { data, height, width, scale };
}

/** Decode an image file to BGR bytes with sharp (imported on first use: its native build is optional). */
export async function readRoidbImage(path: string): Promise<RoidbImage> {
  const sharp = await loadSharp('reading training images', (message, cause) => new LayerError(message, { cause }));
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const out = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    if (info.channels >= 3) {
      out[3 * i] = data[info.channels * i + 2]!;
      out[3 * i + 1] = data[info.channels * i + 1]!;
      out[3 * i + 2] = data[info.channels * i]!;
    } else out.fill(data[info.channels * i]!, 3 * i, 3 * i + 3);
  }
  return { height: info.height, width: info.width, channels: 3, data: out };
}

/**
 * The TypeScript port of py-faster-rcnn's RoIDataLayer (its training data layer, with an RPN).
 * - No bottoms; tops data (1 × 3 × H × W), im_info (1 × 3: [H, W, scale]) and gt_boxes (G × 5 rows
 *   [x1, y1, x2, y2, class] in input pixels), in that order.
 * - param_str: `'num_classes'`. SCALES, MAX_SIZE, PIXEL_MEANS, ASPECT_GROUPING and IMS_PER_BATCH
 *   (which must be 1 with an RPN) come from the configuration.
 * - The roidb comes from the caller, as train.py hands it to `set_roidb`: `setRoidb(net, roidb)`.
 *   The order is a permutation drawn from the layer's rng (landscape and portrait images paired
 *   with ASPECT_GROUPING) and drawn again when fewer than IMS_PER_BATCH + 1 entries are left, as
 *   the Python does (so each pass skips its last entry); each image draws one of SCALES.
 * - `prepare()` (awaited by Net.prepare and the solver) reads and decodes the next image and builds
 *   its minibatch; forward copies it into the tops. Entries holding decoded pixels need no prepare.
 */
export class PyRoIDataLayer implements PythonLayerImpl {
  readonly numClasses: number;
  readonly config: FasterRcnnConfig;
  private roidb: readonly RoidbEntry[] | null = null;
  private perm: number[] = [];
  private cur = 0;
  private pending: RoiMinibatch | null = null;

  constructor(
    private readonly self: PythonLayerSelf,
    config: FasterRcnnConfigOverrides = {},
  ) {
    this.numClasses = readParamStr(self).num('num_classes');
    if (!(Number.isInteger(this.numClasses) && this.numClasses >= 1)) self.fail(`num_classes must be a positive integer (got ${this.numClasses})`);
    this.config = fasterRcnnConfig(config);
    const train = this.config.TRAIN;
    if (!train.HAS_RPN) self.fail('only TRAIN.HAS_RPN (end-to-end Faster R-CNN: tops data, im_info, gt_boxes) is ported; Fast R-CNN with precomputed proposals is not');
    if (train.IMS_PER_BATCH !== 1) self.fail(`with an RPN, TRAIN.IMS_PER_BATCH must be 1 (single-image batches only), got ${train.IMS_PER_BATCH}`);
  }

  /** py-faster-rcnn's set_roidb: the entries to train on (see getTrainingRoidb); draws the first order. */
  setRoidb(roidb: readonly RoidbEntry[]): void {
    if (roidb.length === 0) this.self.fail('setRoidb: the roidb is empty');
    roidb.forEach((e, i) => {
      const what = `setRoidb: entry ${i}`;
      if (typeof e.image !== 'string' && !(e.image && e.image.data instanceof Uint8Array)) this.self.fail(`${what}: image must be a file path or decoded pixels { height, width, channels, data }`);
      if (!(e.width > 0 && e.height > 0)) this.self.fail(`${what}: width and height must be positive (got ${e.width} × ${e.height})`);
      if (e.boxes.length !== e.gt_classes.length) this.self.fail(`${what}: ${e.boxes.length} boxes but ${e.gt_classes.length} gt_classes`);
      e.boxes.forEach((b, j) => {
        if (b.length !== 4 || b.some((v) => !Number.isFinite(v))) this.self.fail(`${what}: box ${j} must be [x1, y1, x2, y2] (got [${b.join(', ')}])`);
      });
      for (const c of e.gt_classes) {
        if (!(Number.isInteger(c) && c >= 0 && c < this.numClasses)) this.self.fail(`${what}: class ${c} is not one of the ${this.numClasses} classes ('num_classes')`);
      }
    });
    this.roidb = roidb;
    this.pending = null;
    this.shuffle();
  }

  /** The entries this layer trains on, or null before setRoidb. */
  get entries(): readonly RoidbEntry[] | null {
    return this.roidb;
  }

  setup(bottom: Blob[], top: Blob[]): void {
    if (bottom.length !== 0) this.self.fail(`takes no bottoms, got ${bottom.length}`);
    if (top.length !== 3) this.self.fail(`has 3 tops with an RPN (data, im_info, gt_boxes), got ${top.length}`);
    const train = this.config.TRAIN;
    top[0]!.reshape([train.IMS_PER_BATCH, 3, Math.max(...train.SCALES), train.MAX_SIZE]);
    top[1]!.reshape([1, 3]);
    top[2]!.reshape([1, 4]);
  }

  reshape(): void {}

  /** Reads and prepares the next minibatch (its image decoded) unless one is waiting. */
  async prepare(): Promise<void> {
    if (!this.roidb || this.pending) return;
    const entry = this.roidb[this.nextIndex()]!;
    const scaleIndex = this.self.rng.int(this.config.TRAIN.SCALES.length);
    const image = typeof entry.image === 'string' ? await readRoidbImage(entry.image) : entry.image;
    this.pending = this.minibatch(entry, image, scaleIndex);
  }

  forward(_bottom: Blob[], top: Blob[]): void {
    if (!this.roidb) {
      this.self.fail('no roidb: hand the training entries to the layer first, with setRoidb(net, roidb) (py-faster-rcnn: net.layers[0].set_roidb(roidb))');
    }
    let mb = this.pending;
    if (!mb) {
      const entry = this.roidb[this.nextIndex()]!;
      if (typeof entry.image === 'string') {
        this.self.fail(`the next image (${entry.image}) is not read yet: await net.prepare() before each forward (the solver does)`);
      }
      mb = this.minibatch(entry, entry.image, this.self.rng.int(this.config.TRAIN.SCALES.length));
    }
    this.pending = null;
    top[0]!.reshape([1, 3, mb.height, mb.width]);
    top[0]!.mutableCpuData().set(mb.data);
    top[1]!.reshape([1, 3]);
    top[1]!.mutableCpuData().set([mb.height, mb.width, mb.scale]);
    top[2]!.reshape([mb.gtBoxes.length / 5, 5]);
    top[2]!.mutableCpuData().set(mb.gtBoxes);
  }

  /** No gradient: a data layer. */
  backward(): void {}

  private minibatch(entry: RoidbEntry, image: RoidbImage, scaleIndex: number): RoiMinibatch {
    if (image.height !== entry.height || image.width !== entry.width) {
      this.self.fail(`image ${typeof entry.image === 'string' ? entry.image : '(pixels)'} is ${image.width} × ${image.height}, but its roidb entry says ${entry.width} × ${entry.height}`);
    }
    const { TRAIN, PIXEL_MEANS } = this.config;
    const { data, height, width, scale } = prepareTrainingImage(image, entry.flipped, TRAIN.SCALES[scaleIndex]!, TRAIN.MAX_SIZE, PIXEL_MEANS);
    const gt: number[] = [];
    entry.boxes.forEach((b, j) => {
      if (entry.gt_classes[j] !== 0) gt.push(b[0]! * scale, b[1]! * scale, b[2]! * scale, b[3]! * scale, entry.gt_classes[j]!);
    });
    return { data, height, width, scale, gtBoxes: Float32Array.from(gt) };
  }

  /** The next entry's index, reshuffling first when the Python would. */
  private nextIndex(): number {
    const ims = this.config.TRAIN.IMS_PER_BATCH;
    if (this.cur + ims >= this.roidb!.length) this.shuffle();
    const i = this.perm[this.cur]!;
    this.cur += ims;
    return i;
  }

  private shuffle(): void {
    const roidb = this.roidb!;
    const rng = this.self.rng;
    const all = roidb.map((_, i) => i);
    if (this.config.TRAIN.ASPECT_GROUPING) {
      // Landscape (width ≥ height) then portrait, each shuffled; then pairs shuffled as units (an
      // odd count leaves a last single, where the Python's reshape would fail).
      const inds = [...permutation(all.filter((i) => roidb[i]!.width >= roidb[i]!.height), rng), ...permutation(all.filter((i) => roidb[i]!.width < roidb[i]!.height), rng)];
      const pairs = Array.from({ length: Math.ceil(inds.length / 2) }, (_, p) => inds.slice(2 * p, 2 * p + 2));
      this.perm = permutation(pairs.map((_, p) => p), rng).flatMap((p) => pairs[p]!);
    } else {
      this.perm = permutation(all, rng);
    }
    this.cur = 0;
  }
}

/** A factory for registerPythonLayer, with the configuration's overrides (SCALES, MAX_SIZE, PIXEL_MEANS, …). */
export function createRoIDataLayer(config: FasterRcnnConfigOverrides = {}): PythonLayerFactory {
  fasterRcnnConfig(config);
  return (_paramStr, self) => new PyRoIDataLayer(self, config);
}

/** The port with py-faster-rcnn's end2end configuration (FASTER_RCNN_TRAIN_CONFIG). */
export const pyFasterRcnnRoIDataLayer: PythonLayerFactory = createRoIDataLayer();

/**
 * The RoIDataLayer port inside a net (or a net's Python layer): the first layer that runs it, or
 * the one named `name`. Throws a LayerError when there is none.
 */
export function roiDataLayerOf(net: { layers: readonly Layer[]; layerNames?: readonly string[] } | Layer, name?: string): PyRoIDataLayer {
  const layers = 'layers' in net ? net.layers : [net];
  const key = `${PY_FASTER_RCNN_ROI_DATA.module}.${PY_FASTER_RCNN_ROI_DATA.layer}`;
  for (const layer of layers) {
    if (!(layer instanceof PythonLayer) || (name !== undefined && layer.name !== name)) continue;
    const impl = layer.implementation;
    if (impl instanceof PyRoIDataLayer) return impl;
  }
  throw new LayerError(
    `no ${key} layer${name !== undefined ? ` named '${name}'` : ''} runs the TypeScript RoIDataLayer port ` +
      `(register it with registerContribLayers, or registerPythonLayer('${PY_FASTER_RCNN_ROI_DATA.module}', '${PY_FASTER_RCNN_ROI_DATA.layer}', createRoIDataLayer(config)))`,
  );
}

/** py-faster-rcnn's `net.layers[0].set_roidb(roidb)`: hands the roidb to the net's RoIDataLayer port. */
export function setRoidb(net: { layers: readonly Layer[] } | Layer, roidb: readonly RoidbEntry[], name?: string): PyRoIDataLayer {
  const layer = roiDataLayerOf(net, name);
  layer.setRoidb(roidb);
  return layer;
}

/** What each data-parallel replica gets (roidb-replica.ts): the whole training roidb and the config (structured-clonable). */
export interface RoidbReplicaData {
  roidb: readonly RoidbEntry[];
  config?: FasterRcnnConfigOverrides;
}

/** The entries of `roidb` replica `rank` of `count` reads: every count-th from its rank on. */
export function roidbShare(roidb: readonly RoidbEntry[], rank: number, count: number): RoidbEntry[] {
  const share = roidb.filter((_, i) => i % count === rank);
  if (share.length === 0) {
    throw new LayerError(`the roidb has ${roidb.length} entries, too few for ${count} replicas (each needs one at least)`);
  }
  return share;
}
