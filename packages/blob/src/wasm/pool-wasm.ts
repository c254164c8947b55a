// MAX pooling of Float32 planes in WebAssembly, forward, and backward in the shared memory.
//
// Which element of a window wins depends on the data, so a JS loop pays a mispredicted branch
// for a good share of its comparisons; the WebAssembly loops (scripts/gemm-wat.mjs,
// poolHelpersWat) select without branching, four 2×2 windows per SIMD step in the common case.
// Planes that live in the kernel threads' shared memory (blobs of the 'wasm' host allocator) are
// pooled there in place by this thread's instance of the shared build; others are copied in.
import { MathError } from '../math/errors.js';
import { defaultWasmChoice, inSharedMemory, instantiateGemmModule, WASM_GEMM_KERNEL_NAMES } from './gemm-wasm.js';
import { engine, Op, planThreads, runShares, type Engine, type SharedExports } from './threads.js';

interface PoolExports {
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  maxpool2x2(src: number, planes: number, H: number, W: number, PH: number, PW: number, dst: number, idx: number): void;
  maxpool(src: number, planes: number, H: number, W: number, PH: number, PW: number, rows: number, cols: number, dst: number, idx: number): void;
  maxpool_v(
    src: number, planes: number, H: number, W: number, PH: number, PW: number, rows: number, cols: number,
    KW: number, SW: number, padW: number, xv0: number, xv1: number, dst: number, idx: number,
  ): void;
}

export interface WasmMaxPool {
  /** 'wasm-simd' or 'wasm-relaxed-simd', the build it runs. */
  readonly name: string;
  /**
   * MAX pooling of `planes` planes of height × width floats into pooledH × pooledW outputs:
   * output (y, x) is the maximum over rows [rowLo[y], rowHi[y]) and columns [colLo[x],
   * colHi[x]) (each range non-empty, inside the plane), the first maximum in row-major order
   * winning; idx gets its flat index h·width + w within the plane. `columns` (the kernel
   * width, column stride and padding the column windows came from) lets outputs whose windows
   * are whole go four at a time with SIMD when the stride is 1 or 2.
   */
  maxPool(
    src: Float32Array, planes: number, height: number, width: number, pooledH: number, pooledW: number,
    rowLo: Int32Array, rowHi: Int32Array, colLo: Int32Array, colHi: Int32Array,
    dst: Float32Array, idx: Int32Array, columns?: { kernel: number; stride: number; pad: number },
  ): void;
  /**
   * MAX pooling backward in the kernel memory: bottomDiff (planes × inPlane) = 0, then each
   * topDiff element (planes × outPlane) is added at its argmax idx (in 0 … inPlane − 1, checked),
   * in the same order as the training kernels' maxUnpool (train-wasm.ts), so the sums are the
   * same. Runs only where topDiff is a view of the kernel threads' shared memory (a blob of the
   * 'wasm' host allocator; idx and bottomDiff are used in place there too, else staged) and
   * returns whether it ran: arrays outside it are the training kernels' job, which stage them
   * into their own memory anyway.
   */
  maxUnpool(topDiff: Float32Array, idx: Int32Array, planes: number, inPlane: number, outPlane: number, bottomDiff: Float32Array): boolean;
}

const PAGE_BYTES = 65536;
/** Input floats per chunk of planes, so each chunk is pooled while still in cache. */
const CHUNK_FLOATS = 1 << 16;

/**
 * Window taps (planes × outputs × window) per kernel thread below which a pass over planes in the
 * shared memory stays on the calling thread (as the inference module's pooling): LeNet's pool1
 * at batch 64 (737k taps) splits, its pool2 (205k) does not.
 */
const TAPS_PER_THREAD = 2e5;

