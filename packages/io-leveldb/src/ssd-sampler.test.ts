import { Rng } from '@caffe-ts/blob';
import { createMessage, registerSsdForkSchema, type Message } from '@caffe-ts/proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { boxCoverage, jaccardOverlap, makeBox } from './ssd-bbox.js';
import { batchSamplerSpecs, generateBatchSamples, sampleBox, satisfiesSampleConstraint, type BatchSamplerSpec } from './ssd-sampler.js';

beforeAll(() => registerSsdForkSchema());

const samplers = (list: Array<Record<string, unknown>>) =>
  batchSamplerSpecs(list.map((m) => createMessage<Message>('BatchSampler', m)));

const SSD_SAMPLER = { min_scale: 0.3, max_scale: 1, min_aspect_ratio: 0.5, max_aspect_ratio: 2 };
const EPS = 1e-6;

describe('the fork batch sampler', () => {
  it('an empty batch_sampler {} keeps the whole image, max_trials (100) times', () => {
    const [bs] = samplers([{}]);
    expect(bs).toMatchObject({ useOriginalImage: true, maxTrials: 100, sampler: { minScale: 1, maxScale: 1, minAspectRatio: 1, maxAspectRatio: 1 } });
    expect(bs!.maxSample).toBeUndefined();
    const out = generateBatchSamples([makeBox(0.1, 0.1, 0.2, 0.2)], [bs!], new Rng(1));
    expect(out.length).toBe(100);
    for (const b of out) expect([b.xmin, b.ymin, b.xmax, b.ymax]).toEqual([0, 0, 1, 1]);
    // use_original_image: false samples nothing.
    expect(generateBatchSamples([], samplers([{ use_original_image: false }]), new Rng(1))).toEqual([]);
  });

  it('draws crops within the scale and aspect-ratio ranges, inside the image', () => {
    const rng = new Rng(1701);
    const [bs] = samplers([{ sampler: SSD_SAMPLER }]);
    for (let i = 0; i < 2000; i++) {
      const b = sampleBox(bs!.sampler, rng);
      const w = b.xmax - b.xmin;
      const h = b.ymax - b.ymin;
      const scale = Math.sqrt(w * h);
      expect(scale).toBeGreaterThanOrEqual(0.3 - EPS);
      expect(scale).toBeLessThanOrEqual(1 + EPS);
      expect(w / h).toBeGreaterThanOrEqual(0.5 - EPS);
      expect(w / h).toBeLessThanOrEqual(2 + EPS);
      // (A crop of the whole width can pass 1 by a float ulp, leaving a tiny negative offset.)
      expect(b.xmin).toBeGreaterThanOrEqual(-EPS);
      expect(b.ymin).toBeGreaterThanOrEqual(-EPS);
      expect(b.xmax).toBeLessThanOrEqual(1 + EPS);
      expect(b.ymax).toBeLessThanOrEqual(1 + EPS);
    }
  });

  it('keeps only crops meeting the constraint, at most max_sample per sampler (many seeded draws)', () => {
    const objects = [makeBox(0.1, 0.1, 0.4, 0.5), makeBox(0.5, 0.4, 0.9, 0.9)];
    const specs: BatchSamplerSpec[] = samplers([
      { sampler: SSD_SAMPLER, sample_constraint: { min_jaccard_overlap: 0.5 }, max_sample: 1, max_trials: 50 },
      { sampler: SSD_SAMPLER, sample_constraint: { max_jaccard_overlap: 0.2 }, max_trials: 20 },
      { sampler: SSD_SAMPLER, sample_constraint: { min_object_coverage: 0.9 }, max_trials: 20 },
      { sampler: SSD_SAMPLER, sample_constraint: { min_sample_coverage: 0.5 }, max_trials: 20 },
    ]);
    let accepted = [0, 0, 0, 0];
    for (let seed = 0; seed < 200; seed++) {
      specs.forEach((bs, k) => {
        const out = generateBatchSamples(objects, [bs], new Rng(seed));
        accepted[k]! += out.length;
        if (k === 0) expect(out.length).toBeLessThanOrEqual(1);
        for (const s of out) {
          if (k === 0) expect(objects.some((o) => jaccardOverlap(s, o) >= 0.5)).toBe(true);
          if (k === 1) expect(objects.some((o) => jaccardOverlap(s, o) <= 0.2)).toBe(true);
          if (k === 2) expect(objects.some((o) => boxCoverage(o, s) >= 0.9)).toBe(true);
          if (k === 3) expect(objects.some((o) => boxCoverage(s, o) >= 0.5)).toBe(true);
        }
      });
    }
    // Each constraint is met often enough to be exercised (and not vacuously).
    for (const n of accepted) expect(n).toBeGreaterThan(20);
    accepted = [];
  });

  it('rejects a crop no box satisfies; without constraints accepts any', () => {
    const crop = makeBox(0, 0, 0.3, 0.3);
    const obj = [makeBox(0.6, 0.6, 0.9, 0.9)];
    expect(satisfiesSampleConstraint(crop, obj, { minJaccardOverlap: 0.1 })).toBe(false);
    expect(satisfiesSampleConstraint(crop, obj, { maxJaccardOverlap: 0.1 })).toBe(true);
    expect(satisfiesSampleConstraint(crop, obj, {})).toBe(true);
    expect(satisfiesSampleConstraint(crop, [], { minJaccardOverlap: 0 })).toBe(false);
  });

  it("MobileNet-SSD's seven samplers: the first always gives the whole image, then at most one crop each", () => {
    const specs = samplers([
      { max_sample: 1, max_trials: 1 },
      ...[0.1, 0.3, 0.5, 0.7, 0.9].map((j) => ({ sampler: SSD_SAMPLER, sample_constraint: { min_jaccard_overlap: j }, max_sample: 1, max_trials: 50 })),
      { sampler: SSD_SAMPLER, sample_constraint: { max_jaccard_overlap: 1 }, max_sample: 1, max_trials: 50 },
    ]);
    for (let seed = 0; seed < 50; seed++) {
      const out = generateBatchSamples([makeBox(0.2, 0.2, 0.7, 0.8)], specs, new Rng(seed));
      expect(out.length).toBeGreaterThanOrEqual(2);
      expect(out.length).toBeLessThanOrEqual(7);
      expect([out[0]!.xmin, out[0]!.ymin, out[0]!.xmax, out[0]!.ymax]).toEqual([0, 0, 1, 1]);
    }
  });

  it('refuses samplers that cannot be drawn from, naming the sampler and the rule', () => {
    expect(() => samplers([{}, { sampler: { min_scale: 0.8, max_scale: 0.5 } }])).toThrow('batch_sampler[1]: sampler min_scale 0.800000011920929 is larger than max_scale 0.5');
    expect(() => samplers([{ sampler: { min_scale: 0 } }])).toThrow('batch_sampler[0]: sampler min_scale must be positive (got 0)');
    expect(() => samplers([{ sampler: { max_scale: 1.5 } }])).toThrow('sampler max_scale must be at most 1');
    expect(() => samplers([{ sampler: { min_aspect_ratio: 2, max_aspect_ratio: 1 } }])).toThrow('sampler min_aspect_ratio 2 is larger than max_aspect_ratio 1');
  });
});
