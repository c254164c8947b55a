// Side-effect entry: `import '@caffe-ts/backend-native/register'` (or `caffe … --plugin
// @caffe-ts/backend-native/register`, which the data-parallel workers import too) puts the
// native kernels under every layer of this thread. It throws, saying why, where the addon is
// not built.
import { useNativeKernels } from './use.js';

useNativeKernels();
