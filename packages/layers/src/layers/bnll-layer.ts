import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/** Above this, e^x in BNLL's derivative is clamped (Caffe's kBNLL_THRESHOLD). */
export const BNLL_THRESHOLD = 50;

/**
 * BNLL, "binomial normal log likelihood" (Caffe's BNLLLayer): y = log(1 + eˣ), the softplus.
 * Forward uses x + log(1 + e⁻ˣ) for x > 0 so it never overflows; backward is
 * dy·eˣ/(1 + eˣ) with x clamped at 50, as in Caffe. Backward reads the bottom's data.
 */
export class BNLLLayer extends NeuronLayer {
  readonly type = 'BNLL';

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      y[i] = v > 0 ? v + Math.log(1 + Math.exp(-v)) : Math.log(1 + Math.exp(v));
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const x = bottom[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < x.length; i++) {
      const e = Math.exp(Math.min(x[i]!, BNLL_THRESHOLD));
      dx[i] = (dy[i]! * e) / (e + 1);
    }
  }
}

export const bnllLayerDef: LayerDef<BNLLLayer> = { type: 'BNLL', create: (p, ctx) => new BNLLLayer(p, ctx) };
