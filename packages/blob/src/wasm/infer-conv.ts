// Inference convolutions and inner products with the weights kept packed in WebAssembly memory.
//
// At inference the same weights meet a new image every call. The batched convolution pass
// (conv-wasm.ts) copies the weights into its memory and the GEMM packs them into panels on every
// call, and the inner product stages its weight matrix each call: for a batch-1 forward that is
// as much memory traffic as the arithmetic can hide. Here the weights are packed once per
// version of their blob (Blob.dataVersion, which changes on every mutable access) and kept in
// this runner's own memory; a call then copies in the image, unfolds it straight into GEMM
// panels (scripts/infer-wat.mjs, packb: no column matrix; a layer of at most DIRECT_MAX_ROWS output
// channels over a unit column stride skips the panels, its tiles reading the image itself), runs
// the micro-kernel and copies out
// the result, the per-output-channel affine (bias, or a folded BatchNorm/Scale) and a ReLU
// applied as the tiles are stored. 3×3 stride-1 convolutions run as Winograd F(2×2, 3×3) or
// F(4×4, 3×3) over transformed weights kept the same way; depthwise ones fold the affine into
// their filters. A one-image output stays in this memory for the next convolution that reads it
// (ActivationVersions). Operands that are views of the kernel threads' shared memory (blobs of
// the 'wasm' host allocator) are read and written in place by the runner over that memory, at
// any thread count: no copies at all. A convolution may also compute a following Eltwise SUM
// (ConvSum, Net's inference fusion) in this memory before its output leaves it.
// With kernel threads (getNumThreads() > 1), defaultWasmInferConv runs a second runner whose
// blocks live in the threads' shared memory (threads.ts) and which hands the GEMMs of a layer
// big enough to pay to the pool: a direct convolution split by output-channel blocks (weights
// packed per block, each thread unfolding the columns itself), a Winograd one by its (T + 2)²
// independent GEMMs. Each output is computed by the same kernel over the same operands in the
// same order whichever thread runs it, so results are bit-identical to one thread's. A call over
// several images instead gives each thread whole images (the same per-image kernels in its own
// scratch: the same bits again; CAFFE_TS_PACKED_BATCH=off splits each image as at batch 1).
import { onHostReleased } from '../host-memory.js';
import { MathError } from '../math/errors.js';
import { convOutputSize } from '../math/im2col.js';
import { gemm } from '../math/gemm.js';
import type { Conv2dGeometry, PoolWindows } from './conv-wasm.js';
import { defaultWasmChoice, inSharedMemory } from './gemm-wasm.js';
import { decodeBase64, wasmApi, type WasmMemory } from './wasm-api.js';
import { INFER_WASM_RELAXED_SIMD_BASE64, INFER_WASM_SIMD_BASE64 } from './generated/infer-wasm.js';
import type { InferModuleExports as PackedExports } from './infer-exports.js';
import type { KernelHeap } from './kernel-heap.js';
import { engine, getNumThreads, MAX_COMMANDS, Op, planThreads, type CommandList, type Engine } from './threads.js';

const PAGE = 65536;


/** A Winograd variant F(T×T, R×R): output tile T, kernel R (6×6 or 4×4 input tiles). */
type WinogradTile = { T: 2 | 4; R: 3 } | { T: 2; R: 5 };

/**
 * Winograd weight transforms G (n × R, n = T + R − 1) of F(2×2, 3×3), F(4×4, 3×3) and
 * F(2×2, 5×5): U = G g Gᵀ. F(4×4, 3×3) and F(2×2, 5×5) share the points 0, ±1, ±2, ∞ and so
 * the input transform: row i of G is s_i·(1, p_i, p_i², …), the ∞ row picks the last tap.
 */
const WINOGRAD_G: Record<'2x3' | '4x3' | '2x5', number[][]> = {
  '2x3': [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
  '4x3': [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
  '2x5': [
    [1 / 4, 0, 0, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3],
    [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3],
    [0, 0, 0, 0, 1],
  ],
};

/**
 * G ⊗ G of each variant (n² × R², row ξ = i·n + j, column r·R + s: G[i][r]·G[j][s]), so that
 * U = G g Gᵀ of a filter g (R² taps, row-major) is this matrix times g.
 */
const WINOGRAD_KRON = Object.fromEntries(
  Object.entries(WINOGRAD_G).map(([key, g]) => {
    const n = g.length, R = g[0]!.length, kron = new Float32Array(n * n * R * R);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        for (let r = 0; r < R; r++) for (let s = 0; s < R; s++) kron[((i * n + j) * R + r) * R + s] = g[i]![r]! * g[j]![s]!;
      }
    }
    return [key, kron];
  }),
) as Record<keyof typeof WINOGRAD_G, Float32Array>;

/**
 * Versions of the input and output blobs (Blob.dataVersion, the output's read after its mutable
 * access). With both, a one-image output stays in the runner's memory, and the next call whose
 * input is that same array at that same version reads it there instead of copying it in.
 */
export interface ActivationVersions {
  x?: number;
  y?: number;
}

/** Per-output-channel epilogue of a packed convolution: y = act(scale[o]·v + shift[o]). */
export interface ConvEpilogue {
  /** Factors per output channel (default 1). */
  scale?: Float32Array | null;
  /** Terms per output channel (the bias; default 0). */
  shift?: Float32Array | null;
  /** ReLU negative slope, or null for none. */
  relu?: number | null;
}

/**
 * An Eltwise SUM of two operands folded into a convolution (Net's inference fusion):
 * z = act(c0·first + c1·second), the convolution's output (y, still written as well) being the
 * first or second operand and `other` the remaining one, each product and the sum rounded to
 * float32 (infer-wasm's sum2, as the fused Eltwise → ReLU chain computes it). Computed in the
 * runner's memory right after the convolution, so the convolution's output is not copied back
 * in, and z (not y) is the activation that stays resident for the next layer.
 */
export interface ConvSum {
  /** The other operand, [outChannels, OH, OW] per image as y. */
  other: Float32Array;
  /** Whether the convolution's output is the first operand (c0's). */
  convFirst: boolean;
  c0: number;
  c1: number;
  /** ReLU slope after the sum, or null for none. */
  relu: number | null;
  /** The sum's output (overwritten; must not alias y or other). */
  z: Float32Array;
  /** z's data version (Blob.dataVersion after its mutable access): a one-image z stays resident. */
  zVersion?: number;
}

export interface WasmInferConv {
  /** 'wasm-simd' or 'wasm-relaxed-simd', the build it runs. */
  readonly name: string;
  /**
   * y = act(scale ⊙ conv(x, weights) + shift) for `num` images [channels, height, width] into
   * [outChannels, OH, OW] each (overwrites y). `weights` [outChannels, channels/group, kH, kW];
   * `version` names their contents (Blob.dataVersion): the packed copy is reused while the
   * array and version are the same; undefined packs for this call only. Returns false, having
   * written nothing to y, where the runner's memory cannot grow to hold the call (at most 2 GiB):
   * run another path then. With `sum`, also z = act(c0·first + c1·second) of y and sum.other
   * (ConvSum).
   */
  conv2d(
    g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, version: number | undefined, epilogue: ConvEpilogue,
    y: Float32Array, io?: ActivationVersions, sum?: ConvSum,
  ): boolean;
  /**
   * Depthwise convolution (group = channels = outChannels) with the epilogue: the per-channel
   * scale folded into the filters, shift added as the bias, then the ReLU; overwrites y. False
   * as conv2d's.
   */
  depthwise(g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, epilogue: ConvEpilogue, y: Float32Array, io?: ActivationVersions): boolean;
  /**
   * y[m, n] = Σ_k x[m, k]·w[n, k] (+ bias[n]) (InnerProduct, weights N × K), with the weights
   * kept in this runner's memory per `version` as conv2d's. False as conv2d's.
   */
  innerProduct(M: number, N: number, K: number, x: Float32Array, w: Float32Array, version: number | undefined, bias: Float32Array | null, y: Float32Array): boolean;
  /** Bytes of weights held packed, and the memory's size. */
  stats(): { cachedBytes: number; cachedEntries: number; memoryBytes: number };
  /** Drops every cached weight block. */
  clear(): void;
  /** Drops the block cached for the weights `w`, if any (their layer is disposed). */
  release(w: Float32Array): void;
}

const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** Most floats of transformed filters one GEMM of the Winograd weight transform writes (1 MiB). */
const TRANSFORM_CHUNK_FLOATS = 1 << 18;

/** The kernels' $relu argument: 0 none, 1 leaky (max(v, 0) + slope·min(v, 0)), 2 slope 0 (max(v, 0) alone: the same values). */
const reluMode = (relu: number | null) => (relu === null ? 0 : relu === 0 ? 2 : 1);

/** The runner's memory cannot grow any further (the call then declines; callers take another path). */
class ArenaFull extends MathError {
  override readonly name = 'ArenaFull';
}

