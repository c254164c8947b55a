// Side-effect entry: `import '@caffe-ts/backend-gpu/register'` makes getBackend('gpu') work.
import { registerGpuBackend } from './register-backend.js';

registerGpuBackend();

export { registerGpuBackend };
