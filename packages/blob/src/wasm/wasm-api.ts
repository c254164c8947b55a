// The slice of the WebAssembly JS API the kernels use, and the base64 decoder for their embedded
// modules: the package's TypeScript lib declares no WebAssembly (nor DOM/Node) types, and an
// engine without WebAssembly must still load every kernel file.
import { MathError } from '../math/errors.js';

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(deltaPages: number): number;
}
export interface SharedWasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => SharedWasmMemory;
  validate(bytes: Uint8Array): boolean;
}

/** The engine's WebAssembly object, or null where there is none. */
export function wasmApi(): WasmApi | null {
  const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  if (!api || typeof api.validate !== 'function') return null;
  if (relaxedSimd === undefined) relaxedSimd = settleRelaxedSimd(api);
  return api;
}

/**
 * The smallest module that uses relaxed SIMD: (func (param v128 v128 v128) (result v128)
 * f32x4.relaxed_madd of its three parameters).
 */
export const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128 v128 v128) -> v128
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b, // body
]);

/**
 * How this engine came to run relaxed SIMD (the fused multiply-add builds of the kernels):
 * 'native' where it validates as is (browsers, Node 22 and later), 'enabled' where this package
 * turned on Node 20's --experimental-wasm-relaxed-simd itself, 'off' where the engine needs that
 * flag and the environment asked the package to leave it alone (CAFFE_TS_RELAXED_SIMD=off, or
 * CAFFE_TS_GEMM=js|wasm-simd, which pick other builds anyway), 'unavailable' otherwise. Settled on
 * the first use of WebAssembly by any kernel, before any module compiles.
 */
export type RelaxedSimdStatus = 'native' | 'enabled' | 'off' | 'unavailable';

let relaxedSimd: RelaxedSimdStatus | undefined;

/** What settleRelaxedSimd reads of Node's process object. */
export interface NodeProcessLike {
  versions?: { node?: string };
  env?: Record<string, string | undefined>;
  getBuiltinModule?: (id: string) => unknown;
}

/**
 * Whether the environment asks that Node's relaxed-SIMD flag be left alone: CAFFE_TS_RELAXED_SIMD=off,
 * or CAFFE_TS_GEMM=js|wasm-simd (which pick builds without it anyway). The one test for this
 * package and for programs (the `caffe` command) that set the flag themselves.
 */
export function relaxedSimdOptedOut(env: Record<string, string | undefined>): boolean {
  const gemm = env.CAFFE_TS_GEMM?.trim().toLowerCase();
  return env.CAFFE_TS_RELAXED_SIMD?.trim().toLowerCase() === 'off' || gemm === 'js' || gemm === 'wasm-simd';
}

/** See RelaxedSimdStatus; settles it now if no kernel has yet. */
export function relaxedSimdStatus(): RelaxedSimdStatus {
  const api = wasmApi();
  return api ? relaxedSimd! : 'unavailable';
}

/**
 * Relaxed SIMD is standard WebAssembly and on by default from V8 11.4; Node 20 (V8 11.3) keeps it
 * behind a flag, which a process may still set before it compiles a module that needs it. Without
 * it every kernel would run its plain build (a multiply, then an add): the GEMM loses about a
 * third of its speed. So on Node, unless the environment says otherwise, the flag is set here,
 * once, before the first kernel module compiles (the CLI sets it the same way).
 */
export function settleRelaxedSimd(
  api: Pick<WasmApi, 'validate'>,
  proc: NodeProcessLike | undefined = (globalThis as { process?: NodeProcessLike }).process,
): RelaxedSimdStatus {
  if (api.validate(RELAXED_SIMD_PROBE)) return 'native';
  if (!proc?.versions?.node) return 'unavailable';
  if (relaxedSimdOptedOut(proc.env ?? {})) return 'off';
  // process.getBuiltinModule arrived in Node 20.16; older releases keep the plain builds.
  const v8 = proc.getBuiltinModule?.('node:v8') as { setFlagsFromString?: (flags: string) => void } | undefined;
  if (typeof v8?.setFlagsFromString !== 'function') return 'unavailable';
  try {
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // An embedder that refuses flag changes: the plain builds, as without the flag.
    return 'unavailable';
  }
  return api.validate(RELAXED_SIMD_PROBE) ? 'enabled' : 'unavailable';
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 (with padding) to bytes; self-contained so no Buffer/atob is needed. */
export function decodeBase64(text: string): Uint8Array {
  const lookup = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) lookup[B64.charCodeAt(i)] = i;
  const clean = text.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let acc = 0, bits = 0, o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? lookup[c]! : -1;
    if (v < 0) throw new MathError(`decodeBase64: invalid character '${clean[i]}' at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}
