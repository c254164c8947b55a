import type { FloatArray } from '../dtype.js';

// Level-1 routines with Caffe's argument order (caffe_axpy, caffe_cpu_axpby, …). Each works
// on the first n elements of its arrays; pass `subarray` views for offsets.

/** y ← alpha·x + y. */
export function axpy(n: number, alpha: number, x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = y[i]! + alpha * x[i]!;
}

/** y ← alpha·x + beta·y (beta = 0 overwrites y, as BLAS does when it scales by zero). */
export function axpby(n: number, alpha: number, x: FloatArray, beta: number, y: FloatArray): void {
  if (beta === 0) {
    for (let i = 0; i < n; i++) y[i] = alpha * x[i]!;
    return;
  }
  for (let i = 0; i < n; i++) y[i] = alpha * x[i]! + beta * y[i]!;
}

/** x ← alpha·x (alpha = 0 clears x). */
export function scal(n: number, alpha: number, x: FloatArray): void {
  if (alpha === 0) {
    x.fill(0, 0, n);
    return;
  }
  for (let i = 0; i < n; i++) x[i] = alpha * x[i]!;
}

/** y ← alpha·x (caffe_cpu_scale). */
export function scale(n: number, alpha: number, x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = alpha * x[i]!;
}

/** Σ x[i]·y[i], accumulated in double precision. */
export function dot(n: number, x: FloatArray, y: FloatArray): number {
  let s0 = 0, s1 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    s0 += x[i]! * y[i]!;
    s1 += x[i + 1]! * y[i + 1]!;
  }
  if (i < n) s0 += x[i]! * y[i]!;
  return s0 + s1;
}

/** Σ x[incx·i]·y[incy·i] (caffe_cpu_strided_dot). */
export function stridedDot(n: number, x: FloatArray, incx: number, y: FloatArray, incy: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i * incx]! * y[i * incy]!;
  return s;
}

/** Σ |x[i]|. */
export function asum(n: number, x: FloatArray): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.abs(x[i]!);
  return s;
}

/** Σ x[i]². */
export function sumsq(n: number, x: FloatArray): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i]! * x[i]!;
  return s;
}

/** y[0:n] ← value (caffe_set). */
export function set(n: number, value: number, y: FloatArray): void {
  y.fill(value, 0, n);
}

/** y[0:n] ← x[0:n] (caffe_copy); x and y may be of different element types. */
export function copy(n: number, x: FloatArray, y: FloatArray): void {
  if (x === y) return;
  if (x.length === n) y.set(x);
  else y.set(x.subarray(0, n));
}
