import { describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { KernelHeap, sizeClass } from './kernel-heap.js';

describe('KernelHeap', () => {
  function small(maxPages = 4) {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: maxPages, shared: true }) as unknown as {
      buffer: SharedArrayBuffer; grow(n: number): number;
    };
    return { memory, heap: new KernelHeap(memory, 1024, maxPages * 65536) };
  }

  it('rounds to size classes of at most 12.5% waste, 64-byte aligned', () => {
    expect(sizeClass(1)).toBe(64);
    expect(sizeClass(4096)).toBe(4096);
    for (const n of [4097, 10000, 123457, 5_000_001]) {
      const c = sizeClass(n);
      expect(c % 64).toBe(0);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c / n).toBeLessThanOrEqual(1.125 + 64 / n);
    }
  });

  it('reuses freed blocks zeroed, lowers the top, grows without detaching old views, refuses past the maximum', () => {
    const { memory, heap } = small(4);
    const a = heap.alloc(40000);
    const b = heap.alloc(1000);
    const va = new Float32Array(heap.buffer(), a, 10000).fill(3);
    new Float32Array(heap.buffer(), b, 250).fill(5);
    heap.free(a, 40000);
    const a2 = heap.alloc(39000); // same class
    expect(a2).toBe(a);
    expect(new Float32Array(heap.buffer(), a2, 10000).every((x) => x === 0)).toBe(true);
    heap.free(b, 1000);
    expect(heap.stats().top).toBe(b); // the top block went back to the bump pointer
    const c = heap.alloc(1000);
    expect(c).toBe(b);
    expect(new Float32Array(heap.buffer(), c, 250).every((x) => x === 0)).toBe(true);
    // Grow: the view made before still works, and the heap still knows its buffer.
    const before = memory.buffer;
    const big = heap.alloc(150000);
    expect(big).toBeGreaterThan(0);
    expect(memory.buffer).not.toBe(before);
    va[0] = 9;
    expect(new Float32Array(memory.buffer, a2, 1)[0]).toBe(9);
    expect(heap.owns(va.buffer)).toBe(true);
    expect(heap.owns(new SharedArrayBuffer(8))).toBe(false);
    expect(heap.alloc(4 * 65536)).toBe(-1);
    expect(() => heap.require(5 * 65536, 'test')).toThrow(/test: cannot grow the shared WebAssembly memory to 327680 bytes/);
  });

  it('merges freed neighbours, so a larger request reuses their memory instead of growing', () => {
    const { heap } = small(4);
    const a = heap.alloc(4096);
    const b = heap.alloc(4096);
    const c = heap.alloc(4096);
    const guard = heap.alloc(64); // keeps a, b and c below the top
    new Float32Array(heap.buffer(), a, 3 * 1024).fill(7);
    heap.free(a, 4096);
    heap.free(c, 4096);
    heap.free(b, 4096); // joins a and c: one free block of 12 KiB
    expect(heap.stats()).toMatchObject({ bytesFree: 3 * 4096, top: guard + 64 });
    const top = heap.stats().top;
    const d = heap.alloc(3 * 4096);
    expect(d).toBe(a);
    expect(heap.stats()).toMatchObject({ bytesFree: 0, top });
    expect(new Float32Array(heap.buffer(), d, 3 * 1024).every((x) => x === 0)).toBe(true);
  });

  it('takes the smallest free block that holds a request and leaves the rest free', () => {
    const { heap } = small(4);
    const big = heap.alloc(8192);
    heap.alloc(64);
    const mid = heap.alloc(5120);
    heap.alloc(64);
    heap.free(big, 8192);
    heap.free(mid, 5120);
    const top = heap.stats().top;
    const x = heap.alloc(4096); // no free 4 KiB block: the front of the 5 KiB one
    expect(x).toBe(mid);
    expect(heap.stats()).toMatchObject({ bytesFree: 8192 + 1024, top });
    expect(heap.alloc(1024)).toBe(mid + 4096); // the rest, exactly
    expect(heap.alloc(6144)).toBe(big);
    expect(heap.stats()).toMatchObject({ bytesFree: 2048, top });
  });

  it('lowers the top through free memory below it', () => {
    const { heap } = small(4);
    const a = heap.alloc(1024);
    const b = heap.alloc(2048);
    const c = heap.alloc(4096);
    heap.free(b, 2048);
    expect(heap.stats().top).toBe(c + 4096);
    heap.free(c, 4096); // c and the free b below it go back to the bump pointer
    expect(heap.stats()).toMatchObject({ top: b, bytesFree: 0 });
    heap.free(a, 1024);
    expect(heap.stats()).toMatchObject({ top: a, bytesFree: 0, bytesInUse: 0, liveBlocks: 0 });
  });

  it('keeps every byte below the top either in a live block or free, with no overlap, over random use', () => {
    const { heap } = small(64);
    const rng = new Rng(11);
    const base = heap.alloc(64);
    const live = new Map<number, number>(); // offset -> bytes asked
    for (let step = 0; step < 4000; step++) {
      if (live.size > 0 && rng.uniform() < 0.45) {
        const keys = [...live.keys()];
        const at = keys[rng.int(keys.length)]!;
        heap.free(at, live.get(at)!);
        live.delete(at);
      } else {
        const bytes = 1 + rng.int(rng.uniform() < 0.2 ? 40000 : 3000);
        const at = heap.alloc(bytes);
        expect(at).toBeGreaterThan(0);
        const view = new Float32Array(heap.buffer(), at, sizeClass(bytes) >> 2);
        expect(view.every((v) => v === 0)).toBe(true);
        view.fill(step + 1); // dirty it, so reuse must zero it again
        live.set(at, bytes);
      }
      if (step % 100 === 0 || step === 3999) {
        const blocks = [...live].map(([at, bytes]) => [at, at + sizeClass(bytes)] as const).sort((p, q) => p[0] - q[0]);
        for (let i = 1; i < blocks.length; i++) expect(blocks[i]![0]).toBeGreaterThanOrEqual(blocks[i - 1]![1]);
        const s = heap.stats();
        const inUse = blocks.reduce((acc, [from, to]) => acc + to - from, 0);
        expect(s.bytesInUse).toBe(inUse + 64);
        expect(s.liveBlocks).toBe(live.size + 1);
        expect(s.bytesInUse + s.bytesFree).toBe(s.top - base);
        if (blocks.length > 0) expect(s.top).toBeGreaterThanOrEqual(blocks[blocks.length - 1]![1]);
      }
    }
    for (const [at, bytes] of live) heap.free(at, bytes);
    heap.free(base, 64);
    expect(heap.stats()).toMatchObject({ top: base, bytesFree: 0, bytesInUse: 0 });
  });
});
