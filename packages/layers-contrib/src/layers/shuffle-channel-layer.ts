import type { Blob } from '@caffe-ts/blob';
import { Layer, type LayerDef } from '@caffe-ts/layers';
import { forkParam, type ShuffleChannelParameter } from '../fork-types.js';

/**
 * ShuffleChannel (ShuffleNet): view the C channels as a group × (C/group) matrix and transpose
 * it, so output channel j·group + i is input channel i·(C/group) + j. Backward applies the
 * inverse permutation.
 */
export class ShuffleChannelLayer extends Layer {
  static override readonly blobCounts = { exactNumBottomBlobs: 1, exactNumTopBlobs: 1 };
  readonly type = 'ShuffleChannel';
  group = 1;

  override layerSetUp(): void {
    const p = forkParam<ShuffleChannelParameter>(this.param, 'shuffle_channel_param', 'ShuffleChannelParameter');
    this.group = p.group;
    this.check(this.group > 0, () => `group must be positive (got ${this.group}).`);
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    const b = bottom[0]!;
    this.check(b.numAxes >= 2, () => `the input needs a channel axis (got ${b.shapeString()}).`);
    const c = b.shape[1]!;
    this.check(c % this.group === 0, () => `the channels (${c}) must be a multiple of group (${this.group}).`);
    top[0]!.reshapeLike(b);
  }

  /** Calls f(topChannel, bottomChannel) for every image and channel, with the offsets of each plane. */
  private each(b: Blob, f: (topOffset: number, bottomOffset: number, size: number) => void): void {
    const num = b.shape[0]!;
    const C = b.shape[1]!;
    const S = b.count(2);
    const per = C / this.group;
    for (let n = 0; n < num; n++) {
      for (let i = 0; i < this.group; i++) {
        for (let j = 0; j < per; j++) f((n * C + j * this.group + i) * S, (n * C + i * per + j) * S, S);
      }
    }
  }

  protected forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    this.each(bottom[0]!, (t, s, n) => y.set(x.subarray(s, s + n), t));
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    this.each(bottom[0]!, (t, s, n) => dx.set(dy.subarray(t, t + n), s));
  }
}

export const shuffleChannelLayerDef: LayerDef<ShuffleChannelLayer> = {
  type: 'ShuffleChannel',
  create: (p, ctx) => new ShuffleChannelLayer(p, ctx),
};