/** Most bytes the runner's memory grows to: offsets stay below 2^31 (the JS side indexes views with offset >> 2). */
const MAX_ARENA_BYTES = 2 ** 31 - PAGE;

/** Where a runner's blocks come from. */
interface Blocks {
  alloc(bytes: number): number;
  release(at: number, bytes: number): void;
}

/** Blocks of the kernel threads' shared memory (its KernelHeap). */
class HeapBlocks implements Blocks {
  constructor(private readonly heap: KernelHeap, private readonly name: string) {}
  alloc(bytes: number): number {
    const at = this.heap.alloc(align(Math.max(bytes, 64)));
    if (at < 0) throw new ArenaFull(`${this.name}: cannot grow the kernel threads' shared memory for ${bytes} more bytes`);
    return at;
  }
  release(at: number, bytes: number): void {
    this.heap.free(at, align(Math.max(bytes, 64)));
  }
}

/** First-fit blocks over a growable memory (byte offsets, 64-byte aligned). */
class Arena implements Blocks {
  private top = 64;
  private free: { at: number; size: number }[] = [];
  constructor(private readonly memory: WasmMemory, private readonly name: string) {}

  alloc(bytes: number): number {
    const size = align(Math.max(bytes, 64));
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i]!;
      if (f.size < size) continue;
      const at = f.at;
      if (f.size === size) this.free.splice(i, 1);
      else {
        f.at += size;
        f.size -= size;
      }
      return at;
    }
    const at = this.top;
    const end = at + size;
    const have = this.memory.buffer.byteLength;
    if (end > MAX_ARENA_BYTES) throw new ArenaFull(`${this.name}: ${end} bytes would pass the ${MAX_ARENA_BYTES}-byte limit`);
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch (e) {
        throw new ArenaFull(`${this.name}: cannot grow WebAssembly memory to ${end} bytes (${String(e)})`);
      }
    }
    this.top = end;
    return at;
  }

  release(at: number, bytes: number): void {
    const size = align(Math.max(bytes, 64));
    this.free.push({ at, size });
    this.free.sort((a, b) => a.at - b.at);
    const merged: { at: number; size: number }[] = [];
    for (const f of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.at + last.size === f.at) last.size += f.size;
      else merged.push({ ...f });
    }
    // A free block at the top lowers the top.
    const tail = merged[merged.length - 1];
    if (tail && tail.at + tail.size === this.top) {
      this.top = tail.at;
      merged.pop();
    }
    this.free = merged;
  }
}

interface Cached {
  version: number;
  /** What was packed: geometry key, so the same array used another way is repacked. */
  key: string;
  at: number;
  bytes: number;
}

/**
 * A runner with its own module instance and memory (the relaxed-SIMD build where the engine has
 * it, unless `relaxed` says otherwise), or null without WebAssembly SIMD. With `threads: true`,
 * a runner over the kernel threads' shared memory whose large layers run on up to
 * getNumThreads() threads (null where kernel threads are unsupported or the build asked for has
 * no shared variant here).
 */
