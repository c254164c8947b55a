/**
 * Test helpers for layer authors, shipped as `@caffe-ts/layers/testing`.
 *
 * The centrepiece is `GradientChecker`, which follows the method of Caffe's
 * `include/caffe/test/test_gradient_check_util.hpp`: compare the gradient a layer's
 * `backward` computes with a central finite difference of a simple objective on its tops.
 * Run it on float64 blobs (`makeBlob` and `createLayer` default to float64) so the
 * finite differences are not swamped by rounding.
 *
 * Nothing here imports a test framework: failures are plain `Error`s, so any runner works.
 */
import { Blob, globalRng, Rng, type DType } from '@caffe-ts/blob';
import { createMessage, type LayerParameter } from '@caffe-ts/proto';
import type { Layer, LayerContext } from './layer.js';
import { registerBuiltinLayers } from './register-all-layers.js';
import { LayerRegistry, type LayerDef } from './registry.js';

export interface GradientCheckerOptions {
  /** Seed for the layer's rng before every forward, so stochastic layers repeat (Caffe: 1701). */
  seed?: number;
  /** Centre of a non-smooth region whose features are not checked (ReLU: 0). */
  kink?: number;
  /** Half-width of that region; negative (the default) disables kink skipping. */
  kinkRange?: number;
}

/**
 * Finite-difference gradient checker with Caffe's semantics:
 * - objective: ½·Σ top² over every top when `topId < 0`, else top[topId][topDataId] with
 *   loss weight 2;
 * - estimate: (f(x+h) − f(x−h)) / 2h for every element of every checked blob;
 * - pass iff |computed − estimated| ≤ threshold · max(|computed|, |estimated|, 1);
 * - features with kink − kinkRange ≤ |x| ≤ kink + kinkRange are skipped.
 * `checkBottom`: −1 checks every bottom and every param blob, < −1 the params only, i ≥ 0
 * bottom i (plus the params).
 * The layer's params and the bottoms' data may be perturbed by a check (restored to within
 * rounding), as in Caffe.
 */
export class GradientChecker {
  readonly stepsize: number;
  readonly threshold: number;
  readonly seed: number;
  readonly kink: number;
  readonly kinkRange: number;

  constructor(stepsize: number, threshold: number, { seed = 1701, kink = 0, kinkRange = -1 }: GradientCheckerOptions = {}) {
    if (!(stepsize > 0)) throw new Error(`GradientChecker: stepsize must be positive (got ${stepsize})`);
    if (!(threshold > 0)) throw new Error(`GradientChecker: threshold must be positive (got ${threshold})`);
    this.stepsize = stepsize;
    this.threshold = threshold;
    this.seed = seed;
    this.kink = kink;
    this.kinkRange = kinkRange;
  }

  /** Set the layer up, then check the gradient of ½·Σ top² (Caffe's CheckGradient). */
  checkGradient(layer: Layer, bottom: Blob[], top: Blob[], checkBottom = -1): void {
    layer.setUp(bottom, top);
    this.checkGradientSingle(layer, bottom, top, checkBottom, -1, -1);
  }

  /** Set the layer up, then check the gradient of every top element separately. */
  checkGradientExhaustive(layer: Layer, bottom: Blob[], top: Blob[], checkBottom = -1): void {
    layer.setUp(bottom, top);
    if (top.length === 0) throw new Error(`GradientChecker: exhaustive mode requires at least one top blob (${describe(layer)})`);
    for (let i = 0; i < top.length; i++) {
      for (let j = 0; j < top[i]!.count(); j++) this.checkGradientSingle(layer, bottom, top, checkBottom, i, j);
    }
  }

  /**
   * For element-wise layers (∂y_i/∂x_j = 0 for i ≠ j): finite-difference only the matching
   * element and require every other computed derivative to be 0.
   */
  checkGradientEltwise(layer: Layer, bottom: Blob[], top: Blob[]): void {
    layer.setUp(bottom, top);
    if (top.length === 0) throw new Error(`GradientChecker: eltwise mode requires at least one top blob (${describe(layer)})`);
    for (let i = 0; i < top.length; i++) {
      for (let j = 0; j < top[i]!.count(); j++) this.checkGradientSingle(layer, bottom, top, -1, i, j, true);
    }
  }

