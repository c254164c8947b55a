import { createMessage, type FillerParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { Blob } from '../blob.js';
import type { DType } from '../dtype.js';
import { Rng } from '../rng.js';
import {
  FillerError,
  FillerRegistry,
  FillerRegistryError,
  UnknownFillerTypeError,
  VarianceNorm,
  defaultFillerRegistry,
  fillBlob,
  type FillerDef,
  type FillerSpec,
} from './index.js';

const dtypes: DType[] = ['float32', 'float64'];

function filled(shape: number[], spec: FillerSpec | null, dtype: DType = 'float32', seed = 1701): Blob {
  const blob = new Blob(shape, { dtype });
  fillBlob(blob, spec, new Rng(seed));
  return blob;
}

function moments(a: ArrayLike<number>): { mean: number; variance: number; ex2: number } {
  let s = 0, s2 = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]!;
    s2 += a[i]! * a[i]!;
  }
  const mean = s / a.length, ex2 = s2 / a.length;
  return { mean, ex2, variance: ex2 - mean * mean };
}

describe('constant filler', () => {
  for (const dtype of dtypes) {
    it(`${dtype}: fills value everywhere, for 1-D to 5-D blobs`, () => {
      for (const shape of [[2, 3, 4, 5], [15], [8, 3], [2, 3, 4, 5, 2]]) {
        const b = filled(shape, { type: 'constant', value: 10 }, dtype);
        expect(b.cpuData().every((v) => v === 10)).toBe(true);
      }
    });
  }

  it('a null param (no weight_filler) means constant 0', () => {
    const b = new Blob([3, 4]);
    b.mutableCpuData().fill(5);
    fillBlob(b, null, new Rng(1));
    expect(b.cpuData().every((v) => v === 0)).toBe(true);
  });

  it('unset fields take caffe.proto defaults: {} is constant 0, {type: uniform} is U[0, 1)', () => {
    expect(filled([10], {}).cpuData().every((v) => v === 0)).toBe(true);
    const u = filled([1000], { type: 'uniform' }).cpuData();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(moments(u).mean).toBeCloseTo(0.5, 1);
  });
});

describe('FillerParameter messages', () => {
  it('reads set fields and caffe.proto defaults from a decoded message', () => {
    const msg = createMessage<FillerParameter>('FillerParameter', { type: 'gaussian', mean: 3, sparse: -1 });
    const d = filled([4000], msg).cpuData();
    const { mean, variance } = moments(d);
    expect(mean).toBeCloseTo(3, 1);
    expect(variance).toBeCloseTo(1, 1); // std defaults to 1
    const xavier = createMessage<FillerParameter>('FillerParameter', { type: 'xavier' });
    const bound = Math.sqrt(3 / 4); // FAN_IN default: count / shape[0] = 4
    expect(filled([500, 4], xavier).cpuData().every((v) => Math.abs(v) <= bound)).toBe(true);
  });
});

describe('uniform filler', () => {
  for (const dtype of dtypes) {
    it(`${dtype}: values stay within [min, max]`, () => {
      for (const shape of [[2, 3, 4, 5], [15], [8, 3], [2, 3, 4, 5, 2]]) {
        const d = filled(shape, { type: 'uniform', min: 1, max: 2 }, dtype).cpuData();
        for (const v of d) {
          expect(v).toBeGreaterThanOrEqual(1);
          expect(v).toBeLessThanOrEqual(2);
        }
        expect(new Set(d).size).toBeGreaterThan(d.length / 2); // not a constant
      }
    });
  }

  it('rejects min > max', () => {
    expect(() => filled([4], { type: 'uniform', min: 2, max: 1 })).toThrow(/min <= max, got min 2, max 1/);
  });
});