export function createWasmInferConv(options: { relaxed?: boolean; threads?: boolean } = {}): WasmInferConv | null {
  const api = wasmApi();
  if (!api) return null;
  let ex: PackedExports | null = null;
  let relaxedBuild = false;
  let memory: WasmMemory | null = null;
  let pool: Engine | null = null;
  for (const relaxed of options.relaxed === undefined ? [true, false] : [options.relaxed]) {
    if (options.threads) {
      const e = engine();
      const shared = e?.inferExports(relaxed);
      if (!e || !shared) continue;
      ex = shared;
      memory = e.memory as unknown as WasmMemory;
      pool = e;
      relaxedBuild = relaxed;
      break;
    }
    const bytes = decodeBase64(relaxed ? INFER_WASM_RELAXED_SIMD_BASE64 : INFER_WASM_SIMD_BASE64);
    if (!api.validate(bytes)) continue;
    try {
      ex = new api.Instance(new api.Module(bytes), {}).exports as PackedExports;
      memory = (ex as unknown as { memory: WasmMemory }).memory;
      relaxedBuild = relaxed;
      break;
    } catch {
      ex = null;
    }
  }
  if (!ex || !memory) return null;
  const k: PackedExports = ex;
  const mem0: WasmMemory = memory;
  const name = relaxedBuild ? 'wasm-relaxed-simd' : 'wasm-simd';
  const MR = k.PCONV_MR.value, NR = k.PCONV_NR.value, KC = k.PCONV_KC.value, NC = k.PCONV_NC.value;
  const arena: Blocks = pool ? new HeapBlocks(pool.heap, `${name} threaded inference kernels`) : new Arena(mem0, `${name} inference kernels`);
  const f32 = pool ? () => pool.views().f32 : () => new Float32Array(mem0.buffer);
  /** Threads a pass may be split over (1 for the own-memory runner). */
  const threadCap = () => (pool ? Math.min(getNumThreads(), 16) : 1);
  /** Runs `fill(list, t)` for threads 0 … T − 1 as one pool job (T ≥ 2). */
  function runThreaded(T: number, what: string, fill: (list: CommandList, t: number) => void): void {
    const lists = pool!.lists(T, relaxedBuild);
    for (let t = 0; t < T; t++) fill(lists[t]!, t);
    pool!.run(lists, `${name} ${what}`);
  }

  /**
   * Threads for the batch split of a call over `num` images of `flops` each (each thread then
   * runs whole images): 1 (no batch split) without two threads, an image for every thread (fewer
   * images than threads: each image split within itself keeps them all busy), room for one
   * image's `commands` in a thread's list, or work enough to pay (planThreads);
   * CAFFE_TS_PACKED_BATCH=off turns it off (each image split within itself, as at batch 1).
   */
  function batchThreads(num: number, flops: number, commands: number): number {
    const cap = threadCap();
    if (cap < 2 || num < cap || commands > MAX_COMMANDS) return 1;
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    if (env?.CAFFE_TS_PACKED_BATCH?.trim().toLowerCase() === 'off') return 1;
    return Math.min(cap, planThreads(flops * num, num));
  }

  /**
   * Images per job of a batch split over T threads (a multiple of T, at most nImg): one image
   * per thread where an image is work enough (BATCH_JOB_FLOPS), so that a thread that falls
   * behind (a loaded machine) holds the others up by one image at most; bounded by a thread's
   * command list and by the floats staged per job (`staged` per image).
   */
  function batchChunk(T: number, nImg: number, flops: number, commands: number, staged: number): number {
    const perThread = Math.max(1, Math.min(
      Math.ceil(BATCH_JOB_FLOPS / Math.max(1, flops)), Math.floor(MAX_COMMANDS / commands),
      Math.floor(MAX_BATCH_STAGED_FLOATS / Math.max(1, staged * T)),
    ));
    return Math.min(nImg, perThread * T);
  }

  /**
   * Images 0 … nImg − 1 of a batch split: jobs of nb images (bT·k), thread t taking images
   * c0 + t·k … c0 + (t + 1)·k − 1 of the job at c0, `emit(list, t, xAt, yAt)` writing one
   * image's commands. x and y where staged go through the blocks at xb and yb (one job's
   * images): the workers' images are copied in before the job starts, the caller's while they
   * run, the caller's outputs copied out before waiting for the workers; `after(n, yAt)` runs
   * on the caller once image n's output is out (a fused sum).
   */
  function runBatch(
    bT: number, nImg: number, nb: number, what: string, x: Float32Array, y: Float32Array, imgIn: number, imgOut: number,
    xOwn: number, yOwn: number, xb: number, yb: number,
    emit: (list: CommandList, t: number, xAt: number, yAt: number) => void, after?: (n: number, yAt: number) => void,
  ): void {
    for (let c0 = 0; c0 < nImg; c0 += nb) {
      const cn = Math.min(nb, nImg - c0), k = cn / bT;
      const xi = (n: number) => (xOwn >= 0 ? xOwn + 4 * n * imgIn : xb + 4 * (n - c0) * imgIn);
      const yi = (n: number) => (yOwn >= 0 ? yOwn + 4 * n * imgOut : yb + 4 * (n - c0) * imgOut);
      const stageIn = (n0: number, n1: number) => {
        if (xOwn < 0 && n1 > n0) f32().set(x.subarray(n0 * imgIn, n1 * imgIn), xi(n0) >> 2);
      };
      const copyOut = (n0: number, n1: number) => {
        if (yOwn < 0 && n1 > n0) y.set(f32().subarray(yi(n0) >> 2, (yi(n0) >> 2) + (n1 - n0) * imgOut), n0 * imgOut);
        if (after) for (let n = n0; n < n1; n++) after(n, yi(n));
      };
      stageIn(c0 + k, c0 + cn);
      const lists = pool!.lists(bT, relaxedBuild);
      for (let t = 0; t < bT; t++) for (let n = c0 + t * k; n < c0 + (t + 1) * k; n++) emit(lists[t]!, t, xi(n), yi(n));
      pool!.run(lists, `${name} ${what}`, { beforeOwn: () => stageIn(c0, c0 + k), afterOwn: () => copyOut(c0, c0 + k) });
      copyOut(c0 + k, c0 + cn);
    }
  }

  // Weight blocks, per weights array; given back when the array is collected.
  let cache = new WeakMap<Float32Array, Cached>();
  const live = new Set<Cached>();
  const registry = typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<Cached>((c) => {
      if (live.delete(c)) arena.release(c.at, c.bytes);
    })
    : null;

  let scratchAt = 0, scratchBytes = 0;
  function scratch(bytes: number): number {
    if (bytes > scratchBytes) {
      const size = align(Math.max(bytes, Math.ceil(scratchBytes * 1.25)));
      if (scratchBytes > 0) arena.release(scratchAt, scratchBytes);
      scratchBytes = 0;
      scratchAt = arena.alloc(size);
      scratchBytes = size;
    }
    return scratchAt;
  }

  // Resident activations: two slots, the last output in one of them (ping-pong, so a call never
  // writes the slot it reads).
  const slots = [{ at: 0, bytes: 0 }, { at: 0, bytes: 0 }];
  let resident: { array: Float32Array; version: number; slot: number; bytes: number } | null = null;

  /**
   * For one call over `num` images: where the resident input is (byte offset, or -1: copy it in)
   * and which slot the output goes to (-1: the call's scratch). Allocates before the caller
   * takes its memory view.
   */
  function placeActivations(num: number, x: Float32Array, inBytes: number, outBytes: number, io: ActivationVersions | undefined): { xAt: number; ySlot: number } {
    if (num !== 1 || !io) return { xAt: -1, ySlot: -1 };
    const r = resident;
    const hit = r !== null && io.x !== undefined && r.array === x && r.version === io.x && r.bytes >= inBytes;
    if (io.y === undefined) return { xAt: hit ? slots[r!.slot]!.at : -1, ySlot: -1 };
    const ySlot = hit ? 1 - r!.slot : r ? 1 - r.slot : 0;
    const sl = slots[ySlot]!;
    if (sl.bytes < outBytes) {
      const size = align(Math.max(outBytes, Math.ceil(sl.bytes * 1.25)));
      if (sl.bytes > 0) arena.release(sl.at, sl.bytes);
      sl.bytes = 0;
      sl.at = arena.alloc(size);
      sl.bytes = size;
    }
    return { xAt: hit ? slots[r!.slot]!.at : -1, ySlot };
  }

  /**
   * Byte offset of `a` when it is a view of this runner's memory (a blob of the 'wasm' host
   * allocator, and this the runner over the kernel threads' shared memory), else -1. Such arrays
   * are read and written where they are: no copy in or out.
   */
  const inMem = (a: Float32Array | null | undefined): number => (pool && a ? pool.offsetOf(a) : -1);

  /**
   * placeActivations, with x and y read and written in place where they are views of this memory
   * (xOwn, yOwn ≥ 0: image n at xOwn + n·inBytes, yOwn + n·outBytes; no slots then).
   */
  function placeIO(num: number, x: Float32Array, y: Float32Array, inBytes: number, outBytes: number, io: ActivationVersions | undefined) {
    const xOwn = inMem(x), yOwn = inMem(y);
    const { xAt, ySlot } = placeActivations(num, x, inBytes, outBytes, xOwn >= 0 || yOwn >= 0 ? undefined : io);
    return { xOwn, yOwn, xAt, ySlot };
  }

  /** Records y (just copied out of slot `ySlot`) as the resident activation. */
  function keepResident(y: Float32Array, ySlot: number, bytes: number, io: ActivationVersions | undefined): void {
    if (ySlot >= 0 && io?.y !== undefined) resident = { array: y, version: io.y, slot: ySlot, bytes };
  }

  /** Grows activation slot i to hold `bytes`. */
  function ensureSlot(i: number, bytes: number): void {
    const sl = slots[i]!;
    if (sl.bytes >= bytes) return;
    const size = align(Math.max(bytes, Math.ceil(sl.bytes * 1.25)));
    if (sl.bytes > 0) arena.release(sl.at, sl.bytes);
    sl.bytes = 0;
    sl.at = arena.alloc(size);
    sl.bytes = size;
  }

  // A fused sum's other operand, and its output where it does not go to a slot.
  let sumAt = 0, sumBytes = 0;
  interface SumPlace { oAt: number; zAt: number; zSlot: number }
  /**
   * Places a fused sum of one output image (`imgOut` floats): z in the slot the convolution's
   * input came from (the other one than y's) when it is to stay resident, else after the other
   * operand's block. Allocates before the caller takes its memory view.
   */
  function placeSum(sum: ConvSum | undefined, num: number, xAt: number, ySlot: number, imgOut: number): SumPlace | null {
    if (!sum) return null;
    // Both in place (views of this memory): nothing to place.
    if (inMem(sum.other) >= 0 && inMem(sum.z) >= 0) return { oAt: -1, zAt: -1, zSlot: -1 };
    let zSlot = ySlot >= 0 && num === 1 && sum.zVersion !== undefined && inMem(sum.z) < 0 ? 1 - ySlot : -1;
    // That slot may hold this call's input (a resident hit): never regrow it then.
    if (zSlot >= 0 && xAt >= 0 && slots[zSlot]!.bytes < 4 * imgOut) zSlot = -1;
    if (zSlot >= 0) {
      // Whatever it holds is overwritten: forget it now (z becomes resident once written).
      resident = null;
      ensureSlot(zSlot, 4 * imgOut);
    }
    const half = align(4 * imgOut);
    if (sumBytes < 2 * half) {
      if (sumBytes > 0) arena.release(sumAt, sumBytes);
      sumBytes = 0;
      sumAt = arena.alloc(2 * half);
      sumBytes = 2 * half;
    }
    return { oAt: sumAt, zAt: zSlot >= 0 ? slots[zSlot]!.at : sumAt + half, zSlot };
  }

  /** Image n of the fused sum, the convolution's output at yAt (in this memory). */
  function applySum(sum: ConvSum, at: SumPlace, n: number, yAt: number, imgOut: number): void {
    const mem = f32();
    const oOwn = inMem(sum.other), zOwn = inMem(sum.z);
    const oAt = oOwn >= 0 ? oOwn + 4 * n * imgOut : at.oAt, zAt = zOwn >= 0 ? zOwn + 4 * n * imgOut : at.zAt;
    if (oOwn < 0) mem.set(sum.other.subarray(n * imgOut, (n + 1) * imgOut), oAt >> 2);
    const a = sum.convFirst ? yAt : oAt, b = sum.convFirst ? oAt : yAt;
    k.sum2(a, b, zAt, imgOut, sum.c0, sum.c1, sum.relu === null ? 0 : 1, sum.relu ?? 0);
    if (zOwn < 0) sum.z.set(mem.subarray(zAt >> 2, (zAt >> 2) + imgOut), n * imgOut);
  }

  /** After a call: z resident where it went to a slot, else y as keepResident does. */
  function keepResidentAfter(y: Float32Array, ySlot: number, bytes: number, io: ActivationVersions | undefined, sum: ConvSum | undefined, at: SumPlace | null): void {
    if (sum && at && at.zSlot >= 0) resident = { array: sum.z, version: sum.zVersion!, slot: at.zSlot, bytes };
    else keepResident(y, ySlot, bytes, io);
  }

  /** The Winograd weight transform's output, kept between calls (see transformWeights). */
  let transformOut = new Float32Array(0);

  /** Runs f on a block of `bytes` given back afterwards (raw weights on their way to packa). */
  function withTemp(bytes: number, f: (at: number) => void): void {
    const at = arena.alloc(bytes);
    try {
      f(at);
    } finally {
      arena.release(at, bytes);
    }
  }

  /**
   * The byte offset of `w`'s derived block (`bytes` long, filled by `fill(at)`): the cached one
   * while array, version and key match; else (re)filled, cached when `version` is a number, or
   * placed at `fallbackAt` (inside the call's scratch) when it is not.
   */
  function weightsBlock(w: Float32Array, version: number | undefined, key: string, bytes: number, fill: (at: number) => void, fallbackAt: () => number): number {
    if (version === undefined) {
      const at = fallbackAt();
      fill(at);
      return at;
    }
    let c = cache.get(w);
    if (c && c.version === version && c.key === key) return c.at;
    if (c && c.bytes !== bytes) {
      evict(c);
      c = undefined;
    }
    if (!c) {
      c = { version: NaN, key, at: arena.alloc(bytes), bytes };
      cache.set(w, c);
      live.add(c);
      registry?.register(w, c, c);
    }
    // Valid only once filled (filling allocates scratch, which may fail).
    c.version = NaN;
    c.key = key;
    fill(c.at);
    c.version = version;
    return c.at;
  }

  function conv2d(
    g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, version: number | undefined, epilogue: ConvEpilogue,
    y: Float32Array, io?: ActivationVersions, sum?: ConvSum,
  ): boolean {
    const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, padH: PH, padW: PW, strideH: SH, strideW: SW, dilationH: DH, dilationW: DW } = g;
    const O = g.outChannels, G = g.group;
    const OH = convOutputSize(H, KH, PH, SH, DH), OW = convOutputSize(W, KW, PW, SW, DW);
    for (const [key, v] of Object.entries({ channels: C, height: H, width: W, kernelH: KH, kernelW: KW, strideH: SH, strideW: SW, dilationH: DH, dilationW: DW, outChannels: O, group: G, num, OH, OW })) {
      if (!Number.isInteger(v) || v < 1) throw new MathError(`${name} packed conv: ${key} must be a positive integer, got ${v}`);
    }
    if (!Number.isInteger(PH) || !Number.isInteger(PW) || PH < 0 || PW < 0) throw new MathError(`${name} packed conv: pads must be integers ≥ 0, got ${PH}, ${PW}`);
    if (C % G !== 0 || O % G !== 0) throw new MathError(`${name} packed conv: channels ${C} and outChannels ${O} must be multiples of group ${G}`);
    const Cg = C / G, m = O / G, K = Cg * KH * KW, S = OH * OW, imgIn = C * H * W, imgOut = O * S;
    const { scale = null, shift = null, relu = null } = epilogue;
    const need = (what: string, a: Float32Array | null, n: number) => {
      if (a && a.length < n) throw new MathError(`${name} packed conv: ${what} has ${a.length} elements, needs ${n}`);
    };
    need('x', x, num * imgIn);
    need('y', y, num * imgOut);
    need('weights', weights, O * K);
    need('scale', scale, O);
    need('shift', shift, O);
    if (sum) {
      need('sum.other', sum.other, num * imgOut);
      need('sum.z', sum.z, num * imgOut);
      if (!Number.isFinite(sum.c0) || !Number.isFinite(sum.c1)) throw new MathError(`${name} packed conv: sum coefficients must be finite, got ${sum.c0}, ${sum.c1}`);
      if (sum.z === y || sum.z === sum.other || sum.other === y) throw new MathError(`${name} packed conv: the sum's output, its other operand and y must be distinct arrays`);
    }

    // A filter over the whole unpadded input with one output position (a classifier written as a
    // convolution): an inner product, whose row kernel streams the weights once; the panel path
    // would run every tile of its one column as an edge tile.
    if (S === 1 && G === 1 && KH === H && KW === W && PH === 0 && PW === 0 && DH === 1 && DW === 1 && !scale && relu === null && !sum) {
      return innerProduct(num, O, K, x, weights, version, shift, y);
    }
    const tile = winogradTile(g, Cg, m, OH, OW);
    if (tile) return declineWhenFull(() => winograd(g, num, x, weights, version, scale, shift, relu, y, OH, OW, io, tile, sum));
    return declineWhenFull(() => direct(g, num, x, weights, version, scale, shift, relu, y, OH, OW, io, sum));
  }

  /** The im2col-free packed convolution (conv2d's general path). */
  function direct(
    g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, version: number | undefined,
    scale: Float32Array | null, shift: Float32Array | null, relu: number | null, y: Float32Array, OH: number, OW: number,
    io: ActivationVersions | undefined, sum?: ConvSum,
  ): void {
    const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, padH: PH, padW: PW, strideH: SH, strideW: SW, dilationH: DH, dilationW: DW } = g;
    const O = g.outChannels, G = g.group;
    const Cg = C / G, m = O / G, K = Cg * KH * KW, S = OH * OW, imgIn = C * H * W, imgOut = O * S;
    const mp = Math.ceil(m / MR) * MR;
    const groupBytes = 4 * mp * K;
    const padded = PH > 0 || PW > 0;
    const Hp = H + 2 * PH, Wp = W + 2 * PW, imgPad = C * Hp * Wp;
    // Threads split the work into units of (group, block of output channels, block of output
    // columns). With at least as many groups as threads, a unit is a group. Otherwise a wide
    // output (S ≥ SPLIT_COLUMNS_MIN per thread) is cut into column blocks (NR-aligned) that share
    // the packed weights; a narrow one into blocks of rows (MR-aligned), packed one after
    // another (a block's panels are contiguous) so that a block runs as a pconv of its own, each
    // thread unfolding the same columns.
    const cap = threadCap();
    const split = cap > 1 && G < cap;
    const colBlocks = split && S >= SPLIT_COLUMNS_MIN * cap ? cap : 1;
    const blocks = split && colBlocks === 1 ? Math.max(1, Math.min(cap, mp / MR)) : 1;
    const colStart = (c: number) => (c >= colBlocks ? S : Math.round((c * S) / NR / colBlocks) * NR);
    const rowStart = (c: number) => (c >= blocks ? m : Math.round((c * mp) / MR / blocks) * MR);
    // Scratch: image, its zero-bordered copy (with padding; + slack for the stride-2 panel
    // loads), output, a and b, the B panels and edge tile, then (uncached weights only) the
    // packed weights.
    const pX = 0, pXp = align(4 * (imgIn + 16)), pY = pXp + (padded ? align(4 * (imgPad + 16)) : 0);
    const pA = pY + align(4 * imgOut), pB = pA + align(4 * (O + MR));
    const bufBytes = align(4 * Math.min(KC, K) * Math.ceil(Math.min(NC, S) / NR) * NR), tileBytes = align(4 * MR * NR);
    // Per thread: a B panel buffer and an edge tile.
    const pBuf = pB + align(4 * (O + MR)), pTile = pBuf + cap * bufBytes;
    const pW = pTile + cap * tileBytes;
    const perGroup = blocks * colBlocks, units = G * perGroup;
    /** Whether unit u has any work (a row or column block may be empty). */
    const nonEmpty = (u: number) => {
      const v = u % perGroup, c = Math.floor(v / colBlocks), j = v % colBlocks;
      return rowStart(c + 1) > rowStart(c) && colStart(j + 1) > colStart(j);
    };
    // A thread running a whole image takes each group's columns in one pass (units of row blocks
    // only: those are packed one after another).
    const imgUnits = colBlocks > 1 ? G : units;
    let unitCount = 0;
    for (let u = 0; u < imgUnits; u++) if (colBlocks > 1 || nonEmpty(u)) unitCount++;
    // Batch split: with several images, bT threads each run whole images (the same units as one
    // thread would, in the same order: the same bits), the first nImg images in chunks of nb,
    // each thread a contiguous share of a chunk; the rest (fewer than bT) one at a time as
    // below. Then (after the uncached weights): the chunk's images and outputs where they are
    // not views of this memory, and a zero-bordered copy per thread.
    const imgCommands = (padded ? 1 : 0) + unitCount;
    const xStaged = inMem(x) < 0, yStaged = inMem(y) < 0;
    const bT = batchThreads(num, 2 * O * K * S, imgCommands);
    const nImg = bT > 1 ? Math.floor(num / bT) * bT : 0;
    const nb = nImg > 0 ? batchChunk(bT, nImg, 2 * O * K * S, imgCommands, (xStaged ? imgIn : 0) + (yStaged ? imgOut : 0)) : 0;
    const pXb = pW + (version === undefined ? G * groupBytes : 0), pYb = pXb + (nImg > 0 && xStaged ? align(4 * (nb * imgIn + 16)) : 0);
    const pXpT = pYb + (nImg > 0 && yStaged ? align(4 * nb * imgOut) : 0), xpBytes = padded ? align(4 * (imgPad + 16)) : 0;
    const scratchNeed = pXpT + (nImg > 0 ? bT * xpBytes : 0);
    const key = `conv ${O} ${G} ${K} ${blocks}`;
    // Cached weights are placed first (allocating may move the scratch block).
    const wAt = weightsBlock(weights, version, key, G * groupBytes, (at) => {
      // Raw weights into a temporary block (the scratch's tail), then packed per group.
      withTemp(4 * O * K, (raw) => {
        f32().set(weights.subarray(0, O * K), raw >> 2);
        for (let q = 0; q < G; q++) {
          for (let c = 0; c < blocks; c++) {
            const r0 = rowStart(c), r1 = rowStart(c + 1);
            if (r1 > r0) k.packa(raw + 4 * (q * m + r0) * K, r1 - r0, K, at + q * groupBytes + 4 * r0 * K);
          }
        }
      });
    }, () => scratch(scratchNeed) + pW);
    const base = scratch(scratchNeed);
    const { xOwn, yOwn, xAt, ySlot } = placeIO(num, x, y, 4 * imgIn, 4 * imgOut, io);
    const sumAt = placeSum(sum, num, xAt, ySlot, imgOut);
    let yAt = ySlot >= 0 ? slots[ySlot]!.at : base + pY;
    const mem = f32();
    const a = (base + pA) >> 2, b = (base + pB) >> 2;
    for (let o = 0; o < O; o++) {
      mem[a + o] = scale ? scale[o]! : 1;
      mem[b + o] = shift ? shift[o]! : 0;
    }
    mem.fill(0, a + O, a + O + MR);
    mem.fill(0, b + O, b + O + MR);
    // 1×1, stride 1, no padding: the image is its own column matrix; as a 1 × (H·W) image every
    // full panel lies in one "row".
    const flat = KH === 1 && KW === 1 && SH === 1 && SW === 1 && !padded;
    const h = flat ? 1 : Hp, w = flat ? H * W : Wp, ow = flat ? S : OW;
    let xIn = xAt >= 0 ? xAt : base + pX;
    let xp = padded ? base + pXp : xIn;
    const planeP = 4 * Hp * Wp;
    const T = cap > 1 ? planThreads(2 * O * K * S, units) : 1;
    /** The pconv arguments of unit u (group, row block, column block) on thread t, the (padded) image at xp, output at yAt. */
    const unitArgs = (u: number, t: number, xp: number, yAt: number): number[] => {
      const q = Math.floor(u / perGroup), v = u - q * perGroup, c = Math.floor(v / colBlocks), j = v % colBlocks;
      const r0 = rowStart(c), rows = rowStart(c + 1) - r0, o0 = q * m + r0;
      return [
        wAt + q * groupBytes + 4 * r0 * K, rows, K, xp + q * Cg * planeP, h, w, KH, KW, SH, SW, DH, DW, ow, S,
        yAt + 4 * o0 * S, base + pA + 4 * o0, base + pB + 4 * o0, reluMode(relu), relu ?? 0,
        base + pBuf + t * bufBytes, base + pTile + t * tileBytes, colStart(j), colStart(j + 1),
      ];
    };
    runBatch(bT, nImg, nb, 'packed conv (images)', x, y, imgIn, imgOut, xOwn, yOwn, base + pXb, base + pYb, (list, t, xi, yi) => {
      const xpt = base + pXpT + t * xpBytes;
      if (padded) list.infer(Op.PadImg, [xi, C, H, W, PH, PW, xpt], -1);
      for (let u = 0; u < imgUnits; u++) {
        if (colBlocks > 1) {
          const a = unitArgs(u * perGroup, t, padded ? xpt : xi, yi);
          a[21] = 0;
          a[22] = S;
          list.infer(Op.Pconv, a, 18);
        } else if (nonEmpty(u)) list.infer(Op.Pconv, unitArgs(u, t, padded ? xpt : xi, yi), 18);
      }
    }, sum ? (n, yi) => applySum(sum, sumAt!, n, yi, imgOut) : undefined);
    for (let n = nImg; n < num; n++) {
      if (xOwn >= 0) {
        xIn = xOwn + 4 * n * imgIn;
        if (!padded) xp = xIn;
      } else if (xAt < 0) f32().set(x.subarray(n * imgIn, (n + 1) * imgIn), xIn >> 2);
      if (yOwn >= 0) yAt = yOwn + 4 * n * imgOut;
      if (padded) k.padimg(xIn, C, H, W, PH, PW, xp);
      if (T > 1) {
        runThreaded(T, 'packed conv', (list, t) => {
          for (let u = Math.floor((t * units) / T); u < Math.floor(((t + 1) * units) / T); u++) {
            if (nonEmpty(u)) list.infer(Op.Pconv, unitArgs(u, t, xp, yAt), 18);
          }
        });
      } else if (blocks === 1) {
        for (let q = 0; q < G; q++) {
          k.pconv(
            wAt + q * groupBytes, m, K, xp + q * Cg * planeP, h, w, KH, KW, SH, SW, DH, DW, ow, S,
            yAt + 4 * q * m * S, base + pA + 4 * q * m, base + pB + 4 * q * m, reluMode(relu), relu ?? 0,
            base + pBuf, base + pTile, 0, S,
          );
        }
      } else {
        for (let u = 0; u < units; u++) {
          if (!nonEmpty(u)) continue;
          const a = unitArgs(u, 0, xp, yAt);
          k.pconv(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!, a[10]!, a[11]!, a[12]!, a[13]!, a[14]!, a[15]!, a[16]!, a[17]!, a[18]!, a[19]!, a[20]!, a[21]!, a[22]!);
        }
      }
      if (yOwn < 0) y.set(f32().subarray(yAt >> 2, (yAt >> 2) + imgOut), n * imgOut);
      if (sum) applySum(sum, sumAt!, n, yAt, imgOut);
    }
    keepResidentAfter(y, ySlot, 4 * imgOut, io, sum, sumAt);
  }

  /**
   * 3×3, stride 1, undilated, through Winograd F(T×T, 3×3), T = 2 or 4 (scripts/infer-wat.mjs):
   * the weights transformed (U = G g Gᵀ per output/input channel pair) and packed once per
   * version, (T + 2)² GEMMs per image and group over the transformed input tiles, then the output
   * transform with the epilogue.
   */
  function winograd(
    g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, version: number | undefined,
    scale: Float32Array | null, shift: Float32Array | null, relu: number | null, y: Float32Array, OH: number, OW: number,
    io: ActivationVersions | undefined, { T, R }: WinogradTile, sum?: ConvSum,
  ): void {
    const { channels: C, height: H, width: W, padH: PH, padW: PW } = g;
    const O = g.outChannels, G = g.group, Cg = C / G, m = O / G, S = OH * OW, imgIn = C * H * W, imgOut = O * S;
    const n = T + R - 1, XI = n * n, RR = R * R, kron = WINOGRAD_KRON[`${T}x${R}` as keyof typeof WINOGRAD_KRON];
    const TH = Math.ceil(OH / T), TWp = Math.ceil(Math.ceil(OW / T) / 4) * 4, N = TH * TWp;
    // The last tiles read n rows and (four tiles to a vector) up to T·TWp + R − 1 columns
    // (F(4×4, 3×3) loads five vectors a row: T·TWp + 4).
    const Hp = T * TH + R - 1, Wp = T * TWp + (T === 4 ? 4 : R - 1), planeP = Hp * Wp;
    const [inOp, outOp] = T === 4 ? [Op.Wino4In, Op.Wino4Out] : R === 5 ? [Op.Wino25In, Op.Wino25Out] : [Op.WinoIn, Op.WinoOut];
    const mp = Math.ceil(m / MR) * MR, panels = Math.ceil(N / NR);
    const uBytes = 4 * mp * Cg; // one packed U_ξ of one group
    const vstride = 32 * panels * Cg;
    // Scratch: image, padded image (+ slack), V (XI panel sets), M (XI products), a, b and
    // ones/zeros for the GEMMs' epilogue, output, edge tile; then (uncached) the packed U.
    const pX = 0, pXp = align(4 * (imgIn + 16)), pV = pXp + align(4 * (C * planeP + 16)), pM = pV + align(XI * vstride);
    const pA = pM + align(XI * 4 * m * N), pB = pA + align(4 * (O + MR)), pOne = pB + align(4 * (O + MR)), pZero = pOne + align(4 * (mp + MR));
    const cap = threadCap(), tileBytes = align(4 * MR * NR);
    const pY = pZero + align(4 * (mp + MR)), pTile = pY + align(4 * imgOut), pW = pTile + cap * tileBytes;
    // Batch split (as direct's): bT threads each run whole images, the first nImg in chunks of
    // nb; after the uncached U, the chunk's images and outputs (where staged), then per thread a
    // padded image, V and M.
    const imgCommands = 1 + G * (XI + 2);
    const xStaged = inMem(x) < 0, yStaged = inMem(y) < 0;
    const bT = batchThreads(num, 2 * m * Cg * N * XI * G, imgCommands);
    const nImg = bT > 1 ? Math.floor(num / bT) * bT : 0;
    const nb = nImg > 0 ? batchChunk(bT, nImg, 2 * m * Cg * N * XI * G, imgCommands, (xStaged ? imgIn : 0) + (yStaged ? imgOut : 0)) : 0;
    const pXb = pW + (version === undefined ? G * XI * uBytes : 0), pYb = pXb + (nImg > 0 && xStaged ? align(4 * (nb * imgIn + 16)) : 0);
    const pT = pYb + (nImg > 0 && yStaged ? align(4 * nb * imgOut) : 0);
    const tXp = 0, tV = align(4 * (C * planeP + 16)), tM = tV + align(XI * vstride), perT = tM + align(XI * 4 * m * N);
    const scratchNeed = pT + (nImg > 0 ? bT * perT : 0);
    const wAt = weightsBlock(weights, version, `wino${T}x${R} ${O} ${G} ${Cg}`, G * XI * uBytes, (at) => {
      withTemp(4 * XI * O * Cg, (raw) => transformWeights(raw, at));
    }, () => scratch(scratchNeed) + pW);
    /** U into the temporary block at `raw`, then packed into `at`. */
    function transformWeights(raw: number, at: number): void {
      // U_ξ[o][c] = (G g Gᵀ)[ξ] for every filter g at once, as one product per group: the
      // (n² × R²) matrix G ⊗ G times the group's filters (its rows, R² taps each) transposed,
      // laid out per ξ as an m × Cg matrix. Training changes the weights on every step, so this
      // runs once per step and layer (and replica): per-filter loops in JS took 1.6-2.4 ms for
      // LeNet's conv2, the GEMM with the repacking 0.2-0.6 ms. Its output block is kept rather
      // than allocated on every step, and bounded: large layers (CaffeNet's conv3: 14 MB of
      // transformed weights) run it in column chunks, each element the same RR-term sum.
      const plane = m * Cg;
      const P = Math.min(plane, Math.max(NR, Math.floor(TRANSFORM_CHUNK_FLOATS / XI / NR) * NR));
      if (transformOut.length < XI * P) transformOut = new Float32Array(XI * P);
      for (let q = 0; q < G; q++) {
        for (let p0 = 0; p0 < plane; p0 += P) {
          const n = Math.min(P, plane - p0);
          const u = transformOut.subarray(0, XI * n);
          gemm(false, true, XI, n, RR, 1, kron, weights.subarray((q * plane + p0) * RR, (q * plane + p0 + n) * RR), 0, u);
          const mem = f32();
          for (let xi = 0; xi < XI; xi++) mem.set(u.subarray(xi * n, (xi + 1) * n), (raw >> 2) + (q * XI + xi) * plane + p0);
        }
      }
      for (let q = 0; q < G; q++) {
        for (let xi = 0; xi < XI; xi++) k.packa(raw + 4 * (q * XI + xi) * m * Cg, m, Cg, at + (q * XI + xi) * uBytes);
      }
    }
    const base = scratch(scratchNeed);
    const { xOwn, yOwn, xAt, ySlot } = placeIO(num, x, y, 4 * imgIn, 4 * imgOut, io);
    const sumAt = placeSum(sum, num, xAt, ySlot, imgOut);
    let yAt = ySlot >= 0 ? slots[ySlot]!.at : base + pY;
    let xIn = xAt >= 0 ? xAt : base + pX;
    const mem = f32();
    const a = (base + pA) >> 2, b = (base + pB) >> 2;
    for (let o = 0; o < O; o++) {
      mem[a + o] = scale ? scale[o]! : 1;
      mem[b + o] = shift ? shift[o]! : 0;
    }
    mem.fill(1, (base + pOne) >> 2, ((base + pOne) >> 2) + mp + MR);
    mem.fill(0, (base + pZero) >> 2, ((base + pZero) >> 2) + mp + MR);
    const tin = T === 4 ? k.wino4_in : R === 5 ? k.wino25_in : k.wino_in, tout = T === 4 ? k.wino4_out : R === 5 ? k.wino25_out : k.wino_out;
    const Tt = cap > 1 ? planThreads(2 * m * Cg * N * XI, XI) : 1;
    runBatch(bT, nImg, nb, 'winograd (images)', x, y, imgIn, imgOut, xOwn, yOwn, base + pXb, base + pYb, (list, t, xi, yi) => {
      const at = base + pT + t * perT, xp = at + tXp, pv = at + tV, pm = at + tM, tile = base + pTile + t * tileBytes;
      list.infer(Op.PadImg2, [xi, C, H, W, PH, PW, Hp, Wp, xp], -1);
      for (let q = 0; q < G; q++) {
        list.infer(inOp, [xp + 4 * q * Cg * planeP, Cg, Hp, Wp, TH, TWp, pv, vstride, 0, Cg], -1);
        for (let xj = 0; xj < XI; xj++) {
          list.infer(Op.Wgemm, [wAt + (q * XI + xj) * uBytes, m, Cg, pv + xj * vstride, N, pm + 4 * xj * m * N, base + pOne, base + pZero, 0, 0, tile], 9);
        }
        list.infer(outOp, [pm, m, N, TH, TWp, OH, OW, yi + 4 * q * m * S, base + pA + 4 * q * m, base + pB + 4 * q * m, reluMode(relu), relu ?? 0, 0, m], 11);
      }
    }, sum ? (n, yi) => applySum(sum, sumAt!, n, yi, imgOut) : undefined);
    for (let img = nImg; img < num; img++) {
      if (xOwn >= 0) xIn = xOwn + 4 * img * imgIn;
      else if (xAt < 0) mem.set(x.subarray(img * imgIn, (img + 1) * imgIn), xIn >> 2);
      if (yOwn >= 0) yAt = yOwn + 4 * img * imgOut;
      k.padimg2(xIn, C, H, W, PH, PW, Hp, Wp, base + pXp);
      for (let q = 0; q < G; q++) {
        const xq = base + pXp + 4 * q * Cg * planeP, yq = yAt + 4 * q * m * S, aq = base + pA + 4 * q * m, bq = base + pB + 4 * q * m;
        if (Tt > 1) {
          // Three jobs: the input transform split by channels, the (T + 2)² independent GEMMs, the
          // output transform split by output channels; a thread's share is contiguous.
          const share = (n: number, t: number) => [Math.floor((t * n) / Tt), Math.floor(((t + 1) * n) / Tt)] as const;
          runThreaded(Tt, 'winograd input', (list, t) => {
            const [c0, c1] = share(Cg, t);
            if (c1 > c0) list.infer(inOp, [xq, Cg, Hp, Wp, TH, TWp, base + pV, vstride, c0, c1], -1);
          });
          runThreaded(Tt, 'winograd', (list, t) => {
            for (let xi = Math.floor((t * XI) / Tt); xi < Math.floor(((t + 1) * XI) / Tt); xi++) {
              list.infer(Op.Wgemm, [wAt + (q * XI + xi) * uBytes, m, Cg, base + pV + xi * vstride, N, base + pM + 4 * xi * m * N, base + pOne, base + pZero, 0, 0, base + pTile + t * tileBytes], 9);
            }
          });
          runThreaded(Tt, 'winograd output', (list, t) => {
            const [o0, o1] = share(m, t);
            if (o1 > o0) list.infer(outOp, [base + pM, m, N, TH, TWp, OH, OW, yq, aq, bq, reluMode(relu), relu ?? 0, o0, o1], 11);
          });
        } else {
          tin(xq, Cg, Hp, Wp, TH, TWp, base + pV, vstride, 0, Cg);
          for (let xi = 0; xi < XI; xi++) {
            k.wgemm(wAt + (q * XI + xi) * uBytes, m, Cg, base + pV + xi * vstride, N, base + pM + 4 * xi * m * N, base + pOne, base + pZero, 0, 0, base + pTile);
          }
          tout(base + pM, m, N, TH, TWp, OH, OW, yq, aq, bq, reluMode(relu), relu ?? 0, 0, m);
        }
      }
      if (yOwn < 0) y.set(f32().subarray(yAt >> 2, (yAt >> 2) + imgOut), img * imgOut);
      if (sum) applySum(sum, sumAt!, img, yAt, imgOut);
    }
    keepResidentAfter(y, ySlot, 4 * imgOut, io, sum, sumAt);
  }

  function depthwise(g: Conv2dGeometry, num: number, x: Float32Array, weights: Float32Array, epilogue: ConvEpilogue, y: Float32Array, io?: ActivationVersions): boolean {
    const { channels: C, height: H, width: W, kernelH: KH, kernelW: KW, padH: PH, padW: PW, strideH: SH, strideW: SW, dilationH: DH, dilationW: DW } = g;
    const OH = convOutputSize(H, KH, PH, SH, DH), OW = convOutputSize(W, KW, PW, SW, DW);
    for (const [key, v] of Object.entries({ channels: C, height: H, width: W, kernelH: KH, kernelW: KW, strideH: SH, strideW: SW, dilationH: DH, dilationW: DW, num, OH, OW })) {
      if (!Number.isInteger(v) || v < 1) throw new MathError(`${name} depthwise: ${key} must be a positive integer, got ${v}`);
    }
    if (!Number.isInteger(PH) || !Number.isInteger(PW) || PH < 0 || PW < 0) throw new MathError(`${name} depthwise: pads must be integers ≥ 0, got ${PH}, ${PW}`);
    if (g.group !== C || g.outChannels !== C) throw new MathError(`${name} depthwise: needs group = channels = outChannels, got ${g.group}, ${C}, ${g.outChannels}`);
    const { scale = null, shift = null, relu = null } = epilogue;
    const KK = KH * KW, imgIn = C * H * W, imgOut = C * OH * OW;
    const need = (what: string, a: Float32Array | null, n: number) => {
      if (a && a.length < n) throw new MathError(`${name} depthwise: ${what} has ${a.length} elements, needs ${n}`);
    };
    need('x', x, num * imgIn);
    need('y', y, num * imgOut);
    need('weights', weights, C * KK);
    need('scale', scale, C);
    need('shift', shift, C);
    const pX = 0, pY = align(4 * imgIn), pW = pY + align(4 * imgOut), pB = pW + align(4 * C * KK), pPad = pB + align(4 * C);
    const padPlane = align(4 * (H + 2 * PH) * (W + 2 * PW + 8));
    const T = threadCap() > 1 ? planThreads(2 * C * KK * OH * OW, C) : 1;
    // Batch split (as conv2d's): bT threads each run whole images, the first nImg in chunks of
    // nb, staged after the per-thread padded planes where they are not views of this memory.
    const flags = (shift ? 1 : 0) | (relu === 0 ? 2 : 0), leaky = relu !== null && relu !== 0;
    const imgCommands = leaky ? 2 : 1;
    const xStaged = inMem(x) < 0, yStaged = inMem(y) < 0;
    const bT = batchThreads(num, 2 * C * KK * OH * OW, imgCommands);
    const nImg = bT > 1 ? Math.floor(num / bT) * bT : 0;
    const nb = nImg > 0 ? batchChunk(bT, nImg, 2 * C * KK * OH * OW, imgCommands, (xStaged ? imgIn : 0) + (yStaged ? imgOut : 0)) : 0;
    const pXb = pPad + threadCap() * padPlane, pYb = pXb + (nImg > 0 && xStaged ? align(4 * (nb * imgIn + 16)) : 0);
    const scratchNeed = pYb + (nImg > 0 && yStaged ? align(4 * nb * imgOut) : 0);
    let base = 0, xAt = -1, ySlot = -1, xOwn = -1, yOwn = -1;
    if (!declineWhenFull(() => {
      base = scratch(scratchNeed);
      ({ xOwn, yOwn, xAt, ySlot } = placeIO(num, x, y, 4 * imgIn, 4 * imgOut, io));
    })) return false;
    let yAt = ySlot >= 0 ? slots[ySlot]!.at : base + pY;
    let xIn = xAt >= 0 ? xAt : base + pX;
    const mem = f32();
    const w0 = (base + pW) >> 2, b0 = (base + pB) >> 2;
    // The scale folds into each channel's filter.
    if (scale) for (let c = 0; c < C; c++) for (let t = 0; t < KK; t++) mem[w0 + c * KK + t] = scale[c]! * weights[c * KK + t]!;
    else mem.set(weights.subarray(0, C * KK), w0);
    if (shift) mem.set(shift.subarray(0, C), b0);
    // flags bit 0: the bias; bit 1: a ReLU of slope 0 applied as the kernel stores (max(v, 0), as
    // the relu kernel computes it); a leaky one runs as a pass after.
    runBatch(bT, nImg, nb, 'depthwise (images)', x, y, imgIn, imgOut, xOwn, yOwn, base + pXb, base + pYb, (list, t, xi, yi) => {
      list.infer(Op.Depthwise, [xi, C, H, W, base + pW, KH, KW, SH, SW, PH, PW, DH, DW, base + pB, flags, yi, OH, OW, base + pPad + t * padPlane], -1);
      if (leaky) list.infer(Op.Relu, [yi, yi, imgOut, relu ?? 0], 3);
    });
    for (let n = nImg; n < num; n++) {
      if (xOwn >= 0) xIn = xOwn + 4 * n * imgIn;
      else if (xAt < 0) mem.set(x.subarray(n * imgIn, (n + 1) * imgIn), xIn >> 2);
      if (yOwn >= 0) yAt = yOwn + 4 * n * imgOut;
      if (T > 1) {
        // Channels are independent: each thread runs a contiguous share, with its own padded plane.
        runThreaded(T, 'depthwise', (list, t) => {
          const c0 = Math.floor((t * C) / T), c1 = Math.floor(((t + 1) * C) / T), yc = yAt + 4 * c0 * OH * OW;
          if (c1 <= c0) return;
          list.infer(Op.Depthwise, [xIn + 4 * c0 * H * W, c1 - c0, H, W, base + pW + 4 * c0 * KK, KH, KW, SH, SW, PH, PW, DH, DW,
            base + pB + 4 * c0, flags, yc, OH, OW, base + pPad + t * padPlane], -1);
          if (leaky) list.infer(Op.Relu, [yc, yc, (c1 - c0) * OH * OW, relu ?? 0], 3);
        });
        if (yOwn < 0) y.set(f32().subarray(yAt >> 2, (yAt >> 2) + imgOut), n * imgOut);
        continue;
      }
      k.depthwise(xIn, C, H, W, base + pW, KH, KW, SH, SW, PH, PW, DH, DW, base + pB, flags, yAt, OH, OW, base + pPad);
      if (leaky) k.relu(yAt, yAt, imgOut, relu);
      if (yOwn < 0) y.set(mem.subarray(yAt >> 2, (yAt >> 2) + imgOut), n * imgOut);
    }
    keepResident(y, ySlot, 4 * imgOut, io);
    return true;
  }

  function innerProduct(M: number, N: number, K: number, x: Float32Array, w: Float32Array, version: number | undefined, bias: Float32Array | null, y: Float32Array): boolean {
    for (const [key, v] of [['M', M], ['N', N], ['K', K]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new MathError(`${name} inner product: ${key} must be a positive integer, got ${v}`);
    }
    if (x.length < M * K || w.length < N * K || y.length < M * N || (bias && bias.length < N)) {
      throw new MathError(`${name} inner product: operands too short for M=${M} N=${N} K=${K} (x ${x.length}, w ${w.length}, y ${y.length}${bias ? `, bias ${bias.length}` : ''})`);
    }
    const pX = 0, pB = align(4 * M * K), pY = pB + align(4 * N), pW = pY + align(4 * M * N);
    // Weights already in this memory (a blob of the 'wasm' host allocator) are read where they
    // are: the kernel takes them in their own layout, so a cached copy would only double them
    // (CaffeNet's fc6-fc8: 234 MB).
    const wOwn = inMem(w);
    const need = pW + (version === undefined && wOwn < 0 ? 4 * N * K : 0);
    let wAt = wOwn, base = 0;
    if (!declineWhenFull(() => {
      if (wOwn < 0) wAt = weightsBlock(w, version, `ip ${N} ${K}`, 4 * N * K, (at) => f32().set(w.subarray(0, N * K), at >> 2), () => scratch(need) + pW);
      base = scratch(need);
    })) return false;
    const mem = f32();
    // x and y in place where they are views of this memory.
    const xOwn = inMem(x), yOwn = inMem(y);
    const xAt = xOwn >= 0 ? xOwn : base + pX, yAt = yOwn >= 0 ? yOwn : base + pY;
    if (xOwn < 0) mem.set(x.subarray(0, M * K), xAt >> 2);
    if (bias) mem.set(bias.subarray(0, N), (base + pB) >> 2);
    // Threads split the weight rows (outputs) in groups of four, as rowdot takes them: each
    // output is the same sum whichever thread computes it. (A large inner product at batch 1 is
    // bound by reading the weights: two threads read them at a higher rate.)
    const T = threadCap() > 1 ? planThreads(2 * M * N * K, Math.floor(N / 4)) : 1;
    if (T > 1) {
      const at = (t: number) => (t >= T ? N : Math.round((t * N) / 4 / T) * 4);
      runThreaded(T, 'inner product', (list, t) => {
        const n0 = at(t), n1 = at(t + 1);
        if (n1 > n0) list.infer(Op.Rowdot, [xAt, M, K, wAt + 4 * n0 * K, n1 - n0, base + pB + 4 * n0, bias ? 1 : 0, yAt + 4 * n0, N], -1);
      });
    } else {
      k.rowdot(xAt, M, K, wAt, N, base + pB, bias ? 1 : 0, yAt, N);
    }
    if (yOwn < 0) y.set(f32().subarray(yAt >> 2, (yAt >> 2) + M * N));
    return true;
  }

  /** Runs `f`; false when the runner's memory ran out (ArenaFull), rethrowing anything else. */
  function declineWhenFull(f: () => void): boolean {
    try {
      f();
      return true;
    } catch (e) {
      if (e instanceof ArenaFull) return false;
      throw e;
    }
  }

  function stats() {
    let cachedBytes = 0;
    for (const c of live) cachedBytes += c.bytes;
    return { cachedBytes, cachedEntries: live.size, memoryBytes: mem0.buffer.byteLength };
  }

  function clear(): void {
    for (const c of live) {
      registry?.unregister(c);
      arena.release(c.at, c.bytes);
    }
    live.clear();
    cache = new WeakMap();
    resident = null;
  }

  /** Gives a cached block back to the arena (the caller drops or replaces its cache entry). */
  function evict(c: Cached): void {
    live.delete(c);
    registry?.unregister(c);
    arena.release(c.at, c.bytes);
  }

  function release(w: Float32Array): void {
    const c = cache.get(w);
    if (!c) return;
    cache.delete(w);
    evict(c);
  }

  return { name, conv2d, depthwise, innerProduct, stats, clear, release };
}

