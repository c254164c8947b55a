import type { Blob } from '@caffe-ts/blob';
import { NeuronLayer, type LayerDef } from '@caffe-ts/layers';

/**
 * ReLU6 (the MobileNet-v2 forks): y = min(max(x, 0), 6). The gradient passes where 0 < x < 6.
 * Not in place-safe for backward only in principle; y keeps what backward needs (0 < y < 6
 * exactly where 0 < x < 6), so in place works.
 */
export class ReLU6Layer extends NeuronLayer {
  readonly type = 'ReLU6';

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = Math.min(Math.max(x[i]!, 0), 6);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < y.length; i++) dx[i] = y[i]! > 0 && y[i]! < 6 ? dy[i]! : 0;
  }
}

export const relu6LayerDef: LayerDef<ReLU6Layer> = { type: 'ReLU6', create: (p, ctx) => new ReLU6Layer(p, ctx) };
