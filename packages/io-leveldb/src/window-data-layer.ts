import { readFileSync } from 'node:fs';
import { blobProtoData, blobProtoShape, logger, type Blob, type Rng } from '@caffe-ts/blob';
import { type BlobCounts, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import { decodeBlobProto, hasField, type LayerParameter, type WindowDataParameter } from '@caffe-ts/proto';
import { formatG } from './format.js';
import { resolveDataPath, resolveMeanFile } from './data-sources.js';
import { DataError } from './errors.js';
import { resolveImagePath } from './image-list.js';
import { cropImage, decodeImage, flipImage, readImage, resizeImage, type PixelImage } from './image-io.js';
import { BasePrefetchingDataLayer, type Batch } from './prefetching-layer.js';

const log = logger('window_data_layer.ts');

/** One window of the windows file (Caffe's vector<float> of IMAGE_INDEX, LABEL, OVERLAP, X1, Y1, X2, Y2). */
export interface Window {
  imageIndex: number;
  label: number;
  overlap: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** One image of the windows file. */
export interface WindowImage {
  /** root_folder + the path as written. */
  path: string;
  channels: number;
  height: number;
  width: number;
}

export interface WindowFile {
  /** Indexed by the `# image_index` of each block. */
  images: WindowImage[];
  foreground: Window[];
  background: Window[];
  /** Windows per class (background is class 0), as Caffe's label_hist. */
  labelHistogram: Map<number, number>;
  /** The `channels` of the last image block (Caffe shapes the data top with it). */
  channels: number;
  /** The last image index read. */
  lastIndex: number;
}

/**
 * Parse an R-CNN windows file (Caffe's WindowData format): repeated blocks of
 * `# image_index`, `img_path`, `channels`, `height`, `width`, `num_windows`, then num_windows lines
 * `class_index overlap x1 y1 x2 y2`. Windows with overlap ≥ fg_threshold are foreground (their
 * class must be positive); below bg_threshold, background (class and overlap set to 0); others are
 * dropped.
 */
export function parseWindowFile(text: string, options: { fgThreshold: number; bgThreshold: number; rootFolder?: string; name?: string }): WindowFile {
  const name = options.name ?? '<windows>';
  const tokens = text.split(/\s+/).filter((t) => t.length > 0);
  let at = 0;
  const word = (what: string): string => {
    if (at >= tokens.length) throw new DataError(`${name}: the file ends where ${what} was expected`);
    return tokens[at++]!;
  };
  const int = (what: string): number => {
    const w = word(what);
    if (!/^[+-]?\d+$/.test(w)) throw new DataError(`${name}: expected ${what} (an integer), found '${w}'`);
    return Number(w);
  };
  const num = (what: string): number => {
    const w = word(what);
    const v = Number(w);
    if (!Number.isFinite(v)) throw new DataError(`${name}: expected ${what} (a number), found '${w}'`);
    return v;
  };
  if (tokens.length === 0) throw new DataError(`${name}: Window file is empty`);
  const out: WindowFile = { images: [], foreground: [], background: [], labelHistogram: new Map([[0, 0]]), channels: 0, lastIndex: -1 };
  const fg = Math.fround(options.fgThreshold);
  const bg = Math.fround(options.bgThreshold);
  while (at < tokens.length) {
    const hash = word("'#'");
    if (hash !== '#') throw new DataError(`${name}: expected '#' to start an image block, found '${hash}'`);
    const imageIndex = int('the image index');
    const path = (options.rootFolder ?? '') + word('the image path');
    const channels = int('channels');
    const height = int('height');
    const width = int('width');
    out.images[imageIndex] = { path, channels, height, width };
    out.channels = channels;
    out.lastIndex = imageIndex;
    const n = int('num_windows');
    for (let i = 0; i < n; i++) {
      const label = int('class_index');
      const overlap = Math.fround(num('overlap'));
      const [x1, y1, x2, y2] = [int('x1'), int('y1'), int('x2'), int('y2')];
      if (overlap >= fg) {
        if (!(label > 0)) throw new DataError(`${name}: image ${imageIndex}: foreground window (overlap ${overlap}) has class ${label}; it must be positive`);
        out.foreground.push({ imageIndex, label, overlap, x1, y1, x2, y2 });
        out.labelHistogram.set(label, (out.labelHistogram.get(label) ?? 0) + 1);
      } else if (overlap < bg) {
        out.background.push({ imageIndex, label: 0, overlap: 0, x1, y1, x2, y2 });
        out.labelHistogram.set(0, out.labelHistogram.get(0)! + 1);
      }
    }
    if (imageIndex % 100 === 0) log.info(`num: ${imageIndex} ${path} ${channels} ${height} ${width} windows to process: ${n}`);
  }
  return out;
}

/** C's round(): halves away from zero. */
const cRound = (x: number) => (x < 0 ? -Math.round(-x) : Math.round(x));
const f32 = Math.fround;

/** Where one sampled window goes in the output: the warped crop and its offset in the crop_size square. */
export interface WindowPlacement {
  /** The region of the image to cut (inclusive corners, clipped to the image). */
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  /** The size the region is warped to. */
  warpWidth: number;
  warpHeight: number;
  /** Offset of the warped region inside the crop_size × crop_size output. */
  padW: number;
  padH: number;
}

/**
 * Caffe's window geometry: with context_pad or crop_mode 'square', the window is expanded (to a
 * square first, for 'square') so that once warped to crop_size there are context_pad pixels of
 * context on each side; the part outside the image is clipped and left as zero padding (mirrored
 * too when the crop is mirrored). Arithmetic in float32, as Caffe's Dtype float.
 */
export function placeWindow(
  w: Pick<Window, 'x1' | 'y1' | 'x2' | 'y2'>,
  imageWidth: number,
  imageHeight: number,
  options: { cropSize: number; contextPad: number; square: boolean; mirror: boolean },
): WindowPlacement {
  const crop = options.cropSize;
  let { x1, y1, x2, y2 } = w;
  let warpWidth = crop;
  let warpHeight = crop;
  let padW = 0;
  let padH = 0;
  if (options.contextPad > 0 || options.square) {
    const contextScale = f32(crop / f32(crop - 2 * options.contextPad));
    let halfHeight = f32((y2 - y1 + 1) / 2);
    let halfWidth = f32((x2 - x1 + 1) / 2);
    const centerX = f32(x1 + halfWidth);
    const centerY = f32(y1 + halfHeight);
    if (options.square) {
      if (halfHeight > halfWidth) halfWidth = halfHeight;
      else halfHeight = halfWidth;
    }
    x1 = cRound(f32(centerX - f32(halfWidth * contextScale)));
    x2 = cRound(f32(centerX + f32(halfWidth * contextScale)));
    y1 = cRound(f32(centerY - f32(halfHeight * contextScale)));
    y2 = cRound(f32(centerY + f32(halfHeight * contextScale)));
    const unclippedHeight = y2 - y1 + 1;
    const unclippedWidth = x2 - x1 + 1;
    let padX1 = Math.max(0, -x1);
    let padY1 = Math.max(0, -y1);
    let padX2 = Math.max(0, x2 - imageWidth + 1);
    let padY2 = Math.max(0, y2 - imageHeight + 1);
    x1 += padX1;
    x2 -= padX2;
    y1 += padY1;
    y2 -= padY2;
    const clippedHeight = y2 - y1 + 1;
    const clippedWidth = x2 - x1 + 1;
    const scaleX = f32(crop / unclippedWidth);
    const scaleY = f32(crop / unclippedHeight);
    warpWidth = cRound(f32(clippedWidth * scaleX));
    warpHeight = cRound(f32(clippedHeight * scaleY));
    padX1 = cRound(f32(padX1 * scaleX));
    padX2 = cRound(f32(padX2 * scaleX));
    padY1 = cRound(f32(padY1 * scaleY));
    padY2 = cRound(f32(padY2 * scaleY));
    padH = padY1;
    padW = options.mirror ? padX2 : padX1;
    if (padH + warpHeight > crop) warpHeight = crop - padH;
    if (padW + warpWidth > crop) warpWidth = crop - padW;
  }
  return { x1, y1, x2, y2, warpWidth, warpHeight, padW, padH };
}

/**
 * Caffe's WindowData layer (R-CNN fine-tuning): each batch samples batch_size·fg_fraction
 * foreground windows and the rest background windows (background first, as Caffe), uniformly at
 * random with the layer's generator; each window is cut from its image (read in colour, BGR, or
 * decoded from the bytes cached at set-up with cache_images), expanded by context_pad
 * (crop_mode 'warp' or 'square'), warped to crop_size × crop_size with INTER_LINEAR, mirrored at
 * random with transform_param.mirror, and written as (pixel − mean) · window_data_param.scale,
 * the mean from transform_param.mean_file (its centre crop_size square) or mean_value. Tops:
 * data (batch × channels × crop_size × crop_size) and label (batch).
 */
export class WindowDataLayer extends BasePrefetchingDataLayer {
  readonly type: string = 'WindowData';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, exactNumTopBlobs: 2 };

  readonly netFile: string | undefined;
  private windows: WindowFile | null = null;
  private cache: (Uint8Array | undefined)[] = [];
  private p: WindowDataParameter | null = null;
  private cropSize = 0;
  private mirror = false;
  private channels = 0;
  private mean: { data: Float32Array; height: number; width: number } | null = null;
  private meanValues: number[] = [];
  private prefetchRng: Rng | null = null;

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(param, context);
    this.netFile = context.netFile;
  }

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const p = this.param.window_data_param;
    if (!p || !p.source) this.fail('window_data_param.source is required');
    this.p = p;
    const tp = this.param.transform_param;
    log.info(
      'Window data layer:\n' +
        `  foreground (object) overlap threshold: ${formatG(p.fg_threshold)}\n` +
        `  background (non-object) overlap threshold: ${formatG(p.bg_threshold)}\n` +
        `  foreground sampling fraction: ${formatG(p.fg_fraction)}\n` +
        `  cache_images: ${p.cache_images ? 1 : 0}\n` +
        `  root_folder: ${p.root_folder}`,
    );
    const { path: source, tried } = resolveDataPath(p.source, this.netFile);
    if (source === null) this.fail(`Failed to open window file ${p.source} (looked for ${tried.join(', ')})`);
    let parsed: WindowFile;
    try {
      parsed = parseWindowFile(readFileSync(source, 'utf8'), { fgThreshold: p.fg_threshold, bgThreshold: p.bg_threshold, rootFolder: p.root_folder, name: p.source });
    } catch (e) {
      this.fail((e as Error).message);
    }
    this.windows = parsed;
    if (p.cache_images) {
      this.cache = parsed.images.map((img) => {
        if (!img) return undefined;
        try {
          return readFileSync(resolveImagePath('', img.path, this.netFile));
        } catch (e) {
          this.fail(`Could not open or find file ${img.path}: ${(e as Error).message}`);
        }
      });
    }
    log.info(`Number of images: ${parsed.lastIndex + 1}`);
    for (const [label, count] of [...parsed.labelHistogram.entries()].sort((a, b) => a[0] - b[0])) {
      log.info(`class ${label} has ${count} samples`);
    }
    log.info(`Amount of context padding: ${p.context_pad}`);
    log.info(`Crop mode: ${p.crop_mode}`);
    this.check(p.crop_mode === 'warp' || p.crop_mode === 'square', () => `crop_mode must be 'warp' or 'square' (got '${p.crop_mode}')`);

    this.cropSize = tp?.crop_size ?? 0;
    this.mirror = tp?.mirror ?? false;
    this.check(this.cropSize > 0, () => 'transform_param.crop_size must be positive');
    this.check(2 * p.context_pad < this.cropSize, () => `context_pad ${p.context_pad} leaves nothing of a ${this.cropSize} crop`);
    this.check(p.batch_size > 0, () => `batch_size must be positive (got ${p.batch_size})`);
    this.channels = parsed.channels;
    top[0]!.reshape([p.batch_size, this.channels, this.cropSize, this.cropSize]);
    log.info(`output data size: ${p.batch_size},${this.channels},${this.cropSize},${this.cropSize}`);
    top[1]!.reshape([p.batch_size]);

    if (tp && hasField(tp, 'mean_file') && tp.mean_file) {
      if (tp.mean_value.length > 0) this.fail('Cannot specify mean_file and mean_value at the same time');
      log.info(`Loading mean file from: ${tp.mean_file}`);
      const proto = decodeBlobProto(readFileSync(resolveMeanFile(`WindowData layer '${this.name}'`, tp.mean_file, this.netFile)));
      const shape = blobProtoShape(proto);
      const values = blobProtoData(proto, `mean_file '${tp.mean_file}'`);
      const [height, width] = shape.slice(-2) as [number, number];
      const channels = shape.length >= 3 ? shape[shape.length - 3]! : 1;
      if (channels !== this.channels || height < this.cropSize || width < this.cropSize) {
        this.fail(`mean_file '${tp.mean_file}' is ${shape.join('×')}; it must hold ${this.channels} channels of at least ${this.cropSize}×${this.cropSize}`);
      }
      this.mean = { data: Float32Array.from(values), height, width };
    }
    if (tp && tp.mean_value.length > 0) {
      const mv = [...tp.mean_value];
      this.check(mv.length === 1 || mv.length === this.channels, () => `Specify either 1 mean_value or as many as channels: ${this.channels}`);
      this.meanValues = mv.length === 1 ? new Array<number>(this.channels).fill(mv[0]!) : mv;
    }
    this.prefetchRng = this.rng.fork();
    this.batchSize = p.batch_size;
    this.outputLabels = true;
    this.startPrefetch();
  }

  protected sourceLabel(): string {
    return `window file '${this.p?.source}'`;
  }

  /** The image of a window, decoded in colour (BGR). */
  private async image(index: number): Promise<PixelImage> {
    const info = this.windows!.images[index];
    if (!info) throw new DataError(`WindowData layer '${this.name}': window refers to image ${index}, which the window file does not describe`);
    const cached = this.cache[index];
    if (cached) return decodeImage(cached, 'color', info.path);
    return readImage(resolveImagePath('', info.path, this.netFile), { isColor: true });
  }

  protected async loadBatch(): Promise<Batch> {
    const p = this.p!;
    const w = this.windows!;
    const rng = this.prefetchRng!;
    const n = this.batchSize;
    const numFg = Math.trunc(f32(n * f32(p.fg_fraction)));
    const counts = [n - numFg, numFg];
    // Draw every window (and its mirror flag) first, in Caffe's order: background, then foreground.
    const picks: { window: Window; mirror: boolean }[] = [];
    for (let isFg = 0; isFg < 2; isFg++) {
      const pool = isFg ? w.foreground : w.background;
      if (counts[isFg]! > 0 && pool.length === 0) {
        throw new DataError(`WindowData layer '${this.name}': a batch needs ${counts[isFg]} ${isFg ? 'foreground' : 'background'} windows, but the window file has none`);
      }
      for (let k = 0; k < counts[isFg]!; k++) {
        const window = pool[rng.int(pool.length)]!;
        const mirror = this.mirror && rng.int(2) === 1;
        picks.push({ window, mirror });
      }
    }
    // Decode each needed image once, concurrently.
    const decoded = new Map<number, Promise<PixelImage>>();
    for (const { window } of picks) if (!decoded.has(window.imageIndex)) decoded.set(window.imageIndex, this.image(window.imageIndex));
    const images = new Map<number, PixelImage>();
    for (const [k, v] of decoded) images.set(k, await v);

    const crop = this.cropSize;
    const cn = this.channels;
    const batch = this.takeBuffer([n, cn, crop, crop]);
    const out = batch.data;
    out.fill(0);
    const scale = f32(p.scale);
    const mean = this.mean;
    const meanOff = mean ? Math.trunc((mean.width - crop) / 2) : 0;
    picks.forEach(({ window, mirror }, item) => {
      const img = images.get(window.imageIndex)!;
      if (img.channels !== cn) {
        throw new DataError(`WindowData layer '${this.name}': ${w.images[window.imageIndex]!.path} decodes to ${img.channels} channels; the window file says ${cn}`);
      }
      const place = placeWindow(window, img.width, img.height, { cropSize: crop, contextPad: p.context_pad, square: p.crop_mode === 'square', mirror });
      if (place.warpWidth < 1 || place.warpHeight < 1) {
        throw new DataError(`WindowData layer '${this.name}': window (${window.x1}, ${window.y1}, ${window.x2}, ${window.y2}) of image ${window.imageIndex} warps to nothing`);
      }
      let cut: PixelImage;
      try {
        cut = cropImage(img, place.x1, place.y1, place.x2 - place.x1 + 1, place.y2 - place.y1 + 1);
      } catch (e) {
        throw new DataError(`WindowData layer '${this.name}': window (${window.x1}, ${window.y1}, ${window.x2}, ${window.y2}) of image ${window.imageIndex}: ${(e as Error).message}`);
      }
      let warped = resizeImage(cut, place.warpHeight, place.warpWidth);
      if (mirror) warped = flipImage(warped);
      for (let h = 0; h < warped.height; h++) {
        for (let x = 0; x < warped.width; x++) {
          for (let c = 0; c < cn; c++) {
            const pixel = warped.data[(h * warped.width + x) * cn + c]!;
            const top = ((item * cn + c) * crop + h + place.padH) * crop + x + place.padW;
            let v: number;
            if (mean) v = (pixel - mean.data[(c * mean.height + h + meanOff + place.padH) * mean.width + x + meanOff + place.padW]!) * scale;
            else if (this.meanValues.length > 0) v = (pixel - this.meanValues[c]!) * scale;
            else v = pixel * scale;
            out[top] = v;
          }
        }
      }
      batch.label![item] = window.label;
    });
    return batch;
  }
}

export const windowDataLayerDef: LayerDef = {
  type: 'WindowData',
  create: (param, context) => new WindowDataLayer(param, context),
};