/**
 * Whether the packed-weights runner computes this convolution through Winograd (see
 * winogradTile): a quarter of the multiplies or fewer, which a native runner's im2col + GEMM
 * does not beat.
 */
export function winogradApplies(g: Conv2dGeometry): boolean {
  const OH = Math.floor((g.height + 2 * g.padH - g.kernelH) / g.strideH) + 1;
  const OW = Math.floor((g.width + 2 * g.padW - g.kernelW) / g.strideW) + 1;
  return winogradTile(g, g.channels / g.group, g.outChannels / g.group, OH, OW) !== null;
}

/**
 * The Winograd variant a convolution runs with, or null for the direct path: stride 1, no
 * dilation, enough channels for the GEMMs to beat one of R² times the depth, and a 3×3 kernel
 * (F(2×2, 3×3) or F(4×4, 3×3)) or a 5×5 one (F(2×2, 5×5)). CAFFE_TS_WINOGRAD=off: never; =2 or
 * =4: that tile for 3×3 kernels; by default the one with less GEMM work.
 */
function winogradTile(g: Conv2dGeometry, Cg: number, m: number, OH: number, OW: number): WinogradTile | null {
  const R = g.kernelH;
  if ((R !== 3 && R !== 5) || g.kernelW !== R || g.strideH !== 1 || g.strideW !== 1 || g.dilationH !== 1 || g.dilationW !== 1) return null;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const choice = env?.CAFFE_TS_WINOGRAD?.trim().toLowerCase();
  if (choice === 'off' || Cg < WINOGRAD_MIN_CHANNELS || m < WINOGRAD_MIN_CHANNELS) return null;
  if (R === 5) return { T: 2, R };
  if (choice === '2' || choice === '4') return { T: choice === '2' ? 2 : 4, R };
  // The GEMM work of each tile size, counting the tiles computed past the output's edge (tile
  // rows go four tiles to a vector): small planes (7×7) waste less with 2×2 tiles.
  const work = (T: number) => (T + 2) ** 2 * Math.ceil(OH / T) * Math.ceil(Math.ceil(OW / T) / 4) * 4;
  return { T: work(4) < work(2) ? 4 : 2, R: 3 };
}

