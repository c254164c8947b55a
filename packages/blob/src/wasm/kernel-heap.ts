// An allocator over the kernel threads' shared WebAssembly.Memory (threads.ts), so that float32
// blob memory can live where the WebAssembly kernels run: a kernel handed a view inside this
// memory passes its byte offset instead of copying the operand in and out.
//
// Why a shared memory: growing a non-shared WebAssembly.Memory detaches its ArrayBuffer, and every
// Float32Array a blob had handed out would go dead. A shared memory (declared maximum) never
// detaches: the SharedArrayBuffer seen before a grow stays valid for its old length, views made
// on it keep working, and views made later see the grown buffer. The worker threads' instances
// see the growth too, as the memory is one object.
//
// Allocation: blocks aligned to 64 bytes, rounded up to size classes (multiples of 64 bytes up
// to 4 KiB, then 8 steps per power of two, so at most 12.5% is lost to rounding), and a bump
// pointer at the top that grows the memory when it runs past its end. A training loop allocates
// the same shapes again and again, so a freed block of the size asked for is taken first. Freed
// blocks merge with free neighbours, a request with no block of its size takes the smallest free
// block that holds it (the rest stays free), and free memory that reaches the top lowers it: a
// process that builds one net after another (a server switching models, a benchmark) reuses the
// memory of the nets it let go of, whatever their shapes, instead of growing. (A WebAssembly
// memory never shrinks, and its pages stay resident once touched.) Reused blocks are zeroed, as
// a fresh Float32Array would be.
import { MathError } from '../math/errors.js';

const PAGE = 65536;
const ALIGN = 64;

interface GrowableMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}

