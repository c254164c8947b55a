import { afterAll, describe, expect, it } from 'vitest';
import { checkAgainstNaive } from './gemm-wasm-cases.js';
import { createWasmGemmKernel } from './gemm-wasm.js';
import { initThreads, setNumThreads, shutdownThreads, threadPoolInfo } from './threads.js';

// A worker that never reports ready (a stalled browser worker, say) must not hang initThreads.
// This file runs in its own process: the pool's Worker class is swapped for one that stays silent.
class SilentWorker {
  static made = 0;
  terminated = false;
  constructor() {
    SilentWorker.made++;
  }
  on(): void {}
  ref(): void {}
  unref(): void {}
  terminate(): Promise<number> {
    this.terminated = true;
    return Promise.resolve(0);
  }
}

describe('initThreads with a worker that never starts', () => {
  afterAll(async () => {
    await shutdownThreads();
  });

  it('gives up waiting after timeoutMs, and the products run on the calling thread', async () => {
    expect(threadPoolInfo().supported).toBe(true);
    const pool = (globalThis as unknown as Record<symbol, { nodeWorker?: unknown }>)[Symbol.for('caffe-ts.threadPool')]!;
    pool.nodeWorker = SilentWorker;
    const t0 = performance.now();
    await expect(initThreads(2, { timeoutMs: 200 })).resolves.toBe(1);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(190);
    expect(waited).toBeLessThan(10_000);
    expect(SilentWorker.made).toBe(1);
    expect(threadPoolInfo()).toMatchObject({ requested: 2, started: 1, active: 1 });
    // The silent worker's share of a split product runs on the caller: still the right values.
    setNumThreads(2);
    const k = createWasmGemmKernel({ relaxed: false, minFlopsPerThread: 1 })!;
    checkAgainstNaive(k, false, false, 150, 170, 130, 1, 0);
    expect(threadPoolInfo().workerLists).toBe(0);
  });
});
