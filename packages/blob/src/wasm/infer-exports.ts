/**
 * What the inference module (scripts/infer-wat.mjs) exports, in every build: plain and relaxed
 * SIMD, with its own memory or over the kernel pool's shared memory. infer-wasm.ts,
 * infer-conv.ts and the pool's workers (threads.ts) all call into it through this one shape.
 */
export interface InferModuleExports {
  PCONV_MR: { value: number };
  PCONV_NR: { value: number };
  PCONV_KC: { value: number };
  PCONV_NC: { value: number };
  packa(src: number, M: number, K: number, dst: number): void;
  padimg(x: number, C: number, H: number, W: number, PH: number, PW: number, dst: number): void;
  pconv(
    pw: number, M: number, K: number, xp: number, Hp: number, Wp: number, KH: number, KW: number,
    SH: number, SW: number, DH: number, DW: number, OW: number, N: number,
    y: number, sa: number, sb: number, relu: number, slope: number, bufB: number, scratch: number, j0: number, j1: number,
  ): void;
  rowdot(x: number, M: number, K: number, w: number, N: number, b: number, hasBias: number, y: number, ldy: number): void;
  depthwise(
    x: number, C: number, H: number, W: number, w: number, KH: number, KW: number,
    SH: number, SW: number, PH: number, PW: number, DH: number, DW: number,
    b: number, hasBias: number, y: number, OH: number, OW: number, pad: number,
  ): void;
  relu(x: number, y: number, n: number, slope: number): void;
  padimg2(x: number, C: number, H: number, W: number, PT: number, PL: number, Hp: number, Wp: number, dst: number): void;
  wino_in(xp: number, C: number, Hp: number, Wp: number, TH: number, TWp: number, V: number, vstride: number, c0: number, c1: number): void;
  wgemm(pw: number, M: number, K: number, pbFull: number, N: number, y: number, sa: number, sb: number, relu: number, slope: number, scratch: number): void;
  wino_out(Mb: number, M: number, N: number, TH: number, TWp: number, OH: number, OW: number, y: number, sa: number, sb: number, relu: number, slope: number, o0: number, o1: number): void;
  wino4_in(xp: number, C: number, Hp: number, Wp: number, TH: number, TWp: number, V: number, vstride: number, c0: number, c1: number): void;
  wino25_in(xp: number, C: number, Hp: number, Wp: number, TH: number, TWp: number, V: number, vstride: number, c0: number, c1: number): void;
  wino25_out(Mb: number, M: number, N: number, TH: number, TWp: number, OH: number, OW: number, y: number, sa: number, sb: number, relu: number, slope: number, o0: number, o1: number): void;
  wino4_out(Mb: number, M: number, N: number, TH: number, TWp: number, OH: number, OW: number, y: number, sa: number, sb: number, relu: number, slope: number, o0: number, o1: number): void;
  affine(x: number, y: number, outer: number, C: number, S: number, a: number, b: number, relu: number, slope: number): void;
  sum2(a: number, b: number, y: number, n: number, c0: number, c1: number, relu: number, slope: number): void;
  lrn(x: number, s: number, y: number, N: number, C: number, P: number, pre: number, k: number, an: number, mode: number, q: number, ld: number): void;
  maxpool(
    x: number, C: number, H: number, W: number, KH: number, KW: number, SH: number, SW: number, PH: number, PW: number,
    y: number, OH: number, OW: number, pad: number, Hs: number, Ws: number,
  ): void;
  avepool_global(x: number, planes: number, S: number, div: number, y: number): void;
  maxpool_direct(x: number, C: number, H: number, W: number, KH: number, KW: number, SH: number, SW: number, y: number, OH: number, OW: number): void;
}
