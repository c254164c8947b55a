import { BackendError, newTransferStats, type DeviceAllocator, type DType, type FloatArray, type TransferStats } from '@caffe-ts/blob';
import type { GpuJsKernel, GpuRuntime, GpuValue } from './runtime.js';

/**
 * One device buffer: a gpu.js Texture in GL modes, a Float32Array in wasm/cpu modes. Kernels
 * never write in place (gpu.js outputs are fresh, `immutable`), so writing a buffer swaps in the
 * new value and frees the old one; blobs keep the same handle for their whole life.
 */
export class GpuBuffer {
  /** null until first written or read (then zeros). Always null for a split buffer. */
  value: GpuValue | null = null;
  /**
   * A buffer longer than the device's exact-index limit (GpuDevice.splitLimit) is held as
   * consecutive parts of `partLength` floats (the last one shorter), each null until written.
   */
  parts: (GpuValue | null)[] | null = null;
  partLength = 0;
  freed = false;
  constructor(readonly length: number) {}

  /** Floats in part `p`. */
  partSize(p: number): number {
    return Math.min(this.partLength, this.length - p * this.partLength);
  }
}

/**
 * gpu.js computes kernel arithmetic, thread indices and texture addresses in float32 (GL, and
 * its wasm mode unless a value is typed integer): a flat index above 2^24 is not exact, so a
 * buffer longer than that is split into parts that kernels index separately.
 */
export const EXACT_INDEX_LIMIT = 2 ** 24;

export interface GpuDeviceStats extends TransferStats {
  /** Textures (or arrays) the device currently holds: flat over repeated steps when nothing leaks. */
  liveBuffers: number;
  kernelsCompiled: number;
  kernelRuns: number;
}

/** A kernel source over flat 1-D buffers: `this.thread.x` indexes the output. */
export interface KernelSpec {
  /** Cache key part naming the computation (the output length and loop bound are added). */
  name: string;
  source: string;
  /** The largest trip count of any loop in the kernel (gpu.js GL unrolls to a fixed bound). */
  loop?: number;
  /**
   * Values baked into the shader as constants (`this.constants.X`; `$X` in the source is short for
   * it): the GL compiler folds divisions by them and fixes loop bounds. Part of the cache key.
   */
  constants?: Record<string, number>;
  /** Each thread returns 4 floats (gpu.js 'Array(4)': one RGBA texel per output element). */
  vec4?: boolean;
  /**
   * GLSL functions the (GL-only) kernel calls, as gpu.js native functions. They may read the
   * kernel's texture arguments through gpu.js's uniforms (`user_A`, `user_ASize`). Their source
   * must be determined by `name` and `constants` (the cache key).
   */
  native?: { name: string; source: string; returnType: string }[];
}

/** out[i] = Prev[i] for i < have, then Src[off + i − have]: one step of assembling a part. */
const appendSpec: KernelSpec = {
  name: 'append',
  source: `function (Prev, have, Src, off) {
    const i = this.thread.x;
    if (i < have) { return Prev[i]; }
    return Src[off + i - have];
  }`,
};

function argSignature(a: unknown): string {
  if (typeof a === 'number') return 'n';
  if (a instanceof Float32Array) return `a${a.length}`;
  const t = a as { output?: number[]; type?: string };
  return t.output ? `t${t.type === 'ArrayTexture(4)' ? '4:' : ''}${t.output.join('x')}` : '?';
}

const constantsKey = (c: Record<string, number> | undefined): string =>
  c ? Object.keys(c).sort().map((k) => `${k}=${c[k]}`).join(';') : '';

export class GpuDevice implements DeviceAllocator<GpuBuffer> {
  readonly name: string;
  readonly stats: GpuDeviceStats & { cpuFallbacks: Record<string, number> } = {
    ...newTransferStats(),
    liveBuffers: 0,
    kernelsCompiled: 0,
    kernelRuns: 0,
    cpuFallbacks: {},
  };
  private kernels = new Map<string, GpuJsKernel>();
  /**
   * Values computed from a buffer's contents (weights packed for the GEMM), by buffer and key,
   * with the contents' version they were computed from: an inference net packs each weight once
   * instead of on every forward. Freed with their buffer (free) or when recomputed.
   */
  private derived = new Map<GpuBuffer, Map<string, { version: number; value: GpuValue }>>();
  /** A 1-float buffer passed where a kernel input is switched off, so argument types never change. */
  readonly placeholder = new GpuBuffer(1);
  private readonly maxElements: number;

