// Development only: the worker entry used when the parallel module runs from its TypeScript
// sources and a layer plugin outside the workspace must be imported (it may import
// `@caffe-ts/layers`): installs the hooks (mapping workspace packages to the dev bundle), then
// runs the real worker from the bundle.
import { register } from 'node:module';
import { workerData } from 'node:worker_threads';

register('./ts-hooks.mjs', { parentURL: import.meta.url, data: { bundleDir: workerData.__bundleDir ?? null } });
await import(workerData.__entry);
