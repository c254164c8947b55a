import { describe, expect, it } from 'vitest';
import { math } from '../index.js';

const f32 = (...v: number[]) => new Float32Array(v);
const f64 = (...v: number[]) => new Float64Array(v);

describe('level-1 routines', () => {
  it('axpy, axpby, scal, scale', () => {
    const y = f32(1, 2, 3, 99);
    math.axpy(3, 2, f32(1, 1, 1), y);
    expect(Array.from(y)).toEqual([3, 4, 5, 99]); // only n elements touched
    math.axpby(3, 1, f32(1, 2, 3), 0.5, y);
    expect(Array.from(y)).toEqual([2.5, 4, 5.5, 99]);
    const z = f64(NaN, Infinity);
    math.axpby(2, 2, f64(1, 2), 0, z); // beta 0 overwrites
    expect(Array.from(z)).toEqual([2, 4]);
    math.scal(2, -1, z);
    expect(Array.from(z)).toEqual([-2, -4]);
    const w = f32(NaN, 1);
    math.scal(2, 0, w);
    expect(Array.from(w)).toEqual([0, 0]);
    math.scale(2, 3, f32(1, 2), w);
    expect(Array.from(w)).toEqual([3, 6]);
  });

  it('dot, stridedDot, asum, sumsq', () => {
    expect(math.dot(3, f32(1, 2, 3), f64(4, 5, 6))).toBe(32);
    expect(math.dot(0, f32(), f32())).toBe(0);
    expect(math.stridedDot(2, f32(1, 9, 2, 9), 2, f32(3, 4), 1)).toBe(11);
    expect(math.asum(3, f32(-1, 2, -3, 100))).toBe(6);
    expect(math.sumsq(2, f64(3, -4))).toBe(25);
  });

  it('set and copy, across element types', () => {
    const y = f32(1, 2, 3);
    math.set(2, 7, y);
    expect(Array.from(y)).toEqual([7, 7, 3]);
    const d = f64(0, 0, 0, 0);
    math.copy(3, f32(1.5, 2.5, 3.5, 4.5), d);
    expect(Array.from(d)).toEqual([1.5, 2.5, 3.5, 0]);
  });
});

describe('elementwise helpers', () => {
  it('compute each element, allowing y to alias an input', () => {
    const a = f64(1, 4, -9), b = f64(2, 2, 3), y = new Float64Array(3);
    math.add(3, a, b, y);
    expect(Array.from(y)).toEqual([3, 6, -6]);
    math.sub(3, a, b, y);
    expect(Array.from(y)).toEqual([-1, 2, -12]);
    math.mul(3, a, b, y);
    expect(Array.from(y)).toEqual([2, 8, -27]);
    math.div(3, a, b, y);
    expect(Array.from(y)).toEqual([0.5, 2, -3]);
    math.sqr(3, a, y);
    expect(Array.from(y)).toEqual([1, 16, 81]);
    math.sqrt(3, y, y);
    expect(Array.from(y)).toEqual([1, 4, 9]);
    math.powx(3, y, 0.5, y);
    expect(Array.from(y)).toEqual([1, 2, 3]);
    math.abs(3, a, y);
    expect(Array.from(y)).toEqual([1, 4, 9]);
    math.addScalar(3, -1, y);
    expect(Array.from(y)).toEqual([0, 3, 8]);
    math.exp(2, f64(0, 1), y);
    expect(y[0]).toBe(1);
    expect(y[1]).toBeCloseTo(Math.E, 12);
    math.log(1, f64(Math.E), y);
    expect(y[0]).toBeCloseTo(1, 12);
    const s = new Float32Array(4);
    math.sign(4, f32(-2, 0, 3, NaN), s);
    expect(Array.from(s)).toEqual([-1, 0, 1, 0]);
  });
});
