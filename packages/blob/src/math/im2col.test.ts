import { describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { col2im, col2imBatch, col2imNd, convOutputSize, im2col, im2colBatch, im2colNd, MathError } from './index.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

function rand(T: Ctor, n: number, rng: Rng): Float32Array | Float64Array {
  const a = new T(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniformIn(-1, 1);
  return a;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const seq = (n: number) => Float32Array.from({ length: n }, (_, i) => i + 1);

interface Conv2d {
  c: number; h: number; w: number; kh: number; kw: number; ph: number; pw: number;
  sh: number; sw: number; dh: number; dw: number;
}

function outShape(p: Conv2d): [number, number] {
  return [convOutputSize(p.h, p.kh, p.ph, p.sh, p.dh), convOutputSize(p.w, p.kw, p.pw, p.sw, p.dw)];
}

const cases2d: Conv2d[] = [
  { c: 1, h: 3, w: 3, kh: 2, kw: 2, ph: 0, pw: 0, sh: 1, sw: 1, dh: 1, dw: 1 },
  { c: 2, h: 5, w: 6, kh: 3, kw: 2, ph: 1, pw: 2, sh: 2, sw: 1, dh: 1, dw: 2 },
  { c: 3, h: 7, w: 4, kh: 3, kw: 3, ph: 2, pw: 1, sh: 3, sw: 2, dh: 2, dw: 1 },
  { c: 1, h: 4, w: 5, kh: 5, kw: 1, ph: 2, pw: 0, sh: 1, sw: 3, dh: 1, dw: 1 },
  { c: 2, h: 1, w: 8, kh: 1, kw: 3, ph: 0, pw: 4, sh: 1, sw: 2, dh: 1, dw: 3 },
  // Kernel column 1 only ever lands in the padding (an empty valid range).
  { c: 1, h: 1, w: 1, kh: 1, kw: 3, ph: 0, pw: 2, sh: 1, sw: 2, dh: 1, dw: 1 },
];

function run2d(p: Conv2d, data: Float32Array | Float64Array, col: Float32Array | Float64Array): void {
  im2col(data, p.c, p.h, p.w, p.kh, p.kw, p.ph, p.pw, p.sh, p.sw, p.dh, p.dw, col);
}
function back2d(p: Conv2d, col: Float32Array | Float64Array, data: Float32Array | Float64Array): void {
  col2im(col, p.c, p.h, p.w, p.kh, p.kw, p.ph, p.pw, p.sh, p.sw, p.dh, p.dw, data);
}

describe('im2col / col2im (2-D)', () => {
  it('unfolds 2×2 windows of a 3×3 image', () => {
    const col = new Float32Array(16);
    im2col(seq(9), 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, col);
    expect(Array.from(col)).toEqual([1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]);
  });

  it('fills the padding with zeros', () => {
    const col = new Float32Array(4 * 9).fill(NaN);
    im2col(seq(4), 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, col);
    expect(Array.from(col.subarray(0, 9))).toEqual([0, 0, 0, 0, 1, 2, 0, 3, 4]);
    expect(Array.from(col.subarray(27, 36))).toEqual([1, 2, 0, 3, 4, 0, 0, 0, 0]);
  });

  it('samples with dilation and stride', () => {
    const col = new Float32Array(4 * 4);
    im2col(seq(16), 1, 4, 4, 2, 2, 0, 0, 1, 1, 2, 2, col);
    expect(Array.from(col.subarray(0, 4))).toEqual([1, 2, 5, 6]);
    expect(Array.from(col.subarray(12, 16))).toEqual([11, 12, 15, 16]);
    const strided = new Float32Array(4);
    im2col(seq(16), 1, 4, 4, 1, 1, 0, 0, 2, 3, 1, 1, strided);
    expect(Array.from(strided)).toEqual([1, 4, 9, 12]);
  });

  it('col2im zeroes data, then sums overlapping windows', () => {
    const data = new Float32Array(9).fill(100);
    col2im(new Float32Array(16).fill(1), 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, data);
    expect(Array.from(data)).toEqual([1, 2, 1, 2, 4, 2, 1, 2, 1]);
  });

  for (const T of [Float32Array, Float64Array] as Ctor[]) {
    it(`${T.name}: col2im is the adjoint of im2col`, () => {
      const rng = new Rng(11);
      for (const p of cases2d) {
        const [oh, ow] = outShape(p);
        const n = p.c * p.h * p.w, m = p.c * p.kh * p.kw * oh * ow;
        const x = rand(T, n, rng), y = rand(T, m, rng);
        const ax = new T(m), aty = new T(n);
        run2d(p, x, ax);
        back2d(p, y, aty);
        expect(dot(ax, y)).toBeCloseTo(dot(x, aty), 4);
      }
    });
  }

  it('convOutputSize truncates like C integer division', () => {
    expect(convOutputSize(5, 3, 1, 2, 1)).toBe(3);
    expect(convOutputSize(227, 11, 0, 4, 1)).toBe(55);
    expect(convOutputSize(7, 3, 0, 1, 3)).toBe(1);
  });

  it('rejects kernels that do not fit and short buffers', () => {
    expect(() => im2col(seq(4), 1, 2, 2, 3, 3, 0, 0, 1, 1, 1, 1, new Float32Array(1))).toThrow(MathError);
    expect(() => im2col(seq(9), 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, new Float32Array(15)))
      .toThrow(/im2col: col has 15 elements, 4×4 needs 16/);
    expect(() => im2col(seq(9), 1, 3, 3, 2, 2, 0, 0, 0, 1, 1, 1, new Float32Array(16)))
      .toThrow(/strideH must be a positive integer/);
  });
});

describe('im2colBatch / col2imBatch', () => {
  for (const T of [Float32Array, Float64Array] as Ctor[]) {
    it(`${T.name}: image n's columns are im2col's, placed at n·outH·outW in every row`, () => {
      const rng = new Rng(5);
      for (const p of cases2d) {
        const num = 3;
        const [oh, ow] = outShape(p);
        const imDim = p.c * p.h * p.w, rows = p.c * p.kh * p.kw, S = oh * ow;
        const x = rand(T, num * imDim, rng);
        const col = new T(rows * num * S).fill(NaN);
        im2colBatch(x, num, p.c, p.h, p.w, p.kh, p.kw, p.ph, p.pw, p.sh, p.sw, p.dh, p.dw, col);
        const one = new T(rows * S);
        for (let n = 0; n < num; n++) {
          run2d(p, x.subarray(n * imDim, (n + 1) * imDim), one);
          for (let r = 0; r < rows; r++) {
            expect(Array.from(col.subarray(r * num * S + n * S, r * num * S + (n + 1) * S))).toEqual(Array.from(one.subarray(r * S, (r + 1) * S)));
          }
        }
        // col2imBatch folds each image's columns exactly as col2im does.
        const y = rand(T, rows * num * S, rng);
        const back = new T(num * imDim).fill(7);
        col2imBatch(y, num, p.c, p.h, p.w, p.kh, p.kw, p.ph, p.pw, p.sh, p.sw, p.dh, p.dw, back);
        const colN = new T(rows * S), want = new T(imDim);
        for (let n = 0; n < num; n++) {
          for (let r = 0; r < rows; r++) colN.set(y.subarray(r * num * S + n * S, r * num * S + (n + 1) * S), r * S);
          back2d(p, colN, want);
          expect(Array.from(back.subarray(n * imDim, (n + 1) * imDim))).toEqual(Array.from(want));
        }
      }
    });
  }

  it('names the batch in its length errors', () => {
    expect(() => im2colBatch(seq(18), 2, 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, new Float32Array(31)))
      .toThrow(/im2colBatch: col has 31 elements, 4×2×4 needs 32/);
    expect(() => col2imBatch(new Float32Array(32), 2, 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1, new Float32Array(17)))
      .toThrow(/col2imBatch: data has 17 elements, 2×1×3×3 needs 18/);
  });
});

/** im2colNd straight from the definition, for any number of axes. */
function naiveNd(
  data: ArrayLike<number>, imShape: number[], colShape: number[], k: number[], pad: number[], st: number[], dl: number[],
): Float64Array {
  const n = k.length;
  const ksize = k.reduce((a, b) => a * b, 1);
  const outSp = colShape.slice(1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(colShape[0]! * outSp);
  for (let c = 0; c < colShape[0]!; c++) {
    const ch = Math.floor(c / ksize);
    const koff: number[] = [];
    let r = c % ksize;
    for (let i = n - 1; i >= 0; i--) {
      koff[i] = r % k[i]!;
      r = Math.floor(r / k[i]!);
    }
    for (let o = 0; o < outSp; o++) {
      let rem = o, idx = 0, inside = true;
      const pos: number[] = [];
      for (let i = n - 1; i >= 0; i--) {
        pos[i] = rem % colShape[i + 1]!;
        rem = Math.floor(rem / colShape[i + 1]!);
      }
      for (let i = 0; i < n; i++) {
        const p = pos[i]! * st[i]! - pad[i]! + koff[i]! * dl[i]!;
        if (p < 0 || p >= imShape[i + 1]!) inside = false;
        idx = idx * imShape[i + 1]! + p;
      }
      out[c * outSp + o] = inside ? data[ch * imShape.slice(1).reduce((a, b) => a * b, 1) + idx]! : 0;
    }
  }
  return out;
}

describe('im2colNd / col2imNd', () => {
  it('agrees with the 2-D routines', () => {
    const rng = new Rng(5);
    for (const p of cases2d) {
      const [oh, ow] = outShape(p);
      const imShape = [p.c, p.h, p.w], colShape = [p.c * p.kh * p.kw, oh, ow];
      const args = [[p.kh, p.kw], [p.ph, p.pw], [p.sh, p.sw], [p.dh, p.dw]] as const;
      const x = rand(Float64Array, p.c * p.h * p.w, rng);
      const y = rand(Float64Array, colShape[0]! * oh * ow, rng);
      const a2 = new Float64Array(y.length), aN = new Float64Array(y.length).fill(NaN);
      run2d(p, x, a2);
      im2colNd(x, 2, imShape, colShape, ...args, aN);
      expect(Array.from(aN)).toEqual(Array.from(a2));
      const b2 = new Float64Array(x.length), bN = new Float64Array(x.length).fill(7);
      back2d(p, y, b2);
      col2imNd(y, 2, imShape, colShape, ...args, bN);
      expect(Array.from(bN)).toEqual(Array.from(b2));
    }
  });

  const cases3d = [
    { im: [2, 3, 4, 5], k: [2, 3, 2], pad: [1, 0, 1], st: [1, 2, 2], dl: [1, 1, 2] },
    { im: [1, 4, 3, 3], k: [3, 1, 3], pad: [0, 1, 2], st: [2, 1, 3], dl: [1, 2, 1] },
    { im: [3, 5], k: [3], pad: [2], st: [2], dl: [2] },
  ];
  for (const cs of cases3d) {
    const n = cs.k.length;
    const out = cs.k.map((k, i) => convOutputSize(cs.im[i + 1]!, k, cs.pad[i]!, cs.st[i]!, cs.dl[i]!));
    const colShape = [cs.im[0]! * cs.k.reduce((a, b) => a * b, 1), ...out];
    it(`${n}-D im2colNd matches the definition and col2imNd is its adjoint (${cs.im.join('×')})`, () => {
      const rng = new Rng(9);
      const x = rand(Float64Array, cs.im.reduce((a, b) => a * b, 1), rng);
      const y = rand(Float64Array, colShape.reduce((a, b) => a * b, 1), rng);
      const ax = new Float64Array(y.length), aty = new Float64Array(x.length);
      im2colNd(x, n, cs.im, colShape, cs.k, cs.pad, cs.st, cs.dl, ax);
      expect(Array.from(ax)).toEqual(Array.from(naiveNd(x, cs.im, colShape, cs.k, cs.pad, cs.st, cs.dl)));
      col2imNd(y, n, cs.im, colShape, cs.k, cs.pad, cs.st, cs.dl, aty);
      expect(dot(ax, y)).toBeCloseTo(dot(x, aty), 10);
    });
  }

  it('1-D agrees with 2-D on a height-1 image', () => {
    const x = seq(14);
    const a1 = new Float32Array(2 * 3 * 4), a2 = new Float32Array(2 * 3 * 4);
    im2colNd(x, 1, [2, 7], [6, 4], [3], [1], [2], [1], a1);
    im2col(x, 2, 1, 7, 1, 3, 0, 1, 1, 2, 1, 1, a2);
    expect(Array.from(a1)).toEqual(Array.from(a2));
  });

  it('rejects inconsistent shapes', () => {
    expect(() => im2colNd(seq(8), 2, [2, 2, 2], [7, 1, 1], [2, 2], [0, 0], [1, 1], [1, 1], new Float32Array(8)))
      .toThrow(/colShape\[0\] = 7 is not a multiple of the kernel size 4/);
    expect(() => im2colNd(seq(8), 2, [2, 2], [8, 1, 1], [2, 2], [0, 0], [1, 1], [1, 1], new Float32Array(8)))
      .toThrow(/imShape has 2 entries, 3 needed/);
  });
});
