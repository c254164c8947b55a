import { activeGemmKernelName, installedConv2dRunner } from '@caffe-ts/blob';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeAvailability } from './addon.js';
import { stopNativeKernels } from './use.js';

describe.skipIf(!nativeAvailability().available)('@caffe-ts/backend-native/register', () => {
  afterAll(() => stopNativeKernels());

  it('installs the native kernels when imported', async () => {
    await import('./register.js');
    expect(activeGemmKernelName()).toBe('native-openblas');
    expect(installedConv2dRunner()?.name).toBe('native-openblas');
  });
});
