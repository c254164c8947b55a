import '@caffe-ts/layers/register';
import { isModeSupported, type GpuMode } from '../src/runtime.js';
import { describeDeployNet, type DeployCase } from '../src/deploy-parity.js';

/**
 * Issue #7's inference nets on the device at their full input size (one image; random weights),
 * gpu vs cpu: probabilities within 1e-3 relative, one readback. Also the 64×64 GoogLeNet and
 * ResNet-50 of the default suite, which runs them in wasm mode only: here in the chosen mode
 * (headless GL under `xvfb-run -a`). CAFFE_TS_GPU_MODE picks the mode (default: headless GL when
 * it loads, else wasm); CAFFE_TS_GPU_DEPLOY_NETS=googlenet,resnet50 restricts the nets.
 */
const mode: GpuMode =
  (process.env.CAFFE_TS_GPU_MODE as GpuMode | undefined) || (process.env.DISPLAY && isModeSupported('headlessgl') ? 'headlessgl' : isModeSupported('wasm') ? 'wasm' : 'cpu');
const GLOBAL_POOL5: [string, string][] = [['pool: AVE kernel_size: 7', 'pool: AVE global_pooling: true']];
const CASES: Record<string, DeployCase> = {
  'squeezenet': { model: 'squeezenet_v1.1', input: [1, 3, 227, 227] },
  'googlenet': { model: 'googlenet', input: [1, 3, 224, 224] },
  'resnet50': { model: 'resnet50', input: [1, 3, 224, 224] },
  'alexnet': { model: 'alexnet', input: [1, 3, 227, 227] },
  'googlenet-64': { model: 'googlenet', input: [1, 3, 64, 64], edits: GLOBAL_POOL5 },
  'resnet50-64': { model: 'resnet50', input: [1, 3, 64, 64], edits: GLOBAL_POOL5 },
};
const only = process.env.CAFFE_TS_GPU_DEPLOY_NETS?.split(',').map((s) => s.trim());

for (const [name, c] of Object.entries(CASES)) {
  if (only && !only.includes(name)) continue;
  describeDeployNet(name, c, [{ mode, skip: null }], 3600_000);
}
