import { describe, expect, it } from 'vitest';
import {
  boxCoverage,
  clipBox,
  EMIT_CENTER,
  EMIT_MIN_OVERLAP,
  inferNewSize,
  jaccardOverlap,
  locateBox,
  makeBox,
  meetsEmitConstraint,
  projectBox,
  RESIZE_FIT_LARGE_SIZE_AND_PAD,
  RESIZE_FIT_SMALL_SIZE,
  RESIZE_WARP,
  updateBoxByResizePolicy,
  type NormBox,
  type ResizePolicy,
} from './ssd-bbox.js';

const corners = (b: NormBox | null) => (b ? [b.xmin, b.ymin, b.xmax, b.ymax] : null);
const expectCorners = (b: NormBox | null, want: number[]) => {
  const got = corners(b);
  expect(got).not.toBeNull();
  got!.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
};
const policy = (mode: number, height: number, width: number): ResizePolicy => ({ mode, height, width, heightScale: 0, widthScale: 0 });

describe('normalised boxes (the fork bbox_util)', () => {
  it('projects a box into a crop: shifted, scaled by the crop size, clipped to [0, 1], with its area stored', () => {
    const crop = makeBox(0.2, 0.2, 0.6, 0.6);
    // x: (0.1 − 0.2)/0.4 = −0.25 → 0, (0.4 − 0.2)/0.4 = 0.5; y: (0.3 − 0.2)/0.4 = 0.25, (0.5 − 0.2)/0.4 = 0.75
    const p = projectBox(crop, makeBox(0.1, 0.3, 0.4, 0.5, true));
    expectCorners(p, [0, 0.25, 0.5, 0.75]);
    expect(p!.difficult).toBe(true);
    expect(p!.size).toBeCloseTo(0.5 * 0.5, 6);
    // Entirely outside, or touching only an edge: dropped.
    expect(projectBox(crop, makeBox(0.7, 0.7, 0.9, 0.9))).toBeNull();
    expect(projectBox(crop, makeBox(0.6, 0.2, 0.8, 0.4))).toBeNull();
  });

  it('locates a box given relative to a source box', () => {
    expectCorners(locateBox(makeBox(0.5, 0, 1, 0.5), makeBox(0.2, 0.4, 0.6, 1)), [0.6, 0.2, 0.8, 0.5]);
  });

  it('clips to [0, 1] and computes jaccard overlap and coverage', () => {
    expectCorners(clipBox(makeBox(-0.5, 0.2, 1.5, 0.8)), [0, 0.2, 1, 0.8]);
    // [0,0,0.5,0.5] vs [0.25,0.25,0.75,0.75]: intersection 0.0625, union 0.4375
    const a = makeBox(0, 0, 0.5, 0.5);
    const b = makeBox(0.25, 0.25, 0.75, 0.75);
    expect(jaccardOverlap(a, b)).toBeCloseTo(0.0625 / 0.4375, 6);
    expect(boxCoverage(a, b)).toBeCloseTo(0.25, 6);
    expect(jaccardOverlap(a, makeBox(0.6, 0.6, 0.9, 0.9))).toBe(0);
    // A stored size is used instead of the corners (as the fork's BBoxSize does).
    expect(boxCoverage({ ...a, size: 0.125 }, b)).toBeCloseTo(0.5, 6);
  });

  it('emit CENTER keeps a box whose centre is inside the crop; MIN_OVERLAP one the crop covers more than emit_overlap of', () => {
    const crop = makeBox(0, 0, 0.5, 0.5);
    const a = makeBox(0.3, 0.3, 0.8, 0.8); // centre 0.55: outside; covered 0.04/0.25 = 0.16
    const b = makeBox(0.1, 0.1, 0.6, 0.6); // centre 0.35: inside; covered 0.16/0.25 = 0.64
    const centre = { type: EMIT_CENTER, overlap: 0 };
    expect(meetsEmitConstraint(crop, a, centre)).toBe(false);
    expect(meetsEmitConstraint(crop, b, centre)).toBe(true);
    expect(meetsEmitConstraint(crop, a, { type: EMIT_MIN_OVERLAP, overlap: 0.1 })).toBe(true);
    expect(meetsEmitConstraint(crop, a, { type: EMIT_MIN_OVERLAP, overlap: 0.2 })).toBe(false);
    expect(meetsEmitConstraint(crop, b, { type: EMIT_MIN_OVERLAP, overlap: 0.6 })).toBe(true);
    expect(meetsEmitConstraint(crop, b, { type: EMIT_MIN_OVERLAP, overlap: 0.7 })).toBe(false);
    // A centre exactly on the crop's border counts as inside.
    expect(meetsEmitConstraint(crop, makeBox(0.4, 0.4, 0.6, 0.6), centre)).toBe(true);
    expect(meetsEmitConstraint(makeBox(0.5, 0.5, 1, 1), makeBox(0.4, 0.4, 0.6, 0.6), centre)).toBe(true);
    expect(meetsEmitConstraint(makeBox(0.5, 0.5, 1, 1), makeBox(0.4, 0.4, 0.59, 0.6), centre)).toBe(false);
  });

  it('FIT_LARGE_SIZE_AND_PAD squeezes boxes into the unpadded band; WARP keeps them', () => {
    // A 20-wide × 10-high image into 30 × 30: resized to 30 × 15, padded by 7.5 rows above and below.
    const full = makeBox(0, 0, 1, 1);
    expectCorners(updateBoxByResizePolicy(policy(RESIZE_FIT_LARGE_SIZE_AND_PAD, 30, 30), 20, 10, full), [0, 0.25, 1, 0.75]);
    expectCorners(updateBoxByResizePolicy(policy(RESIZE_FIT_LARGE_SIZE_AND_PAD, 30, 30), 20, 10, makeBox(0.5, 0.5, 1, 1)), [0.5, 0.5, 1, 0.75]);
    // A tall image (10 wide × 20 high) is padded left and right instead.
    expectCorners(updateBoxByResizePolicy(policy(RESIZE_FIT_LARGE_SIZE_AND_PAD, 30, 30), 10, 20, full), [0.25, 0, 0.75, 1]);
    expectCorners(updateBoxByResizePolicy(policy(RESIZE_WARP, 30, 30), 20, 10, makeBox(0.1, 0.2, 0.3, 0.4)), [0.1, 0.2, 0.3, 0.4]);
  });

  it('infers the resized size: WARP and FIT_LARGE give the policy size, FIT_SMALL keeps the aspect', () => {
    expect(inferNewSize(policy(RESIZE_WARP, 30, 40), 200, 100)).toEqual([40, 30]);
    expect(inferNewSize(policy(RESIZE_FIT_LARGE_SIZE_AND_PAD, 30, 40), 200, 100)).toEqual([40, 30]);
    // 200×100 (aspect 2) vs 40×30 (aspect 4/3): height 30, width 60
    expect(inferNewSize(policy(RESIZE_FIT_SMALL_SIZE, 30, 40), 200, 100)).toEqual([60, 30]);
    // 100×200 (aspect 0.5) vs 40×30: width 40, height 80
    expect(inferNewSize(policy(RESIZE_FIT_SMALL_SIZE, 30, 40), 100, 200)).toEqual([40, 80]);
  });
});
