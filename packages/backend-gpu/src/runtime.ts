import * as gpuJsNamespace from 'gpu.js';
import { BackendError } from '@caffe-ts/blob';
import { enableTexturePool } from './texture-pool.js';

/** The execution modes this backend asks gpu.js for, best first. 'wasm' is gpu.js's 'webasm'. */
export type GpuMode = 'headlessgl' | 'webgl2' | 'webgl' | 'wasm' | 'cpu';
export const GPU_MODE_ORDER: readonly GpuMode[] = ['headlessgl', 'webgl2', 'webgl', 'wasm', 'cpu'];

/** The parts of gpu.js this package uses (its bundled typings lag its 2.24 runtime). */
export interface GpuJsTexture {
  toArray(): Float32Array | Float32Array[];
  delete(): void;
}
export type GpuValue = GpuJsTexture | Float32Array;
export interface GpuJsKernel {
  (...args: unknown[]): GpuValue;
  destroy?(removeCanvasReferences?: boolean): void;
}
export interface GpuJsInstance {
  readonly mode: string;
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernel;
  destroy(): void;
}
interface GpuJsKernelClass {
  readonly isSupported: boolean;
  readonly features?: { maxTextureSize?: number; isTextureFloat?: boolean; isFloatRead?: boolean; channelCount?: number };
}
interface GpuJsModule {
  GPU: (new (settings: { mode: string }) => GpuJsInstance) & Record<string, unknown>;
  HeadlessGLKernel: GpuJsKernelClass;
  WebGL2Kernel: GpuJsKernelClass;
  WebGLKernel: GpuJsKernelClass;
  WebAssemblyKernel?: GpuJsKernelClass;
  CPUKernel: GpuJsKernelClass;
}

/**
 * gpu.js is CommonJS (its browser build a UMD bundle): Node's ESM loader and bundlers both hand its
 * `module.exports` over as the default export. A static import (not `createRequire`) keeps this
 * module bundleable for browsers; Node users who only register the backend do not load it (see
 * register-backend.ts). It loads `gl` itself when present, and runs without it.
 */
export function loadGpuJs(): GpuJsModule {
  const ns = gpuJsNamespace as unknown as { default?: GpuJsModule } & GpuJsModule;
  return ns.default ?? ns;
}

const GPUJS_MODE: Record<GpuMode, string> = {
  headlessgl: 'headlessgl',
  webgl2: 'webgl2',
  webgl: 'webgl',
  wasm: 'webasm',
  cpu: 'cpu',
};

function kernelClass(m: GpuJsModule, mode: GpuMode): GpuJsKernelClass | undefined {
  switch (mode) {
    case 'headlessgl':
      return m.HeadlessGLKernel;
    case 'webgl2':
      return m.WebGL2Kernel;
    case 'webgl':
      return m.WebGLKernel;
    case 'wasm':
      return m.WebAssemblyKernel;
    case 'cpu':
      return m.CPUKernel;
  }
}

/** Whether gpu.js can run `mode` here (headless GL needs the optional `gl` build and a display). */
export function isModeSupported(mode: GpuMode): boolean {
  const m = loadGpuJs();
  if (mode === 'cpu') return true;
  try {
    return Boolean(kernelClass(m, mode)?.isSupported);
  } catch {
    return false;
  }
}

export interface GpuRuntimeInfo {
  mode: GpuMode;
  /** gpu.js's own name for the mode. */
  gpuJsMode: string;
  /** Largest texture side; a 1-D buffer holds at most maxTextureSize² floats. Infinity off GL. */
  maxTextureSize: number;
  /** Device float format: GL modes store float32 textures ('single'); wasm/cpu compute in float32 arrays. */
  floatPrecision: 'single';
  /**
   * Mantissa bits a value keeps through a device round trip (upload, kernel, readback), measured
   * when the mode starts: 23 for IEEE float32 storage; fewer means the device stores less.
   */
  mantissaBits: number;
  /** Largest relative rounding step of device values (2^−mantissaBits). */
  epsilon: number;
  /** Modes tried before this one and why they were passed over. */
  skipped: { mode: GpuMode; reason: string }[];
  /** GL modes: freed output textures are recycled (texture-pool.ts; CAFFE_TS_GPU_TEXTURE_POOL=off turns it off). */
  texturePool?: boolean;
  /**
   * What renders the GL modes, as the driver names it (a GPU, or a software rasterizer such as
   * Mesa's llvmpipe); absent in the wasm and cpu modes and where the context hides it.
   */
  renderer?: string;
}

export interface GpuRuntime {
  readonly gpu: GpuJsInstance;
  readonly info: GpuRuntimeInfo;
  /** Whether buffers are gpu.js Textures (GL modes) rather than Float32Arrays (wasm, cpu). */
  readonly textures: boolean;
}

/** A mode is taken only after a small kernel ran in it and gave the right answer. */
function probe(mode: GpuMode): GpuJsInstance {
  const { GPU } = loadGpuJs();
  const gpu = new GPU({ mode: GPUJS_MODE[mode] });
  try {
    const k = gpu.createKernel('function (a) { return a[this.thread.x] * 2 + 1; }', {
      output: [3],
      pipeline: true,
      immutable: true,
      tactic: 'precision',
    });
    const out = k(new Float32Array([1, 2, 3]));
    const arr = out instanceof Float32Array ? out : (out.toArray() as Float32Array);
    if (!(out instanceof Float32Array)) out.delete();
    if (arr[0] !== 3 || arr[1] !== 5 || arr[2] !== 7) throw new Error(`probe kernel gave [${Array.from(arr).join(', ')}], expected [3, 5, 7]`);
    k.destroy?.();
    return gpu;
  } catch (e) {
    try {
      gpu.destroy();
    } catch {
      /* a half-made context may not destroy cleanly */
    }
    throw e;
  }
}