/** A WebAssembly MAX-pooling runner (own memory), or null where WebAssembly SIMD is missing. */
export function createWasmMaxPool(options: { relaxed?: boolean } = {}): WasmMaxPool | null {
  const instance = instantiateGemmModule(options.relaxed);
  if (!instance) return null;
  const ex = instance.exports as unknown as PoolExports;
  const name = WASM_GEMM_KERNEL_NAMES[instance.variant];
  const relaxed = instance.variant === 'relaxed-simd';

  /**
   * The shared memory's engine and this thread's instance there, when `a` lives in that memory
   * (a blob of the 'wasm' host allocator): the planes are then pooled in place.
   */
  function inPlace(a: Float32Array): { e: Engine; sx: SharedExports } | null {
    if (!inSharedMemory(a)) return null;
    const e = engine();
    const sx = e?.callerExports(relaxed);
    return e && sx && e.offsetOf(a) >= 0 ? { e, sx } : null;
  }

  /** Grows memory to `bytes` and returns fresh views (views die when memory grows). */
  function heap(bytes: number): { f32: Float32Array; i32: Int32Array } {
    const have = ex.memory.buffer.byteLength;
    if (bytes > have) {
      try {
        ex.memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
      } catch (e) {
        throw new MathError(`${name} pooling: cannot grow WebAssembly memory to ${bytes} bytes (${String(e)})`);
      }
    }
    return { f32: new Float32Array(ex.memory.buffer), i32: new Int32Array(ex.memory.buffer) };
  }

  function maxPool(
    src: Float32Array, planes: number, H: number, W: number, PH: number, PW: number,
    rowLo: Int32Array, rowHi: Int32Array, colLo: Int32Array, colHi: Int32Array,
    dst: Float32Array, idx: Int32Array, columns?: { kernel: number; stride: number; pad: number },
  ): void {
    const inPlane = H * W, outPlane = PH * PW;
    if (src.length < planes * inPlane || dst.length < planes * outPlane || idx.length < planes * outPlane) {
      throw new MathError(
        `${name} maxPool: ${planes} planes of ${H}×${W} → ${PH}×${PW} need src, dst, idx of ${planes * inPlane}, ` +
          `${planes * outPlane}, ${planes * outPlane} elements, got ${src.length}, ${dst.length}, ${idx.length}`,
      );
    }
    /** The window table the module reads: [lo, hi) per output row, then per output column. */
    const fillWindows = (i32: Int32Array, at: number) => {
      for (let y = 0; y < PH; y++) {
        i32[at + 2 * y] = rowLo[y]!;
        i32[at + 2 * y + 1] = rowHi[y]!;
      }
      for (let x = 0; x < PW; x++) {
        i32[at + 2 * (PH + x)] = colLo[x]!;
        i32[at + 2 * (PH + x) + 1] = colHi[x]!;
      }
    };
    let full2x2 = 2 * PH <= H && 2 * PW <= W;
    for (let y = 0; y < PH; y++) {
      const lo = rowLo[y]!, hi = rowHi[y]!;
      if (!(lo >= 0 && lo < hi && hi <= H)) throw new MathError(`${name} maxPool: rows [${lo}, ${hi}) of output row ${y} are not a non-empty range in 0..${H}`);
      if (lo !== 2 * y || hi !== 2 * y + 2) full2x2 = false;
    }
    for (let x = 0; x < PW; x++) {
      const lo = colLo[x]!, hi = colHi[x]!;
      if (!(lo >= 0 && lo < hi && hi <= W)) throw new MathError(`${name} maxPool: columns [${lo}, ${hi}) of output column ${x} are not a non-empty range in 0..${W}`);
      if (lo !== 2 * x || hi !== 2 * x + 2) full2x2 = false;
    }
    // SIMD range: the outputs whose column windows are whole (kernel columns from x·stride − pad).
    let xv0 = 0, xv1 = 0;
    if (!full2x2 && columns && (columns.stride === 1 || columns.stride === 2)) {
      const whole = (x: number) => colLo[x] === x * columns.stride - columns.pad && colHi[x] === colLo[x]! + columns.kernel;
      while (xv0 < PW && !whole(xv0)) xv0++;
      xv1 = xv0;
      while (xv1 < PW && whole(xv1)) xv1++;
    }
    const vector = xv1 - xv0 >= 4;
    const shared = planes > 0 && outPlane > 0 ? inPlace(src) : null;
    if (shared) {
      // All planes in one call: nothing is copied in, so chunking would buy no cache reuse.
      const { e, sx } = shared;
      // dst and idx in the kernel memory too (blob data; an argmax from allocHostInt32) are
      // written in place, others through the scratch block.
      const oSrc = e.offsetOf(src), oDst = e.offsetOf(dst), oIdx = e.offsetOf(idx);
      // A stride-2 SIMD step may read a few floats past the input: make sure they exist.
      e.heap.require(oSrc + 4 * (planes * inPlane + 8), `${name} maxPool`);
      const tabBytes = 8 * (PH + PW), outBytes = 4 * planes * outPlane;
      const { base, f32, i32 } = e.scratch(tabBytes + (oIdx < 0 ? outBytes : 0) + (oDst < 0 ? outBytes : 0), `${name} maxPool`);
      fillWindows(i32, base >> 2);
      const pIdx = oIdx >= 0 ? oIdx : base + tabBytes;
      const pDst = oDst >= 0 ? oDst : base + tabBytes + (oIdx < 0 ? outBytes : 0);
      // Whole 2×2 windows (LeNet's) on the kernel threads when it pays: planes split among them,
      // each pooled as on one thread (the same bits).
      const T = full2x2 ? planThreads(4 * planes * outPlane, planes, TAPS_PER_THREAD) : 1;
      if (T >= 2) {
        runShares(e, T, relaxed, planes, 1, `${name} maxPool`, (list, _t, p0, p1) =>
          list.call(Op.Maxpool2x2, oSrc + 4 * p0 * inPlane, p1 - p0, H, W, PH, PW, pDst + 4 * p0 * outPlane, pIdx + 4 * p0 * outPlane));
      } else {
        if (full2x2) sx.maxpool2x2(oSrc, planes, H, W, PH, PW, pDst, pIdx);
        else if (vector) {
          sx.maxpool_v(oSrc, planes, H, W, PH, PW, base, base + 8 * PH, columns!.kernel, columns!.stride, columns!.pad, xv0, xv1, pDst, pIdx);
        } else sx.maxpool(oSrc, planes, H, W, PH, PW, base, base + 8 * PH, pDst, pIdx);
      }
      if (oIdx < 0) idx.set(i32.subarray(pIdx >> 2, (pIdx >> 2) + planes * outPlane));
      if (oDst < 0) dst.set(f32.subarray(pDst >> 2, (pDst >> 2) + planes * outPlane));
      return;
    }
    const chunk = Math.max(1, Math.min(planes, Math.floor(CHUNK_FLOATS / inPlane)));
    // Layout (bytes): window table, input chunk (+ slack a stride-2 SIMD step may read), output
    // chunk, argmax chunk.
    const pTab = 0;
    const pSrc = pTab + 8 * (PH + PW);
    const pDst = pSrc + 4 * (chunk * inPlane + 8);
    const pIdx = pDst + 4 * chunk * outPlane;
    const { f32, i32 } = heap(pIdx + 4 * chunk * outPlane);
    fillWindows(i32, pTab >> 2);
    for (let p0 = 0; p0 < planes; p0 += chunk) {
      const np = Math.min(chunk, planes - p0);
      f32.set(src.subarray(p0 * inPlane, (p0 + np) * inPlane), pSrc >> 2);
      if (full2x2) ex.maxpool2x2(pSrc, np, H, W, PH, PW, pDst, pIdx);
      else if (vector) {
        ex.maxpool_v(pSrc, np, H, W, PH, PW, pTab, pTab + 8 * PH, columns!.kernel, columns!.stride, columns!.pad, xv0, xv1, pDst, pIdx);
      } else ex.maxpool(pSrc, np, H, W, PH, PW, pTab, pTab + 8 * PH, pDst, pIdx);
      dst.set(f32.subarray(pDst >> 2, (pDst >> 2) + np * outPlane), p0 * outPlane);
      idx.set(i32.subarray(pIdx >> 2, (pIdx >> 2) + np * outPlane), p0 * outPlane);
    }
  }

  function maxUnpool(topDiff: Float32Array, idx: Int32Array, planes: number, inPlane: number, outPlane: number, bottomDiff: Float32Array): boolean {
    if (topDiff.length < planes * outPlane || idx.length < planes * outPlane || bottomDiff.length < planes * inPlane) {
      throw new MathError(
        `${name} maxUnpool: ${planes} planes of ${inPlane} → ${outPlane} need topDiff, idx, bottomDiff of ${planes * outPlane}, ` +
          `${planes * outPlane}, ${planes * inPlane} elements, got ${topDiff.length}, ${idx.length}, ${bottomDiff.length}`,
      );
    }
    const shared = planes > 0 && outPlane > 0 ? inPlace(topDiff) : null;
    if (!shared) return false;
    const { e, sx } = shared;
    const oTop = e.offsetOf(topDiff), oIdx = e.offsetOf(idx), oBottom = e.offsetOf(bottomDiff);
    const idxBytes = oIdx < 0 ? 4 * planes * outPlane : 0;
    const { base, f32, i32 } = e.scratch(idxBytes + (oBottom < 0 ? 4 * planes * inPlane : 0), `${name} maxUnpool`);
    if (oIdx < 0) i32.set(idx.subarray(0, planes * outPlane), base >> 2);
    const pIdx = oIdx >= 0 ? oIdx : base;
    const pBottom = oBottom >= 0 ? oBottom : base + idxBytes;
    try {
      // Planes are independent (each zeroed, then its gradients added in order): split them among
      // the kernel threads when the pass is large enough.
      const T = planThreads(planes * (inPlane + outPlane), planes, TAPS_PER_THREAD);
      if (T >= 2) {
        runShares(e, T, relaxed, planes, 1, `${name} maxUnpool`, (list, _t, p0, p1) =>
          list.call(Op.Maxunpool, oTop + 4 * p0 * outPlane, pIdx + 4 * p0 * outPlane, p1 - p0, inPlane, outPlane, pBottom + 4 * p0 * inPlane));
      } else sx.maxunpool(oTop, pIdx, planes, inPlane, outPlane, pBottom);
    } catch (err) {
      throw new MathError(`${name} maxUnpool: an argmax is outside the plane of ${inPlane} elements`, { cause: err });
    }
    if (oBottom < 0) bottomDiff.set(f32.subarray(pBottom >> 2, (pBottom >> 2) + planes * inPlane));
    return true;
  }

  return { name, maxPool, maxUnpool };
}

const POOL_KEY = Symbol.for('caffe-ts.wasmMaxPool');

/**
 * The process-wide WebAssembly MAX-pooling runner Pooling layers use for Float32 blobs,
 * created on first use; null when CAFFE_TS_GEMM=js or WebAssembly SIMD is missing.
 */
export function defaultWasmMaxPool(): WasmMaxPool | null {
  const g = globalThis as Record<symbol, { pool: WasmMaxPool | null } | undefined>;
  let slot = g[POOL_KEY];
  if (!slot) {
    const choice = defaultWasmChoice();
    slot = { pool: choice === 'js' ? null : createWasmMaxPool({ relaxed: choice }) };
    g[POOL_KEY] = slot;
  }
  return slot.pool;
}
