// Side-effect entry: `import '@caffe-ts/io-leveldb/register'` adds the Data layer to the default registry.
import { registerDataLayers } from './data-layer.js';

registerDataLayers();
