import type { Blob } from '@caffe-ts/blob';
import type { LayerDef } from '../registry.js';
import { NeuronLayer } from './neuron-layer.js';

/**
 * Power (Caffe's PowerLayer): y = (shift + scale·x)^power.
 * dy/dx = power·scale·(shift + scale·x)^(power−1), computed with Caffe's special cases:
 * - power·scale = 0: y is the constant 1 (power 0) or shift^power, and dx = 0;
 * - power = 1: dx = scale·dy;
 * - power = 2: dx = 2·scale·(shift + scale·x)·dy;
 * - shift = 0: dx = power·(y / x)·dy;
 * - otherwise dx = power·scale·y / (shift + scale·x)·dy.
 * The general cases read the bottom's data, so (as in Caffe) in place they see the top instead.
 */
export class PowerLayer extends NeuronLayer {
  readonly type = 'Power';

  power = 1;
  scale = 1;
  shift = 0;
  /** power·scale: the derivative's constant factor. */
  diffScale = 1;

  override layerSetUp(_bottom: Blob[], _top: Blob[]): void {
    const pp = this.param.power_param;
    this.power = pp?.power ?? 1;
    this.scale = pp?.scale ?? 1;
    this.shift = pp?.shift ?? 0;
    this.diffScale = this.power * this.scale;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { power, scale, shift } = this;
    const y = top[0]!.mutableCpuData();
    // The input does not matter when power or scale is 0.
    if (this.diffScale === 0) {
      y.fill(power === 0 ? 1 : Math.pow(shift, power));
      return;
    }
    const x = bottom[0]!.cpuData();
    if (power === 1) for (let i = 0; i < x.length; i++) y[i] = scale * x[i]! + shift;
    else for (let i = 0; i < x.length; i++) y[i] = Math.pow(scale * x[i]! + shift, power);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const { power, scale, shift, diffScale } = this;
    const dx = bottom[0]!.mutableCpuDiff();
    const dy = top[0]!.cpuDiff();
    if (diffScale === 0) {
      // The output is constant: the gradient is exactly 0, whatever the top diff holds.
      dx.fill(0);
      return;
    }
    if (power === 1) {
      for (let i = 0; i < dx.length; i++) dx[i] = diffScale * dy[i]!;
      return;
    }
    const x = bottom[0]!.cpuData();
    if (power === 2) {
      for (let i = 0; i < dx.length; i++) dx[i] = (diffScale * scale * x[i]! + diffScale * shift) * dy[i]!;
      return;
    }
    const y = top[0]!.cpuData();
    if (shift === 0) {
      for (let i = 0; i < dx.length; i++) dx[i] = power * (y[i]! / x[i]!) * dy[i]!;
    } else {
      for (let i = 0; i < dx.length; i++) dx[i] = diffScale * (y[i]! / (scale * x[i]! + shift)) * dy[i]!;
    }
  }
}

export const powerLayerDef: LayerDef<PowerLayer> = { type: 'Power', create: (p, ctx) => new PowerLayer(p, ctx) };
