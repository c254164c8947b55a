import { BackendError, newTransferStats, type DeviceAllocator, type DType, type FloatArray, type TransferStats } from '@caffe-ts/blob';
import type { GpuJsKernel, GpuRuntime, GpuValue } from './runtime.js';

/**
 * One device buffer: a gpu.js Texture in GL modes, a Float32Array in wasm/cpu modes. Kernels
 * never write in place (gpu.js outputs are fresh, `immutable`), so writing a buffer swaps in the
 * new value and frees the old one; blobs keep the same handle for their whole life.
 */
export class GpuBuffer {
  /** null until first written or read (then zeros). */
  value: GpuValue | null = null;
  freed = false;
  constructor(readonly length: number) {}
}

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
}

function argSignature(a: unknown): string {
  if (typeof a === 'number') return 'n';
  if (a instanceof Float32Array) return `a${a.length}`;
  const out = (a as { output?: number[] }).output;
  return out ? `t${out.join('x')}` : '?';
}

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
  /** A 1-float buffer passed where a kernel input is switched off, so argument types never change. */
  readonly placeholder = new GpuBuffer(1);
  private readonly maxElements: number;

  constructor(readonly runtime: GpuRuntime) {
    this.name = `gpu.js/${runtime.info.mode}`;
    const side = runtime.info.maxTextureSize;
    this.maxElements = Number.isFinite(side) ? side * side : 2 ** 31 - 1;
  }

  allocate(length: number, _dtype: DType): GpuBuffer {
    this.checkSize(length, 'allocate');
    // float64 blobs are stored in float32 on the device (gpu.js computes in single precision).
    return new GpuBuffer(length);
  }

  upload(handle: GpuBuffer, source: FloatArray): void {
    this.stats.uploads++;
    const src = source instanceof Float32Array && source.length === handle.length ? source : Float32Array.from(source.subarray(0, handle.length));
    if (!this.runtime.textures) {
      // wasm/cpu modes read plain arrays: keep a private copy so later host writes stay host-side.
      this.set(handle, src === source ? src.slice() : src);
      return;
    }
    this.set(handle, this.run({ name: 'copy', source: 'function (a) { return a[this.thread.x]; }' }, handle.length, [src]));
  }

  download(handle: GpuBuffer, target: FloatArray): void {
    this.stats.readbacks++;
    const v = this.read(handle);
    const arr = v instanceof Float32Array ? v : (v.toArray() as Float32Array);
    if (target.length >= handle.length) target.set(arr.length === handle.length ? arr : arr.subarray(0, handle.length));
    else target.set(arr.subarray(0, target.length));
  }

  free(handle: GpuBuffer): void {
    if (handle.freed) return;
    this.release(handle.value);
    handle.value = null;
    handle.freed = true;
  }

  /** The buffer's current value, zeros when it was never written. */
  read(handle: GpuBuffer): GpuValue {
    if (handle.freed) throw new BackendError(`gpu backend: buffer of ${handle.length} floats used after it was freed`);
    if (handle.value === null) {
      this.set(handle, this.run({ name: 'zeros', source: 'function () { return 0; }' }, handle.length, []));
    }
    return handle.value!;
  }

  /** Replace the buffer's value by a kernel output, freeing the previous texture. */
  set(handle: GpuBuffer, value: GpuValue): void {
    if (handle.value === value) return;
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
    this.release(keep.value);
    keep.value = handle.value;
    handle.value = value;
    this.stats.liveBuffers++;
  }

  /** Run `spec` with output length `n` and return its fresh output (caller stores or frees it). */
  run(spec: KernelSpec, n: number, args: unknown[]): GpuValue {
    this.checkSize(n, spec.name);
    const loop = spec.loop ? 2 ** Math.ceil(Math.log2(Math.max(spec.loop, 1) + 1)) : 1;
    // gpu.js fixes argument sizes when it compiles: kernels are cached per input-size signature.
    const key = `${spec.name}|${n}|${loop}|${args.map(argSignature).join(',')}`;
    let k = this.kernels.get(key);
    if (!k) {
      k = this.runtime.gpu.createKernel(spec.source, {
        output: [n],
        pipeline: true,
        immutable: true,
        tactic: 'precision',
        loopMaxIterations: loop,
      });
      this.kernels.set(key, k);
      this.stats.kernelsCompiled++;
    }
    this.stats.kernelRuns++;
    return k(...args);
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

  destroy(): void {
    for (const k of this.kernels.values()) k.destroy?.();
    this.kernels.clear();
  }

  private checkSize(n: number, what: string): void {
    if (n > this.maxElements) {
      throw new BackendError(
        `gpu backend (${this.runtime.info.mode}): ${what} needs ${n} floats in one texture, more than maxTextureSize² = ${this.maxElements}; ` +
          'blobs this large are not split across textures yet',
      );
    }
  }
}