/**
 * Fewest output columns (positions) per thread for a threaded direct convolution to split its
 * columns rather than its output channels (each thread then unfolds only its own columns).
 */
const SPLIT_COLUMNS_MIN = 64;

/** Most image floats (inputs and outputs) a batch split stages in the runner's memory per job (64 MiB). */
const MAX_BATCH_STAGED_FLOATS = 1 << 24;

/** Floating-point operations per thread and job of a batch split that make one image per thread enough (~0.25 ms). */
const BATCH_JOB_FLOPS = 1e7;

/** Fewest input channels (per group) and outputs (per group) for the Winograd path. */
export const WINOGRAD_MIN_CHANNELS = 16;

const KEY = Symbol.for('caffe-ts.wasmInferConv');

/**
 * The process-wide packed-weights runner that Convolution and InnerProduct layers use at
 * inference, created on first use; null when CAFFE_TS_GEMM=js, CAFFE_TS_PACKED=off or
 * WebAssembly SIMD is missing. Honors CAFFE_TS_GEMM=wasm-simd / wasm-relaxed-simd. With more
 * than one kernel thread it runs over the threads' shared memory and splits large layers (see
 * the top of this file), unless CAFFE_TS_PACKED_THREADS=off. Where setInferConvRunner installed
 * another runner, that one.
 */
