import { allocArray, logger, type Blob } from '@caffe-ts/blob';
import { LayerError, type BlobCounts, type LayerContext, type LayerDef } from '@caffe-ts/layers';
import { hasField, registerSsdForkSchema, type Datum, type LayerParameter, type Message } from '@caffe-ts/proto';
import { ANNOTATION_BBOX, annotationGroups, decodeAnnotatedRecord, hasAnnotationType, type AnnotatedDatum } from './annotated-datum.js';
import { AnnotatedTransformer, planarToImage } from './annotated-transformer.js';
import { parseDbBackend } from './datum-db.js';
import { checkDatumSize, findPrimedSource, meanFileReaderFor, primeDataLayer, ShardedRecordReader, unprimedSourceMessage, type PrimedSource } from './data-sources.js';
import { DataError } from './errors.js';
import { decodeImage, type PixelImage } from './image-io.js';
import { BasePrefetchingDataLayer, type Batch } from './prefetching-layer.js';
import { RESIZE_FIT_SMALL_SIZE, type BoxGroup } from './ssd-bbox.js';
import { batchSamplerSpecs, type BatchSamplerSpec } from './ssd-sampler.js';
import { layerShard, type Shard } from './shard.js';

const log = logger('annotated_data_layer.ts');

/** Values per row of the BBOX label: item_id, group_label, instance_id, xmin, ymin, xmax, ymax, difficult. */
export const BBOX_LABEL_WIDTH = 8;

/**
 * The SSD fork's AnnotatedData layer (weiliu89/caffe, branch ssd): reads AnnotatedDatum records
 * from a LevelDB or LMDB (`data_param`), augments each image and its boxes
 * (`transform_param`'s distort_param, expand_param, resize_param, noise_param, emit_constraint,
 * mirror, crop; `annotated_data_param.batch_sampler` crops) and outputs
 *
 * - `data`: batch_size × C × H × W;
 * - `label` (optional second top): with annotations (the records' `type` set, or
 *   `annotated_data_param.anno_type`), 1 × 1 × N × 8, one row per box left in the batch,
 *   `[item_id, group_label, instance_id, xmin, ymin, xmax, ymax, difficult]` in item order, or a
 *   single row of −1 when no box is left; without, the records' Datum labels, batch_size × 1 × 1 × 1.
 *
 * `anno_type` replaces the type stored in the records (only BBOX exists). `label_map_file` is
 * read by the fork's layer into a member it never uses; it is ignored here too (the file is not
 * opened). Prefetching, priming, rand_skip and data-parallel sharding are the Data layer's (see
 * data-layer.ts). Images are decoded with sharp while prefetching and augmented on the main
 * thread (not in the decode workers).
 */