  /** Buffers longer than this many floats are split into parts (EXACT_INDEX_LIMIT unless lowered for tests). */
  readonly splitLimit: number;

  /**
   * Whether the heavy products (Convolution, InnerProduct) run as packed GEMMs: operands gathered
   * into RGBA textures of 4 floats per texel and each thread computing 4 outputs, so one texture
   * fetch serves 4 multiply-adds (GL modes; the per-fetch cost dominates in software GL).
   */
  readonly packed: boolean;

  /**
   * Per-kernel wall time, when profiling is on (GpuBackendOptions.profileKernels): each run is
   * bracketed by a device synchronisation, so the figures are exact per kernel but the whole step
   * runs slower than without profiling.
   */
  private profile: Map<string, { calls: number; ms: number }> | null = null;

  constructor(readonly runtime: GpuRuntime, options: { splitLimit?: number; packed?: boolean; profileKernels?: boolean } = {}) {
    if (options.profileKernels) this.profile = new Map();
    this.packed = options.packed ?? runtime.textures;
    this.name = `gpu.js/${runtime.info.mode}`;
    const side = runtime.info.maxTextureSize;
    this.maxElements = Number.isFinite(side) ? side * side : 2 ** 31 - 1;
    this.splitLimit = Math.min(options.splitLimit ?? EXACT_INDEX_LIMIT, EXACT_INDEX_LIMIT, this.maxElements);
  }

  allocate(length: number, _dtype: DType): GpuBuffer {
    // float64 blobs are stored in float32 on the device (gpu.js computes in single precision).
    const b = new GpuBuffer(length);
    if (length > this.splitLimit) {
      b.partLength = this.splitLimit;
      b.parts = new Array<GpuValue | null>(Math.ceil(length / this.splitLimit)).fill(null);
    }
    return b;
  }

  upload(handle: GpuBuffer, source: FloatArray): void {
    this.stats.uploads++;
    if (handle.parts) {
      for (let p = 0; p < handle.parts.length; p++) {
        const start = p * handle.partLength;
        this.setPart(handle, p, this.deviceCopy(source.subarray(start, start + handle.partSize(p))));
      }
      return;
    }
    this.set(handle, this.deviceCopy(source.subarray(0, handle.length)));
  }

  /** A device value holding `src` (a private array in wasm/cpu modes, a texture in GL). */
  private deviceCopy(src: FloatArray): GpuValue {
    const f32 = src instanceof Float32Array ? src : Float32Array.from(src);
    if (!this.runtime.textures) {
      // wasm/cpu modes read plain arrays: keep a private copy so later host writes stay host-side.
      return f32 === src ? f32.slice() : f32;
    }
    return this.run({ name: 'copy', source: 'function (a) { return a[this.thread.x]; }' }, f32.length, [f32]);
  }

  download(handle: GpuBuffer, target: FloatArray): void {
    this.stats.readbacks++;
    const pieces = handle.parts ? handle.parts.map((_, p) => this.readPart(handle, p)) : [this.read(handle)];
    let at = 0;
    for (const v of pieces) {
      if (at >= target.length) break;
      const arr = v instanceof Float32Array ? v : (v.toArray() as Float32Array);
      const n = Math.min(arr.length, target.length - at, handle.length - at);
      target.set(n === arr.length ? arr : arr.subarray(0, n), at);
      at += n;
    }
  }

  free(handle: GpuBuffer): void {
    if (handle.freed) return;
    this.dropDerived(handle);
    this.release(handle.value);
    handle.value = null;
    if (handle.parts) for (const v of handle.parts) this.release(v);
    handle.parts = handle.parts ? handle.parts.map(() => null) : null;
    handle.freed = true;
  }

