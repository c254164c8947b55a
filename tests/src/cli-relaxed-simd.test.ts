// The `caffe` command's start-up and the relaxed-SIMD opt-outs: the built binary in a child
// process, since the flag is process-wide and settled once.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));

function relaxedLine(env: Record<string, string>): string {
  const clean = { ...process.env };
  delete clean['CAFFE_TS_RELAXED_SIMD'];
  delete clean['CAFFE_TS_GEMM'];
  const r = spawnSync(process.execPath, [bin, 'device_query'], { env: { ...clean, ...env }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const line = r.stdout.split('\n').find((l) => l.startsWith('WebAssembly relaxed SIMD'));
  expect(line, r.stdout).toBeDefined();
  return line!;
}

describe('caffe and relaxed SIMD', () => {
  it('runs the fused multiply-add builds by default', () => {
    expect(relaxedLine({})).toMatch(/: yes/);
  });

  it.each<Record<string, string>>([{ CAFFE_TS_RELAXED_SIMD: 'off' }, { CAFFE_TS_GEMM: 'wasm-simd' }])('leaves Node 20 flag alone under %o', (env) => {
    // Engines with relaxed SIMD built in (Node 22+) run it whatever the variable says.
    const builtIn = Number(process.versions.node.split('.')[0]) >= 22;
    expect(relaxedLine(env)).toMatch(builtIn ? /: yes$/ : /^WebAssembly relaxed SIMD \(fused multiply-add kernels\): no/);
  });
});
