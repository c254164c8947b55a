// Side-effect entry: `import '@caffe-ts/layers-contrib/register'` registers the fork layers
// into the default layer registry.
import { registerContribLayers } from './index.js';

registerContribLayers();
