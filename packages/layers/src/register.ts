/**
 * Side-effect entry (`import '@caffe-ts/layers/register'`): registers every built-in layer
 * into the process-wide default registry. Safe to import more than once.
 */
import { registerBuiltinLayers } from './register-all-layers.js';

registerBuiltinLayers();
