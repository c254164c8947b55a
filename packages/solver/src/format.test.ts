import { describe, expect, it } from 'vitest';
import { formatG } from './format.js';

describe('formatG (C++ ostream default, %g with 6 digits)', () => {
  it.each([
    [0, '0'],
    [1, '1'],
    [0.01, '0.01'],
    [0.1234567, '0.123457'],
    [0.0862203, '0.0862203'],
    [123456, '123456'],
    [1234567, '1.23457e+06'],
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [0.000012345678, '1.23457e-05'],
    [-2.5, '-2.5'],
    [Math.fround(0.01), '0.01'],
    [Math.fround(0.9876), '0.9876'],
    [999999.5, '1e+06'],
    [NaN, 'nan'],
    [Infinity, 'inf'],
    [-Infinity, '-inf'],
  ])('%s → %s', (x, s) => {
    expect(formatG(x)).toBe(s);
  });
});
