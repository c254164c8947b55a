import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { logger, type Blob, type Rng } from '@caffe-ts/blob';
import { type BlobCounts, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import { hasField, type ImageDataParameter, type LayerParameter } from '@caffe-ts/proto';
import { DataTransformer } from './data-transformer.js';
import { resolveDataPath, resolveMeanFile } from './data-sources.js';
import { DataError } from './errors.js';
import { parseImageList, resolveImagePath, type ImageListEntry } from './image-list.js';
import { readImage, type PixelImage } from './image-io.js';
import { BasePrefetchingDataLayer, type Batch } from './prefetching-layer.js';
import { DecodePoolUnavailable } from './decode-pool.js';
import type { DecodeItem, ItemResult } from './decode-protocol.js';
import { layerShard, skipsOrdinal, type Shard } from './shard.js';

const log = logger('image_data_layer.ts');

/*
 * Priming: the list file and the first image
 * ------------------------------------------
 * Caffe's ImageData layer reads its list and one image in set-up to shape its tops. Decoding is
 * asynchronous here, so the layer definition's `prime` hook (awaited by `Net.create`) reads the
 * list and decodes the first listed image beforehand; set-up finds them by (layer name, resolved
 * list path). With new_height/new_width set, the shape is known without decoding, so a layer that
 * was not primed can still be set up.
 */

interface PrimedList {
  entries: ImageListEntry[];
  /** [channels, height, width] of the first listed image as the layer reads it. */
  firstShape: [number, number, number];
}

const PRIMED_KEY = Symbol.for('caffe-ts.io-leveldb.imageLists');

function primedLists(): Map<string, PrimedList> {
  const g = globalThis as Record<symbol, unknown>;
  let m = g[PRIMED_KEY] as Map<string, PrimedList> | undefined;
  if (!m) {
    m = new Map();
    g[PRIMED_KEY] = m;
  }
  return m;
}

const listKey = (layer: string, path: string, p: ImageDataParameter) =>
  [layer, path, p.root_folder, p.new_height, p.new_width, p.is_color].join('\u0000');

function who(name: string): string {
  return `ImageData layer '${name}'`;
}

function resolveList(name: string, source: string, netFile: string | undefined): string {
  const { path, tried } = resolveDataPath(source, netFile);
  if (path === null) throw new DataError(`${who(name)}: cannot open image list '${source}': no such file (looked for ${tried.join(', ')})`);
  return path;
}

function readOptions(p: ImageDataParameter) {
  return { height: p.new_height, width: p.new_width, isColor: p.is_color };
}

/** Read the list and decode its first image, so that an ImageData layer can be set up synchronously. */
export async function primeImageDataLayer(param: LayerParameter, options: { netFile?: string } = {}): Promise<void> {
  const p = param.image_data_param;
  if (!p || !p.source) throw new DataError(`${who(param.name)}: image_data_param.source is required`);
  const path = resolveList(param.name, p.source, options.netFile);
  const entries = parseImageList(await readFile(path, 'utf8'), p.source);
  if (entries.length === 0) throw new DataError(`${who(param.name)}: image list '${p.source}' is empty`);
  const first = entries[0]!;
  let img: PixelImage;
  try {
    img = await readImage(resolveImagePath(p.root_folder, first.path, options.netFile), readOptions(p));
  } catch (e) {
    throw new DataError(`${who(param.name)}: Could not load ${first.path}: ${(e as Error).message}`, { cause: e });
  }
  primedLists().set(listKey(param.name, path, p), { entries, firstShape: [img.channels, img.height, img.width] });
}

/**
 * Caffe's ImageData layer: `image_data_param.source` lists `path label` lines; each image
 * (`root_folder + path`) is read in colour (BGR) or gray (`is_color: false`), resized with
 * INTER_LINEAR to new_height × new_width when both are set, transformed (`transform_param`) and
 * batched with its label. `shuffle` permutes the list with the layer's generator at start and at
 * every pass; `rand_skip` starts at a random line. Decoding runs in the prefetcher.
 */
export class ImageDataLayer extends BasePrefetchingDataLayer {
  readonly type: string = 'ImageData';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, exactNumTopBlobs: 2 };

  readonly netFile: string | undefined;
  private lines: ImageListEntry[] = [];
  private linesId = 0;
  private transformer: DataTransformer | null = null;
  private prefetchRng: Rng | null = null;
  private p: ImageDataParameter | null = null;
  /** Data-parallel shard (context.shard): only lines whose ordinal % count == index are read. */
  readonly shard: Shard | null;
  /** Lines stepped over so far, wraps included: the ordinal of the next line. */
  private ordinal = 0;
  /** The item shape [C, h, w] batches are laid out for before their first image says (the last batch's). */
  private expectedItemShape: number[] = [];

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(param, context);
    this.netFile = context.netFile;
    this.shard = layerShard(context, who(param.name));
  }

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const p = this.param.image_data_param;
    if (!p || !p.source) this.fail('image_data_param.source is required');
    this.p = p;
    this.check(
      (p.new_height === 0 && p.new_width === 0) || (p.new_height > 0 && p.new_width > 0),
      () => 'Current implementation requires new_height and new_width to be set at the same time.',
    );
    this.check(p.batch_size > 0, () => 'Positive batch size required');
    log.info(`Opening file ${p.source}`);
    const listPath = resolveList(this.name, p.source, this.netFile);
    const primed = primedLists().get(listKey(this.name, listPath, p));
    this.lines = primed ? primed.entries.slice() : parseImageList(readFileSync(listPath, 'utf8'), p.source);
    if (this.lines.length === 0) this.fail('File is empty');
    let firstShape: [number, number, number];
    if (primed) firstShape = primed.firstShape;
    else if (p.new_height > 0) firstShape = [p.is_color ? 3 : 1, p.new_height, p.new_width];
    else {
      this.fail(
        `image list '${p.source}' was not primed (its first image gives the tops' shape); build the net with await Net.create(...), ` +
          'or await primeImageDataLayer(layerParameter) first',
      );
    }

    if (p.shuffle) {
      log.info('Shuffling data');
      this.prefetchRng = this.rng.fork();
      this.shuffleImages();
    }
    log.info(`A total of ${this.lines.length} images.`);
    this.linesId = 0;
    if (p.rand_skip > 0) {
      const skip = this.rng.int(p.rand_skip);
      log.info(`Skipping first ${skip} data points.`);
      this.check(this.lines.length > skip, () => 'Not enough points to skip');
      this.linesId = skip;
      this.ordinal = skip;
    }

    this.transformer = new DataTransformer(this.param.transform_param, this.phase, this.rng.fork(), {
      owner: who(this.name),
      readFile: this.meanFileReader(),
    });
    const [c, h, w] = firstShape;
    const shape = this.transformer.inferBlobShape(this.shapeOnly(c, h, w));
    shape[0] = p.batch_size;
    top[0]!.reshape(shape);
    this.expectedItemShape = shape.slice(1);
    log.info(`output data size: ${shape.join(',')}`);
    top[1]!.reshape([p.batch_size]);
    this.batchSize = p.batch_size;
    this.outputLabels = true;
    // Start the decode workers now, while the rest of the net is set up.
    void this.decodeWorkers(this.transformer.spec);
    this.startPrefetch();
  }

  /** A Datum carrying only a shape, for inferBlobShape. */
  private shapeOnly(channels: number, height: number, width: number) {
    return { channels, height, width, encoded: false } as Parameters<DataTransformer['inferBlobShape']>[0];
  }

  private meanFileReader(): ((path: string) => Uint8Array) | undefined {
    const tp = this.param.transform_param;
    if (!tp || !hasField(tp, 'mean_file') || !tp.mean_file) return undefined;
    const resolved = resolveMeanFile(who(this.name), tp.mean_file, this.netFile);
    return (path) => readFileSync(path === tp.mean_file ? resolved : path);
  }

  private shuffleImages(): void {
    const a = this.lines;
    const rng = this.prefetchRng!;
    for (let i = a.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }

  /**
   * The lines the layer steps through next, in order (read ahead, the same order Caffe reads); with
   * a shard, the layer reads only every count-th of them.
   */
  get upcoming(): readonly ImageListEntry[] {
    return [...this.lines.slice(this.linesId), ...this.lines.slice(0, this.linesId)];
  }

  protected sourceLabel(): string {
    return `image list '${this.p?.source}'`;
  }

  /**
   * Pick batch_size lines (wrapping, and reshuffling at each wrap, as Caffe), decode them
   * concurrently, then transform them in order (so the generator draws come in Caffe's order).
   * The first image of the batch fixes its shape.
   */
  /**
   * With decode workers, up to 4 batches are decoded at once (the lines and random draws of each
   * are taken synchronously at the start of loadBatch, so in call order).
   */
  protected override loadsInFlight(): number {
    return this.decodeWorkersActive ? this.prefetchCount : 1;
  }

  protected async loadBatch(): Promise<Batch> {
    const p = this.p!;
    const picked: ImageListEntry[] = [];
    const step = (): ImageListEntry => {
      const entry = this.lines[this.linesId]!;
      this.ordinal++;
      if (++this.linesId >= this.lines.length) {
        this.linesId = 0;
        if (p.shuffle) this.shuffleImages();
      }
      return entry;
    };
    for (let i = 0; i < this.batchSize; i++) {
      while (skipsOrdinal(this.shard, this.phase, this.ordinal)) step();
      picked.push(step());
    }
    const t = this.transformer!;
    const n = this.batchSize;
    // The random crop/mirror choices, in list order, whichever thread transforms.
    const draws = picked.map(() => t.draw());
    const paths = picked.map((entry) => resolveImagePath(p.root_folder, entry.path, this.netFile));
    const done = new Map<number, ItemResult>();
    let batch: Batch | null = null;
    const workers = await this.decodeWorkers(t.spec);
    if (workers) {
      batch = this.takeBuffer([n, ...this.expectedItemShape], true);
      const items: DecodeItem[] = picked.map((_, index) => ({
        index,
        source: { kind: 'file', path: paths[index]!, height: p.new_height, width: p.new_width, isColor: p.is_color },
        draws: draws[index]!,
      }));
      try {
        const results = await workers.pool.run(workers.specId, this.dtype, items, batch.data.buffer as SharedArrayBuffer, this.expectedItemShape);
        for (const r of results) if (!r.error) done.set(r.index, r);
      } catch (e) {
        // DecodePoolUnavailable: the pool failed (logged once); this batch is read here instead.
        if (!(e instanceof DecodePoolUnavailable)) {
          this.returnBuffer(batch);
          throw e;
        }
      }
    }
    try {
      // What the workers did not do (everything without workers) is read here: sharp decodes
      // concurrently on libuv's pool, and a failure gives the main-thread error naming the image.
      const images = await Promise.all(
        picked.map(async (entry, i) => {
          if (done.has(i)) return null;
          try {
            return await readImage(paths[i]!, readOptions(p));
          } catch (e) {
            throw new DataError(`${who(this.name)}: Could not load ${entry.path}: ${(e as Error).message}`, { cause: e });
          }
        }),
      );
      const dims = (i: number): [number, number, number] => {
        const img = images[i];
        return img ? [img.channels, img.height, img.width] : done.get(i)!.image!;
      };
      const [c0, h0, w0] = dims(0);
      const itemShape = t.inferBlobShape(this.shapeOnly(c0, h0, w0)).slice(1);
      const itemSize = itemShape.reduce((a, b) => a * b, 1);
      if (!batch || !sameShape(batch.shape.slice(1), itemShape)) {
        if (batch) this.returnBuffer(batch);
        batch = this.takeBuffer([n, ...itemShape], workers !== null);
      }
      // Cropping makes every image crop_size square; otherwise the sizes must agree.
      const cropping = (t.param?.crop_size ?? 0) > 0;
      for (let i = 0; i < n; i++) {
        const [c, h, w] = dims(i);
        if (c !== c0 || (!cropping && (h !== h0 || w !== w0))) {
          throw new DataError(
            `${who(this.name)}: image ${picked[i]!.path} is ${c}×${h}×${w}, but the batch's first image ` +
              `(${picked[0]!.path}) is ${c0}×${h0}×${w0}; use batch_size 1 or new_height/new_width for images of several sizes`,
          );
        }
        const img = images[i];
        if (img) t.transformImage(img, batch.data, i * itemSize, draws[i]!);
        else if (!done.get(i)!.placed) batch.data.set(done.get(i)!.data!, i * itemSize);
        batch.label![i] = picked[i]!.label;
      }
      this.expectedItemShape = itemShape;
    } catch (e) {
      if (batch) this.returnBuffer(batch);
      throw e;
    }
    batch.keys = picked.map((e) => e.path);
    return batch;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, k) => d === b[k]);
}

export const imageDataLayerDef: LayerDef = {
  type: 'ImageData',
  create: (param, context) => new ImageDataLayer(param, context),
  prime: async (param, context) => {
    await primeImageDataLayer(param, { netFile: context.netFile });
  },
};
