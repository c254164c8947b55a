import { Blob, cpuBackend, globalRng, type Backend, type DType, type Rng } from '@caffe-ts/blob';
import { Phase, type LayerParameter } from '@caffe-ts/proto';
import { LayerError } from './errors.js';

/** What a layer is built with, beyond its LayerParameter. */
export interface LayerContext {
  backend?: Backend;
  dtype?: DType;
  /** Defaults to the LayerParameter's phase (Caffe copies the net's phase into it). */
  phase?: Phase;
  rng?: Rng;
  /**
   * The file the layer's net was read from, if any. Paths inside it (a data layer's `source`,
   * `mean_file`) resolve against the working directory first, then against this file's folder.
   */
  netFile?: string;
  /**
   * Data-parallel training: this replica is number `index` of `count`. Data layers then read only
   * the records whose ordinal % count == index (Caffe's DataLayer::Skip with several solvers).
   */
  shard?: { index: number; count: number };
}

/** A device implementation of a whole layer, supplied by a backend (see Backend.layerKernel). */
export interface LayerKernel<L extends Layer = Layer> {
  forward(layer: L, bottom: Blob[], top: Blob[]): void;
  backward?(layer: L, top: Blob[], propagateDown: boolean[], bottom: Blob[]): void;
}

/** Blob-count rules a layer class declares as data (Caffe's ExactNumBottomBlobs() and friends). */
export interface BlobCounts {
  exactNumBottomBlobs?: number;
  minBottomBlobs?: number;
  maxBottomBlobs?: number;
  exactNumTopBlobs?: number;
  minTopBlobs?: number;
  maxTopBlobs?: number;
  equalNumBottomTopBlobs?: boolean;
  /** The net creates anonymous tops up to the minimum/exact count (Caffe's AutoTopBlobs). */
  autoTopBlobs?: boolean;
}

/**
 * The layer contract, as in Caffe:
 * - `setUp` (final): check blob counts → `layerSetUp` → `reshape` → loss weights.
 * - `forward` reshapes, then computes top from bottom and returns the weighted loss.
 * - `backward` writes bottom diffs (overwriting) and **accumulates** param diffs
 *   (`this.blobs[i].diff`), so a solver clears them before each iteration.
 * - In-place layers (top === bottom) must compute backward from data still valid after forward.
 * Subclasses implement `reshape`, `forwardCpu`, `backwardCpu` and optionally `layerSetUp`.
 */
export abstract class Layer {
  /** The Caffe type string under which this layer is registered (e.g. 'InnerProduct'). */
  abstract readonly type: string;
  static readonly blobCounts: BlobCounts = {};

  readonly param: LayerParameter;
  readonly backend: Backend;
  readonly dtype: DType;
  readonly phase: Phase;
  readonly rng: Rng;
  /** Learnable parameters and state, in Caffe's order (e.g. [weight, bias]). */
  blobs: Blob[] = [];
  /** Whether to compute the diff of each param blob. */
  paramPropagateDown: boolean[] = [];
  /** Loss weight per top (0 for non-loss tops). */
  lossWeights: number[] = [];

  constructor(param: LayerParameter, context: LayerContext = {}) {
    this.param = param;
    this.backend = context.backend ?? cpuBackend();
    this.dtype = context.dtype ?? 'float32';
    this.phase = context.phase ?? param.phase;
    this.rng = context.rng ?? globalRng();
  }

  get name(): string {
    return this.param.name;
  }

  /** Final: use `layerSetUp` and `reshape` to customise. */
  setUp(bottom: Blob[], top: Blob[]): void {
    this.checkBlobCounts(bottom, top);
    this.layerSetUp(bottom, top);
    this.reshape(bottom, top);
    this.setLossWeights(top);
  }

  /** One-time set-up: read params, create and fill `blobs`. */
  layerSetUp(_bottom: Blob[], _top: Blob[]): void {}

  /** Shape tops (and internal buffers) from the bottoms' shapes. */
  abstract reshape(bottom: Blob[], top: Blob[]): void;

  protected abstract forwardCpu(bottom: Blob[], top: Blob[]): void;

  protected backwardCpu(_top: Blob[], propagateDown: boolean[], _bottom: Blob[]): void {
    if (propagateDown.some(Boolean)) this.fail('this layer cannot backpropagate to its bottoms');
  }

  /** Run forward; returns the sum over tops of loss_weight · Σ top. */
  forward(bottom: Blob[], top: Blob[]): number {
    this.reshape(bottom, top);
    const kernel = this.deviceKernel();
    if (kernel) kernel.forward(this, bottom, top);
    else this.forwardCpu(bottom, top);
    let loss = 0;
    for (let t = 0; t < top.length; t++) {
      const w = this.lossWeights[t] ?? 0;
      if (w === 0) continue;
      // The top's diff holds its loss weight (set in setLossWeights), as in Caffe.
      const data = top[t]!.cpuData();
      const diff = top[t]!.cpuDiff();
      for (let i = 0; i < data.length; i++) loss += data[i]! * diff[i]!;
    }
    return loss;
  }

  backward(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const kernel = this.deviceKernel();
    if (kernel?.backward) kernel.backward(this, top, propagateDown, bottom);
    else this.backwardCpu(top, propagateDown, bottom);
  }

  /**
   * Asynchronous work that must finish before the next `forward` (a data layer waiting for its
   * prefetched batch). Forward passes are synchronous; callers await `prepare` between them.
   */
  prepare?(): Promise<void>;

  /** Whether the net may force backward into bottom `index` (false for labels and the like). */
  allowForceBackward(_bottomIndex: number): boolean {
    return true;
  }