  /** One check of one objective (the layer must already be set up). */
  checkGradientSingle(
    layer: Layer,
    bottom: Blob[],
    top: Blob[],
    checkBottom: number,
    topId: number,
    topDataId: number,
    elementwise = false,
  ): void {
    if (elementwise) {
      if (layer.blobs.length !== 0) {
        throw new Error(`GradientChecker: element-wise mode needs a layer without params; ${describe(layer)} has ${layer.blobs.length}`);
      }
      if (topId < 0 || topDataId < 0) {
        throw new Error(`GradientChecker: element-wise mode needs topId >= 0 and topDataId >= 0 (got ${topId}, ${topDataId})`);
      }
      const n = top[topId]!.count();
      bottom.forEach((b, i) => {
        if (b.count() !== n) {
          throw new Error(`GradientChecker: element-wise mode needs bottom ${i} (count ${b.count()}) to match top ${topId} (count ${n})`);
        }
      });
    }
    if (topId >= top.length) throw new Error(`GradientChecker: topId ${topId} out of range (${top.length} tops)`);

    // What to check; param diffs accumulate in backward, so they start from zero.
    const toCheck: Blob[] = [];
    const propagateDown = bottom.map(() => checkBottom === -1);
    for (const p of layer.blobs) {
      p.mutableCpuDiff().fill(0);
      toCheck.push(p);
    }
    if (checkBottom === -1) toCheck.push(...bottom);
    else if (checkBottom >= 0) {
      if (checkBottom >= bottom.length) {
        throw new Error(`GradientChecker: checkBottom ${checkBottom} out of range (${bottom.length} bottoms)`);
      }
      toCheck.push(bottom[checkBottom]!);
      propagateDown[checkBottom] = true;
    }
    if (toCheck.length === 0) throw new Error(`GradientChecker: no blobs to check for ${describe(layer)}`);

    // Analytic gradient. The layer's own loss is ignored: the objective replaces it.
    this.reseed(layer);
    layer.forward(bottom, top);
    this.objectiveAndGradient(top, topId, topDataId);
    layer.backward(top, propagateDown, bottom);
    const computed = toCheck.map((b) => Float64Array.from(b.cpuDiff()));

    const h = this.stepsize;
    for (let blobId = 0; blobId < toCheck.length; blobId++) {
      const blob = toCheck[blobId]!;
      const grad = computed[blobId]!;
      for (let featId = 0; featId < blob.count(); featId++) {
        let estimated = 0;
        let objPlus = 0;
        let objMinus = 0;
        if (!elementwise || featId === topDataId) {
          const original = blob.cpuData()[featId]!;
          blob.mutableCpuData()[featId] = original + h;
          this.reseed(layer);
          layer.forward(bottom, top);
          objPlus = this.objectiveAndGradient(top, topId, topDataId);
          blob.mutableCpuData()[featId] = original - h;
          this.reseed(layer);
          layer.forward(bottom, top);
          objMinus = this.objectiveAndGradient(top, topId, topDataId);
          blob.mutableCpuData()[featId] = original;
          estimated = (objPlus - objMinus) / (2 * h);
        }
        const c = grad[featId]!;
        const feature = blob.cpuData()[featId]!;
        const af = Math.abs(feature);
        if (this.kink - this.kinkRange <= af && af <= this.kink + this.kinkRange) continue;
        const scale = Math.max(Math.abs(c), Math.abs(estimated), 1);
        const tolerance = this.threshold * scale;
        // Written so that NaN fails too.
        if (!(Math.abs(c - estimated) <= tolerance)) {
          throw new Error(
            `Gradient check failed for ${describe(layer)}: (topId, topDataId, blobId, featId)=` +
              `${topId},${topDataId},${blobId},${featId}; computed ${c}, estimated ${estimated} ` +
              `(|difference| ${Math.abs(c - estimated)} > tolerance ${tolerance}); feature ${feature}; ` +
              `objective+ ${objPlus}; objective- ${objMinus}`,
          );
        }
      }
    }
  }

  private reseed(layer: Layer): void {
    layer.rng.seed(this.seed);
    const global = globalRng();
    if (global !== layer.rng) global.seed(this.seed);
  }

  /** Sets the tops' diffs to ∂objective/∂top and returns the objective. */
  private objectiveAndGradient(top: Blob[], topId: number, topDataId: number): number {
    if (topId < 0) {
      let loss = 0;
      for (const t of top) {
        const data = t.cpuData();
        for (let j = 0; j < data.length; j++) loss += data[j]! * data[j]!;
        t.mutableCpuDiff().set(data);
      }
      return loss / 2;
    }
    for (const t of top) t.mutableCpuDiff().fill(0);
    const lossWeight = 2;
    const t = top[topId]!;
    if (topDataId >= t.count()) throw new Error(`GradientChecker: topDataId ${topDataId} out of range (top ${topId} has ${t.count()} elements)`);
    t.mutableCpuDiff()[topDataId] = lossWeight;
    return t.cpuData()[topDataId]! * lossWeight;
  }
}

function describe(layer: Layer): string {
  return `${layer.type} layer '${layer.name}'`;
}

// ---------------------------------------------------------------------------------------
// Blob helpers

export type BlobFill = 'gaussian' | 'uniform' | 'zeros' | number | ArrayLike<number>;

export interface MakeBlobOptions {
  /** Defaults to float64, the dtype gradient checks need. */
  dtype?: DType;
  /** 'gaussian' (default; mean/std), 'uniform' (min/max), 'zeros', a constant, or every value. */
  filler?: BlobFill;
  /** Defaults to a fresh `Rng(1701)`, so an unseeded call is still repeatable. */
  rng?: Rng;
  mean?: number;
  std?: number;
  min?: number;
  max?: number;
}