export function defaultWasmInferConv(): WasmInferConv | null {
  return inferRunnerSlot().runner ?? builtinWasmInferConv();
}

/**
 * A runner of inference forwards with WasmInferConv's contract (the same outputs, epilogues and
 * sums, on the caller's arrays), e.g. a native one.
 */
export interface InferConvRunner extends WasmInferConv {
  /**
   * Optionally, inference MAX pooling with WasmInfer.maxPool's contract (Caffe's windows, each
   * non-empty; values only); false where it declines (the WebAssembly kernel runs then).
   */
  maxPool?(...args: [...windows: PoolWindows, x: Float32Array, y: Float32Array]): boolean;
  /**
   * Optionally, inference LRN across channels with WasmInfer.lrnAcross's contract (the same
   * float32 steps, so the same bits), except that `s` may be null where no backward reads it;
   * false where it declines (the WebAssembly kernel runs then).
   */
  lrnAcross?(
    x: Float32Array, s: Float32Array | null, y: Float32Array, num: number, channels: number, plane: number, size: number,
    k: number, alphaOverSize: number, beta: number,
  ): boolean;
  /**
   * Optionally, global AVE pooling (one window per plane) with WasmInfer.aveGlobal's contract
   * (each plane summed in order, then divided: the same bits); false where it declines.
   */
  aveGlobal?(planes: number, size: number, divisor: number, x: Float32Array, y: Float32Array): boolean;
}

