import { readFileSync } from 'node:fs';
import { blobProtoData, blobProtoShape, globalRng, logger, type Blob, type FloatArray, type Rng } from '@caffe-ts/blob';
import { decodeBlobProto, hasField, Phase, type BlobProto, type Datum, type TransformationParameter } from '@caffe-ts/proto';
import { DataError } from './errors.js';
import { datumDecodeMode, decodeDatumImage, imageToDatum, type ImreadMode, type PixelImage } from './image-io.js';
import {
  meanProblem,
  placeCrop,
  transformedShape,
  transformPlanar,
  type TransformDraws,
  type TransformInfo,
  type TransformSpec,
} from './transform-kernel.js';

const log = logger('data_transformer.ts');

export interface DataTransformerOptions {
  /** Reads a mean_file's bytes (default: `fs.readFileSync`). Lets callers resolve paths their way. */
  readFile?: (path: string) => Uint8Array;
  /** Names the owner in error messages, e.g. "Data layer 'mnist'". */
  owner?: string;
}

export type { TransformDraws, TransformInfo, TransformSpec } from './transform-kernel.js';

/**
 * Caffe's DataTransformer for Datums: optional crop (random offsets in TRAIN, centred in TEST),
 * optional random mirror, then `(pixel − mean) · scale`, where the mean is a mean image
 * (`mean_file`, a binaryproto of the datum's C×H×W) or per-channel values (`mean_value`).
 */
export class DataTransformer {
  readonly param: TransformationParameter | null;
  readonly phase: Phase;
  readonly rng: Rng;
  private readonly owner: string;
  private readonly scale: number;
  private readonly cropSize: number;
  private readonly mirror: boolean;
  /** The mean image (C·H·W values), when mean_file is set. */
  private readonly meanImage: Float32Array | null = null;
  private readonly meanShape: number[] | null = null;
  private readonly meanValues: number[];
  private warnedForce = false;
  /** How encoded Datums decode: force_color → colour, force_gray → gray, else as the file is. */
  readonly decodeMode: ImreadMode;
  private readonly specData: TransformSpec;

  constructor(param: TransformationParameter | null | undefined, phase: Phase, rng: Rng = globalRng(), options: DataTransformerOptions = {}) {
    this.param = param ?? null;
    this.phase = phase;
    this.rng = rng;
    this.owner = options.owner ?? 'DataTransformer';
    this.scale = this.param?.scale ?? 1;
    this.cropSize = this.param?.crop_size ?? 0;
    this.mirror = this.param?.mirror ?? false;
    this.meanValues = this.param ? [...this.param.mean_value] : [];
    try {
      this.decodeMode = datumDecodeMode(this.param?.force_color ?? false, this.param?.force_gray ?? false);
    } catch (e) {
      this.fail((e as Error).message);
    }
    const meanFile = this.param && hasField(this.param, 'mean_file') ? this.param.mean_file : '';
    if (meanFile) {
      if (this.meanValues.length > 0) this.fail('Cannot specify mean_file and mean_value at the same time');
      log.info(`Loading mean file from: ${meanFile}`);
      const read = options.readFile ?? ((p: string) => readFileSync(p));
      let bytes: Uint8Array;
      try {
        bytes = read(meanFile);
      } catch (e) {
        const code = (e as { code?: string }).code;
        this.fail(`cannot read mean_file '${meanFile}'${code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`, e);
      }
      const proto: BlobProto = decodeBlobProto(bytes, meanFile);
      const shape = blobProtoShape(proto);
      const values = blobProtoData(proto, `mean_file '${meanFile}'`);
      const count = shape.reduce((a, b) => a * b, 1);
      if (values.length !== count || count === 0) {
        this.fail(`mean_file '${meanFile}' holds ${values.length} values for shape ${shape.join(' ')} (${count})`);
      }
      this.meanImage = Float32Array.from(values);
      this.meanShape = shape;
    }
    this.specData = {
      cropSize: this.cropSize,
      scale: this.scale,
      train: this.phase === Phase.TRAIN,
      meanImage: this.meanImage,
      meanShape: this.meanShape,
      meanFile: meanFile ?? '',
      meanValues: this.meanValues,
    };
  }

  /**
   * Decode an encoded Datum (JPEG/PNG bytes) into a raw one, as Caffe's transformer does before
   * transforming it: BGR, in colour with force_color, gray with force_gray, else with the file's
   * own channels. Decoding is asynchronous, so data layers decode while prefetching; a raw Datum
   * comes back as it is. `what` names the record in errors.
   */
  async decode(datum: Datum, what = 'encoded Datum'): Promise<Datum> {
    if (!datum.encoded) return datum;
    try {
      return await decodeDatumImage(datum, this.decodeMode, what);
    } catch (e) {
      this.fail((e as Error).message, e);
    }
  }

