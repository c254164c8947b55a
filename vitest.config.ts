import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const pkgs = ['proto', 'blob', 'layers', 'net', 'solver', 'io-leveldb', 'cli', 'zoo', 'backend-gpu', 'layers-contrib'];
const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/`, import.meta.url));

// Tests import workspace packages from source, so no build is needed to run them.
export default defineConfig({
  resolve: {
    alias: [
      ...pkgs.map((p) => ({ find: new RegExp(`^@caffe-ts/${p}/(.*)$`), replacement: `${src(p)}$1` })),
      ...pkgs.map((p) => ({ find: new RegExp(`^@caffe-ts/${p}$`), replacement: `${src(p)}index.ts` })),
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'tests/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'apps/*/tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // `caffe train` trains on every core by default (worker threads); in-process CLI tests stay on
    // one thread unless a test asks (tests/src/parallel-cli.test.ts covers the default).
    env: { CAFFE_TS_WORKERS: '1' },
  },
});