describe('gaussian filler', () => {
  // Caffe's test_filler.cpp: mean within mean ± tol·std and variance within [std²/tol, std²·tol],
  // tol 3 (2 for the 5-D blob), repeated over fresh draws.
  const cases: [number[], number][] = [[[2, 3, 4, 5], 3], [[125], 3], [[8, 15], 3], [[2, 3, 4, 5, 2], 2]];
  for (const dtype of dtypes) {
    it(`${dtype}: mean 10, std 0.1 statistics`, () => {
      const rng = new Rng(42);
      for (const [shape, tol] of cases) {
        const blob = new Blob(shape, { dtype });
        for (let rep = 0; rep < 50; rep++) {
          fillBlob(blob, { type: 'gaussian', mean: 10, std: 0.1 }, rng);
          const { mean, variance } = moments(blob.cpuData());
          expect(mean).toBeGreaterThanOrEqual(10 - 0.1 * tol);
          expect(mean).toBeLessThanOrEqual(10 + 0.1 * tol);
          expect(variance).toBeGreaterThanOrEqual(0.01 / tol);
          expect(variance).toBeLessThanOrEqual(0.01 * tol);
        }
      }
    });
  }

  it('sparse keeps each weight with probability sparse / shape[0]', () => {
    const d = filled([100, 60], { type: 'gaussian', std: 1, sparse: 20 }).cpuData();
    const nonZero = d.filter((v) => v !== 0).length / d.length;
    expect(nonZero).toBeGreaterThan(0.18);
    expect(nonZero).toBeLessThan(0.22);
    const dense = filled([100, 60], { type: 'gaussian', std: 1, sparse: -1 }).cpuData();
    expect(dense.every((v) => v !== 0)).toBe(true);
    expect(filled([10, 6], { type: 'gaussian', sparse: 0 }).cpuData().every((v) => v === 0)).toBe(true);
  });

  it('rejects std <= 0, sparse < -1 and sparse above the output count', () => {
    expect(() => filled([4], { type: 'gaussian', std: 0 })).toThrow(/std must be positive, got 0/);
    expect(() => filled([4], { type: 'gaussian', sparse: -2 })).toThrow(FillerError);
    expect(() => filled([4, 3], { type: 'gaussian', sparse: 5 })).toThrow(/exceeds the number of outputs 4/);
  });
});

describe('positive_unitball filler', () => {
  for (const dtype of dtypes) {
    it(`${dtype}: values in [0, 1], every row sums to 1`, () => {
      for (const shape of [[2, 3, 4, 5], [15], [8, 3], [2, 3, 4, 5, 2]]) {
        const b = filled(shape, { type: 'positive_unitball' }, dtype);
        const d = b.cpuData();
        for (const v of d) {
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThanOrEqual(1);
        }
        const dim = b.count() / shape[0]!;
        for (let r = 0; r < shape[0]!; r++) {
          let sum = 0;
          for (let j = 0; j < dim; j++) sum += d[r * dim + j]!;
          expect(sum).toBeGreaterThanOrEqual(0.999);
          expect(sum).toBeLessThanOrEqual(1.001);
        }
      }
    });
  }
});

