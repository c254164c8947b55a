/*
 * What the forks' region layers share: the C arithmetic they compute their bins and boxes in,
 * and the checks of their regions.
 */

/** C's round(): halves away from zero (Math.round sends −2.5 to −2, C to −3). */
export function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}

/** Rounding to the blobs' float type: the forks compute in it (float32 for float blobs). */
export function dtypeRounding(dtype: string): (v: number) => number {
  return dtype === 'float32' ? Math.fround : (v: number) => v;
}

type Check = (condition: boolean, message: () => string) => void;

/** Checks a region layer's bottom 1: R rows of [batch index, x1, y1, x2, y2]. */
export function checkRegionsShape(rois: { numAxes: number; count(start: number): number; shapeString(): string }, check: Check): void {
  check(
    rois.numAxes >= 1 && rois.count(1) === 5,
    () => `bottom 1 (the regions) must hold 5 values per region, [batch index, x1, y1, x2, y2] (got ${rois.shapeString()}).`,
  );
}

/** Region r's image in a batch of `num`, checked (the forks read the float index truncated). */
export function regionImage(rois: ArrayLike<number>, r: number, num: number, check: Check): number {
  const n = Math.trunc(rois[5 * r]!);
  check(n >= 0 && n < num, () => `region ${r} names image ${rois[5 * r]} of a batch of ${num}.`);
  return n;
}
