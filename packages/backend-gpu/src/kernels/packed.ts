import type { GpuDevice, KernelSpec } from '../device.js';
import type { GpuValue } from '../runtime.js';

/**
 * Packed GEMM for the GL modes. In software GL (Mesa llvmpipe) a texture fetch costs far more
 * than a multiply-add, and a scalar GEMM spends two fetches per multiply-add. Here operands are
 * first gathered ("packed") into RGBA textures holding 4 floats per texel, and each GEMM thread
 * computes 4 neighbouring outputs: per 4 steps of k it fetches one texel of A and four of B for
 * 16 multiply-adds. Packing and unpacking are cheap gathers (one pass over each operand) that
 * also do the layout work: transposes, im2col, padding to multiples of 4, bias, accumulation.
 *
 * Layouts: a packed matrix of R rows × C columns is R·⌈C/4⌉ texels, texel (r, c4) holding
 * columns 4·c4 … 4·c4 + 3 of row r (zeros past C). A GEMM's B operand is stacked per group: group
 * g's rows start at g·4·K4.
 */

const ceil4 = (n: number): number => Math.ceil(n / 4);

/** Source lines reading component `q` (a float 0…3) of vec4 `v` into `x`. */
const pick = (v: string, q: string, x: string): string =>
  `let ${x} = ${v}[0]; if (${q} > 0.5) { ${x} = ${v}[1]; } if (${q} > 1.5) { ${x} = ${v}[2]; } if (${q} > 2.5) { ${x} = ${v}[3]; }`;

const div = (a: string, b: string): string => `Math.floor((${a} + 0.5) / ${b})`;

/**
 * Layout of a matrix read from a scalar buffer: element (row, col) of group g is at
 * OFF + g·SG + row·SR + colOffset(col), colOffset(c) = ⌊c/CS⌋·CN + (c mod CS)·SC (a column index
 * that splits in two, like (image, pixel) in a convolution's N·OH·OW columns). Rows at or past
 * `validRows` of each group's `rows` are zero (padding k to a multiple of 4).
 */
export interface MatrixLayout {
  groups?: number;
  /** Rows per group in the packed output. */
  rows: number;
  /** Rows per group read from the buffer (the rest are zeros); default `rows`. */
  validRows?: number;
  cols: number;
  off?: number;
  /** Offset between groups. */
  sg?: number;
  sr: number;
  sc: number;
  /** Column split: columns come in blocks of `cs`, block b starting at b·cn (default: one block). */
  cs?: number;
  cn?: number;
}

const packMatrixSpec = (l: MatrixLayout): KernelSpec => {
  const constants = {
    RG: l.rows,
    RV: l.validRows ?? l.rows,
    SG: l.sg ?? 0,
    SR: l.sr,
    SC: l.sc,
    CC: l.cols,
    C4: ceil4(l.cols),
    CS: l.cs ?? l.cols,
    CN: l.cn ?? 0,
    OFF: l.off ?? 0,
  };
  const one = (j: number): string => `
    const c${j} = c4 * 4 + ${j};
    if (c${j} < $CC) {
      const b${j} = ${div(`c${j}`, '$CS')};
      v${j} = X[base + b${j} * $CN + (c${j} - b${j} * $CS) * $SC];
    }`;
  return {
    name: 'pack-matrix',
    constants,
    vec4: true,
    source: `function (X) {
    const t = this.thread.x;
    const q = ${div('t', '$C4')};
    const c4 = t - q * $C4;
    const g = ${div('q', '$RG')};
    const r = q - g * $RG;
    let v0 = 0.0; let v1 = 0.0; let v2 = 0.0; let v3 = 0.0;
    if (r < $RV) {
      const base = $OFF + g * $SG + r * $SR;${one(0)}${one(1)}${one(2)}${one(3)}
    }
    return [v0, v1, v2, v3];
  }`,
  };
};

/** Pack a (grouped) matrix held in a scalar buffer: groups·rows·⌈cols/4⌉ texels. */
export function packMatrix(dev: GpuDevice, x: GpuValue, l: MatrixLayout): GpuValue {
  return dev.adopt(dev.run(packMatrixSpec(l), (l.groups ?? 1) * l.rows * ceil4(l.cols), [x]));
}

/** 2-D convolution geometry (NCHW), as the convolution kernels use it. */
export interface ConvGeom {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  OH: number;
  OW: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
  DH: number;
  DW: number;
  G: number;
}

const geomConstants = (d: ConvGeom) => ({
  C: d.C,
  H: d.H,
  Wd: d.W,
  OH: d.OH,
  OW: d.OW,
  KH: d.KH,
  KW: d.KW,
  SH: d.SH,
  SW: d.SW,
  PH: d.PH,
  PW: d.PW,
  DH: d.DH,
  DW: d.DW,
  CG: d.C / d.G,
  R: (d.C / d.G) * d.KH * d.KW,
  S: d.OH * d.OW,
  J: d.N * d.OH * d.OW,
});

