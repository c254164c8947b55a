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
 * OFF + g·SG + rowOffset(row) + colOffset(col), colOffset(c) = ⌊c/CS⌋·CN + (c mod CS)·SC (an index
 * that splits in two, like (image, pixel) in a convolution's N·OH·OW columns), rowOffset alike
 * with RS, RN, SR. Rows at or past
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
  /** Row split, the same way: rows in blocks of `rs`, block b starting at b·rn. */
  rs?: number;
  rn?: number;
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
    RS: l.rs ?? l.rows,
    RN: l.rn ?? 0,
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
      const rb = ${div('r', '$RS')};
      const base = $OFF + g * $SG + rb * $RN + (r - rb * $RS) * $SR;${one(0)}${one(1)}${one(2)}${one(3)}
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
    return gemm4Native(this.thread.x);
  }`,
    native: [{ name: 'gemm4Native', source: gemmGlsl(M, N4, K4, rowsPerGroup, KC, dev.runtime.info.mode === 'webgl2' ? 'texture' : 'texture2D'), returnType: 'Array(4)' }],
  };
  return { value: dev.adopt(dev.run(spec, splits * cells, [a, b])), M, N4, splits };
}

/** A float literal for GLSL. */
const f = (n: number): string => (Number.isInteger(n) ? `${n}.0` : `${n}`);

/**
 * The GEMM loop in GLSL, reading gpu.js's uniforms for the kernel arguments A and B (`user_A`,
 * `user_ASize`, …) directly: texel coordinates advance by additions (gpu.js's own indexing does
 * an integer division and modulo per read, which llvmpipe cannot vectorise), and the 4 products
 * per k are vec4 arithmetic. `sample` is the texture read of the GLSL dialect gpu.js compiles to:
 * `texture` in WebGL2's GLSL ES 3.00, `texture2D` in WebGL1 and headless GL's GLSL ES 1.00.
 */
function gemmGlsl(M: number, N4: number, K4: number, MG: number, KC: number, sample: 'texture' | 'texture2D'): string {
  return `vec4 gemm4Native(float t) {
  float p = floor((t + 0.5) / ${f(M * N4)});
  float rem = t - p * ${f(M * N4)};
  float m = floor((rem + 0.5) / ${f(N4)});
  float n4 = rem - m * ${f(N4)};
  float g = floor((m + 0.5) / ${f(MG)});
  float aIdx = m * ${f(K4)} + p * ${f(KC)};
  float bIdx = (g * ${f(4 * K4)} + p * ${f(4 * KC)}) * ${f(N4)} + n4;
  float wA = float(user_ASize.x);
  vec2 invA = 1.0 / vec2(user_ASize);
  float wB = float(user_BSize.x);
  vec2 invB = 1.0 / vec2(user_BSize);
  float ay = floor((aIdx + 0.5) / wA);
  float ax = aIdx - ay * wA;
  vec4 bi = vec4(bIdx) + vec4(0.0, ${f(N4)}, ${f(2 * N4)}, ${f(3 * N4)});
  vec4 by = floor((bi + 0.5) / wB);
  vec4 bx = bi - by * wB;
  float sy = floor((${f(4 * N4)} + 0.5) / wB);
  float sx = ${f(4 * N4)} - sy * wB;
  float kEnd = min(${f(KC)}, ${f(K4)} - p * ${f(KC)});
  vec4 s = vec4(0.0);
  for (int kk = 0; kk < ${KC}; kk++) {
    if (float(kk) >= kEnd) break;
    vec4 a = ${sample}(user_A, (vec2(ax, ay) + 0.5) * invA);
    vec4 b0 = ${sample}(user_B, (vec2(bx.x, by.x) + 0.5) * invB);
    vec4 b1 = ${sample}(user_B, (vec2(bx.y, by.y) + 0.5) * invB);
    vec4 b2 = ${sample}(user_B, (vec2(bx.z, by.z) + 0.5) * invB);
    vec4 b3 = ${sample}(user_B, (vec2(bx.w, by.w) + 0.5) * invB);
    s += a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
    ax += 1.0;
    if (ax >= wA) { ax -= wA; ay += 1.0; }
    bx += sx;
    by += sy;
    vec4 wrap = step(vec4(wB), bx);
    bx -= wrap * wB;
    by += wrap;
  }
  return s;
}`;
}

export interface UnpackOptions {
  /** Output floats (the target buffer's length; positions past `count` are zero). */
  length: number;
  count: number;
  /** Columns of C that are real (C has 4·N4 ≥ cols). */
  cols: number;
  /**
   * 'matrix': out[i] is C[⌊i/cols⌋, i mod cols]. 'conv': out is N × channels × S (a convolution
   * top), out[(n·channels + o)·S + s] = C[o, n·S + s].
   */
  layout: 'matrix' | 'conv';
  /** S and the number of output channels for the 'conv' layout. */
  spatial?: number;
  channels?: number;
  alpha?: number;
  /** out += beta·old. */
  old?: { value: GpuValue; beta: number };
  /** + bias[col] ('matrix') or bias[row] ('conv'). */
  bias?: GpuValue;
  /** The GEMM computed the transpose: element (row, col) is at C[col, row]. */
  transposed?: boolean;
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
      OC: o.channels ?? 1,
      COUNT: o.count,
      CONV: conv ? 1 : 0,
      OLD: o.old ? 1 : 0,
      BIAS: o.bias ? 1 : 0,
      TR: o.transposed ? 1 : 0,
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
      const n = ${div('t', '$OC')};
      row = t - n * $OC;
      col = n * $S + s;
    } else {
      row = ${div('i', '$COLS')};
      col = i - row * $COLS;
    }
    let cr = row;
    let cc = col;
    if ($TR > 0) {
      cr = col;
      cc = row;
    }
    const c4 = ${div('cc', '4')};
    const q = cc - c4 * 4;
    let sum = 0.0;
    for (let p = 0; p < $P; p++) {
      const v = Cm[(p * $M + cr) * $N4 + c4];
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
 * col2im from a packed column-gradient GEMM (rows g·R + r, columns j = (n, oh, ow), no splits;
 * `transposed`: rows j, columns r, one group): dX[n, c, h, w] = Σ over the taps (kh, kw) whose
 * window position lands on (h, w).
 */
export function col2imPacked(dev: GpuDevice, c: PackedGemm, d: ConvGeom, length: number, count: number, transposed = false): GpuValue {
  const constants = { ...geomConstants(d), N4: c.N4, COUNT: count, TR: transposed ? 1 : 0 };
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
            const r = g * $R + (cg * $KH + kh) * $KW + kw;
            let cr = r;
            let cc = j;
            if ($TR > 0) {
              cr = j;
              cc = r;
            }
            const c4 = ${div('cc', '4')};
            const q = cc - c4 * 4;
            const v = Cm[cr * $N4 + c4];
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
