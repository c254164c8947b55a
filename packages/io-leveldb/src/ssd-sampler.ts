import type { Rng } from '@caffe-ts/blob';
import { hasField, type Message } from '@caffe-ts/proto';
import { boxCoverage, jaccardOverlap, locateBox, makeBox, unitBox, type NormBox } from './ssd-bbox.js';

/*
 * The SSD fork's crop sampler (util/sampler.cpp): each BatchSampler draws up to max_trials random
 * crops of a given scale and aspect-ratio range, keeping those that meet its constraint against
 * the ground-truth boxes (and at most max_sample of them); the data layer then crops the image to
 * one of all the kept crops, chosen uniformly.
 */

const f = Math.fround;

/** Sampler: the range of crop scales (side relative to the image) and aspect ratios (w/h). */
export interface SamplerSpec {
  minScale: number;
  maxScale: number;
  minAspectRatio: number;
  maxAspectRatio: number;
}

/** SampleConstraint: each bound is optional (absent: not checked). */
export interface SampleConstraintSpec {
  minJaccardOverlap?: number;
  maxJaccardOverlap?: number;
  minSampleCoverage?: number;
  maxSampleCoverage?: number;
  minObjectCoverage?: number;
  maxObjectCoverage?: number;
}

/** BatchSampler. */
export interface BatchSamplerSpec {
  useOriginalImage: boolean;
  sampler: SamplerSpec;
  constraint: SampleConstraintSpec;
  /** Stop after this many accepted crops; undefined: no limit. */
  maxSample?: number;
  maxTrials: number;
}

/** Why a Sampler cannot be drawn from (the fork's CHECKs in SampleBBox), or null. */
export function samplerProblem(s: SamplerSpec): string | null {
  if (!(s.maxScale >= s.minScale)) return `sampler min_scale ${s.minScale} is larger than max_scale ${s.maxScale}`;
  if (!(s.minScale > 0)) return `sampler min_scale must be positive (got ${s.minScale})`;
  if (!(s.maxScale <= 1)) return `sampler max_scale must be at most 1 (got ${s.maxScale})`;
  if (!(s.maxAspectRatio >= s.minAspectRatio)) {
    return `sampler min_aspect_ratio ${s.minAspectRatio} is larger than max_aspect_ratio ${s.maxAspectRatio}`;
  }
  if (!(s.minAspectRatio > 0)) return `sampler min_aspect_ratio must be positive (got ${s.minAspectRatio})`;
  if (!(s.maxAspectRatio < 3.4028234663852886e38)) return `sampler max_aspect_ratio must be finite (got ${s.maxAspectRatio})`;
  return null;
}

/** The value of an optional float field, or undefined when it is not set. */
function opt(msg: Message | null | undefined, name: string): number | undefined {
  return msg && hasField(msg, name) ? (msg[name] as number) : undefined;
}

/**
 * BatchSampler messages (annotated_data_param.batch_sampler) as specs, with the proto defaults
 * for unset fields (an empty `batch_sampler {}` keeps the whole image, 100 times). Throws a
 * message naming the sampler (`batch_sampler[2]: …`) when one cannot be drawn from.
 */
export function batchSamplerSpecs(messages: readonly Message[]): BatchSamplerSpec[] {
  return messages.map((m, i) => {
    const s = (m.sampler ?? null) as Message | null;
    const c = (m.sample_constraint ?? null) as Message | null;
    const sampler: SamplerSpec = {
      minScale: opt(s, 'min_scale') ?? 1,
      maxScale: opt(s, 'max_scale') ?? 1,
      minAspectRatio: opt(s, 'min_aspect_ratio') ?? 1,
      maxAspectRatio: opt(s, 'max_aspect_ratio') ?? 1,
    };
    const problem = samplerProblem(sampler);
    if (problem) throw new Error(`batch_sampler[${i}]: ${problem}`);
    const constraint: SampleConstraintSpec = {};
    for (const [key, field] of CONSTRAINT_FIELDS) {
      const v = opt(c, field);
      if (v !== undefined) constraint[key] = v;
    }
    const spec: BatchSamplerSpec = {
      useOriginalImage: (m.use_original_image as boolean | undefined) ?? true,
      sampler,
      constraint,
      maxTrials: (m.max_trials as number | undefined) ?? 100,
    };
    const maxSample = opt(m, 'max_sample');
    if (maxSample !== undefined) spec.maxSample = maxSample;
    return spec;
  });
}

