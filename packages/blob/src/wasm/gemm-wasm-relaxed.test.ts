import { execFileSync } from 'node:child_process';
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { defineAgreementTests } from './gemm-wasm-cases.js';
import { createWasmGemmKernel, decodeBase64, wasmGemmInfo } from './gemm-wasm.js';
import { GEMM_WASM_RELAXED_SIMD_BASE64 } from './generated/gemm-wasm.js';

// The package's TypeScript lib declares no WebAssembly value; reach it through globalThis.
const wasmValidate = (bytes: Uint8Array): boolean =>
  (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes);

// Relaxed SIMD is behind --experimental-wasm-relaxed-simd in Node 20 (on by default from
// V8 11.4 / Node 22). This file runs in its own vitest worker process, so turning the flag
// on here, before anything compiles the relaxed build, affects no other test file.
const relaxedBytes = decodeBase64(GEMM_WASM_RELAXED_SIMD_BASE64);
const validatesWithoutFlag = wasmValidate(relaxedBytes);
if (!validatesWithoutFlag) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const relaxed = wasmValidate(relaxedBytes);

function childValidates(flags: string[]): boolean {
  const script = `process.stdout.write(String(WebAssembly.validate(Buffer.from(process.env.GEMM_B64, 'base64'))))`;
  const out = execFileSync(process.execPath, [...flags, '-e', script], {
    env: { ...process.env, GEMM_B64: GEMM_WASM_RELAXED_SIMD_BASE64 },
    encoding: 'utf8',
  });
  return out === 'true';
}

describe('feature detection of the relaxed-SIMD build', () => {
  it('validates under node --experimental-wasm-relaxed-simd (and only there on Node 20)', () => {
    // Newer Node ships relaxed SIMD (and may drop the flag): then it just has to validate.
    if (validatesWithoutFlag) {
      expect(childValidates([])).toBe(true);
      return;
    }
    expect(childValidates(['--experimental-wasm-relaxed-simd'])).toBe(true);
    expect(childValidates([])).toBe(false);
  });
});

describe.skipIf(!relaxed)('createWasmGemmKernel (relaxed-SIMD build)', () => {
  it('is the default once relaxed SIMD validates', () => {
    expect(wasmGemmInfo().variant).toBe('relaxed-simd');
    expect(createWasmGemmKernel()?.name).toBe('wasm-relaxed-simd');
  });

  defineAgreementTests(() => {
    const kernel = createWasmGemmKernel({ relaxed: true });
    if (!kernel) throw new Error('relaxed SIMD validated but the kernel was not created');
    return kernel;
  });
});