  /** The channels an image with `fileChannels` channels has once decoded under force_color / force_gray. */
  decodedChannels(fileChannels: number): number {
    return this.decodeMode === 'color' ? 3 : this.decodeMode === 'gray' ? 1 : fileChannels;
  }

  /** Transform a decoded image (a cv::Mat in Caffe's Transform(cv::Mat)): the same crop, mirror and mean as for Datums. */
  transformImage(img: PixelImage, out: FloatArray, offset = 0, draws: TransformDraws | null = null): TransformInfo {
    return this.transformDrawn(imageToDatum(img), out, offset, draws);
  }

  /**
   * The blob shape one Datum transforms into: [1, C, H, W] with H = W = crop_size when cropping.
   */
  inferBlobShape(datum: Datum): number[] {
    this.checkNotEncoded(datum);
    const shape = transformedShape(this.spec, datum.channels, datum.height, datum.width);
    if (typeof shape === 'string') this.fail(shape);
    return [1, ...shape];
  }

  /** The transformation as plain data, for decode workers (see transform-kernel.ts). */
  get spec(): TransformSpec {
    return this.specData;
  }

  /**
   * Draw the random choices of one image from this transformer's generator, in Caffe's order:
   * mirror (only if mirror is set), then the crop offsets (only when cropping in TRAIN).
   * `transform` draws them itself; a data layer that transforms elsewhere (decode workers) draws
   * them here, in record order, so that the result does not depend on the thread.
   */
  draw(): TransformDraws {
    const mirrored = this.mirror && this.rng.int(2) === 1;
    const cropDraws = this.cropSize > 0 && this.phase === Phase.TRAIN;
    const hU = cropDraws ? this.rng.uniform() : 0;
    const wU = cropDraws ? this.rng.uniform() : 0;
    return { mirrored, hU, wU };
  }

  /**
   * Transform one Datum into `out[offset … offset + C·h·w)` (h, w after cropping).
   * The RNG draws come in Caffe's order: mirror (only if mirror is set), then the crop offsets.
   */
  transform(datum: Datum, out: FloatArray, offset = 0): TransformInfo {
    return this.transformDrawn(datum, out, offset, null);
  }

  /**
   * `transform` with the random choices already drawn (`draw()`); null draws them now, after the
   * size checks, as Caffe does.
   */
  transformDrawn(datum: Datum, out: FloatArray, offset: number, draws: TransformDraws | null): TransformInfo {
    const [, channels, height, width] = this.inferBlobShape(datum) as [number, number, number, number];
    const dh = datum.height;
    const dw = datum.width;
    const pixels = datum.data;
    const hasUint8 = pixels.length > 0;
    const floats = datum.float_data;
    const need = channels * dh * dw;
    if (hasUint8 ? pixels.length !== need : floats.length !== need) {
      this.fail(
        `Datum of ${channels}×${dh}×${dw} needs ${need} values; it has ${hasUint8 ? `${pixels.length} data bytes` : `${floats.length} float_data values`}`,
      );
    }
    if (offset + channels * height * width > out.length) {
      this.fail(`output buffer too small: ${out.length - offset} values left, transform needs ${channels * height * width}`);
    }
    const place = placeCrop(this.specData, draws ?? this.draw(), dh, dw);
    const problem = meanProblem(this.specData, channels, dh, dw);
    if (problem) this.fail(problem);
    transformPlanar(this.specData, { channels, height: dh, width: dw, pixels, floats }, place, out, offset);
    return place;
  }

  /** Transform one Datum into a blob of shape [1, C, h, w] (or [C, h, w]). */
  transformToBlob(datum: Datum, blob: Blob): TransformInfo {
    const shape = this.inferBlobShape(datum);
    const want = shape.slice(1);
    const got = blob.shape.length === 4 ? blob.shape.slice(1) : blob.shape;
    if (got.length !== 3 || got.some((d, i) => d !== want[i]) || (blob.shape.length === 4 && blob.shape[0]! < 1)) {
      this.fail(`blob shape ${blob.shapeString()} does not fit the transformed Datum (${want.join(' ')})`);
    }
    return this.transform(datum, blob.mutableCpuData(), 0);
  }

  private checkNotEncoded(datum: Datum): void {
    if (datum.encoded) {
      this.fail('Datum is encoded (it holds a JPEG/PNG file); decode it first with await transformer.decode(datum)');
    }
    if (!this.warnedForce && this.param && (this.param.force_color || this.param.force_gray)) {
      this.warnedForce = true;
      log.error('force_color and force_gray only for encoded datum');
    }
  }

  private fail(message: string, cause?: unknown): never {
    throw new DataError(`${this.owner}: ${message}`, cause === undefined ? undefined : { cause });
  }
}
