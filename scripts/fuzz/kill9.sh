#!/usr/bin/env bash
# Longer SIGKILL loop than the CI test (tests/src/kill9.test.ts): KILL9_COUNT kills (default 500)
# at random moments of `caffe train`, checking after each that every snapshot under its final name
# decodes and that training resumes from the newest. Needs the built CLI (pnpm build).
set -euo pipefail
cd "$(dirname "$0")/../.."
test -f packages/cli/dist/bin.js || { echo "kill9.sh: build first (pnpm build)" >&2; exit 2; }
KILL9_COUNT="${KILL9_COUNT:-500}" exec node_modules/.bin/vitest run tests/src/kill9.test.ts --testTimeout "$(( ${KILL9_COUNT:-500} * 3000 + 60000 ))"