  /**
   * The buffer's current value, zeros when it was never written. A buffer held in parts that fits
   * one kernel output (cut into image parts by a layer before) is joined back on the device.
   */
  read(handle: GpuBuffer): GpuValue {
    if (handle.freed) throw new BackendError(`gpu backend: buffer of ${handle.length} floats used after it was freed`);
    if (handle.parts) {
      if (handle.length <= this.splitLimit) {
        this.joinParts(handle);
      } else {
        throw new BackendError(
          `gpu backend (${this.runtime.info.mode}): a buffer of ${handle.length} floats is split into ${handle.parts.length} parts ` +
            `(gpu.js indexes exactly only up to ${this.splitLimit} floats); only layers whose images are independent (Convolution, Pooling, LRN, neurons, Dropout, Eltwise, Split, Softmax and Concat off the batch axis, BatchNorm with global statistics, Scale and Bias; by parts of whole images), ` +
            'InnerProduct weights and the solver updates handle split buffers',
        );
      }
    }
    if (handle.value === null) {
      this.set(handle, this.run({ name: 'zeros', source: 'function () { return 0; }' }, handle.length, []));
    }
    return handle.value!;
  }

  /** Join a split buffer of at most splitLimit floats into one value (append kernels, on the device). */
  private joinParts(handle: GpuBuffer): void {
    const parts = handle.parts!.map((_, p) => this.readPart(handle, p));
    const ph = this.read(this.placeholder);
    let acc: GpuValue | null = null;
    let have = 0;
    parts.forEach((v, p) => {
      const n = handle.partSize(p);
      const out = this.adopt(this.run(appendSpec, have + n, [acc ?? ph, have, v, 0]));
      this.release(acc);
      acc = out;
      have += n;
    });
    for (const v of parts) this.release(v);
    handle.parts = null;
    handle.partLength = 0;
    handle.value = acc;
  }

  /**
   * Hold the buffer as parts of `partLength` floats (whole images, for a layer run part by part):
   * an unsplit value is cut on the device, a split one re-cut; `discard` drops the values instead
   * (the buffer is about to be overwritten).
   */
  toParts(handle: GpuBuffer, partLength: number, discard: boolean): void {
    if (handle.freed) throw new BackendError(`gpu backend: buffer of ${handle.length} floats used after it was freed`);
    if (partLength > this.splitLimit || partLength <= 0) {
      throw new BackendError(`gpu backend: parts of ${partLength} floats asked for (limit ${this.splitLimit})`);
    }
    const count = Math.ceil(handle.length / partLength);
    if (discard) {
      this.release(handle.value);
      handle.value = null;
      if (handle.parts) for (const v of handle.parts) this.release(v);
      handle.parts = new Array<GpuValue | null>(count).fill(null);
      handle.partLength = partLength;
      return;
    }
    if (handle.parts) {
      this.repartition(handle, partLength);
      return;
    }
    const whole = handle.value;
    const parts = new Array<GpuValue | null>(count).fill(null);
    if (whole !== null) {
      const ph = this.read(this.placeholder);
      for (let p = 0; p < count; p++) {
        const n = Math.min(partLength, handle.length - p * partLength);
        parts[p] = this.adopt(this.run(appendSpec, n, [ph, 0, whole, p * partLength]));
      }
      this.release(whole);
    }
    handle.value = null;
    handle.parts = parts;
    handle.partLength = partLength;
  }

  /** Part `p` of a split buffer, zeros when never written. */
  readPart(handle: GpuBuffer, p: number): GpuValue {
    if (handle.freed) throw new BackendError(`gpu backend: buffer of ${handle.length} floats used after it was freed`);
    if (!handle.parts) {
      if (p !== 0) throw new BackendError(`gpu backend: part ${p} of an unsplit buffer`);
      return this.read(handle);
    }
    if (handle.parts[p] === null) this.setPart(handle, p, this.run({ name: 'zeros', source: 'function () { return 0; }' }, handle.partSize(p), []));
    return handle.parts[p]!;
  }

