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
  return api && typeof api.validate === 'function' ? api : null;
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
