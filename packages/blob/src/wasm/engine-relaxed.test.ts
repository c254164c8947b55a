import { afterAll, expect, it } from 'vitest';
import { engine, shutdownThreads } from './threads.js';
import { relaxedSimdStatus } from './wasm-api.js';

afterAll(async () => {
  await shutdownThreads();
});

// This file runs in its own process, and the engine below is the first WebAssembly it compiles:
// as in `caffe train`, where the first blob of the 'wasm' host allocator creates the engine
// before any kernel runs.
it('the kernel threads\' engine compiles its relaxed-SIMD builds even when it is the first WebAssembly of the process', () => {
  const e = engine();
  if (!e) return; // no shared memory here: nothing to check
  const relaxed = ['native', 'enabled'].includes(relaxedSimdStatus());
  expect(e.has(true)).toBe(relaxed);
  expect(e.trainExports(true) !== null).toBe(relaxed);
});
