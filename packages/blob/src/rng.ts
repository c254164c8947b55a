/**
 * A seedable random number generator (xoshiro128**, seeded through splitmix32). Caffe uses
 * boost's mt19937; its bit patterns are not reproduced, only the distributions and the
 * property that a fixed seed gives a fixed sequence.
 */
/** A snapshot of an `Rng`: the four xoshiro128** words and the spare Box–Muller value. */
export interface RngState {
  readonly words: readonly [number, number, number, number];
  readonly spareGaussian: number | null;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spareGaussian: number | null = null;

  constructor(seed: number = Date.now()) {
    this.seed(seed);
  }

  seed(seed: number): void {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    this.spareGaussian = null;
  }

  /** The generator's whole state, to resume the same stream later with `setState`. */
  getState(): RngState {
    return { words: [this.s0, this.s1, this.s2, this.s3], spareGaussian: this.spareGaussian };
  }

  /** Continue from a state `getState` returned (on this generator or another). */
  setState(state: RngState): void {
    [this.s0, this.s1, this.s2, this.s3] = state.words;
    this.spareGaussian = state.spareGaussian;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [a, b). */
  uniformIn(a: number, b: number): number {
    return a + (b - a) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Normal(mean, std) by the Box–Muller transform. */
  gaussian(mean = 0, std = 1): number {
    if (this.spareGaussian !== null) {
      const g = this.spareGaussian;
      this.spareGaussian = null;
      return mean + std * g;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareGaussian = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** An independent generator derived from this one (for prefetch threads, layers…). */
  fork(): Rng {
    return new Rng(this.nextUint32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const GLOBAL_RNG = Symbol.for('caffe-ts.rng');

/** The process-wide generator, as Caffe::rng_stream(). */
export function globalRng(): Rng {
  const g = globalThis as Record<symbol, unknown>;
  let r = g[GLOBAL_RNG] as Rng | undefined;
  if (!r) {
    r = new Rng();
    g[GLOBAL_RNG] = r;
  }
  return r;
}

/** Caffe::set_random_seed: reseed the process-wide generator. */
export function setRandomSeed(seed: number): void {
  globalRng().seed(seed);
}