  lossWeight(topIndex: number): number {
    return this.lossWeights[topIndex] ?? 0;
  }

  setLossWeight(topIndex: number, value: number): void {
    while (this.lossWeights.length <= topIndex) this.lossWeights.push(0);
    this.lossWeights[topIndex] = value;
  }

  setParamPropagateDown(index: number, value: boolean): void {
    while (this.paramPropagateDown.length <= index) this.paramPropagateDown.push(true);
    this.paramPropagateDown[index] = value;
  }

  /** The blob-count rules of this layer's class. */
  get blobCounts(): BlobCounts {
    return (this.constructor as typeof Layer).blobCounts;
  }

  /** Loss layers give their first top a default loss weight of 1. */
  protected defaultLossWeight(_topIndex: number): number {
    return 0;
  }

  /**
   * Lets go of the memory of every blob this layer holds: its params and the buffers in its own
   * fields (and those of layers it holds, as SPP its pooling layers). Net.dispose() calls it; the
   * layer cannot run afterwards. What the backend keeps for the layer goes too
   * (Backend.releaseLayer). A layer that holds memory elsewhere (a reader, a kernel-heap array)
   * overrides this and calls super.dispose().
   */
  dispose(): void {
    const seen = new Set<unknown>();
    const release = (v: unknown): void => {
      if (v === null || typeof v !== 'object' || seen.has(v)) return;
      seen.add(v);
      if (v instanceof Blob) v.dispose();
      else if (v instanceof Layer && v !== this) v.dispose();
      else if (Array.isArray(v)) for (const x of v) if (x instanceof Blob || x instanceof Layer) release(x);
    };
    for (const v of Object.values(this)) release(v);
    this.backend.releaseLayer?.(this);
  }

  /** A new blob with this layer's dtype, on this layer's backend. */
  protected newBlob(shape: readonly number[] = []): Blob {
    return new Blob(shape, { dtype: this.dtype, device: this.backend.device });
  }

  /** Throw a LayerError naming this layer. */
  protected fail(message: string): never {
    throw new LayerError(`${this.type} layer '${this.name}': ${message}`);
  }

  protected check(condition: boolean, message: () => string): asserts condition {
    if (!condition) this.fail(message());
  }

  private checkBlobCounts(bottom: Blob[], top: Blob[]): void {
    const c = this.blobCounts;
    const t = this.type;
    const nb = bottom.length;
    const nt = top.length;
    if (c.exactNumBottomBlobs !== undefined && nb !== c.exactNumBottomBlobs)
      this.fail(`${t} Layer takes ${c.exactNumBottomBlobs} bottom blob(s) as input (got ${nb}).`);
    if (c.minBottomBlobs !== undefined && nb < c.minBottomBlobs)
      this.fail(`${t} Layer takes at least ${c.minBottomBlobs} bottom blob(s) as input (got ${nb}).`);
    if (c.maxBottomBlobs !== undefined && nb > c.maxBottomBlobs)
      this.fail(`${t} Layer takes at most ${c.maxBottomBlobs} bottom blob(s) as input (got ${nb}).`);
    if (c.exactNumTopBlobs !== undefined && nt !== c.exactNumTopBlobs)
      this.fail(`${t} Layer produces ${c.exactNumTopBlobs} top blob(s) as output (got ${nt}).`);
    if (c.minTopBlobs !== undefined && nt < c.minTopBlobs)
      this.fail(`${t} Layer produces at least ${c.minTopBlobs} top blob(s) as output (got ${nt}).`);
    if (c.maxTopBlobs !== undefined && nt > c.maxTopBlobs)
      this.fail(`${t} Layer produces at most ${c.maxTopBlobs} top blob(s) as output (got ${nt}).`);
    if (c.equalNumBottomTopBlobs && nb !== nt)
      this.fail(`${t} Layer produces one top blob as output for each bottom blob input (got ${nb} bottoms, ${nt} tops).`);
  }

  private setLossWeights(top: Blob[]): void {
    const given = this.param.loss_weight;
    if (given.length > 0 && given.length !== top.length) {
      this.fail(`loss_weight must be unspecified or specified once per top blob (${given.length} given, ${top.length} tops)`);
    }
    for (let t = 0; t < top.length; t++) {
      const w = given.length > 0 ? given[t]! : this.defaultLossWeight(t);
      this.setLossWeight(t, w);
      if (w !== 0) top[t]!.mutableCpuDiff().fill(w);
    }
  }

  private fallbackWarned = false;
  private deviceKernel(): LayerKernel | undefined {
    const backend = this.backend;
    if (!backend.device) return undefined;
    const kernel = backend.layerKernel?.(this.type) as LayerKernel | undefined;
    if (kernel) return kernel;
    if (!backend.allowCpuFallback) {
      this.fail(`no kernel for layer type '${this.type}' on backend '${backend.name}' (${backend.cpuFallbackHint ?? 'enable allowCpuFallback'} to run it on the host)`);
    }
    const stats = backend.stats();
    stats.cpuFallbacks[this.type] = (stats.cpuFallbacks[this.type] ?? 0) + 1;
    if (!this.fallbackWarned) {
      this.fallbackWarned = true;
      console.warn(`caffe-ts: layer type '${this.type}' runs on the CPU (no '${backend.name}' kernel)`);
    }
    return undefined;
  }
}

/** Base of layers with a loss: top[0] gets loss_weight 1 unless the prototxt says otherwise. */
export abstract class LossLayerBase extends Layer {
  protected override defaultLossWeight(topIndex: number): number {
    return topIndex === 0 ? 1 : 0;
  }
}
