import { CaffeError, type FillerParameter } from '@caffe-ts/proto';
import type { Blob } from '../blob.js';
import type { Rng } from '../rng.js';

/** A filler's rule was broken (wrong blob rank, bad parameter values). */
export class FillerError extends CaffeError {
  override readonly name: string = 'FillerError';
}

/** FillerParameter.VarianceNorm, numbered as in caffe.proto. */
export const VarianceNorm = { FAN_IN: 0, FAN_OUT: 1, AVERAGE: 2 } as const;

/**
 * What fillBlob accepts: a decoded FillerParameter message (unset fields read Caffe's defaults)
 * or a plain object with only the fields that matter, e.g. `{ type: 'gaussian', std: 0.01 }`.
 */
export type FillerSpec = Partial<FillerParameter>;

/** A FillerSpec with every field of caffe.proto's FillerParameter resolved to its value or default. */
export interface FillerParams {
  type: string;
  value: number;
  min: number;
  max: number;
  mean: number;
  std: number;
  sparse: number;
  variance_norm: number;
  /** The spec as given, for plugin fillers that read fields of their own. */
  spec: FillerSpec;
}

/** A filler type: plain data, keyed by the type string used in prototxt `weight_filler { type: … }`. */
export interface FillerDef {
  type: string;
  /** Overwrite blob's data (never its diff) with values drawn from rng. */
  fill(blob: Blob, param: FillerParams, rng: Rng): void;
}

/** Caffe's defaults from caffe.proto's FillerParameter. */
const DEFAULTS = { type: 'constant', value: 0, min: 0, max: 1, mean: 0, std: 1, sparse: -1, variance_norm: 0 };

export function resolveFillerParams(spec: FillerSpec | null | undefined): FillerParams {
  const s: FillerSpec = spec ?? {};
  return {
    type: s.type ?? DEFAULTS.type,
    value: s.value ?? DEFAULTS.value,
    min: s.min ?? DEFAULTS.min,
    max: s.max ?? DEFAULTS.max,
    mean: s.mean ?? DEFAULTS.mean,
    std: s.std ?? DEFAULTS.std,
    sparse: s.sparse ?? DEFAULTS.sparse,
    variance_norm: s.variance_norm ?? DEFAULTS.variance_norm,
    spec: s,
  };
}

/** Caffe checks every filler but gaussian for `sparse == -1` ("Sparsity not supported by this Filler."). */
export function checkNotSparse(param: FillerParams, blob: Blob): void {
  if (param.sparse !== -1) {
    throw new FillerError(
      `${param.type} filler: sparsity not supported (sparse = ${param.sparse}, only gaussian supports it) for blob ${blob.shapeString()}`,
    );
  }
}

/** Caffe CHECKs that a filled blob is not empty. */
export function checkNotEmpty(param: FillerParams, blob: Blob): void {
  if (blob.count() === 0) throw new FillerError(`${param.type} filler: cannot fill empty blob with shape ${blob.shapeString()}`);
}

/**
 * The n of xavier and msra: fan_in = count / shape[0]; fan_out = count / shape[1]
 * (count for 1-D blobs); AVERAGE is their mean.
 */
export function varianceNormN(param: FillerParams, blob: Blob): number {
  const count = blob.count();
  const fanIn = count / blob.shape[0]!;
  const fanOut = blob.numAxes > 1 ? count / blob.shape[1]! : count;
  switch (param.variance_norm) {
    case VarianceNorm.FAN_IN:
      return fanIn;
    case VarianceNorm.FAN_OUT:
      return fanOut;
    case VarianceNorm.AVERAGE:
      return (fanIn + fanOut) / 2;
    default:
      throw new FillerError(
        `${param.type} filler: unknown variance_norm ${param.variance_norm} (expected FAN_IN = 0, FAN_OUT = 1 or AVERAGE = 2)`,
      );
  }
}

/** Fill `data[0:n]` with uniform draws in [a, b) (Caffe's caffe_rng_uniform, which checks a ≤ b). */
export function fillUniform(data: Float32Array | Float64Array, a: number, b: number, rng: Rng, what: string): void {
  if (!(a <= b)) throw new FillerError(`${what}: uniform bounds must satisfy min <= max, got min ${a}, max ${b}`);
  for (let i = 0; i < data.length; i++) data[i] = rng.uniformIn(a, b);
}

/** Fill with Normal(mean, std) draws (Caffe's caffe_rng_gaussian, which checks std > 0). */
export function fillGaussian(data: Float32Array | Float64Array, mean: number, std: number, rng: Rng, what: string): void {
  if (!(std > 0)) throw new FillerError(`${what}: std must be positive, got ${std}`);
  for (let i = 0; i < data.length; i++) data[i] = rng.gaussian(mean, std);
}
