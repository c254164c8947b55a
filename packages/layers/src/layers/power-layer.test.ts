import { Blob } from '@caffe-ts/blob';
import { describe, expect, it } from 'vitest';
import { blobValues, createLayer, GradientChecker, makeBlob } from '../testing.js';
import { PowerLayer, powerLayerDef } from './power-layer.js';

const f64 = () => new Blob([], { dtype: 'float64' });
const SHAPE = [2, 3, 4, 5];

function power(power: number, scale: number, shift: number): PowerLayer {
  return createLayer(powerLayerDef, { power_param: { power, scale, shift } });
}

/** Caffe's TestForward: within max(|expected|·1e-4, 1e-5); NaN where (shift + scale·x)^power is NaN. */
function testForward(p: number, s: number, t: number): void {
  const layer = power(p, s, t);
  const bottom = makeBlob(SHAPE);
  const top = f64();
  layer.setUp([bottom], [top]);
  layer.forward([bottom], [top]);
  // The float32 parameter values the layer actually uses.
  const { power: P, scale: S, shift: T } = layer;
  const x = blobValues(bottom);
  blobValues(top).forEach((y, i) => {
    const expected = Math.pow(T + S * x[i]!, P);
    if (P === 0 || P === 1 || P === 2) expect(Number.isNaN(y)).toBe(false);
    if (Number.isNaN(expected)) expect(Number.isNaN(y)).toBe(true);
    else expect(Math.abs(y - expected)).toBeLessThanOrEqual(Math.max(Math.abs(expected * 1e-4), 1e-5));
  });
}

/** Caffe's TestBackward: (1e-3, 1e-2, 1701, 0, 0.01), inputs reflected above −shift/scale for fractional powers. */
function testBackward(p: number, s: number, t: number): void {
  const layer = power(p, s, t);
  const bottom = makeBlob(SHAPE);
  if (p !== 0 && p !== 1 && p !== 2) {
    const x = bottom.mutableCpuData();
    const min = -t / s;
    for (let i = 0; i < x.length; i++) if (x[i]! < min) x[i] = min + (min - x[i]!);
  }
  new GradientChecker(1e-3, 1e-2, { seed: 1701, kink: 0, kinkRange: 0.01 }).checkGradientEltwise(layer, [bottom], [f64()]);
}

describe('Power', () => {
  it('defaults to power 1, scale 1, shift 0 (the identity)', () => {
    const layer = createLayer<PowerLayer>(powerLayerDef);
    const bottom = makeBlob([3], { filler: [-1, 0, 2.5] });
    const top = f64();
    layer.setUp([bottom], [top]);
    expect([layer.power, layer.scale, layer.shift, layer.diffScale]).toEqual([1, 1, 0, 1]);
    layer.forward([bottom], [top]);
    expect(blobValues(top)).toEqual([-1, 0, 2.5]);
  });

  it('forwards (shift + scale·x)^power for fractional, 0, 1 and 2 powers (Caffe test_power_layer)', () => {
    testForward(0.37, 0.83, -2.4);
    testForward(0, 0.83, -2.4);
    testForward(1, 0.83, -2.4);
    testForward(2, 0.34, -2.4);
  });

  it('passes the gradient checks (Caffe: 1e-3, 1e-2, 1701, 0, 0.01)', () => {
    testBackward(0.37, 0.83, -2.4);
    testBackward(0.37, 0.83, 0);
    testBackward(0, 0.83, -2.4);
    testBackward(1, 0.83, -2.4);
    testBackward(2, 0.83, -2.4);
    testBackward(2, 0.5, -2.4);
  });

  it('power 0 or scale 0: a constant output and an exactly zero gradient, whatever the top diff', () => {
    for (const [p, s, t, value] of [
      [0, 2, 3, 1],
      [3, 0, 2, 8],
    ] as const) {
      const layer = power(p, s, t);
      const bottom = makeBlob([3], { filler: [-1, 0, 5] });
      const top = f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      expect(blobValues(top)).toEqual([value, value, value]);
      top.mutableCpuDiff().set([1, Number.NaN, Infinity]);
      layer.backward([top], [true], [bottom]);
      expect(blobValues(bottom, 'diff')).toEqual([0, 0, 0]);
    }
  });

  it('backward special cases: power 1 (scale·dy), power 2, shift 0 (power·y/x), general', () => {
    const x = [0.5, 1, 2];
    const dy = [1, -2, 3];
    const cases: [number, number, number][] = [
      [1, 0.5, 3],
      [2, 0.5, 3],
      [3, 0.5, 0],
      [3, 0.5, 1],
    ];
    for (const [p, s, t] of cases) {
      const layer = power(p, s, t);
      const bottom = makeBlob([3], { filler: x });
      const top = f64();
      layer.setUp([bottom], [top]);
      layer.forward([bottom], [top]);
      top.mutableCpuDiff().set(dy);
      layer.backward([top], [true], [bottom]);
      const expected = x.map((v, i) => p * s * Math.pow(t + s * v, p - 1) * dy[i]!);
      blobValues(bottom, 'diff').forEach((d, i) => expect(d).toBeCloseTo(expected[i]!, 13));
    }
  });

  it('rejects the wrong number of tops', () => {
    expect(() => createLayer(powerLayerDef, { name: 'pow' }).setUp([makeBlob([2])], [f64(), f64()])).toThrow(
      "Power layer 'pow': Power Layer produces 1 top blob(s) as output (got 2).",
    );
  });
});