/** Source: `v = X at column-matrix element (r, j)` of group g (zero outside the image or past R, J). */
const im2colValue = (v: string, r: string, j: string): string => `
    if (${r} < $R && ${j} < $J) {
      const ${v}n = ${div(j, '$S')};
      const ${v}s = ${j} - ${v}n * $S;
      const ${v}oh = ${div(`${v}s`, '$OW')};
      const ${v}ow = ${v}s - ${v}oh * $OW;
      const ${v}c = ${div(r, '($KH * $KW)')};
      const ${v}kk = ${r} - ${v}c * $KH * $KW;
      const ${v}kh = ${div(`${v}kk`, '$KW')};
      const ${v}kw = ${v}kk - ${v}kh * $KW;
      const ${v}h = ${v}oh * $SH - $PH + ${v}kh * $DH;
      const ${v}w = ${v}ow * $SW - $PW + ${v}kw * $DW;
      if (${v}h >= 0 && ${v}h < $H && ${v}w >= 0 && ${v}w < $Wd) {
        ${v} = X[((${v}n * $C + g * $CG + ${v}c) * $H + ${v}h) * $Wd + ${v}w];
      }
    }`;

/**
 * The column matrix of a convolution, packed: rows r = (c, kh, kw) of each group (padded to
 * 4·⌈R/4⌉), columns j = (n, oh, ow); `transposed` packs rows j (padded) × columns r instead.
 */
export function packIm2col(dev: GpuDevice, x: GpuValue, d: ConvGeom, transposed: boolean): GpuValue {
  const c = geomConstants(d);
  const rowsPer = transposed ? 4 * ceil4(c.J) : 4 * ceil4(c.R);
  const cols4 = transposed ? ceil4(c.R) : ceil4(c.J);
  const constants = { ...c, RP: rowsPer, COLS4: cols4 };
  const rowVar = transposed ? 'j' : 'r';
  const colVar = transposed ? 'r' : 'j';
  const vals = [0, 1, 2, 3]
    .map((k) => `\n    const ${colVar}${k} = col4 * 4 + ${k};${im2colValue(`v${k}`, transposed ? `r${k}` : 'r', transposed ? 'j' : `j${k}`)}`)
    .join('');
  const spec: KernelSpec = {
    name: transposed ? 'im2col-t' : 'im2col',
    constants,
    vec4: true,
    source: `function (X) {
    const t = this.thread.x;
    const q = ${div('t', '$COLS4')};
    const col4 = t - q * $COLS4;
    const g = ${div('q', '$RP')};
    const ${rowVar} = q - g * $RP;
    let v0 = 0.0; let v1 = 0.0; let v2 = 0.0; let v3 = 0.0;${vals}
    return [v0, v1, v2, v3];
  }`,
  };
  return dev.adopt(dev.run(spec, d.G * rowsPer * cols4, [x]));
}

/** Threads a GEMM should have at least (split-K below that), so every rasterizer thread gets tiles. */
const MIN_THREADS = 16384;
/** Fewest 4-wide k steps per split. */
const MIN_K4_PER_SPLIT = 32;

export interface PackedGemm {
  /** The output's texels: `splits` stacked partial products of M × N4. */
  value: GpuValue;
  M: number;
  N4: number;
  splits: number;
}

/**
 * C = A·B for packed A (M rows × 4·K4 columns) and B (groups × 4·K4 rows × 4·N4 columns): row m of
 * C uses B's group ⌊m / rowsPerGroup⌋. Long, thin products (weight gradients) are split along k
 * into partial products, summed when unpacked.
 */
export function packedGemm(dev: GpuDevice, a: GpuValue, b: GpuValue, M: number, N4: number, K4: number, rowsPerGroup = M, maxSplits = Infinity): PackedGemm {
  const cells = M * N4;
  const splits = Math.max(1, Math.min(maxSplits, Math.floor(K4 / MIN_K4_PER_SPLIT), Math.ceil(MIN_THREADS / cells)));
  const KC = Math.ceil(K4 / splits);
  const spec: KernelSpec = {
    name: 'gemm4',
    constants: { M, N4, K4, MG: rowsPerGroup, KC },
    vec4: true,
    loop: KC,
    source: `function (A, B) {
    const t = this.thread.x;
    const p = ${div('t', '($M * $N4)')};
    const rem = t - p * $M * $N4;
    const m = ${div('rem', '$N4')};
    const n4 = rem - m * $N4;
    const g = ${div('m', '$MG')};
    const aBase = m * $K4 + p * $KC;
    const bBase = (g * $K4 * 4 + p * $KC * 4) * $N4 + n4;
    let s0 = 0.0; let s1 = 0.0; let s2 = 0.0; let s3 = 0.0;
    for (let kk = 0; kk < $KC; kk++) {
      if (p * $KC + kk < $K4) {
        const a = A[aBase + kk];
        const bb = bBase + kk * 4 * $N4;
        const b0 = B[bb];
        const b1 = B[bb + $N4];
        const b2 = B[bb + 2 * $N4];
        const b3 = B[bb + 3 * $N4];
        s0 += a[0] * b0[0] + a[1] * b1[0] + a[2] * b2[0] + a[3] * b3[0];
        s1 += a[0] * b0[1] + a[1] * b1[1] + a[2] * b2[1] + a[3] * b3[1];
        s2 += a[0] * b0[2] + a[1] * b1[2] + a[2] * b2[2] + a[3] * b3[2];
        s3 += a[0] * b0[3] + a[1] * b1[3] + a[2] * b2[3] + a[3] * b3[3];
      }
    }
    return [s0, s1, s2, s3];
  }`,
  };
  return { value: dev.adopt(dev.run(spec, splits * cells, [a, b])), M, N4, splits };
}

