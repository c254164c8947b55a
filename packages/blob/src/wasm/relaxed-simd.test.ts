import { describe, expect, it } from 'vitest';
import { wasmGemmInfo } from './gemm-wasm.js';
import { RELAXED_SIMD_PROBE, relaxedSimdStatus, settleRelaxedSimd, type NodeProcessLike } from './wasm-api.js';

/** An engine whose relaxed SIMD turns on when the flag is set (Node 20), or is always on/off. */
function engine(kind: 'flag' | 'native' | 'none') {
  const flags: string[] = [];
  const api = {
    validate: (bytes: Uint8Array) => {
      expect(bytes).toBe(RELAXED_SIMD_PROBE);
      return kind === 'native' || (kind === 'flag' && flags.includes('--experimental-wasm-relaxed-simd'));
    },
  };
  const v8 = { setFlagsFromString: (f: string) => flags.push(f) };
  const node = (env: Record<string, string> = {}): NodeProcessLike => ({
    versions: { node: '20.20.2' },
    env,
    getBuiltinModule: (id: string) => (id === 'node:v8' ? v8 : undefined),
  });
  return { api, flags, node };
}

describe('relaxed SIMD on Node 20', () => {
  it.skipIf(process.env.CAFFE_TS_GEMM === 'js')('this process runs the relaxed builds: native, or the flag set before the first module compiled', () => {
    const status = relaxedSimdStatus();
    expect(['native', 'enabled']).toContain(status);
    expect(WebAssembly.validate(RELAXED_SIMD_PROBE)).toBe(true);
    expect(wasmGemmInfo().variant).toBe('relaxed-simd');
  });

  it('sets the flag only where the engine lacks relaxed SIMD and Node can take it', () => {
    const native = engine('native');
    expect(settleRelaxedSimd(native.api, native.node())).toBe('native');
    expect(native.flags).toEqual([]);

    const node20 = engine('flag');
    expect(settleRelaxedSimd(node20.api, node20.node())).toBe('enabled');
    expect(node20.flags).toEqual(['--experimental-wasm-relaxed-simd']);

    // An engine that rejects the probe even with the flag.
    const none = engine('none');
    expect(settleRelaxedSimd(none.api, none.node())).toBe('unavailable');

    // An embedder whose setFlagsFromString throws.
    const locked = engine('flag');
    const refuse = { setFlagsFromString: () => { throw new Error('flags are frozen'); } };
    expect(settleRelaxedSimd(locked.api, { versions: { node: '20.20.2' }, env: {}, getBuiltinModule: () => refuse })).toBe('unavailable');
  });

  it('leaves the flags alone where the environment says so, in browsers and before Node 20.16', () => {
    const plain: Record<string, string>[] = [{ CAFFE_TS_RELAXED_SIMD: 'off' }, { CAFFE_TS_GEMM: 'wasm-simd' }, { CAFFE_TS_GEMM: 'js' }, { CAFFE_TS_RELAXED_SIMD: ' OFF ' }];
    for (const env of plain) {
      const e = engine('flag');
      expect(settleRelaxedSimd(e.api, e.node(env))).toBe('off');
      expect(e.flags).toEqual([]);
    }
    const browser = engine('flag');
    // No Node versions, as in a browser or under a bundler's process shim. (Passing undefined
    // would read this process through the parameter's default.)
    expect(settleRelaxedSimd(browser.api, {})).toBe('unavailable');
    expect(browser.flags).toEqual([]);
    const old = engine('flag');
    expect(settleRelaxedSimd(old.api, { versions: { node: '20.10.0' }, env: {} })).toBe('unavailable');
    expect([...browser.flags, ...old.flags]).toEqual([]);
  });
});