export class AnnotatedDataLayer extends BasePrefetchingDataLayer {
  readonly type: string = 'AnnotatedData';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1, maxTopBlobs: 2 };

  readonly netFile: string | undefined;
  /** Data-parallel shard (context.shard), as the Data layer. */
  readonly shard: Shard | null;
  private entry: PrimedSource | null = null;
  private transformer: AnnotatedTransformer | null = null;
  private reader: ShardedRecordReader | null = null;
  private samplers: BatchSamplerSpec[] = [];
  /** Whether the label top holds boxes (the fork's has_anno_type_), and their type. */
  private hasAnnoType = false;
  private annoType = ANNOTATION_BBOX;
  private annoTypeOverridden = false;
  private fitSmallSize = false;

  constructor(param: LayerParameter, context: LayerContext = {}) {
    super(param, context);
    this.netFile = context.netFile;
    this.shard = layerShard(context, `AnnotatedData layer '${param.name}'`);
  }

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    registerSsdForkSchema();
    const dp = this.param.data_param;
    if (!dp) this.fail('data_param is required');
    if (!dp.source) this.fail('data_param.source is required');
    const backend = parseDbBackend(dp.backend);
    this.check(dp.batch_size > 0, () => `batch_size must be positive (got ${dp.batch_size})`);
    this.check(dp.prefetch > 0, () => `prefetch must be positive (got ${dp.prefetch})`);
    const adp = ((this.param as unknown as Message).annotated_data_param ?? null) as Message | null;
    try {
      this.samplers = batchSamplerSpecs((adp?.batch_sampler as Message[] | undefined) ?? []);
    } catch (e) {
      this.fail(`annotated_data_param.${(e as Error).message}`);
    }
    const entry = findPrimedSource(this.name, dp.source, backend, this.netFile, 'AnnotatedDatum');
    if (!entry) this.fail(unprimedSourceMessage(backend, dp.source));
    this.entry = entry;
    this.batchSize = dp.batch_size;
    this.prefetchCount = dp.prefetch;
    this.outputLabels = top.length > 1;
    const tp = this.param.transform_param;
    this.transformer = new AnnotatedTransformer(tp, this.phase, this.rng.fork(), {
      owner: `AnnotatedData layer '${this.name}'`,
      ...this.readFileOption(entry),
    });
    this.fitSmallSize = this.transformer.spec.resize?.mode === RESIZE_FIT_SMALL_SIZE;
    if (this.fitSmallSize) this.check(dp.batch_size === 1, () => `Only support batch size of 1 for FIT_SMALL_SIZE (got batch_size ${dp.batch_size})`);

    const first = decodeAnnotatedRecord({ key: entry.open.firstKey, value: entry.open.firstValue }, this.where());
    const shape = [this.batchSize, ...this.firstShape(entry)];
    top[0]!.reshape(shape);
    log.info(`output data size: ${shape.join(',')}`);
    if (this.outputLabels) {
      this.hasAnnoType = hasAnnotationType(first) || (adp !== null && hasField(adp, 'anno_type'));
      if (this.hasAnnoType) {
        this.annoType = first.type;
        if (adp !== null && hasField(adp, 'anno_type')) {
          log.warn('type stored in AnnotatedDatum is shadowed.');
          this.annoType = adp.anno_type as number;
          this.annoTypeOverridden = true;
        }
        if (this.annoType !== ANNOTATION_BBOX) this.fail(`Unknown annotation type ${this.annoType} (expected BBOX)`);
        const boxes = first.annotation_group.reduce((n, g) => n + g.annotation.length, 0);
        top[1]!.reshape([1, 1, Math.max(boxes, 1), BBOX_LABEL_WIDTH]);
      } else {
        top[1]!.reshape([this.batchSize, 1, 1, 1]);
      }
    }
    this.reader = new ShardedRecordReader(entry.open.db.cursor(), this.shard, this.phase, dp.rand_skip > 0 ? this.rng.int(dp.rand_skip) : 0);
    entry.open.layers.add(this);
    this.startPrefetch();
  }

  private readFileOption(entry: PrimedSource): { readFile?: (path: string) => Uint8Array } {
    const readFile = entry.readFile ?? meanFileReaderFor(`AnnotatedData layer '${this.name}'`, this.param.transform_param, this.netFile);
    return readFile ? { readFile } : {};
  }

  /** The transformed item shape of the first record (the fork's InferBlobShape on the first Datum). */
  private firstShape(entry: PrimedSource): number[] {
    const decoded = entry.open.firstDecoded;
    const d = decoded ?? entry.open.firstDatum;
    const channels = decoded ? this.transformer!.decodedChannels(decoded.channels) : d.channels;
    try {
      return this.transformer!.inferShape(channels, d.height, d.width);
    } catch (e) {
      throw this.recordError(e, entry.open.firstKey);
    }
  }

  private where(): string {
    return `AnnotatedData layer '${this.name}', source '${this.entry?.source}'`;
  }

  protected sourceLabel(): string {
    return `source '${this.entry?.source}'`;
  }

  /** Re-word an error so that it names the source and the record. */
  private recordError(e: unknown, key: string): unknown {
    if (!DataError.isInstance(e)) return e;
    const owner = `AnnotatedData layer '${this.name}': `;
    const msg = e.message.startsWith(owner) ? e.message.slice(owner.length) : e.message;
    if (msg.startsWith(`${this.where()}`)) return e;
    return new DataError(`${this.where()}: record '${key}': ${msg}`, { cause: e });
  }

  protected override async beforeFirstBatch(): Promise<void> {
    await this.reader!.skipPending(log);
  }

  protected override async releaseResources(): Promise<void> {
    await this.reader?.close();
    this.entry?.open.layers.delete(this);
  }

  /** The record's image, decoded (encoded Datums) or re-laid out (raw uint8 Datums). */
  private async imageOf(key: string, datum: Datum): Promise<PixelImage> {
    if (datum.encoded) {
      try {
        return await decodeImage(datum.data, this.transformer!.decodeMode, `record '${key}'`);
      } catch (e) {
        throw DataError.isInstance(e) ? new DataError(`${this.where()}: ${e.message}`, { cause: e }) : e;
      }
    }
    if (datum.data.length === 0) {
      throw new DataError(`${this.where()}: record '${key}': AnnotatedData needs 8-bit images (encoded, or raw data bytes); this Datum holds float_data`);
    }
    return planarToImage(datum.channels, datum.height, datum.width, datum.data);
  }

  /**
   * Read batch_size records, decode their images together (sharp's thread pool), then augment
   * and transform them in record order (so the random draws come in order). The batch's shape is
   * the first record's transformed shape (with FIT_SMALL_SIZE, batch_size 1, the item's own).
   */
  protected async loadBatch(): Promise<Batch> {
    const where = this.where();
    const t = this.transformer!;
    const n = this.batchSize;
    const records: Array<{ key: string; msg: AnnotatedDatum }> = [];
    for (let i = 0; i < n; i++) {
      const rec = await this.reader!.next();
      if (this.isClosed) throw new LayerError(`${where}: closed`);
      const msg = decodeAnnotatedRecord(rec, where);
      checkDatumSize(msg.datum, rec.key, where);
      records.push({ key: rec.key, msg });
    }
    const images = await Promise.all(records.map((r) => this.imageOf(r.key, r.msg.datum)));
    const firstImage = images[0]!;
    let itemShape: number[];
    try {
      itemShape = t.inferShape(firstImage.channels, firstImage.height, firstImage.width);
    } catch (e) {
      throw this.recordError(e, records[0]!.key);
    }
    let batch = this.takeBuffer([n, ...itemShape]);
    const rows: number[] = [];
    const boxLabels = this.outputLabels && this.hasAnnoType;
    try {
      for (let i = 0; i < n; i++) {
        const { key, msg } = records[i]!;
        try {
          const sampled = t.augment({ image: images[i]!, groups: annotationGroups(msg), typeSet: hasAnnotationType(msg) }, this.samplers);
          const shape = t.inferShape(sampled.image.channels, sampled.image.height, sampled.image.width);
          if (this.fitSmallSize) {
            if (!sameShape(shape, itemShape)) {
              this.returnBuffer(batch);
              batch = this.takeBuffer([n, ...shape]);
              itemShape = shape;
            }
          } else if (!sameShape(shape, itemShape)) {
            throw new DataError(
              `image size mismatch: record '${key}' transforms to ${shape.join('×')}, expected ${itemShape.join('×')} like record '${records[0]!.key}', ` +
                'the first of its batch (set a transform_param.resize_param, or crop_size, to give every image one size)',
            );
          }
          const itemSize = shape.reduce((a, b) => a * b, 1);
          if (boxLabels) {
            if (!sampled.typeSet) throw new DataError('Some datum misses AnnotationType: the record has no type, and the label top expects boxes');
            if (!this.annoTypeOverridden && msg.type !== this.annoType) {
              throw new DataError(`Different AnnotationType: the record has type ${msg.type}, expected ${this.annoType} like the first record`);
            }
            const groups = t.transform(sampled, batch.data, i * itemSize, true);
            pushRows(rows, i, groups);
          } else {
            t.transform(sampled, batch.data, i * itemSize, false);
            if (this.outputLabels) {
              if (!hasField(msg.datum, 'label')) throw new DataError('Cannot find any label: the Datum has no label and the record has no annotation type');
              batch.label![i] = msg.datum.label;
            }
          }
        } catch (e) {
          throw this.recordError(e, key);
        }
      }
    } catch (e) {
      this.returnBuffer(batch);
      throw e;
    }
    if (boxLabels) {
      const count = rows.length / BBOX_LABEL_WIDTH;
      batch.labelShape = [1, 1, Math.max(count, 1), BBOX_LABEL_WIDTH];
      const label = batch.label && batch.label.length >= Math.max(rows.length, BBOX_LABEL_WIDTH) ? batch.label : allocArray(this.dtype, Math.max(rows.length, BBOX_LABEL_WIDTH));
      if (count === 0) label.fill(-1, 0, BBOX_LABEL_WIDTH);
      else label.set(rows);
      batch.label = label;
      delete batch.keys;
    } else {
      if (this.outputLabels) batch.labelShape = [n, 1, 1, 1];
      batch.keys = records.map((r) => r.key);
    }
    return batch;
  }

  /** Distort, expand, then crop to one of the batch samplers' crops (the fork's order). */
}

/** Append one label row per box of item `item`. */
function pushRows(rows: number[], item: number, groups: readonly BoxGroup[]): void {
  for (const g of groups) {
    for (const a of g.annotations) {
      const b = a.box;
      rows.push(item, g.groupLabel, a.instanceId, b.xmin, b.ymin, b.xmax, b.ymax, b.difficult ? 1 : 0);
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, k) => d === b[k]);
}

export const annotatedDataLayerDef: LayerDef = {
  type: 'AnnotatedData',
  create: (param, context) => {
    registerSsdForkSchema();
    return new AnnotatedDataLayer(param, context);
  },
  /** Opens the layer's source (reading its first AnnotatedDatum) before `Net.create` builds the net. */
  prime: async (param, context) => {
    registerSsdForkSchema();
    await primeDataLayer(param, { netFile: context.netFile });
  },
};
