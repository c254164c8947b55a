/*
 * The C arithmetic the forks' region layers compute in, for their exact bins and boxes.
 */

/** C's round(): halves away from zero (Math.round sends −2.5 to −2, C to −3). */
export function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}

/** Rounding to the blobs' float type: the forks compute in it (float32 for float blobs). */
export function dtypeRounding(dtype: string): (v: number) => number {
  return dtype === 'float32' ? Math.fround : (v: number) => v;
}