const INFER_RUNNER_KEY = Symbol.for('caffe-ts.inferConvRunner');

function inferRunnerSlot(): { runner: InferConvRunner | null } {
  // Through globalThis, as the other kernel slots, so that duplicated copies of this package agree.
  const g = globalThis as Record<symbol, { runner: InferConvRunner | null } | undefined>;
  return (g[INFER_RUNNER_KEY] ??= { runner: null });
}

/**
 * Install (or, with null, remove) the runner that Convolution and InnerProduct layers hand their
 * inference (TEST-phase) forwards to in place of the WebAssembly packed runner:
 * defaultWasmInferConv then returns it. Pooling layers hand it their inference MAX pooling where
 * it has maxPool and their global AVE pooling where it has aveGlobal, LRN layers their inference
 * LRN across channels where it has lrnAcross. While a
 * pass runner is installed too (setConv2dRunner), the training forwards that would use the
 * packed runner (Winograd-shaped ones) come here as well, with the bias as their only epilogue.
 * Gradients that use the packed runner keep builtinWasmInferConv().
 */
export function setInferConvRunner(runner: InferConvRunner | null): void {
  inferRunnerSlot().runner = runner;
}

/** The runner setInferConvRunner installed, or null. */
export function installedInferConvRunner(): InferConvRunner | null {
  return inferRunnerSlot().runner;
}

