import { createGpuBackend, type GpuBackend } from './backend.js';
import { isModeSupported, type GpuMode } from './runtime.js';

/**
 * The modes the layer checks run in here: 'cpu' always; 'wasm' when gpu.js's WebAssembly mode
 * loads; 'headlessgl' when a display is set and the optional `gl` build loads. Each entry says
 * why a mode is skipped, so a run shows what it did not cover.
 */
export function testModes(): { mode: GpuMode; skip: string | null }[] {
  const gl = !process.env.DISPLAY
    ? 'no DISPLAY (run under xvfb-run -a to test headless GL)'
    : isModeSupported('headlessgl')
      ? null
      : 'gl (headless-gl) is not built or cannot open a context';
  return [
    { mode: 'cpu', skip: null },
    { mode: 'wasm', skip: isModeSupported('wasm') ? null : "gpu.js's webasm mode does not load here" },
    { mode: 'headlessgl', skip: gl },
  ];
}

const cache = new Map<string, GpuBackend>();
/** One backend per mode and options, shared by a test file's cases. */
export function backendFor(mode: GpuMode, allowCpuFallback = false, splitLimit?: number): GpuBackend {
  const key = `${mode}/${allowCpuFallback}/${splitLimit ?? ''}`;
  let b = cache.get(key);
  if (!b) {
    b = createGpuBackend({ mode, allowCpuFallback, splitLimit });
    cache.set(key, b);
  }
  return b;
}

/**
 * max |a − b| / (floor + max |b|): a gpu result's distance from the CPU layers' one, relative to
 * the latter's scale (floor keeps an all-zero reference from dividing by zero).
 */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
  }
  return err / (floor + scale);
}
