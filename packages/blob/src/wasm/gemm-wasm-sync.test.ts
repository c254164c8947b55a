import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GENERATED_PATH, renderGemmWasm, WAT_PATH } from '../../scripts/build-wasm.mjs';

// The committed module bytes must be exactly what the generator and wabt produce today.
describe('generated WebAssembly GEMM', () => {
  it('is in sync with scripts/gemm-wat.mjs (else run `pnpm --filter @caffe-ts/blob build:wasm`)', async () => {
    const { wat, ts } = await renderGemmWasm();
    expect(readFileSync(WAT_PATH, 'utf8') === wat, `${WAT_PATH} is stale`).toBe(true);
    expect(readFileSync(GENERATED_PATH, 'utf8') === ts, `${GENERATED_PATH} is stale`).toBe(true);
  });
});
