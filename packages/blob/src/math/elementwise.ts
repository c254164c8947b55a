import type { FloatArray } from '../dtype.js';

// Elementwise helpers with Caffe's argument order (caffe_add(n, a, b, y), caffe_powx(n, a, b, y)…).
// Outputs may alias inputs (y = a is fine: every element is read before it is written).

/** y ← a + b. */
export function add(n: number, a: FloatArray, b: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = a[i]! + b[i]!;
}

/** y ← a − b. */
export function sub(n: number, a: FloatArray, b: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = a[i]! - b[i]!;
}

/** y ← a ⊙ b. */
export function mul(n: number, a: FloatArray, b: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = a[i]! * b[i]!;
}

/** y ← a ⊘ b. */
export function div(n: number, a: FloatArray, b: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = a[i]! / b[i]!;
}

/** y ← y + alpha (caffe_add_scalar). */
export function addScalar(n: number, alpha: number, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = y[i]! + alpha;
}

/** y ← a². */
export function sqr(n: number, a: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = a[i]! * a[i]!;
}

/** y ← √a. */
export function sqrt(n: number, a: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = Math.sqrt(a[i]!);
}

/** y ← aᵇ. */
export function powx(n: number, a: FloatArray, b: number, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = Math.pow(a[i]!, b);
}

/** y ← eᵃ. */
export function exp(n: number, a: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = Math.exp(a[i]!);
}

/** y ← ln a. */
export function log(n: number, a: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = Math.log(a[i]!);
}

/** y ← |a|. */
export function abs(n: number, a: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) y[i] = Math.abs(a[i]!);
}

/** y ← sign(a) ∈ {−1, 0, 1} (caffe_cpu_sign; 0 for 0 and NaN). */
export function sign(n: number, a: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    y[i] = v > 0 ? 1 : v < 0 ? -1 : 0;
  }
}
