import { defineConfig } from 'vitest/config';
import root from '../../vitest.config.js';

// The slow gpu checks (minutes to hours in software GL): `pnpm --filter @caffe-ts/backend-gpu test:gpu-slow`,
// under `xvfb-run -a` for headless GL. Not part of the default suite. The root config's source
// aliases and test settings, with only the slow files included (mergeConfig would append this
// include list to the root's and run the whole suite as well).
export default defineConfig({
  ...root,
  test: {
    ...root.test,
    include: ['packages/backend-gpu/slow/**/*.slow.test.ts'],
    testTimeout: 24 * 3600_000,
    hookTimeout: 3600_000,
  },
});
