// Test support shared by the layer tests (not part of the package's entry points).
import { Blob, defaultWasmInferConv, Rng, type DType, type FloatArray } from '@caffe-ts/blob';
import { expect } from 'vitest';
import type { Layer } from '../layer.js';
import { makeBlob } from '../testing.js';

/**
 * Runs `body` with the packed-weights runner's conv2d calls counted (`calls()`; always 0 where
 * there is no runner, e.g. CAFFE_TS_GEMM=js), restoring the runner afterwards.
 */
export function countingPackedConv2d<T>(body: (calls: () => number) => T): T {
  const runner = defaultWasmInferConv();
  if (!runner) return body(() => 0);
  const conv2d = runner.conv2d;
  let calls = 0;
  runner.conv2d = (...args) => {
    calls++;
    return conv2d(...args);
  };
  try {
    return body(() => calls);
  } finally {
    runner.conv2d = conv2d;
  }
}

/**
 * A float32 layer and its float64 twin from `make`, set up on the same bottom of `shape` with the
 * same parameters. `step()` runs forward and backward on both with the same gaussian top diff
 * (param diffs accumulate, as in Caffe); `expectClose()` checks every float32 diff (bottom and
 * params) against the float64 one within `rel` of the latter's largest magnitude.
 */
export function float64Twin<L extends Layer>(make: (dtype: DType) => L, shape: number[], rel = 1e-4) {
  const l32 = make('float32'), l64 = make('float64');
  const b32 = makeBlob(shape, { dtype: 'float32', rng: new Rng(6) });
  const b64 = makeBlob(shape, { rng: new Rng(6) });
  b64.mutableCpuData().set(b32.cpuData());
  const t32 = new Blob([], { dtype: 'float32' }), t64 = new Blob([], { dtype: 'float64' });
  l32.setUp([b32], [t32]);
  l64.setUp([b64], [t64]);
  l32.blobs.forEach((b, i) => l64.blobs[i]!.mutableCpuData().set(b.cpuData()));
  const step = () => {
    for (const [l, b, t] of [[l32, b32, t32], [l64, b64, t64]] as const) {
      l.forward([b], [t]);
      const dy = t.mutableCpuDiff();
      const rng = new Rng(4);
      for (let i = 0; i < dy.length; i++) dy[i] = rng.gaussian(0, 1);
      l.backward([t], [true], [b]);
    }
  };
  const close = (got: FloatArray, want: FloatArray) => {
    let worst = 0, scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      scale = Math.max(scale, Math.abs(want[i]!));
    }
    expect(worst).toBeLessThanOrEqual(rel * scale);
  };
  const expectClose = () => {
    close(b32.cpuDiff(), b64.cpuDiff());
    l32.blobs.forEach((b, i) => close(b.cpuDiff(), l64.blobs[i]!.cpuDiff()));
  };
  return { l32, l64, step, expectClose };
}
