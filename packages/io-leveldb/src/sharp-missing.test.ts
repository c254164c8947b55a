import { describe, expect, it, vi } from 'vitest';

// sharp without its native build, as after `npm install --omit=optional` or on a platform it has
// no build for: importing it throws (this is sharp's own message in that case).
vi.mock('sharp', () => {
  throw new Error('Could not load the "sharp" module using the linux-x64 runtime\nPossible solutions: …');
});

describe('without a loadable sharp', () => {
  it('the package still imports, and only image reading and writing fail, saying why', async () => {
    const io = await import('./index.js');
    expect(typeof io.openDatumDb).toBe('function');
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]);
    const decoding = io.decodeImage(png);
    await expect(decoding).rejects.toThrow(io.DataError);
    await expect(decoding).rejects.toThrow(/reading or writing images needs the 'sharp' package and its native build for \S+, which could not be loaded \(reinstall without --omit=optional\)/);
    const encoding = io.encodeImage({ height: 1, width: 1, channels: 1, data: Uint8Array.of(7) }, 'png');
    await expect(encoding).rejects.toThrow(io.DataError);
    await expect(encoding).rejects.toThrow(/needs the 'sharp' package/);
  });
});
