import { describe, expect, it } from 'vitest';
import { formatG } from './format.js';

describe('formatG (C++ stream default formatting)', () => {
  it('prints like %g with 6 significant digits', () => {
    expect(formatG(1)).toBe('1');
    expect(formatG(Math.fround(0.1))).toBe('0.1');
    expect(formatG(2.5)).toBe('2.5');
    expect(formatG(1e-5)).toBe('1e-05');
    expect(formatG(0.0001)).toBe('0.0001');
    expect(formatG(123456)).toBe('123456');
    expect(formatG(1234567)).toBe('1.23457e+06');
    expect(formatG(-0.333333333)).toBe('-0.333333');
    expect(formatG(0)).toBe('0');
    expect(formatG(NaN)).toBe('nan');
  });
});