/** Bytes a request of `bytes` occupies (its size class). */
export function sizeClass(bytes: number): number {
  const b = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  if (b <= 4096) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

export interface KernelHeapStats {
  /** Bytes in live blocks (size classes, so slightly above what was asked for). */
  bytesInUse: number;
  /** Bytes in freed blocks waiting for reuse. */
  bytesFree: number;
  /** End of the highest block handed out (bytes from the memory's start). */
  top: number;
  /** The memory's current size in bytes. */
  memoryBytes: number;
  /** Most bytes the memory may grow to. */
  maxBytes: number;
  liveBlocks: number;
  /** Allocations served from a free list rather than fresh memory. */
  reused: number;
}

export class KernelHeap {
  private top: number;
  /** Highest top so far: memory below it may hold old values, above it is still zero. */
  private highWater: number;
  /** Free blocks by start offset (their byte size), by end offset (their start), and by size. */
  private readonly freeAt = new Map<number, number>();
  private readonly freeEnding = new Map<number, number>();
  private readonly freeBySize = new Map<number, Set<number>>();
  private readonly buffers = new WeakSet<object>();
  private current: SharedArrayBuffer;
  private f32: Float32Array;
  private inUse = 0;
  private freeBytes = 0;
  private live = 0;
  private reusedCount = 0;

  constructor(
    private readonly memory: GrowableMemory,
    base: number,
    readonly maxBytes: number,
  ) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
    this.highWater = this.top;
    this.current = memory.buffer;
    this.buffers.add(this.current);
    this.f32 = new Float32Array(this.current);
  }

  /** The memory's buffer now (recorded, so views made on it are recognised after a grow). */
  buffer(): SharedArrayBuffer {
    const b = this.memory.buffer;
    if (b !== this.current) {
      this.current = b;
      this.buffers.add(b);
      this.f32 = new Float32Array(b);
    }
    return b;
  }

  /** Whether `buf` is this memory's buffer, as now or before any grow. */
  owns(buf: ArrayBufferLike): boolean {
    return this.buffers.has(buf);
  }

  /**
   * A block of at least `bytes` bytes (zero-filled): its byte offset, or -1 when the memory cannot
   * grow that far (the declared maximum, or the system refused).
   */
  alloc(bytes: number): number {
    const size = sizeClass(bytes);
    const at = this.takeFree(size);
    if (at >= 0) {
      this.inUse += size;
      this.live++;
      this.reusedCount++;
      this.buffer();
      this.f32.fill(0, at >> 2, (at + size) >> 2);
      return at;
    }
    const bump = this.top;
    if (!this.ensure(bump + size)) return -1;
    this.top = bump + size;
    if (bump < this.highWater) {
      this.buffer();
      this.f32.fill(0, bump >> 2, Math.min(this.top, this.highWater) >> 2);
    }
    this.highWater = Math.max(this.highWater, this.top);
    this.inUse += size;
    this.live++;
    return bump;
  }

  /** Gives back a block from alloc(offset, the same byte count). */
  free(offset: number, bytes: number): void {
    let start = offset;
    let size = sizeClass(bytes);
    this.inUse -= size;
    this.live--;
    // Merge with the free blocks on either side.
    const before = this.freeEnding.get(start);
    if (before !== undefined) {
      const n = this.freeAt.get(before)!;
      this.unlist(before, n);
      start = before;
      size += n;
    }
    const afterSize = this.freeAt.get(start + size);
    if (afterSize !== undefined) {
      this.unlist(start + size, afterSize);
      size += afterSize;
    }
    // Free memory reaching the top lowers it (no free block ever ends at the top).
    if (start + size === this.top) {
      this.top = start;
      return;
    }
    this.list(start, size);
  }

  /**
   * A free block of `size` bytes, taken from the free blocks (-1: none holds it): one of exactly
   * that size, else the front of the smallest larger one (the lowest such, for ties), its rest
   * left free.
   */
  private takeFree(size: number): number {
    const exact = this.freeBySize.get(size);
    if (exact && exact.size > 0) {
      const at = exact.values().next().value as number;
      this.unlist(at, size);
      return at;
    }
    let best = -1;
    let bestSize = Infinity;
    for (const [at, n] of this.freeAt) {
      if (n > size && (n < bestSize || (n === bestSize && at < best))) {
        best = at;
        bestSize = n;
      }
    }
    if (best < 0) return -1;
    this.unlist(best, bestSize);
    this.list(best + size, bestSize - size);
    return best;
  }

  private list(at: number, size: number): void {
    this.freeAt.set(at, size);
    this.freeEnding.set(at + size, at);
    let set = this.freeBySize.get(size);
    if (!set) this.freeBySize.set(size, (set = new Set()));
    set.add(at);
    this.freeBytes += size;
  }

  private unlist(at: number, size: number): void {
    this.freeAt.delete(at);
    this.freeEnding.delete(at + size);
    const set = this.freeBySize.get(size)!;
    set.delete(at);
    if (set.size === 0) this.freeBySize.delete(size);
    this.freeBytes -= size;
  }

  /** Grows the memory so that [0, end) exists; false when it cannot. */
  ensure(end: number): boolean {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return true;
    if (end > this.maxBytes) return false;
    const needPages = Math.ceil((end - have) / PAGE);
    // Grow by at least a quarter (pages are committed only when touched), so a net's setup does
    // not grow page by page.
    const generous = Math.min(Math.max(needPages, Math.ceil(have / 4 / PAGE)), Math.floor((this.maxBytes - have) / PAGE));
    for (const pages of generous > needPages ? [generous, needPages] : [needPages]) {
      try {
        this.memory.grow(pages);
        this.buffer();
        return true;
      } catch {
        /* try the exact amount, then give up */
      }
    }
    return false;
  }

  /** Like ensure(), but throws a MathError naming `what` when the memory cannot grow. */
  require(end: number, what: string): void {
    if (!this.ensure(end)) {
      throw new MathError(
        `${what}: cannot grow the shared WebAssembly memory to ${end} bytes (at most ${this.maxBytes}; ${this.inUse} bytes hold blobs)`,
      );
    }
  }

  stats(): KernelHeapStats {
    return {
      bytesInUse: this.inUse,
      bytesFree: this.freeBytes,
      top: this.top,
      memoryBytes: this.memory.buffer.byteLength,
      maxBytes: this.maxBytes,
      liveBlocks: this.live,
      reused: this.reusedCount,
    };
  }
}
