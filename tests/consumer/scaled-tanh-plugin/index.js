// ScaledTanh, y = α·tanh(β·x), with its own `scaled_tanh_param` message: the layer of
// examples/custom-layer written as a standalone package. It imports the core packages, which the
// application provides (peer dependencies), so the field and the layer type land in the
// application's single schema and layer registry.
import { createMessage, registerLayerParamField } from '@caffe-ts/proto';
import { defaultLayerRegistry, NeuronLayer } from '@caffe-ts/layers';

/** LayerParameter field number of scaled_tanh_param: plugins take numbers from 1000 up. */
export const SCALED_TANH_PARAM_FIELD = {
  name: 'scaled_tanh_param',
  id: 1147,
  typeName: 'ScaledTanhParameter',
  protoText: `
    message ScaledTanhParameter {
      optional float alpha = 1 [default = 1.7159];
      optional float beta = 2 [default = 0.6666667];
    }`,
};

export class ScaledTanhLayer extends NeuronLayer {
  type = 'ScaledTanh';
  alpha = 1;
  beta = 1;

  layerSetUp() {
    // An unset sub-message reads as null; a fresh message reads the schema's defaults.
    const p = this.param.scaled_tanh_param ?? createMessage('ScaledTanhParameter', {});
    this.check(Number.isFinite(p.alpha) && p.alpha !== 0, () => `scaled_tanh_param.alpha must be finite and non-zero (got ${p.alpha})`);
    this.check(Number.isFinite(p.beta), () => `scaled_tanh_param.beta must be finite (got ${p.beta})`);
    this.alpha = p.alpha;
    this.beta = p.beta;
  }

  forwardCpu(bottom, top) {
    const x = bottom[0].cpuData();
    const y = top[0].mutableCpuData();
    for (let i = 0; i < x.length; i++) y[i] = this.alpha * Math.tanh(this.beta * x[i]);
  }

  backwardCpu(top, propagateDown, bottom) {
    if (!propagateDown[0]) return;
    // Only y is needed (in-place safe): dy/dx = αβ(1 − (y/α)²).
    const y = top[0].cpuData();
    const dy = top[0].cpuDiff();
    const dx = bottom[0].mutableCpuDiff();
    for (let i = 0; i < y.length; i++) {
      const t = y[i] / this.alpha;
      dx[i] = dy[i] * this.alpha * this.beta * (1 - t * t);
    }
  }
}

export const scaledTanhLayerDef = { type: 'ScaledTanh', create: (param, ctx) => new ScaledTanhLayer(param, ctx) };

/** Add the schema field and the layer type (default: the application's registry). Idempotent. */
export function registerScaledTanh(registry = defaultLayerRegistry()) {
  registerLayerParamField(SCALED_TANH_PARAM_FIELD);
  if (!registry.has(scaledTanhLayerDef.type)) registry.register(scaledTanhLayerDef);
  return registry;
}
