import { defineConfig, mergeConfig } from 'vitest/config';
import root from '../../vitest.config.js';

// The slow gpu checks (minutes to hours in software GL): `pnpm --filter @caffe-ts/backend-gpu test:gpu-slow`,
// under `xvfb-run -a` for headless GL. Not part of the default suite.
export default mergeConfig(
  root,
  defineConfig({
    test: {
      include: ['packages/backend-gpu/slow/**/*.slow.test.ts'],
      testTimeout: 24 * 3600_000,
      hookTimeout: 3600_000,
    },
  }),
);
