import type { Blob } from '@caffe-ts/blob';
import { NeuronLayer, type LayerDef } from '@caffe-ts/layers';
import { createMessage, registerLayerParamField, type LayerParamFieldSpec } from '@caffe-ts/proto';

/**
 * The layer's own parameter message, in proto2 as it would appear in a `.proto` file.
 * Defaults are LeCun's "efficient backprop" tanh: 1.7159 · tanh(2x/3).
 */
export const SCALED_TANH_PROTO = `
message ScaledTanhParameter {
  optional float alpha = 1 [default = 1.7159];  // output scale
  optional float beta = 2 [default = 0.6666667]; // input scale
}
`;

/**
 * `LayerParameter.scaled_tanh_param`. The number must not clash with caffe.proto's fields
 * (BVLC's next free LayerParameter id is 149; the SSD fork uses ids up to ~210), so plugins
 * take numbers from 1000 up. Files written with it keep this number: never change it.
 */
export const SCALED_TANH_PARAM_FIELD: LayerParamFieldSpec = {
  name: 'scaled_tanh_param',
  id: 1147,
  typeName: 'ScaledTanhParameter',
  protoText: SCALED_TANH_PROTO,
};

/** The fields as they read from a LayerParameter once the schema is registered. */
export interface ScaledTanhParameter {
  alpha: number;
  beta: number;
}

/**
 * Add `scaled_tanh_param` to LayerParameter, so prototxt text, binary files, printing and
 * defaults all know it. Idempotent.
 */
export function registerScaledTanhSchema(): void {
  registerLayerParamField(SCALED_TANH_PARAM_FIELD);
}

/**
 * ScaledTanh: y = α · tanh(β · x). Backward uses only y, so it can run in place:
 * dy/dx = αβ (1 − tanh²(βx)) = β (α − y²/α).
 */
export class ScaledTanhLayer extends NeuronLayer {
  readonly type = 'ScaledTanh';
  private alpha = 1;
  private beta = 1;

  override layerSetUp(): void {
    // An unset sub-message reads as null: fall back to a fresh one, whose fields read the
    // schema's defaults.
    const p =
      (this.param as unknown as { scaled_tanh_param: ScaledTanhParameter | null }).scaled_tanh_param ??
      createMessage<ScaledTanhParameter>('ScaledTanhParameter', {});
    const { alpha, beta } = p;
    this.check(Number.isFinite(alpha) && alpha !== 0, () => `scaled_tanh_param.alpha must be finite and non-zero (got ${alpha})`);
    this.check(Number.isFinite(beta), () => `scaled_tanh_param.beta must be finite (got ${beta})`);
    this.alpha = alpha;
    this.beta = beta;
  }

  protected override forwardCpu(bottom: Blob[], top: Blob[]): void {
    const { alpha, beta } = this;
    const x = bottom[0]!.cpuData();
    const y = top[0]!.mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = alpha * Math.tanh(beta * x[i]!);
  }

  protected override backwardCpu(top: Blob[], propagateDown: boolean[], bottom: Blob[]): void {
    if (!propagateDown[0]) return;
    const { alpha, beta } = this;
    const y = top[0]!.cpuData();
    const dy = top[0]!.cpuDiff();
    const dx = bottom[0]!.mutableCpuDiff();
    for (let i = 0; i < y.length; i++) {
      const t = y[i]! / alpha;
      dx[i] = dy[i]! * alpha * beta * (1 - t * t);
    }
  }
}

export const scaledTanhLayerDef: LayerDef<ScaledTanhLayer> = {
  type: 'ScaledTanh',
  create: (p, ctx) => new ScaledTanhLayer(p, ctx),
};
