// Side-effect entry: `import 'caffe-ts-scaled-tanh/register'`.
import { registerScaledTanh } from './index.js';

registerScaledTanh();
