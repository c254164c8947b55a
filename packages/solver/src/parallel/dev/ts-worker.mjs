// Development only: the worker entry used when the parallel module runs from its TypeScript
// sources (vitest). Installs the source hooks, then runs the real worker.
import { register } from 'node:module';
import { workerData } from 'node:worker_threads';

register('./ts-hooks.mjs', import.meta.url);
await import(workerData.__entry);
