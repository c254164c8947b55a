#!/usr/bin/env bash
# Installs everything and runs the whole default test suite: typecheck, unit and integration
# tests, then the consumer tests (packed tarballs installed outside the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pnpm typecheck
pnpm test
pnpm test:consumer
