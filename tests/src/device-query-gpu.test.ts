import { describe, expect, it } from 'vitest';
import { caffe, tempDir } from './helpers.js';

describe('caffe device_query --backend gpu', () => {
  it('reports the gpu.js mode it chose, the texture limit and the float precision', async () => {
    const dir = tempDir();
    try {
      const run = await caffe(['device_query', '--backend', 'gpu'], dir.path);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Backends registered: .*\bgpu\b/m);
      expect(run.stdout).toMatch(/^Backend: gpu$/m);
      expect(run.stdout).toMatch(/^gpu\.js mode: (headlessgl|webgl2|webgl|wasm|cpu) \(gpu\.js '\w+'\)$/m);
      // In a GL mode, what renders: a GPU, or Mesa's llvmpipe under Xvfb.
      if (/^gpu\.js mode: headlessgl/m.test(run.stdout)) expect(run.stdout).toMatch(/^Renderer: ANGLE \(.+\)$/m);
      else expect(run.stdout).not.toMatch(/^Renderer:/m);
      expect(run.stdout).toMatch(/^Max texture size: (\d+x\d+ texels \(\d+ floats per buffer\)|none \(host arrays\))$/m);
      expect(run.stdout).toMatch(/^Float precision: single \(23 mantissa bits kept through a device round trip, epsilon 1\.1920928955078125e-7\)$/m);
      expect(run.stdout).toMatch(/^Device kernels: .*Convolution.*InnerProduct/m);
      // Caffe's -gpu flag asks for the same backend.
      const viaGpuFlag = await caffe(['device_query', '-gpu', '0'], dir.path);
      expect(viaGpuFlag.stdout).toMatch(/^Backend: gpu$/m);
    } finally {
      dir.remove();
    }
  });

  it('names the registered backends when asked for an unknown one', async () => {
    const dir = tempDir();
    try {
      const run = await caffe(['device_query', '--backend', 'tpu'], dir.path);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/Backend 'tpu' not found in registry \(known backends: cpu, .*gpu/);
    } finally {
      dir.remove();
    }
  });
});
