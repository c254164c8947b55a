import { defineConfig } from 'vitest/config';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

const pkgs = ['proto', 'blob', 'layers', 'net', 'solver', 'io-leveldb', 'cli', 'zoo', 'backend-gpu', 'layers-contrib', 'backend-native'];
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
    // Vitest runs one file at a time on a 2-core machine by default (cores - 1 forks). Most of a
    // file's time there is spent loading and transforming modules, which overlaps well with another
    // file's tests: two forks took the whole suite from 462 s to 310 s on 2 cores.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    minWorkers: 1,
    // `caffe train` trains on every core by default (worker threads); in-process CLI tests stay on
    // one thread unless a test asks (tests/src/parallel-cli.test.ts covers the default).
    env: { CAFFE_TS_WORKERS: '1' },
  },
});
