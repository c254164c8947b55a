#!/usr/bin/env bash
# Installs everything and runs the whole default test suite: typecheck, unit and integration
# tests, the consumer tests (packed tarballs installed outside the workspace), then the checks of
# those tarballs as published (publint, attw, the project's packaging rules).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pnpm typecheck
# headless-gl needs an X display: give the suite a virtual one (software rendering) when there
# is none; the GL-mode GPU tests skip cleanly where Xvfb is missing.
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  xvfb-run -a -s "-screen 0 1280x1024x24" pnpm test
else
  pnpm test
fi
pnpm test:consumer
pnpm lint:packages
