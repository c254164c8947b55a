import { describe, expect, it, vi } from 'vitest';

// sharp without its native build (`npm install --omit=optional`, an unsupported platform).
vi.mock('sharp', () => {
  throw new Error('Could not load the "sharp" module using the linux-x64 runtime');
});

describe('detect without a loadable sharp', () => {
  it('imports, and only drawing fails, saying why', async () => {
    const { drawDetections, DetectError } = await import('./detect.js');
    const drawing = drawDetections({ height: 2, width: 2, channels: 3, data: new Uint8Array(12) }, []);
    await expect(drawing).rejects.toThrow(DetectError);
    await expect(drawing).rejects.toThrow(/drawing detections needs the 'sharp' package and its native build for \S+, which could not be loaded/);
  });
});
