import '@caffe-ts/layers/register';
import { describeDeployNet, wasmOrCpu, type DeployCase } from './deploy-parity.js';

/**
 * ResNet-50 at 64×64 on the device (BatchNorm with global statistics and Scale, both in place,
 * Eltwise SUM shortcuts). Its last pooling is 7×7 AVE for 224×224 inputs: here `global_pooling`,
 * the same computation at 224 and valid at 64 (2×2). Full size and headless GL: test:gpu-slow.
 */
export const RESNET50_64: DeployCase = {
  model: 'resnet50',
  input: [1, 3, 64, 64],
  edits: [['pool: AVE kernel_size: 7', 'pool: AVE global_pooling: true']],
};

describeDeployNet('ResNet-50', RESNET50_64, wasmOrCpu(), 60_000);
