import type { GpuJsInstance, GpuJsTexture } from './runtime.js';

/**
 * Recycles gpu.js's output textures.
 *
 * An immutable gpu.js kernel (how this backend runs every kernel) gives each call a new output
 * texture while the previous output is still held: `GLTexture.newTexture` does createTexture +
 * texImage2D. The texture is deleted when its last holder lets go. A training step therefore
 * allocates and frees one texture per kernel call. Under Mesa's llvmpipe, texImage2D alone took a
 * quarter of a LeNet step; GPU drivers charge for it too.
 *
 * The pool keeps freed textures per context, size and format, and newTexture takes one from it.
 * That is safe because a kernel draws every texel of its output, so a recycled texture's old
 * contents never show. Only textures made by newTexture are pooled: each one's size and format
 * are noted when it is made. The pool is bounded per key, and drained when the backend is
 * destroyed.
 *
 * This patches two methods of gpu.js 2.24.1, which the package pins exactly: `newTexture` on its
 * GL texture class and `deleteTexture` on its WebGL kernel class. It finds them from a live kernel
 * and texture, so it only patches what this context actually uses.
 */

/** What gpu.js keeps on a raw GL texture: a reference count. */
interface RawTexture {
  _refs?: number;
}
interface GlTextureWrapper {
  texture: RawTexture;
  context: GlLike;
  size: [number, number];
  internalFormat: number;
  textureType: number;
}
interface GlLike {
  deleteTexture(t: RawTexture): void;
}
interface KernelWithCache {
  context: GlLike | null;
  textureCache?: RawTexture[];
}

/** Freed textures are kept up to this many per size and format; more are deleted. */
const MAX_PER_KEY = 64;

interface PoolState {
  free: Map<string, RawTexture[]>;
  reused: number;
  made: number;
}
const pools = new WeakMap<GlLike, PoolState>();
/** The pool key of each texture newTexture made while pooling was on for its context. */
const keys = new WeakMap<RawTexture, string>();
const PATCHED = Symbol.for('caffe-ts.gpu.texturePool');

function poolOf(gl: GlLike): PoolState | undefined {
  return pools.get(gl);
}

/** The nearest object on `obj`'s prototype chain that has `name` as an own method. */
function ownerOf(obj: object, name: string): Record<string, unknown> | null {
  for (let p: object | null = Object.getPrototypeOf(obj); p; p = Object.getPrototypeOf(p)) {
    if (typeof Object.getOwnPropertyDescriptor(p, name)?.value === 'function') return p as Record<string, unknown>;
  }
  return null;
}

function patchTextureClass(proto: Record<string, unknown>): void {
  if (proto[PATCHED as unknown as string]) return;
  const original = proto.newTexture as (this: GlTextureWrapper) => void;
  proto.newTexture = function newTexture(this: GlTextureWrapper): void {
    const pool = poolOf(this.context);
    if (!pool) return original.call(this);
    const key = `${this.size[0]}x${this.size[1]}:${this.internalFormat}:${this.textureType}`;
    const reuse = pool.free.get(key)?.pop();
    if (!reuse) {
      original.call(this);
      keys.set(this.texture, key);
      pool.made++;
      return;
    }
    // What newTexture does, less the allocation: let go of the old texture, hold the new one.
    this.texture._refs = (this.texture._refs ?? 1) - 1;
    reuse._refs = 1;
    this.texture = reuse;
    pool.reused++;
  };
  Object.defineProperty(proto, PATCHED, { value: true });
}

function patchKernelClass(proto: Record<string, unknown>): void {
  if (proto[PATCHED as unknown as string]) return;
  const original = proto.deleteTexture as (this: KernelWithCache, t: RawTexture) => void;
  proto.deleteTexture = function deleteTexture(this: KernelWithCache, texture: RawTexture): void {
    const key = keys.get(texture);
    const pool = this.context ? poolOf(this.context) : undefined;
    if (key === undefined || !pool) return original.call(this, texture);
    const list = pool.free.get(key) ?? [];
    if (list.length >= MAX_PER_KEY) return original.call(this, texture);
    const cached = this.textureCache?.indexOf(texture) ?? -1;
    if (cached !== -1) this.textureCache!.splice(cached, 1);
    list.push(texture);
    pool.free.set(key, list);
  };
  Object.defineProperty(proto, PATCHED, { value: true });
}

export interface TexturePoolStats {
  /** Textures newTexture allocated. */
  made: number;
  /** Times newTexture took a pooled texture instead. */
  reused: number;
  /** Textures waiting in the pool now. */
  pooled: number;
}

/**
 * Turn on texture recycling for the GL context of `gpu` (a GL-mode gpu.js instance). `output` is
 * a texture one of its pipeline kernels returned: it and its kernel show which classes to patch.
 * False when they do not look like gpu.js 2.24's (nothing is patched then).
 */
export function enableTexturePool(gpu: GpuJsInstance, output: GpuJsTexture): boolean {
  const gl = (gpu as GpuJsInstance & { context?: GlLike | null }).context;
  const kernelObject = (output as GpuJsTexture & { kernel?: object }).kernel;
  const textureProto = ownerOf(output, 'newTexture');
  const kernelProto = kernelObject ? ownerOf(kernelObject, 'deleteTexture') : null;
  if (!gl || !textureProto || !kernelProto) return false;
  patchTextureClass(textureProto);
  patchKernelClass(kernelProto);
  if (!pools.has(gl)) pools.set(gl, { free: new Map(), reused: 0, made: 0 });
  return true;
}

export function texturePoolStats(gpu: GpuJsInstance): TexturePoolStats | null {
  const gl = (gpu as GpuJsInstance & { context?: GlLike | null }).context;
  const pool = gl ? poolOf(gl) : undefined;
  if (!pool) return null;
  let pooled = 0;
  for (const list of pool.free.values()) pooled += list.length;
  return { made: pool.made, reused: pool.reused, pooled };
}

/** Delete the pooled textures of `gpu`'s context and stop pooling for it. */
export function drainTexturePool(gpu: GpuJsInstance): void {
  const gl = (gpu as GpuJsInstance & { context?: GlLike | null }).context;
  const pool = gl ? poolOf(gl) : undefined;
  if (!gl || !pool) return;
  for (const list of pool.free.values()) for (const t of list) gl.deleteTexture(t);
  pools.delete(gl);
}
