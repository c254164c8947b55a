import { describe, expect, it } from 'vitest';
import { MathError } from '../math/errors.js';
import { activeGemmKernelName, gemm, GEMM_KERNEL_MIN_WORK, setGemmKernel } from '../math/gemm.js';
import { checkAgainstNaive, defineAgreementTests } from './gemm-wasm-cases.js';
import { createWasmGemmKernel, decodeBase64, defaultFloat32GemmKernel, wasmGemmInfo } from './gemm-wasm.js';
import { relaxedSimdStatus } from './wasm-api.js';
import { GEMM_WASM_RELAXED_SIMD_BASE64, GEMM_WASM_SIMD_BASE64 } from './generated/gemm-wasm.js';
import type { GemmKernel } from '../math/gemm.js';

// The package's TypeScript lib declares no WebAssembly value; reach it through globalThis.
const wasmValidate = (bytes: Uint8Array): boolean =>
  (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes);

// Node 20 validates WebAssembly SIMD without flags; relaxed SIMD needs a flag, which the
// package sets itself on first use unless the environment asks for the plain builds
// (relaxed-simd.test.ts): settle that first, then ask the engine.
relaxedSimdStatus();
const relaxedHere = wasmValidate(decodeBase64(GEMM_WASM_RELAXED_SIMD_BASE64));

function simdKernel(options: { maxStagedFloats?: number } = {}): GemmKernel {
  const kernel = createWasmGemmKernel({ relaxed: false, ...options });
  if (!kernel) throw new Error('WebAssembly SIMD is unavailable in this Node');
  return kernel;
}

describe('createWasmGemmKernel (SIMD build)', () => {
  defineAgreementTests(() => simdKernel());

  it('splits products larger than maxStagedFloats into staged blocks, beta applied once', () => {
    // 40·60 + 60·50 + 40·50 = 7400 floats > 1500: M, N and K all get split.
    const kernel = simdKernel({ maxStagedFloats: 1500 });
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      checkAgainstNaive(kernel, tA, tB, 40, 50, 60, 1.25, 0.5);
      checkAgainstNaive(kernel, tA, tB, 40, 50, 60, 1, 0, 11, { nanInC: true });
    }
  });

  it('rejects arrays shorter than the dimensions need', () => {
    const kernel = simdKernel();
    expect(() => kernel(false, false, 4, 4, 4, 1, new Float32Array(15), new Float32Array(16), 0, new Float32Array(16)))
      .toThrow(MathError);
    expect(() => createWasmGemmKernel({ maxStagedFloats: 0 })).toThrow(/maxStagedFloats/);
  });

  it('names the kernel after its build', () => {
    expect(simdKernel().name).toBe('wasm-simd');
  });
});

describe('feature detection', () => {
  it('decodes the embedded module and validates the SIMD build', () => {
    const bytes = decodeBase64(GEMM_WASM_SIMD_BASE64);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0, 0x61, 0x73, 0x6d]); // "\0asm"
    expect(wasmValidate(bytes)).toBe(true);
    expect(() => decodeBase64('AG*z')).toThrow(/invalid character/);
  });

  it('reports the builds this engine runs and picks relaxed only where it validates', () => {
    const info = wasmGemmInfo();
    expect(info.simd).toBe(true);
    expect(info.relaxedSimd).toBe(relaxedHere);
    expect(info.variant).toBe(relaxedHere ? 'relaxed-simd' : 'simd');
    expect(info.blocking.MR * info.blocking.NR).toBeGreaterThan(0);
    expect(createWasmGemmKernel()?.name).toBe(relaxedHere ? 'wasm-relaxed-simd' : 'wasm-simd');
    if (!relaxedHere) expect(createWasmGemmKernel({ relaxed: true })).toBeNull();
  });
});

describe('default kernel for gemm()', () => {
  it('CAFFE_TS_GEMM=js keeps the JS path; wasm-simd pins the SIMD build', () => {
    const saved = process.env.CAFFE_TS_GEMM;
    try {
      process.env.CAFFE_TS_GEMM = 'js';
      expect(defaultFloat32GemmKernel()).toBeNull();
      process.env.CAFFE_TS_GEMM = 'wasm-simd';
      expect(defaultFloat32GemmKernel()?.name).toBe('wasm-simd');
    } finally {
      if (saved === undefined) delete process.env.CAFFE_TS_GEMM;
      else process.env.CAFFE_TS_GEMM = saved;
    }
  });

  it('is installed by the first large Float32 gemm() and can be switched off', () => {
    // This file runs in its own worker, so nothing has touched the kernel slot yet.
    expect(activeGemmKernelName()).toBe('js');
    const n = 4;
    gemm(false, false, n, n, n, 1, new Float32Array(n * n), new Float32Array(n * n), 0, new Float32Array(n * n));
    expect(activeGemmKernelName()).toBe('js'); // below GEMM_KERNEL_MIN_WORK: nothing installed
    const m = Math.ceil(Math.cbrt(GEMM_KERNEL_MIN_WORK)) + 1;
    const A = new Float32Array(m * m).fill(1), B = new Float32Array(m * m).fill(2), C = new Float32Array(m * m);
    gemm(false, false, m, m, m, 1, A, B, 0, C);
    const expected = process.env.CAFFE_TS_GEMM === 'js' ? 'js' : relaxedHere ? 'wasm-relaxed-simd' : 'wasm-simd';
    expect(activeGemmKernelName()).toBe(expected);
    expect(C.every((v) => v === 2 * m)).toBe(true);
    setGemmKernel(null);
    expect(activeGemmKernelName()).toBe('js');
    gemm(false, false, m, m, m, 1, A, B, 0, C);
    expect(activeGemmKernelName()).toBe('js'); // an explicit choice is never overridden
  });
});