function texturePoolWanted(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.CAFFE_TS_GPU_TEXTURE_POOL?.trim().toLowerCase() !== 'off';
}

/** Run one pipeline kernel to find gpu.js's texture and kernel classes, then pool its textures. */
function startTexturePool(gpu: GpuJsInstance): boolean {
  const k = gpu.createKernel('function () { return 1; }', { output: [1], pipeline: true, immutable: true, tactic: 'precision' });
  try {
    const out = k();
    if (out instanceof Float32Array) return false;
    const on = enableTexturePool(gpu, out);
    out.delete();
    return on;
  } finally {
    k.destroy?.();
  }
}

interface GlContextLike {
  getParameter(pname: number): unknown;
  getExtension?(name: string): { UNMASKED_RENDERER_WEBGL?: number } | null;
}

/** The GL context's renderer string, or undefined off GL or where it is not told. */
function glRenderer(gpu: GpuJsInstance): string | undefined {
  const ctx = (gpu as GpuJsInstance & { context?: GlContextLike | null }).context;
  if (!ctx || typeof ctx.getParameter !== 'function') return undefined;
  const GL_RENDERER = 0x1f01;
  try {
    const ext = ctx.getExtension?.('WEBGL_debug_renderer_info');
    const unmasked = ext?.UNMASKED_RENDERER_WEBGL !== undefined ? ctx.getParameter(ext.UNMASKED_RENDERER_WEBGL) : undefined;
    if (typeof unmasked === 'string' && unmasked) return unmasked;
    // headless-gl's JavaScript class answers a fixed 'ANGLE'; the native class beneath it reads the
    // driver's string. In a browser the one getParameter is the context's own.
    let getParameter = ctx.getParameter;
    for (let p: object | null = Object.getPrototypeOf(ctx); p; p = Object.getPrototypeOf(p)) {
      const own = Object.getOwnPropertyDescriptor(p, 'getParameter')?.value;
      if (typeof own === 'function') getParameter = own as GlContextLike['getParameter'];
    }
    const r = getParameter.call(ctx, GL_RENDERER);
    return typeof r === 'string' && r ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Store 1 + 2^−k for k = 1…30 on the device and read back (v − 1): the largest k still seen is
 * the number of mantissa bits the device keeps.
 */
function measureMantissaBits(gpu: GpuJsInstance): number {
  const n = 30;
  const input = new Float32Array(n);
  for (let k = 1; k <= n; k++) input[k - 1] = 1 + 2 ** -k;
  const kern = gpu.createKernel('function (a) { return a[this.thread.x] - 1.0; }', { output: [n], pipeline: true, immutable: true, tactic: 'precision' });
  try {
    const out = kern(input);
    const arr = out instanceof Float32Array ? out : (out.toArray() as Float32Array);
    if (!(out instanceof Float32Array)) out.delete();
    let bits = 0;
    for (let k = 1; k <= n; k++) if (arr[k - 1] === 2 ** -k) bits = k;
    return bits;
  } finally {
    kern.destroy?.();
  }
}

/** Pick `requested` (or the best working mode in GPU_MODE_ORDER) and start gpu.js in it. */
export function startRuntime(requested?: GpuMode): GpuRuntime {
  if (requested !== undefined && !GPU_MODE_ORDER.includes(requested)) {
    throw new BackendError(`gpu backend: unknown mode '${String(requested)}' (expected one of ${GPU_MODE_ORDER.join(', ')})`);
  }
  const candidates = requested ? [requested] : GPU_MODE_ORDER;
  const skipped: { mode: GpuMode; reason: string }[] = [];
  for (const mode of candidates) {
    if (!isModeSupported(mode)) {
      skipped.push({ mode, reason: mode === 'headlessgl' ? 'gl (headless-gl) not built or no display' : 'not supported by gpu.js here' });
      continue;
    }
    try {
      const gpu = probe(mode);
      const features = kernelClass(loadGpuJs(), mode)?.features;
      const textures = mode === 'headlessgl' || mode === 'webgl2' || mode === 'webgl';
      const mantissaBits = measureMantissaBits(gpu);
      const renderer = textures ? glRenderer(gpu) : undefined;
      const texturePool = textures && texturePoolWanted() ? startTexturePool(gpu) : undefined;
      return {
        gpu,
        textures,
        info: {
          mode,
          gpuJsMode: gpu.mode,
          maxTextureSize: textures ? (features?.maxTextureSize ?? 0) : Infinity,
          floatPrecision: 'single',
          mantissaBits,
          epsilon: 2 ** -mantissaBits,
          skipped,
          ...(renderer !== undefined ? { renderer } : {}),
          ...(texturePool !== undefined ? { texturePool } : {}),
        },
      };
    } catch (e) {
      skipped.push({ mode, reason: (e as Error).message });
    }
  }
  throw new BackendError(
    `gpu backend: ${requested ? `mode '${requested}'` : 'no gpu.js mode'} is available here (${skipped.map((s) => `${s.mode}: ${s.reason}`).join('; ')})`,
  );
}
