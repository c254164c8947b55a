/**
 * @caffe-ts/example-custom-layer: how a plugin adds layers to caffe-ts (see README.md).
 * Pure exports; `./register` registers everything into the default registries.
 */
import { defaultLayerRegistry, type LayerRegistry } from '@caffe-ts/layers';
import { pythonLayerDef } from '@caffe-ts/layers';
import { registerPyloss } from './pyloss.js';
import { registerScaledTanhSchema, scaledTanhLayerDef } from './scaled-tanh-layer.js';

export {
  ScaledTanhLayer,
  scaledTanhLayerDef,
  registerScaledTanhSchema,
  SCALED_TANH_PARAM_FIELD,
  SCALED_TANH_PROTO,
  type ScaledTanhParameter,
} from './scaled-tanh-layer.js';
export { euclideanLossLayer, registerPyloss } from './pyloss.js';

/**
 * Register this plugin: the `scaled_tanh_param` schema field, the ScaledTanh layer type, the
 * "Python" type (unless the registry has it already) and the pyloss.EuclideanLossLayer port.
 * Safe to call more than once.
 */
export function registerExampleLayers(registry: LayerRegistry = defaultLayerRegistry()): LayerRegistry {
  registerScaledTanhSchema();
  if (!registry.has(scaledTanhLayerDef.type)) registry.register(scaledTanhLayerDef);
  if (!registry.has(pythonLayerDef.type)) registry.register(pythonLayerDef);
  registerPyloss();
  return registry;
}
