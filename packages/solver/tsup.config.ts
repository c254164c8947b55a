import { defineConfig } from 'tsup';

export default defineConfig({
  // parallel/worker is the script each worker thread runs (found beside parallel/index.js).
  entry: { index: 'src/index.ts', node: 'src/node.ts', 'parallel/index': 'src/parallel/index.ts', 'parallel/worker': 'src/parallel/worker.ts' },
  format: ['esm'],
  tsconfig: 'tsconfig.build.json',
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  external: ['vitest'],
});
