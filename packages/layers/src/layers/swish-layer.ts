import { allocArray, type Blob, type FloatArray } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * Swish (Caffe's SwishLayer): y = x · σ(βx). The forward keeps σ(βx) in a private buffer, so
 * backward needs only the top (dy/dx = βy + σ(βx)(1 − βy)) and in place is safe.
 */
export class SwishLayer extends NeuronLayer {
  readonly type = 'Swish';

  /** σ(βx) from the last forward. */
  private sigmoidOutput: FloatArray = allocArray(this.dtype, 0);

  get beta(): number {
    return this.param.swish_param?.beta ?? 1;
  }

  override reshape(bottom: Blob[], top: Blob[]): void {
    super.reshape(bottom, top);
    const n = bottom[0]!.count();
    if (this.sigmoidOutput.length !== n) this.sigmoidOutput = allocArray(this.dtype, n);
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const beta = this.beta;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    const s = this.sigmoidOutput;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      // The logistic function as 0.5·tanh(0.5z) + 0.5, which cannot overflow (as SigmoidLayer).
      s[i] = 0.5 * Math.tanh(0.5 * beta * v) + 0.5;
      y[i] = v * s[i]!;
    }
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const beta = this.beta;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    const s = this.sigmoidOutput;
    for (let i = 0; i < y.length; i++) {
      const by = beta * y[i]!;
      dx[i] = dy[i]! * (by + s[i]! * (1 - by));
    }
  }
}

export const swishLayerDef: LayerDef<SwishLayer> = { type: 'Swish', create: (p, ctx) => new SwishLayer(p, ctx) };