describe('xavier and msra fillers', () => {
  // Blob 1000×2×4×5: fan_in = 2·4·5 = 40, fan_out = 1000·4·5 = 20000.
  const shape = [1000, 2, 4, 5];
  const norms: [string, number, number][] = [
    ['FAN_IN', VarianceNorm.FAN_IN, 40],
    ['FAN_OUT', VarianceNorm.FAN_OUT, 20000],
    ['AVERAGE', VarianceNorm.AVERAGE, (40 + 20000) / 2],
  ];
  for (const dtype of dtypes) {
    for (const [name, variance_norm, n] of norms) {
      it(`${dtype} ${name}: Caffe's checks (mean 0 ± 0.1, std √(2/n) ± 0.1) and the exact spread`, () => {
        const x = filled(shape, { type: 'xavier', variance_norm }, dtype).cpuData();
        const xm = moments(x);
        expect(Math.abs(xm.mean)).toBeLessThan(0.1);
        expect(Math.abs(Math.sqrt(xm.ex2 - xm.mean ** 2) - Math.sqrt(2 / n))).toBeLessThan(0.1);
        // Uniform ±√(3/n) has variance 1/n and never leaves its bounds.
        expect(Math.sqrt(xm.variance) / Math.sqrt(1 / n)).toBeCloseTo(1, 1);
        const bound = Math.sqrt(3 / n);
        expect(x.every((v) => Math.abs(v) <= bound * (1 + 1e-6))).toBe(true);
        expect(Math.max(...x)).toBeGreaterThan(bound * 0.99);

        const m = filled(shape, { type: 'msra', variance_norm }, dtype).cpuData();
        const mm = moments(m);
        expect(Math.abs(mm.mean)).toBeLessThan(0.1);
        expect(Math.abs(Math.sqrt(mm.ex2 - mm.mean ** 2) - Math.sqrt(2 / n))).toBeLessThan(0.1);
        expect(Math.sqrt(mm.variance) / Math.sqrt(2 / n)).toBeCloseTo(1, 1);
      });
    }
  }

  it('fan_out of a 1-D blob is its count', () => {
    const x = filled([50000], { type: 'xavier', variance_norm: VarianceNorm.FAN_OUT }).cpuData();
    expect(Math.max(...x.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(3 / 50000) * (1 + 1e-6));
    // fan_in is count / shape[0] = 1, so FAN_IN spreads up to ±√3.
    const y = filled([50000], { type: 'xavier' }).cpuData();
    expect(Math.max(...y)).toBeGreaterThan(1.7);
  });

  it('reject sparse and an unknown variance_norm', () => {
    expect(() => filled([4, 3], { type: 'xavier', sparse: 2 })).toThrow(/xavier filler: sparsity not supported/);
    expect(() => filled([4, 3], { type: 'msra', variance_norm: 7 as unknown as FillerSpec['variance_norm'] })).toThrow(/unknown variance_norm 7/);
  });
});

describe('bilinear filler', () => {
  for (const dtype of dtypes) {
    for (const k of [7, 6]) {
      it(`${dtype} ${k}×${k}: (1 − |x/f − c|)(1 − |y/f − c|), f = ⌈k/2⌉, c = (k − 1)/(2f)`, () => {
        const b = filled([1000, 2, k, k], { type: 'bilinear' }, dtype);
        const d = b.cpuData();
        const f = Math.ceil(k / 2), c = (k - 1) / (2 * f);
        let worst = 0;
        for (let i = 0; i < 2000; i++) {
          for (let j = 0; j < k * k; j++) {
            const x = j % k, y = Math.floor(j / k) % k;
            const want = (1 - Math.abs(x / f - c)) * (1 - Math.abs(y / f - c));
            worst = Math.max(worst, Math.abs(d[i * k * k + j]! - want));
          }
        }
        expect(worst).toBeLessThan(0.01);
      });
    }
  }

  it('gives the 4×4 kernel of 2× upsampling', () => {
    const d = Array.from(filled([1, 1, 4, 4], { type: 'bilinear' }).cpuData());
    const w = [0.25, 0.75, 0.75, 0.25];
    expect(d).toEqual(w.flatMap((a) => w.map((b) => a * b)));
  });

  it('needs a 4-D blob with a square kernel', () => {
    expect(() => filled([3, 3], { type: 'bilinear' })).toThrow(/bilinear filler: blob must be 4-D, got shape 3 3 \(9\)/);
    expect(() => filled([1, 1, 3, 4], { type: 'bilinear' })).toThrow(/kernel must be square, got 3×4/);
  });
});

describe('FillerRegistry', () => {
  it('knows Caffe\'s seven types and names them when a type is unknown', () => {
    const reg = new FillerRegistry();
    expect(reg.types()).toEqual(['constant', 'gaussian', 'positive_unitball', 'uniform', 'xavier', 'msra', 'bilinear']);
    const err = (() => {
      try {
        reg.fill(new Blob([2]), { type: 'orthogonal' });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(UnknownFillerTypeError);
    expect((err as Error).message).toBe(
      'Unknown filler type: orthogonal (known types: constant, gaussian, positive_unitball, uniform, xavier, msra, bilinear)',
    );
  });

  it('takes plugin types, refuses duplicates unless overriding, and unregisters', () => {
    const reg = new FillerRegistry({ builtins: false });
    expect(reg.types()).toEqual([]);
    const ramp: FillerDef = {
      type: 'ramp',
      fill(blob, param) {
        const d = blob.mutableCpuData();
        for (let i = 0; i < d.length; i++) d[i] = param.value + i;
      },
    };
    reg.register(ramp);
    expect(() => reg.register(ramp)).toThrow(FillerRegistryError);
    expect(() => reg.register(ramp)).toThrow('Filler type ramp already registered.');
    const b = new Blob([4]);
    fillBlob(b, { type: 'ramp', value: 3 }, new Rng(1), reg);
    expect(Array.from(b.cpuData())).toEqual([3, 4, 5, 6]);
    reg.register({ type: 'ramp', fill: (blob) => blob.mutableCpuData().fill(-1) }, { override: true });
    reg.fill(b, { type: 'ramp' });
    expect(Array.from(b.cpuData())).toEqual([-1, -1, -1, -1]);
    reg.unregister('ramp');
    expect(reg.has('ramp')).toBe(false);
    expect(() => reg.unregister('ramp')).toThrow(/not registered/);
  });

  it('the default registry lives on globalThis and fillBlob uses it', () => {
    const reg = defaultFillerRegistry();
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('caffe-ts.fillerRegistry')]).toBe(reg);
    reg.register({ type: 'test_sevens', fill: (blob) => blob.mutableCpuData().fill(7) });
    try {
      expect(Array.from(filled([2], { type: 'test_sevens' }).cpuData())).toEqual([7, 7]);
    } finally {
      reg.unregister('test_sevens');
    }
  });

  it('a fixed seed gives the same fill; empty blobs are refused', () => {
    const a = filled([3, 5], { type: 'gaussian' }, 'float32', 9).cpuData();
    const b = filled([3, 5], { type: 'gaussian' }, 'float32', 9).cpuData();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(() => filled([0, 3], { type: 'constant' })).toThrow(/cannot fill empty blob/);
  });
});
