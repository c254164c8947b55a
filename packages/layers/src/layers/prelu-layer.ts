import { fillBlob, type Blob, type FloatArray } from '@caffe-ts/blob';
import type { FillerParameter } from '@caffe-ts/proto';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/** PReLU's slope filler when prelu_param.filler is unset (Caffe: constant 0.25). */
const DEFAULT_SLOPE_FILLER: Partial<FillerParameter> = { type: 'constant', value: 0.25 };

/**
 * PReLU (Caffe's PReLULayer): y = max(x, 0) + a_c · min(x, 0) with a learned slope a per
 * channel (axis 1), or one slope for all channels when `channel_shared`.
 * Blobs: `[slope]`, shape `[C]`, or `[]` (one element) when channel_shared.
 * Backward needs x itself (the slope gradient is Σ dy·x over x ≤ 0), so in place the forward
 * keeps a copy of the bottom, as Caffe does.
 */
export class PReLULayer extends NeuronLayer {
  readonly type = 'PReLU';

  channelShared = false;
  /** The bottom's data as it was before an in-place forward overwrote it. */
  private bottomMemory: FloatArray | null = null;

  override layerSetUp(bottom: Blob[], _top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes >= 2, () => `Number of axes of bottom blob must be >=2 (bottom shape ${b.shapeString()}).`);
    const pp = this.param.prelu_param;
    this.channelShared = pp?.channel_shared ?? false;
    const channels = b.shape[1]!;
    if (this.blobs.length === 0) {
      const slope = this.newBlob(this.channelShared ? [] : [channels]);
      fillBlob(slope, pp?.filler ?? DEFAULT_SLOPE_FILLER, this.rng);
      this.blobs = [slope];
    }
    const want = this.channelShared ? 1 : channels;
    const got = this.blobs[0]!.count();
    this.check(
      got === want,
      () =>
        `Negative slope size is inconsistent with prototxt config (expected ${want} slope(s) for ` +
        `${this.channelShared ? 'channel_shared' : `${channels} channels`}, the slope blob has shape ${this.blobs[0]!.shapeString()})`,
    );
    while (this.paramPropagateDown.length < this.blobs.length) this.paramPropagateDown.push(true);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes >= 2, () => `Number of axes of bottom blob must be >=2 (bottom shape ${b.shapeString()}).`);
    const channels = this.channelShared ? b.shape[1]! : this.blobs[0]!.count();
    this.check(
      b.shape[1] === channels,
      () => `bottom has ${b.shape[1]} channels (shape ${b.shapeString()}), but the layer was set up for ${channels}`,
    );
    super.reshape(bottom, top);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    const x = b.cpuData();
    if (b === top[0]) {
      if (!this.bottomMemory || this.bottomMemory.length !== x.length) this.bottomMemory = x.slice();
      else this.bottomMemory.set(x);
    }
    const y = top[0]!.mutableCpuData();
    const a = this.blobs[0]!.cpuData();
    const dim = b.count(2);
    const channels = b.shape[1]!;
    for (let i = 0; i < x.length; i++) {
      const c = this.channelShared ? 0 : Math.floor(i / dim) % channels;
      const v = x[i]!;
      y[i] = Math.max(v, 0) + a[c]! * Math.min(v, 0);
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    const b = bottom[0]!;
    const x = b === top[0] ? this.bottomMemory! : b.cpuData();
    const dy = top[0]!.cpuDiff();
    const dim = b.count(2);
    const channels = b.shape[1]!;
    const chan = (i: number): number => (this.channelShared ? 0 : Math.floor(i / dim) % channels);
    // The slope gradient first: in place, writing the bottom diff overwrites the top diff.
    if (this.paramPropagateDown[0] ?? true) {
      const da = this.blobs[0]!.mutableCpuDiff();
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        if (v <= 0) da[chan(i)] = da[chan(i)]! + dy[i]! * v;
      }
    }
    if (propagateDown[0]) {
      const a = this.blobs[0]!.cpuData();
      const dx = b.mutableCpuDiff();
      for (let i = 0; i < x.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : a[chan(i)]! * dy[i]!;
    }
  }
}

export const preluLayerDef: LayerDef<PReLULayer> = { type: 'PReLU', create: (p, ctx) => new PReLULayer(p, ctx) };
