#!/usr/bin/env bash
# Long memory-flatness run (not in CI): LONG_RUN_ITERS (default 20000) iterations of LeNet trained
# from a LevelDB through the Data layer (LONG_RUN_NET=lenet, the default; about an hour on two
# cores) or of a small MLP on DummyData (LONG_RUN_NET=mlp), after LONG_RUN_WARMUP (1000). Fails
# if the RSS at the end is more than 10 % above the RSS after the warm-up, or if open file
# descriptors grew. See long-run.mjs. Needs the built packages (pnpm build).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec node --expose-gc scripts/fuzz/long-run.mjs