/**
 * The WebAssembly packed-weights runner that defaultWasmInferConv returns where no other runner
 * is installed (null where it cannot run: see defaultWasmInferConv).
 */
export function builtinWasmInferConv(): WasmInferConv | null {
  const g = globalThis as Record<symbol, { conv: WasmInferConv | null } | undefined>;
  let slot = g[KEY];
  if (!slot) {
    const choice = defaultWasmChoice();
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    const off = env?.CAFFE_TS_PACKED?.trim().toLowerCase() === 'off';
    const own = choice === 'js' || off ? null : createWasmInferConv({ relaxed: choice });
    // CAFFE_TS_PACKED_THREADS=off: the packed runner stays on the calling thread (as before).
    const threadsOff = env?.CAFFE_TS_PACKED_THREADS?.trim().toLowerCase() === 'off';
    slot = { conv: own && !threadsOff ? withThreads(own) : own };
    g[KEY] = slot;
    const conv = slot.conv;
    if (conv) onHostReleased((arrays) => {
      for (const a of arrays) if (a instanceof Float32Array) conv.release(a);
    });
  }
  return slot.conv;
}

/**
 * `own` while getNumThreads() is 1; with more threads, a runner over the kernel threads' shared
 * memory running the same build (so results do not depend on the thread count), created on
 * first use, or `own` where there is none.
 */
function withThreads(own: WasmInferConv): WasmInferConv {
  let threaded: WasmInferConv | null | undefined;
  /**
   * The threaded runner with more than one thread, or (also at one thread) when an operand is a
   * view of the threads' shared memory (the 'wasm' host allocator): it reads and writes those in
   * place, where `own` would copy them in and out.
   */
  const pick = (...operands: Float32Array[]): WasmInferConv => {
    if (getNumThreads() <= 1 && !inSharedMemory(...operands)) return own;
    if (threaded === undefined) threaded = createWasmInferConv({ relaxed: own.name === 'wasm-relaxed-simd', threads: true });
    return threaded ?? own;
  };
  return {
    name: own.name,
    conv2d: (...args) => pick(args[2], args[6]).conv2d(...args),
    depthwise: (...args) => pick(args[2], args[5]).depthwise(...args),
    innerProduct: (...args) => pick(args[3], args[4], args[7]).innerProduct(...args),
    stats() {
      const a = own.stats(), b = threaded?.stats();
      return b ? { cachedBytes: a.cachedBytes + b.cachedBytes, cachedEntries: a.cachedEntries + b.cachedEntries, memoryBytes: a.memoryBytes + b.memoryBytes } : a;
    },
    release(w) {
      own.release(w);
      threaded?.release(w);
    },
    clear() {
      own.clear();
      threaded?.clear();
    },
  };
}
