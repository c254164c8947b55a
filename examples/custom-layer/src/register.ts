// Side-effect entry: `import '@caffe-ts/example-custom-layer/register'` registers the plugin
// into the default layer registry.
import { registerExampleLayers } from './index.js';

registerExampleLayers();
