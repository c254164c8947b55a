import { describe, expect, it } from 'vitest';
import { isModeSupported, startRuntime, type GpuJsTexture } from './runtime.js';
import { drainTexturePool, texturePoolStats } from './texture-pool.js';

// Texture recycling only exists in the GL modes: headless GL under Xvfb (as scripts/test.sh runs
// the suite); skipped where no display or gl build is present.
const gl = isModeSupported('headlessgl');

describe.skipIf(!gl)('texture pool (headless GL)', () => {
  it('reuses freed output textures of the same size instead of allocating, with the right values', () => {
    const runtime = startRuntime('headlessgl');
    const { gpu } = runtime;
    expect(runtime.info.texturePool).toBe(true);
    const context = (gpu as unknown as { context: { createTexture(): unknown } }).context;
    let created = 0;
    const createTexture = context.createTexture.bind(context);
    context.createTexture = () => {
      created++;
      return createTexture();
    };
    const addOne = gpu.createKernel('function (a) { return a[this.thread.x] + 1; }', {
      output: [1000],
      pipeline: true,
      immutable: true,
      tactic: 'precision',
    });
    try {
      // Each call's output is kept and the one before freed, as a blob swaps in a new value.
      // (A kernel fed its own output takes another path in gpu.js that allocates nothing.)
      const input = new Float32Array(1000).map((_, i) => i);
      let prev = addOne(input) as GpuJsTexture;
      let next: GpuJsTexture;
      // Warm-up: the kernel's first texture is its own (not pooled); the next two fill the pool.
      for (let i = 0; i < 2; i++) {
        next = addOne(input) as GpuJsTexture;
        prev.delete();
        prev = next;
      }
      const baseline = created;
      for (let i = 0; i < 20; i++) {
        next = addOne(input) as GpuJsTexture;
        prev.delete();
        prev = next;
      }
      // Every call after the warm-up took the texture the call before had freed.
      expect(created - baseline).toBe(0);
      const stats = texturePoolStats(gpu)!;
      expect(stats.reused).toBeGreaterThanOrEqual(20);
      // A recycled texture is written whole: no value of an earlier call shows through.
      const values = prev.toArray() as Float32Array;
      expect(Array.from(values)).toEqual(Array.from(input, (v) => v + 1));
      prev.delete();
      expect(texturePoolStats(gpu)!.pooled).toBeGreaterThan(0);
    } finally {
      addOne.destroy?.();
      drainTexturePool(gpu);
      expect(texturePoolStats(gpu)).toBeNull();
      gpu.destroy();
    }
  });

  it('is off with CAFFE_TS_GPU_TEXTURE_POOL=off (spaces and case do not matter)', () => {
    const before = process.env.CAFFE_TS_GPU_TEXTURE_POOL;
    process.env.CAFFE_TS_GPU_TEXTURE_POOL = ' Off ';
    try {
      const runtime = startRuntime('headlessgl');
      expect(runtime.info.texturePool).toBeUndefined();
      expect(texturePoolStats(runtime.gpu)).toBeNull();
      runtime.gpu.destroy();
    } finally {
      if (before === undefined) delete process.env.CAFFE_TS_GPU_TEXTURE_POOL;
      else process.env.CAFFE_TS_GPU_TEXTURE_POOL = before;
    }
  });
});
