/**
 * Test-only layers and helpers for the solver's tests (not exported from the package): a feed
 * layer whose batches come from a deterministic function of (phase, batch number), and a
 * Euclidean loss, registered with InnerProduct in a fresh LayerRegistry.
 */
import type { Blob } from '@caffe-ts/blob';
import { innerProductLayerDef, splitLayerDef, Layer, LayerRegistry, LossLayerBase, type BlobCounts, type LayerDef } from '@caffe-ts/layers';
import { createMessage, Phase, type SolverParameter } from '@caffe-ts/proto';

/** Batches by phase: `batch(phase, k)` returns one array per top for the k-th batch. */
export interface Feed {
  batch(phase: Phase, k: number, layer: string): number[][];
  /** Batches served so far, by phase (set to resume a sequence). */
  counters: Record<number, number>;
  /** When set, each batch must be "prefetched" by an awaited prepare() (a timer) before forward. */
  prefetch?: boolean;
  /** Layers closed so far. */
  closed?: number;
}

/** Tops shaped by `input_param.shape`; each forward copies in the next batch from the feed. */
export class FeedLayer extends Layer {
  readonly type = 'TestFeed';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 0, minTopBlobs: 1 };
  feed!: Feed;

  override layerSetUp(_bottom: Blob[], top: Blob[]): void {
    const shapes = this.param.input_param?.shape ?? [];
    this.check(shapes.length === top.length, () => `needs one input_param.shape per top (${shapes.length} for ${top.length})`);
    top.forEach((t, i) => t.reshape(shapes[i]!.dim.map(Number)));
  }

  override reshape(): void {}

  private ready = false;

  override prepare(): Promise<void> {
    if (!this.feed.prefetch) return Promise.resolve();
    return new Promise((resolve) =>
      setTimeout(() => {
        this.ready = true;
        resolve();
      }, 0),
    );
  }

  close(): void {
    this.feed.closed = (this.feed.closed ?? 0) + 1;
  }

  protected override forwardCpu(_bottom: Blob[], top: Blob[]): void {
    if (this.feed.prefetch) {
      this.check(this.ready, () => 'forward before the prefetched batch was ready (prepare() not awaited)');
      this.ready = false;
    }
    const k = this.feed.counters[this.phase] ?? 0;
    this.feed.counters[this.phase] = k + 1;
    const values = this.feed.batch(this.phase, k, this.name);
    top.forEach((t, i) => {
      const v = values[i]!;
      this.check(v.length === t.count(), () => `feed gave ${v.length} values for top ${i} of ${t.shapeString()}`);
      t.mutableCpuData().set(v);
    });
  }

  protected override backwardCpu(): void {}
}

/** loss = Σ (a − b)² / (2N), N = the batch size (axis 0), as Caffe's EuclideanLoss. */
export class TestEuclideanLossLayer extends LossLayerBase {
  readonly type = 'TestEuclideanLoss';
  static override readonly blobCounts: BlobCounts = { exactNumBottomBlobs: 2, exactNumTopBlobs: 1 };
  private diff: number[] = [];

  override reshape(bottom: Blob[], top: Blob[]): void {
    this.check(bottom[0]!.count() === bottom[1]!.count(), () => 'inputs must have the same count');
    top[0]!.reshape([]);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const a = bottom[0]!.cpuData();
    const b = bottom[1]!.cpuData();
    this.diff = Array.from(a, (x, i) => x - b[i]!);
    const n = bottom[0]!.shape[0]!;
    top[0]!.mutableCpuData()[0] = this.diff.reduce((s, d) => s + d * d, 0) / (2 * n);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const n = bottom[0]!.shape[0]!;
    for (let i = 0; i < 2; i++) {
      if (!propagateDown[i]) continue;
      const alpha = ((i === 0 ? 1 : -1) * top[0]!.cpuDiff()[0]!) / n;
      const g = bottom[i]!.mutableCpuDiff();
      for (let j = 0; j < g.length; j++) g[j] = alpha * this.diff[j]!;
    }
  }
}

/** A registry with TestFeed (reading `feed`), TestEuclideanLoss, InnerProduct and Split. */
export function testRegistry(feed: Feed): LayerRegistry {
  const registry = new LayerRegistry();
  const feedDef: LayerDef = {
    type: 'TestFeed',
    create: (p, ctx) => {
      const l = new FeedLayer(p, ctx);
      l.feed = feed;
      return l;
    },
  };
  registry.register(feedDef);
  registry.register({ type: 'TestEuclideanLoss', create: (p, ctx) => new TestEuclideanLossLayer(p, ctx) });
  registry.register(innerProductLayerDef as LayerDef);
  registry.register(splitLayerDef as LayerDef);
  return registry;
}

/** The regression net as prototxt: feed (data N×3, target N×2) → InnerProduct(2) → Euclidean loss. */
export function regressionNetText(batch: number, { lrMults = [1, 2], decayMults = [1, 0] } = {}): string {
  return `
name: "tiny_regression"
layer {
  name: "feed" type: "TestFeed" top: "data" top: "target"
  input_param { shape { dim: ${batch} dim: 3 } shape { dim: ${batch} dim: 2 } }
}
layer {
  name: "ip" type: "InnerProduct" bottom: "data" top: "out"
  param { lr_mult: ${lrMults[0]} decay_mult: ${decayMults[0]} }
  param { lr_mult: ${lrMults[1]} decay_mult: ${decayMults[1]} }
  inner_product_param {
    num_output: 2
    weight_filler { type: "constant" value: 0.1 }
    bias_filler { type: "constant" value: -0.2 }
  }
}
layer { name: "loss" type: "TestEuclideanLoss" bottom: "out" bottom: "target" top: "loss" }
`;
}

/** Sample `i` of the endless data set: x (3 values) and target (2 values), a fixed function of i. */
export function sample(i: number): { x: number[]; t: number[] } {
  const x = [Math.sin(i + 1), Math.cos(2 * i + 0.5), ((i % 7) - 3) / 4];
  return { x, t: [0.5 * x[0]! - x[1]! + 0.25, x[2]! * 2 - 0.1 * x[0]!] };
}

/** A feed that serves consecutive samples, `batch` per forward, separately per phase. */
export function sequentialFeed(batch: number, testOffset = 1000): Feed {
  return {
    counters: {},
    batch(phase, k) {
      const xs: number[] = [];
      const ts: number[] = [];
      for (let j = 0; j < batch; j++) {
        const s = sample(k * batch + j + (phase === Phase.TEST ? testOffset : 0));
        xs.push(...s.x);
        ts.push(...s.t);
      }
      return [xs, ts];
    },
  };
}

export function solverParam(props: Record<string, unknown>): SolverParameter {
  return createMessage<SolverParameter>('SolverParameter', props);
}