/** A blob of `shape` filled as asked. */
export function makeBlob(shape: readonly number[], options: MakeBlobOptions = {}): Blob {
  const { dtype = 'float64', filler = 'gaussian', rng = new Rng(1701), mean = 0, std = 1, min = 0, max = 1 } = options;
  const blob = new Blob(shape, { dtype });
  const data = blob.mutableCpuData();
  if (filler === 'gaussian') {
    for (let i = 0; i < data.length; i++) data[i] = rng.gaussian(mean, std);
  } else if (filler === 'uniform') {
    for (let i = 0; i < data.length; i++) data[i] = rng.uniformIn(min, max);
  } else if (filler === 'zeros') {
    data.fill(0);
  } else if (typeof filler === 'number') {
    data.fill(filler);
  } else {
    if (filler.length !== data.length) {
      throw new Error(`makeBlob: ${filler.length} values given for shape [${shape.join(', ')}] (${data.length} elements)`);
    }
    data.set(Array.from(filler));
  }
  return blob;
}

/** Fill a blob's data with Normal(0, std) (Caffe's GaussianFiller as the tests use it). */
export function fillGaussian(blob: Blob, rng: Rng = new Rng(1701), std = 1, mean = 0): Blob {
  const data = blob.mutableCpuData();
  for (let i = 0; i < data.length; i++) data[i] = rng.gaussian(mean, std);
  return blob;
}

/** Fill a blob's data uniformly in [min, max). */
export function fillUniform(blob: Blob, rng: Rng = new Rng(1701), min = 0, max = 1): Blob {
  const data = blob.mutableCpuData();
  for (let i = 0; i < data.length; i++) data[i] = rng.uniformIn(min, max);
  return blob;
}

/** Plain-array copy of a blob's data (or diff), handy for `toEqual`/`toBeCloseTo` assertions. */
export function blobValues(blob: Blob, which: 'data' | 'diff' = 'data'): number[] {
  return Array.from(which === 'data' ? blob.cpuData() : blob.cpuDiff());
}

// ---------------------------------------------------------------------------------------
// Layer construction

export interface CreateLayerContext extends LayerContext {
  /** Where a type string is looked up; defaults to a private registry holding the built-ins. */
  registry?: LayerRegistry;
}

let builtins: LayerRegistry | undefined;
function builtinRegistry(): LayerRegistry {
  if (!builtins) {
    builtins = new LayerRegistry();
    registerBuiltinLayers(builtins);
  }
  return builtins;
}

/** A LayerParameter message from plain props (snake_case fields, as in a prototxt). */
export function layerParameter(props: Record<string, unknown>): LayerParameter {
  return createMessage<LayerParameter>('LayerParameter', props);
}

/**
 * Build a layer from a type string (looked up in `context.registry`, default: the built-ins)
 * or a LayerDef, with LayerParameter fields given as plain props, e.g.
 * `createLayer('ReLU', { relu_param: { negative_slope: 0.1 } })`. The name defaults to the
 * type in lower case and the dtype to float64.
 */
export function createLayer<L extends Layer = Layer>(
  typeOrDef: string | LayerDef<L>,
  paramProps: Record<string, unknown> = {},
  context: CreateLayerContext = {},
): L {
  const { registry, ...layerContext } = context;
  const type = typeof typeOrDef === 'string' ? typeOrDef : typeOrDef.type;
  const param = layerParameter({ name: type.toLowerCase(), ...paramProps, type });
  const ctx: LayerContext = { dtype: 'float64', ...layerContext };
  if (typeof typeOrDef !== 'string') return typeOrDef.create(param, ctx);
  return (registry ?? builtinRegistry()).create(param, ctx) as L;
}

/**
 * Caffe's MAX pooling written out plainly, the values and the argmax a training forward keeps
 * (each window from o·stride − pad, clipped to the plane, from its first element, a later one
 * taken only where larger), into y and argmax: the answer a pooling kernel is checked against.
 */
export function maxPoolWithArgmax(
  planes: number, H: number, W: number, PH: number, PW: number, KH: number, KW: number, SH: number, SW: number, padH: number, padW: number,
  x: ArrayLike<number>, y: { [i: number]: number }, argmax: { [i: number]: number },
): void {
  for (let p = 0; p < planes; p++) for (let ph = 0; ph < PH; ph++) for (let pw = 0; pw < PW; pw++) {
    const h0 = Math.max(ph * SH - padH, 0), h1 = Math.min(ph * SH - padH + KH, H), w0 = Math.max(pw * SW - padW, 0), w1 = Math.min(pw * SW - padW + KW, W);
    let at = h0 * W + w0;
    for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) if (x[p * H * W + h * W + w]! > x[p * H * W + at]!) at = h * W + w;
    y[(p * PH + ph) * PW + pw] = x[p * H * W + at]!;
    argmax[(p * PH + ph) * PW + pw] = at;
  }
}