export interface UnpackOptions {
  /** Output floats (the target buffer's length; positions past `count` are zero). */
  length: number;
  count: number;
  /** Columns of C that are real (C has 4·N4 ≥ cols). */
  cols: number;
  /**
   * 'matrix': out[i] is C[⌊i/cols⌋, i mod cols]. 'conv': out is N × M × S (a convolution top),
   * out[(n·M + o)·S + s] = C[o, n·S + s].
   */
  layout: 'matrix' | 'conv';
  /** S for the 'conv' layout. */
  spatial?: number;
  alpha?: number;
  /** out += beta·old. */
  old?: { value: GpuValue; beta: number };
  /** + bias[col] ('matrix') or bias[row] ('conv'). */
  bias?: GpuValue;
}

/** Scalar result of a packed GEMM: sums the split partials, applies alpha, old and bias. */
export function unpack(dev: GpuDevice, c: PackedGemm, o: UnpackOptions): GpuValue {
  const ph = dev.read(dev.placeholder);
  const conv = o.layout === 'conv';
  const spec: KernelSpec = {
    name: 'unpack4',
    constants: {
      M: c.M,
      N4: c.N4,
      P: c.splits,
      COLS: o.cols,
      S: o.spatial ?? 1,
      COUNT: o.count,
      CONV: conv ? 1 : 0,
      OLD: o.old ? 1 : 0,
      BIAS: o.bias ? 1 : 0,
    },
    loop: c.splits,
    source: `function (Cm, Old, beta, Bias, alpha) {
    const i = this.thread.x;
    if (i >= $COUNT) { return 0; }
    let row = 0.0;
    let col = 0.0;
    if ($CONV > 0) {
      const t = ${div('i', '$S')};
      const s = i - t * $S;
      const n = ${div('t', '$M')};
      row = t - n * $M;
      col = n * $S + s;
    } else {
      row = ${div('i', '$COLS')};
      col = i - row * $COLS;
    }
    const c4 = ${div('col', '4')};
    const q = col - c4 * 4;
    let sum = 0.0;
    for (let p = 0; p < $P; p++) {
      const v = Cm[(p * $M + row) * $N4 + c4];
      ${pick('v', 'q', 'x')}
      sum += x;
    }
    let r = alpha * sum;
    if ($OLD > 0) { r += beta * Old[i]; }
    if ($BIAS > 0) {
      if ($CONV > 0) { r += Bias[row]; } else { r += Bias[col]; }
    }
    return r;
  }`,
  };
  return dev.run(spec, o.length, [c.value, o.old?.value ?? ph, o.old?.beta ?? 0, o.bias ?? ph, o.alpha ?? 1]);
}

/**
 * col2im from a packed column-gradient GEMM (rows g·R + r, columns j = (n, oh, ow), no splits):
 * dX[n, c, h, w] = Σ over the taps (kh, kw) whose window position lands on (h, w).
 */
export function col2imPacked(dev: GpuDevice, c: PackedGemm, d: ConvGeom, length: number, count: number): GpuValue {
  const constants = { ...geomConstants(d), N4: c.N4, COUNT: count };
  const spec: KernelSpec = {
    name: 'col2im4',
    constants,
    loop: d.KH * d.KW,
    source: `function (Cm) {
    const i = this.thread.x;
    if (i >= $COUNT) { return 0; }
    const t1 = ${div('i', '$Wd')};
    const w = i - t1 * $Wd;
    const t2 = ${div('t1', '$H')};
    const h = t1 - t2 * $H;
    const n = ${div('t2', '$C')};
    const c = t2 - n * $C;
    const g = ${div('c', '$CG')};
    const cg = c - g * $CG;
    let s = 0.0;
    for (let kh = 0; kh < $KH; kh++) {
      const hh = h + $PH - kh * $DH;
      const oh = ${div('hh', '$SH')};
      if (hh >= 0 && oh * $SH == hh && oh < $OH) {
        for (let kw = 0; kw < $KW; kw++) {
          const ww = w + $PW - kw * $DW;
          const ow = ${div('ww', '$SW')};
          if (ww >= 0 && ow * $SW == ww && ow < $OW) {
            const j = n * $S + oh * $OW + ow;
            const j4 = ${div('j', '4')};
            const q = j - j4 * 4;
            const v = Cm[(g * $R + (cg * $KH + kh) * $KW + kw) * $N4 + j4];
            ${pick('v', 'q', 'x')}
            s += x;
          }
        }
      }
    }
    return s;
  }`,
  };
  return dev.run(spec, length, [c.value]);
}

/** Texels a packed operand of rows × cols takes. */
export const packedTexels = (rows: number, cols: number): number => rows * ceil4(cols);
export { ceil4 };
