#!/usr/bin/env bash
# Long memory-flatness run (not in CI): LONG_RUN_ITERS iterations (default 20000) of a small MLP
# in a child with --expose-gc, RSS and heap after gc printed every 2000 iterations; fails if the
# RSS at the end is more than 10 % above the RSS after the 1000-iteration warm-up.
# Needs the built packages (pnpm build).
set -euo pipefail
cd "$(dirname "$0")/../.."
ITERS="${LONG_RUN_ITERS:-20000}"
exec node --expose-gc --input-type=module -e "
const root = process.cwd() + '/packages/';
const { createSolver } = await import(root + 'solver/dist/index.js');
const { parseNetParameter, createMessage } = await import(root + 'proto/dist/index.js');
const { setLogSink } = await import(root + 'blob/dist/index.js');
await import(root + 'layers/dist/register.js');
setLogSink(() => {});
const net = parseNetParameter(\`
  layer { name: 'd' type: 'DummyData' top: 'x' top: 't' dummy_data_param { shape { dim: 16 dim: 64 } shape { dim: 16 dim: 4 } data_filler { type: 'gaussian' } } }
  layer { name: 'ip1' type: 'InnerProduct' bottom: 'x' top: 'h' inner_product_param { num_output: 64 weight_filler { type: 'xavier' } } }
  layer { name: 'relu' type: 'ReLU' bottom: 'h' top: 'h' }
  layer { name: 'ip2' type: 'InnerProduct' bottom: 'h' top: 'y' inner_product_param { num_output: 4 weight_filler { type: 'xavier' } } }
  layer { name: 'loss' type: 'EuclideanLoss' bottom: 'y' bottom: 't' top: 'loss' }\`);
const s = createSolver(createMessage('SolverParameter', { net_param: net, base_lr: 0.001, lr_policy: 'fixed', momentum: 0.9, max_iter: 1e9, display: 0 }), { log: false });
const mem = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage(); };
await s.step(1000);
const warm = mem();
console.log('warm-up: rss', warm.rss, 'heap', warm.heapUsed);
let last = warm;
for (let done = 1000; done < $ITERS; done += 2000) {
  await s.step(Math.min(2000, $ITERS - done));
  last = mem();
  console.log('iter', s.iter, 'rss', last.rss, 'heap', last.heapUsed);
}
const growth = (last.rss - warm.rss) / warm.rss;
console.log('rss growth', (growth * 100).toFixed(1) + ' %');
process.exit(growth > 0.1 ? 1 : 0);
"