  /**
   * Replace part `p` of a split buffer (the whole value of an unsplit one when p = 0). `counted`:
   * the value is already counted in liveBuffers (a kernel output stored in another buffer first).
   */
  setPart(handle: GpuBuffer, p: number, value: GpuValue, counted = false): void {
    if (!handle.parts) {
      this.set(handle, value);
      if (counted) this.stats.liveBuffers--;
      return;
    }
    if (handle.parts[p] === value) return;
    this.release(handle.parts[p] ?? null);
    handle.parts[p] = value;
    if (!counted) this.stats.liveBuffers++;
  }

  /** Part layout of a buffer: [start, length] per part (one part for an unsplit buffer). */
  partRanges(handle: GpuBuffer): [number, number][] {
    if (!handle.parts) return [[0, handle.length]];
    return handle.parts.map((_, p) => [p * handle.partLength, handle.partSize(p)]);
  }

  /**
   * Re-cut a split buffer into parts of `partLength` floats (at most splitLimit), on the device:
   * each new part is assembled from the old parts it overlaps, all indices below the limit.
   * InnerProduct asks for parts holding whole weight rows; elementwise updates ask that history
   * and diff match the param's parts.
   */
  repartition(handle: GpuBuffer, partLength: number): void {
    if (!handle.parts || handle.partLength === partLength) return;
    if (partLength > this.splitLimit || partLength <= 0) {
      throw new BackendError(`gpu backend: parts of ${partLength} floats asked for a split buffer (limit ${this.splitLimit})`);
    }
    const old = handle.parts.map((_, p) => this.readPart(handle, p));
    const oldLen = handle.partLength;
    const count = Math.ceil(handle.length / partLength);
    const next: GpuValue[] = [];
    const ph = this.read(this.placeholder);
    for (let j = 0; j < count; j++) {
      const start = j * partLength;
      const end = Math.min(start + partLength, handle.length);
      let acc: GpuValue | null = null;
      let have = 0;
      // Append the overlapping piece of each old part, growing the new part (≤ partLength floats).
      for (let a = Math.floor(start / oldLen); a * oldLen < end; a++) {
        const from = Math.max(start, a * oldLen);
        const to = Math.min(end, (a + 1) * oldLen);
        const out = this.adopt(this.run(appendSpec, have + (to - from), [acc ?? ph, have, old[a], from - a * oldLen]));
        this.release(acc);
        acc = out;
        have += to - from;
      }
      next.push(acc!);
    }
    for (const v of old) this.release(v);
    handle.parts = next;
    handle.partLength = partLength;
  }

  /** Replace the buffer's value by a kernel output, freeing the previous texture. */
  set(handle: GpuBuffer, value: GpuValue): void {
    if (handle.value === value) return;
    this.dropParts(handle);
    this.release(handle.value);
    handle.value = value;
    this.stats.liveBuffers++;
  }

  /**
   * Store `value` in `handle` and move the handle's previous value into `keep` instead of freeing
   * it: a zero-copy snapshot of what an in-place kernel overwrote (Scale in place keeps its input
   * for the scale gradient). `keep`'s own previous value is freed.
   */
  setKeeping(handle: GpuBuffer, value: GpuValue, keep: GpuBuffer): void {
    if (keep.freed || handle.freed) throw new BackendError('gpu backend: setKeeping on a freed buffer');
    if (handle === keep) throw new BackendError('gpu backend: setKeeping needs two different buffers');
    this.dropParts(handle);
    this.dropParts(keep);
    this.release(keep.value);
    keep.value = handle.value;
    handle.value = value;
    this.stats.liveBuffers++;
  }

  /** A whole value is stored into a buffer held in parts (it fits one output now): free the parts. */
  private dropParts(handle: GpuBuffer): void {
    if (!handle.parts) return;
    for (const v of handle.parts) this.release(v);
    handle.parts = null;
    handle.partLength = 0;
  }