const CONSTRAINT_FIELDS: ReadonlyArray<readonly [keyof SampleConstraintSpec, string]> = [
  ['minJaccardOverlap', 'min_jaccard_overlap'],
  ['maxJaccardOverlap', 'max_jaccard_overlap'],
  ['minSampleCoverage', 'min_sample_coverage'],
  ['maxSampleCoverage', 'max_sample_coverage'],
  ['minObjectCoverage', 'min_object_coverage'],
  ['maxObjectCoverage', 'max_object_coverage'],
];

/** Uniform in [a, b] as float32 (caffe_rng_uniform; a == b gives a). */
function uniform(rng: Rng, a: number, b: number): number {
  return f(rng.uniformIn(a, b));
}

/**
 * Draw one crop (normalised to the image): scale and aspect ratio uniformly in their ranges, the
 * ratio then clamped to [scale², 1/scale²] so that the crop fits in the image, then the top-left
 * corner uniformly where the crop fits. Draws four uniforms: scale, ratio, x offset, y offset.
 */
export function sampleBox(s: SamplerSpec, rng: Rng): NormBox {
  const scale = uniform(rng, s.minScale, s.maxScale);
  let ratio = uniform(rng, s.minAspectRatio, s.maxAspectRatio);
  const sq = f(scale * scale);
  ratio = Math.max(ratio, sq);
  ratio = Math.min(ratio, f(1 / sq));
  const root = f(Math.sqrt(ratio));
  const w = f(scale * root);
  const h = f(scale / root);
  const x = uniform(rng, 0, f(1 - w));
  const y = uniform(rng, 0, f(1 - h));
  return makeBox(x, y, f(x + w), f(y + h));
}

/**
 * Whether a crop meets a constraint: with no bound set, always; otherwise some object box must
 * satisfy every bound of at least one kind checked before the first bound it fails (the fork's
 * SatisfySampleConstraint, whose loop accepts a box once one kind of bound has passed for it or
 * for an earlier box).
 */
export function satisfiesSampleConstraint(sampled: NormBox, objects: readonly NormBox[], c: SampleConstraintSpec): boolean {
  const jac = c.minJaccardOverlap !== undefined || c.maxJaccardOverlap !== undefined;
  const sc = c.minSampleCoverage !== undefined || c.maxSampleCoverage !== undefined;
  const oc = c.minObjectCoverage !== undefined || c.maxObjectCoverage !== undefined;
  if (!jac && !sc && !oc) return true;
  const outside = (v: number, lo?: number, hi?: number) => (lo !== undefined && v < f(lo)) || (hi !== undefined && v > f(hi));
  let found = false;
  for (const obj of objects) {
    if (jac) {
      if (outside(jaccardOverlap(sampled, obj), c.minJaccardOverlap, c.maxJaccardOverlap)) continue;
      found = true;
    }
    if (sc) {
      if (outside(boxCoverage(sampled, obj), c.minSampleCoverage, c.maxSampleCoverage)) continue;
      found = true;
    }
    if (oc) {
      if (outside(boxCoverage(obj, sampled), c.minObjectCoverage, c.maxObjectCoverage)) continue;
      found = true;
    }
    if (found) return true;
  }
  return found;
}

/** Run one BatchSampler's trials inside `source`, appending the accepted crops to `out`. */
export function generateSamples(source: NormBox, objects: readonly NormBox[], bs: BatchSamplerSpec, rng: Rng, out: NormBox[]): void {
  let found = 0;
  for (let i = 0; i < bs.maxTrials; i++) {
    if (bs.maxSample !== undefined && found >= bs.maxSample) break;
    const sampled = locateBox(source, sampleBox(bs.sampler, rng));
    if (satisfiesSampleConstraint(sampled, objects, bs.constraint)) {
      found++;
      out.push(sampled);
    }
  }
}

/**
 * The crops every BatchSampler (with use_original_image) accepts for an image whose ground truth
 * is `objects`, in sampler order (the fork's GenerateBatchSamples).
 */
export function generateBatchSamples(objects: readonly NormBox[], samplers: readonly BatchSamplerSpec[], rng: Rng): NormBox[] {
  const out: NormBox[] = [];
  for (const bs of samplers) if (bs.useOriginalImage) generateSamples(unitBox(), objects, bs, rng, out);
  return out;
}