  /** Run `spec` with output length `n` and return its fresh output (caller stores or frees it). */
  run(spec: KernelSpec, n: number, args: unknown[]): GpuValue {
    this.checkSize(n, spec.name);
    const loop = spec.loop ? 2 ** Math.ceil(Math.log2(Math.max(spec.loop, 1) + 1)) : 1;
    // gpu.js fixes argument sizes when it compiles: kernels are cached per input-size signature.
    const key = `${spec.name}|${n}|${loop}|${spec.vec4 ? 'v4|' : ''}${constantsKey(spec.constants)}|${args.map(argSignature).join(',')}`;
    let k = this.kernels.get(key);
    if (!k) {
      const settings: Record<string, unknown> = {
        output: [n],
        pipeline: true,
        immutable: true,
        tactic: 'precision',
        loopMaxIterations: loop,
      };
      if (spec.constants) settings.constants = spec.constants;
      if (spec.vec4) settings.returnType = 'Array(4)';
      if (spec.native) settings.nativeFunctions = spec.native;
      const source = spec.constants ? spec.source.replace(/\$([A-Za-z_]\w*)/g, 'this.constants.$1') : spec.source;
      k = this.runtime.gpu.createKernel(source, settings);
      this.kernels.set(key, k);
      this.stats.kernelsCompiled++;
    }
    this.stats.kernelRuns++;
    if (!this.profile) return k(...args);
    this.finish();
    const t0 = performance.now();
    const out = k(...args);
    this.finish();
    const entry = this.profile.get(spec.name) ?? { calls: 0, ms: 0 };
    entry.calls++;
    entry.ms += performance.now() - t0;
    this.profile.set(spec.name, entry);
    return out;
  }

  /** Wait for the device to finish queued work (GL: glFinish; nothing to wait for off GL). */
  finish(): void {
    (this.runtime.gpu as { context?: { finish?: () => void } }).context?.finish?.();
  }

  /** Kernel time by kernel name, slowest first (null unless profiling is on); `reset` starts over. */
  kernelProfile(reset = false): { name: string; calls: number; ms: number }[] | null {
    if (!this.profile) return null;
    const rows = [...this.profile].map(([name, e]) => ({ name, calls: e.calls, ms: e.ms })).sort((a, b) => b.ms - a.ms);
    if (reset) this.profile.clear();
    return rows;
  }

  /** Run a kernel and store its output into `handle`. */
  runInto(handle: GpuBuffer, spec: KernelSpec, args: unknown[]): void {
    const out = this.run(spec, handle.length, args);
    this.set(handle, out);
  }

  /** Drop a buffer's value (it reads as zeros again) without freeing the buffer itself. */
  clear(handle: GpuBuffer): void {
    this.release(handle.value);
    handle.value = null;
  }

  /** Free a value that was never stored in a buffer (a temporary). */
  release(value: GpuValue | null): void {
    if (value === null) return;
    this.stats.liveBuffers--;
    if (!(value instanceof Float32Array)) value.delete();
  }

  /** Count a temporary returned by `run` that the caller keeps outside a buffer. */
  adopt(value: GpuValue): GpuValue {
    this.stats.liveBuffers++;
    return value;
  }

  /**
   * The value `make` computes from `handle`'s contents at `version` (a Blob's dataVersion, which
   * changes with every write), kept under `key` until the version changes or the buffer is freed.
   * The caller must not release it.
   */
  derive(handle: GpuBuffer, version: number, key: string, make: () => GpuValue): GpuValue {
    let byKey = this.derived.get(handle);
    const hit = byKey?.get(key);
    if (hit && hit.version === version) return hit.value;
    if (hit) {
      byKey!.delete(key);
      this.release(hit.value);
    }
    const value = make();
    if (!byKey) this.derived.set(handle, (byKey = new Map()));
    byKey.set(key, { version, value });
    return value;
  }

  private dropDerived(handle: GpuBuffer): void {
    const byKey = this.derived.get(handle);
    if (!byKey) return;
    this.derived.delete(handle);
    for (const { value } of byKey.values()) this.release(value);
  }

  destroy(): void {
    for (const handle of [...this.derived.keys()]) this.dropDerived(handle);
    for (const k of this.kernels.values()) k.destroy?.();
    this.kernels.clear();
  }

  private checkSize(n: number, what: string): void {
    if (n > this.splitLimit) {
      throw new BackendError(
        `gpu backend (${this.runtime.info.mode}): ${what} would write ${n} floats in one kernel output, more than the ${this.splitLimit} ` +
          'gpu.js indexes exactly (float32 indices; maxTextureSize² is ' + this.maxElements + '): only InnerProduct weights and the solver updates work on split buffers',
      );
    }
  }
}
